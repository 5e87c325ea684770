package metadata

import (
	"bytes"
	"testing"

	"github.com/docker-dtr/docker-dtr/pkg/archive"
	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

type tableConfig struct {
	Shards []struct {
		Replicas []string `rethinkdb:"replicas"`
	} `rethinkdb:"shards"`
	WriteAcks  string `rethinkdb:"write_acks"`
	Durability string `rethinkdb:"durability"`
}

func configOf(t *testing.T, driver *r.Session, db, table string) tableConfig {
	t.Helper()
	var c tableConfig
	assert.NilError(t, r.DB(db).Table(table).Config().ReadOne(&c, driver))
	return c
}

// A table's shards, write acks and durability are in the backup and come
// back with the restore; a table kept with more replicas than the target
// has servers is created with as many as it has, and the plan says so.
func TestRoundTripKeepsTableSettings(t *testing.T) {
	t.Parallel()
	srv := startTLS(t)
	assert.NilError(t, r.DBCreate("dtr2").Exec(srv.driver))
	assert.NilError(t, r.DB("dtr2").TableCreate("tags", r.TableCreateOpts{Shards: 2, Durability: "soft"}).Exec(srv.driver))
	assert.NilError(t, r.DB("dtr2").Table("tags").Config().Update(map[string]any{"write_acks": "single"}).Exec(srv.driver))
	assert.NilError(t, r.DB("dtr2").TableCreate("events").Exec(srv.driver))
	assert.NilError(t, r.DB("dtr2").Wait().Exec(srv.driver))
	assert.NilError(t, r.DB("dtr2").Table("tags").Insert(map[string]any{"id": "a"}).Exec(srv.driver))

	s := connect(t, srv.opts)
	f, rep := verifyFile(t, backupToFile(t, s))
	assert.Assert(t, rep.Verified)
	settings := map[string]archive.TableSettings{}
	for _, tb := range rep.Definitions.Tables {
		assert.Assert(t, tb.Settings != nil, tb.FullName())
		settings[tb.FullName()] = *tb.Settings
	}
	assert.DeepEqual(t, settings, map[string]archive.TableSettings{
		"dtr2.events": {Shards: 1, Replicas: 1, WriteAcks: "majority", Durability: "hard"},
		"dtr2.tags":   {Shards: 2, Replicas: 1, WriteAcks: "single", Durability: "soft"},
	})

	// Three replicas per shard, as on a three-replica DTR.
	for i := range rep.Definitions.Tables {
		if rep.Definitions.Tables[i].Name == "tags" {
			rep.Definitions.Tables[i].Settings.Replicas = 3
		}
	}
	_, plan, err := restore(t, s, f, rep, true)
	assert.NilError(t, err)
	assert.Check(t, is.Contains(plan.Warnings, "table dtr2.tags: 3 replicas per shard in the backup, 1 here: the cluster has 1 server"))
	var out bytes.Buffer
	plan.Print(&out)
	assert.Check(t, is.Contains(out.String(), "drop and create table dtr2.tags: 1 rows now, 1 rows after (primary key id, 2 shards, write acks single, durability soft)"))

	tags := configOf(t, srv.driver, "dtr2", "tags")
	assert.Check(t, is.Len(tags.Shards, 2))
	assert.Check(t, is.Len(tags.Shards[0].Replicas, 1))
	assert.Check(t, is.Equal(tags.WriteAcks, "single"))
	assert.Check(t, is.Equal(tags.Durability, "soft"))
	events := configOf(t, srv.driver, "dtr2", "events")
	assert.Check(t, is.Len(events.Shards, 1))
	assert.Check(t, is.Equal(events.WriteAcks, "majority"))
	assert.Check(t, is.Equal(events.Durability, "hard"))
}

// adapt leaves settings a cluster can hold as they are.
func TestAdaptKeepsWhatFits(t *testing.T) {
	in := archive.TableSettings{Shards: 2, Replicas: 3, WriteAcks: "single", Durability: "soft"}
	for _, servers := range []int{3, 5} {
		got, note := adapt(in, servers)
		assert.Check(t, is.DeepEqual(*got, in))
		assert.Check(t, is.Equal(note, ""))
	}
	got, note := adapt(in, 2)
	assert.Check(t, is.Equal(got.Replicas, 2))
	assert.Check(t, is.Equal(note, "3 replicas per shard in the backup, 2 here: the cluster has 2 servers"))
}
