package plugin

import (
	"context"

	"github.com/docker-dtr/docker-dtr/pkg/exitcode"
	"github.com/docker/cli/cli"
)

// exitStatus is the one place where a command's error becomes its exit
// status (pkg/exitcode says which): the Docker CLI, and main standalone,
// exit with a cli.StatusError's code and print its text. A command whose
// ctx ended, or that a signal reached, was interrupted.
func exitStatus(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	interrupted := signalled.Load() || (ctx != nil && ctx.Err() != nil)
	return cli.StatusError{StatusCode: exitcode.Of(err, interrupted), Status: err.Error(), Cause: err}
}
