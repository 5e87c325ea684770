package plugin

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// withSignals cancels ctx on SIGINT or SIGTERM, so that long commands
// remove what they half wrote instead of dying with it in place.
func withSignals(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx == nil {
		ctx = context.Background()
	}
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}
