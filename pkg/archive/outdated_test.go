package archive

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// A backup taken without the majority (--allow-outdated) says so in its
// manifest, and verify reports it; one that names a bad table is refused.
func TestOutdatedRecord(t *testing.T) {
	write := func(o *Outdated) ([]byte, error) {
		var buf bytes.Buffer
		tables := sampleTables()
		w, err := NewWriter(&buf, Info{Tool: "test", DTRVersion: "2.9.4", Started: testStarted, Outdated: o}, Definitions{Tables: tables})
		assert.NilError(t, err)
		for _, tb := range tables {
			assert.NilError(t, w.BeginTable(tb))
			assert.NilError(t, w.WriteDocument([]byte(`{"id":"a","gun_role_version":"a"}`)))
		}
		_, err = w.Finish(nil, testStarted.Add(time.Second))
		return buf.Bytes(), err
	}
	o := &Outdated{Server: "dtr_rethinkdb_0123456789ab", Tables: []string{"dtr2.properties", "dtr2.tags"}}
	b, err := write(o)
	assert.NilError(t, err)
	rep := verifyBytes(t, b)
	assert.Assert(t, rep.OK(), "%v", rep.Problems)
	assert.DeepEqual(t, rep.Outdated, o)
	js, err := json.Marshal(rep)
	assert.NilError(t, err)
	assert.Check(t, is.Contains(string(js), `"outdated":{"server":"dtr_rethinkdb_0123456789ab","tables":["dtr2.properties","dtr2.tags"]}`))

	plain, err := write(nil)
	assert.NilError(t, err)
	assert.Check(t, !bytes.Contains(plain, []byte(`"outdated"`)), "a backup of a healthy cluster has no outdated field")
	assert.Check(t, verifyBytes(t, plain).Outdated == nil)

	for _, bad := range []*Outdated{{Server: "s"}, {Server: "s", Tables: []string{"tags"}}, {Server: "s", Tables: []string{"dtr2.../x"}}} {
		_, err := write(bad)
		assert.Check(t, is.ErrorContains(err, "invalid outdated"))
	}
}
