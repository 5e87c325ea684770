package plugin

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/spf13/cobra"
)

// signalled is set once SIGINT or SIGTERM has reached a command, and
// interrupted closed.
var (
	signalled     atomic.Bool
	interrupted   = make(chan struct{})
	interruptOnce sync.Once
)

// untilClosed is ctx, also cancelled once ch is closed: work that must go
// on after a signal (starting DTR again) but need not wait on it after.
func untilClosed(ctx context.Context, ch <-chan struct{}) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-ch:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

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
			interruptOnce.Do(func() { close(interrupted) })
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
