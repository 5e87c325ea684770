package plugin

import "github.com/docker/cli/cli"

// Exit statuses of `docker dtr`, the same through the Docker CLI and
// standalone. Each command's help ends with the ones it can give.
const (
	// ExitOK is success.
	ExitOK = 0
	// ExitFailure is a failure that left the target as it was (or put it
	// back): an invalid backup, a lost majority, a refused or failed command.
	ExitFailure = 1
	// ExitUsage is a wrong invocation: an unknown command or flag, a missing
	// argument.
	ExitUsage = 2
	// ExitByHand is a restore that failed and could not put the target back
	// as it was: it is partly restored, and the error says how to finish by
	// hand. Unattended jobs should call a person rather than retry.
	ExitByHand = 3
	// ExitInterrupted is a command ended by SIGINT or SIGTERM (Ctrl-C, or
	// the Docker CLI passing one on); what it half wrote is removed or put
	// back as for a failure (1).
	ExitInterrupted = 130
)

// leftByHand marks the error of a restore that left its target partly
// restored.
func leftByHand(err error) error {
	return cli.StatusError{StatusCode: ExitByHand, Status: err.Error(), Cause: err}
}
