package plugin

import (
	"bytes"
	"testing"

	"gotest.tools/v3/assert"
)

func TestAgentModes(t *testing.T) {
	var out bytes.Buffer
	for _, opts := range []agentOptions{{}, {connect: "dtr-rethinkdb-0123456789ab.dtr-ol:28015", wipe: "/storage"}, {wipe: "/storage", du: "/storage"}} {
		assert.Error(t, runAgent(opts, &out), "agent: give exactly one of --connect, --wipe and --du")
	}
	// Only the volume's mount point: never the root, a parent, or a path
	// that only starts like it.
	for _, dir := range []string{"/", "/tmp", "/storage/..", "/storage2", "storage", "/storage/docker"} {
		assert.ErrorContains(t, runAgent(agentOptions{wipe: dir}, &out), "agent: --wipe "+dir+": refusing, only /storage (the image volume's mount point in a helper) is emptied")
	}
	assert.Equal(t, out.String(), "")
}

func TestAgentCommand(t *testing.T) {
	cmd := newAgentCmd()
	assert.Assert(t, cmd.Hidden)
	assert.Assert(t, cmd.Flags().Lookup("connect") != nil)
	assert.Assert(t, cmd.Flags().Lookup("wipe") != nil)
	assert.Assert(t, cmd.Flags().Lookup("du") != nil)
}
