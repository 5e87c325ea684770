package dtrdb

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"gotest.tools/v3/assert"
)

// The driver reports a lost connection only in its text; each of these came
// from a real run (the CI run that failed on "unexpected EOF" among them).
func TestConnectionClosed(t *testing.T) {
	for _, msg := range []string{
		"rethinkdb: EOF",
		"rethinkdb: unexpected EOF",
		"rethinkdb: the connection is closed",
		"read tcp 127.0.0.1:1->127.0.0.1:2: read: connection reset by peer",
		"write: broken pipe",
		"use of closed network connection",
	} {
		assert.Assert(t, connectionClosed(errors.New(msg)), msg)
	}
	assert.Assert(t, connectionClosed(fmt.Errorf("reading: %w", io.ErrUnexpectedEOF)))
	for _, msg := range []string{
		"rethinkdb: Table `dtr2.events` does not exist.",
		"permission denied",
	} {
		assert.Assert(t, !connectionClosed(errors.New(msg)), msg)
	}
}
