// Package exitcode holds the exit statuses of `docker dtr` and the one rule
// that turns a command's error into one. Engines mark the few errors that
// are not plain failures (a wrong invocation, a target left partly
// restored); everything else is 1.
package exitcode

import "errors"

// Exit statuses of `docker dtr`, the same through the Docker CLI and
// standalone. Each command's help ends with the ones it can give.
const (
	// OK is success.
	OK = 0
	// Failure is a failure that left the target as it was (or put it
	// back): an invalid backup, a lost majority, a refused or failed command.
	Failure = 1
	// Usage is a wrong invocation: an unknown command or flag, a missing
	// argument, a flag's value that cannot be right.
	Usage = 2
	// ByHand is a restore that failed and could not put the target back
	// as it was: it is partly restored, and the error says how to finish by
	// hand. Unattended jobs should call a person rather than retry.
	ByHand = 3
	// Interrupted is a command ended by SIGINT or SIGTERM (Ctrl-C, or the
	// Docker CLI passing one on); what it half wrote is removed or put back
	// as for a failure (1). 128 + SIGINT, what shells and restic report.
	Interrupted = 130
)

// Error is an error with the exit status it calls for.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// UsageError marks err as a wrong invocation (exit status 2).
func UsageError(err error) error { return &Error{Code: Usage, Err: err} }

// ByHandError marks err as a restore that left its target partly restored
// (exit status 3).
func ByHandError(err error) error { return &Error{Code: ByHand, Err: err} }

// Of is the exit status of a command that ended with err. interrupted says
// that a signal (or the Docker CLI, closing the plugin's socket) ended it:
// a failure is then 130, but a usage error stays 2, and a target left partly
// restored stays 3, since it needs a person either way.
func Of(err error, interrupted bool) int {
	if err == nil {
		return OK
	}
	code := Failure
	var e *Error
	if errors.As(err, &e) {
		code = e.Code
	}
	if interrupted && code != Usage && code != ByHand {
		return Interrupted
	}
	return code
}
