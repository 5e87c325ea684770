package archive

import (
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// Table settings out of RethinkDB's range are refused, naming the table;
// definitions without settings (older archives) are valid.
func TestDefinitionsSettingsValidated(t *testing.T) {
	defs := func(s *TableSettings) *Definitions {
		return &Definitions{Format: FormatName, FormatVersion: FormatVersion, Tables: []Table{{DB: "dtr2", Name: "tags", Dir: "tags", PrimaryKey: "id", Settings: s}}}
	}
	assert.NilError(t, defs(nil).validate())
	assert.NilError(t, defs(&TableSettings{Shards: 2, Replicas: 3, WriteAcks: "single", Durability: "soft"}).validate())
	for _, tc := range []struct {
		s    TableSettings
		want string
	}{
		{TableSettings{Shards: 0, Replicas: 1, WriteAcks: "majority", Durability: "hard"}, "0 shards"},
		{TableSettings{Shards: 1, Replicas: 65, WriteAcks: "majority", Durability: "hard"}, "65 replicas"},
		{TableSettings{Shards: 1, Replicas: 1, WriteAcks: "all", Durability: "hard"}, `write acks "all"`},
		{TableSettings{Shards: 1, Replicas: 1, WriteAcks: "single", Durability: "lazy"}, `durability "lazy"`},
	} {
		assert.Check(t, is.ErrorContains(defs(&tc.s).validate(), "table dtr2.tags: settings: "+tc.want))
	}
}
