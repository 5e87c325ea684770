package plugin

import (
	"testing"

	"gotest.tools/v3/assert"
)

func TestAgentCommand(t *testing.T) {
	cmd := newAgentCmd()
	assert.Assert(t, cmd.Hidden)
	assert.Assert(t, cmd.Flags().Lookup("connect") != nil)
	assert.Assert(t, cmd.Flags().Lookup("wipe") != nil)
	assert.Assert(t, cmd.Flags().Lookup("du") != nil)
}
