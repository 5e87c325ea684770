//go:build !windows

package plugin

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/exitcode"

	"github.com/docker/cli/cli"
	"gotest.tools/v3/assert"
)

func statusOf(t *testing.T, err error) (int, string) {
	t.Helper()
	var st cli.StatusError
	if !errors.As(err, &st) {
		return 1, err.Error()
	}
	return st.StatusCode, st.Error()
}

func TestExitStatus(t *testing.T) {
	failed := errors.New("backup failed, x.tar was not written: interrupted")
	assert.NilError(t, exitStatus(context.Background(), nil))
	// Not interrupted: a failure, its message as it was.
	code, msg := statusOf(t, exitStatus(context.Background(), failed))
	assert.Equal(t, code, 1)
	assert.Equal(t, msg, failed.Error())

	// The Docker CLI cancelled the command's context (its socket closed).
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	code, msg = statusOf(t, exitStatus(ended, failed))
	assert.Equal(t, code, 130)
	assert.Equal(t, msg, failed.Error())
	code, msg = statusOf(t, exitStatus(ended, errors.New("x.tar is not a valid backup")))
	assert.Equal(t, code, 130)
	assert.Equal(t, msg, "x.tar is not a valid backup")
	// Partly restored stays 3: it needs a person.
	code, _ = statusOf(t, exitStatus(ended, exitcode.ByHandError(failed)))
	assert.Equal(t, code, exitcode.ByHand)
	assert.NilError(t, exitStatus(ended, nil))
}

// A real SIGINT ends withSignals' context and marks the command interrupted.
func TestWithSignals(t *testing.T) {
	t.Cleanup(func() { signalled.Store(false) })
	ctx, stop := withSignals(context.Background())
	defer stop()
	assert.NilError(t, syscall.Kill(syscall.Getpid(), syscall.SIGINT))
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("SIGINT did not end the context")
	}
	code, _ := statusOf(t, exitStatus(context.Background(), errors.New("interrupted")))
	assert.Equal(t, code, 130)

	// stop alone is not an interruption.
	signalled.Store(false)
	ctx, stop = withSignals(context.Background())
	stop()
	<-ctx.Done()
	assert.Assert(t, !signalled.Load())
}

// What goes on after a signal (starting DTR again) stops waiting once the
// signal comes, and not before; its own end still ends it.
func TestUntilClosed(t *testing.T) {
	ch := make(chan struct{})
	ctx, cancel := untilClosed(context.Background(), ch)
	defer cancel()
	select {
	case <-ctx.Done():
		t.Fatal("ended before the signal")
	case <-time.After(50 * time.Millisecond):
	}
	close(ch)
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("still waiting after the signal")
	}

	parent, end := context.WithCancel(context.Background())
	ctx, cancel = untilClosed(parent, make(chan struct{}))
	defer cancel()
	end()
	<-ctx.Done()
}
