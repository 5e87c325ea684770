package plugin

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/docker/cli/cli"
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

// exitInterrupted gives the error of a command that was interrupted exit
// status 130 (128 + SIGINT, what a shell reports, and what restic exits
// with): by a signal, or by the Docker CLI, which on one closes the
// plugin's socket and so cancels ctx. A restore that could not be put back
// keeps its 3: it needs a person either way.
func exitInterrupted(ctx context.Context, err error) error {
	if err == nil || !(signalled.Load() || (ctx != nil && ctx.Err() != nil)) {
		return err
	}
	var st cli.StatusError
	if errors.As(err, &st) {
		if st.StatusCode == ExitByHand || st.StatusCode == ExitUsage {
			return err
		}
		return cli.StatusError{StatusCode: ExitInterrupted, Status: st.Error(), Cause: err}
	}
	return cli.StatusError{StatusCode: ExitInterrupted, Status: err.Error(), Cause: err}
}

// interruptible wraps a command's RunE with exitInterrupted.
func interruptible(c *cobra.Command) {
	if run := c.RunE; run != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			return exitInterrupted(cmd.Context(), run(cmd, args))
		}
	}
}
