package plugin

import (
	"context"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/spf13/cobra"
)

// signalled is set once SIGINT or SIGTERM has reached a command.
var signalled atomic.Bool

// withSignals cancels ctx on SIGINT or SIGTERM, so that long commands
// remove what they half wrote instead of dying with it in place.
func withSignals(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithCancel(ctx)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case <-ch:
			signalled.Store(true)
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		cancel()
	}
}

// withExitStatus wraps a command's RunE with exitStatus.
func withExitStatus(c *cobra.Command) {
	if run := c.RunE; run != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			return exitStatus(cmd.Context(), run(cmd, args))
		}
	}
}
