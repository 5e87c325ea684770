package plugin

import (
	"testing"

	"gotest.tools/v3/assert"
)

func TestAgentCommand(t *testing.T) {
	cmd := newAgentCmd()
	assert.Assert(t, cmd.Hidden)
	assert.Assert(t, cmd.Flags().Lookup("db") != nil)
	assert.Assert(t, cmd.Flags().Lookup("connect") == nil, "the relay is gone: the database work runs next to RethinkDB")
	assert.Assert(t, cmd.Flags().Lookup("wipe") != nil)
	assert.Assert(t, cmd.Flags().Lookup("du") != nil)
}
