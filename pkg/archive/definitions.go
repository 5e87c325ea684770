package archive

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
)

// Definitions is the first plugin entry: what is needed to recreate every
// dumped table before its rows are loaded.
type Definitions struct {
	Format        string  `json:"format"`
	FormatVersion int     `json:"formatVersion"`
	Tables        []Table `json:"tables"`
}

// Table describes one dumped table.
type Table struct {
	DB         string `json:"db"`
	Name       string `json:"table"`
	Dir        string `json:"dir"` // directory under rethink/: the table name, or db.table where names collide
	PrimaryKey string `json:"primaryKey"`
	// Indexes as index_status() reported them, with the function kept as
	// RethinkDB's opaque BINARY pseudo-type so index_create accepts it back.
	Indexes []Index `json:"indexes"`
	// WriteHook is get_write_hook()'s result (null, or function and query).
	WriteHook json.RawMessage `json:"writeHook"`
	// Settings are the table's replication and write settings; nil in
	// archives written before they were kept, whose tables are created
	// with the server's defaults.
	Settings *TableSettings `json:"settings,omitempty"`
}

// TableSettings are a table's replication and write settings, as
// table_config holds them.
type TableSettings struct {
	Shards int `json:"shards"`
	// Replicas is the number of replicas of each shard (the largest,
	// should the shards differ).
	Replicas int `json:"replicas"`
	// WriteAcks is "majority" or "single"; Durability "hard" or "soft".
	WriteAcks  string `json:"writeAcks"`
	Durability string `json:"durability"`
}

// Settings' limits, RethinkDB's: at most 64 shards, and the replica
// count a server can hold.
const (
	MaxShards   = 64
	MaxReplicas = 64
)

func (s *TableSettings) validate() error {
	switch {
	case s.Shards < 1 || s.Shards > MaxShards:
		return fmt.Errorf("%d shards, expected 1 to %d", s.Shards, MaxShards)
	case s.Replicas < 1 || s.Replicas > MaxReplicas:
		return fmt.Errorf("%d replicas, expected 1 to %d", s.Replicas, MaxReplicas)
	case s.WriteAcks != "majority" && s.WriteAcks != "single":
		return fmt.Errorf("write acks %q, expected majority or single", s.WriteAcks)
	case s.Durability != "hard" && s.Durability != "soft":
		return fmt.Errorf("durability %q, expected hard or soft", s.Durability)
	}
	return nil
}

// Index is one secondary index.
type Index struct {
	Name     string          `json:"index"`
	Function json.RawMessage `json:"function"`
	Multi    bool            `json:"multi"`
	Geo      bool            `json:"geo"`
	Query    string          `json:"query,omitempty"`
}

// FullName is "db.table".
func (t Table) FullName() string { return t.DB + "." + t.Name }

// HasWriteHook reports whether the table had a write hook.
func (t Table) HasWriteHook() bool {
	return len(t.WriteHook) > 0 && string(t.WriteHook) != "null"
}

// AssignDirs sets Dir for every table: the bare table name as DTR writes it,
// or db.table when two databases hold tables of the same name.
func AssignDirs(tables []Table) {
	count := map[string]int{}
	for _, t := range tables {
		count[t.Name]++
	}
	for i := range tables {
		if count[tables[i].Name] > 1 {
			tables[i].Dir = tables[i].DB + "." + tables[i].Name
		} else {
			tables[i].Dir = tables[i].Name
		}
	}
}

func (d *Definitions) validate() error {
	if d.Format != FormatName {
		return fmt.Errorf("format is %q, not %q", d.Format, FormatName)
	}
	if d.FormatVersion != FormatVersion {
		return fmt.Errorf("unknown format version %d (this docker-dtr reads version %d: upgrade the plugin)", d.FormatVersion, FormatVersion)
	}
	if len(d.Tables) > MaxTables {
		return fmt.Errorf("defines %d tables, more than the %d an archive may hold", len(d.Tables), MaxTables)
	}
	dirs := map[string]bool{}
	names := map[string]bool{}
	for _, t := range d.Tables {
		if err := CheckTable(t.DB, t.Name); err != nil {
			return err
		}
		if err := CheckDTRDatabase(t.DB, t.Name); err != nil {
			return err
		}
		if t.Dir != t.Name && t.Dir != t.DB+"."+t.Name {
			return fmt.Errorf("table %s: invalid directory %q", t.FullName(), t.Dir)
		}
		if dirs[t.Dir] {
			return fmt.Errorf("table directory %q defined twice", t.Dir)
		}
		if names[t.FullName()] {
			return fmt.Errorf("table %s defined twice", t.FullName())
		}
		dirs[t.Dir], names[t.FullName()] = true, true
		if t.PrimaryKey == "" {
			return fmt.Errorf("table %s: no primary key", t.FullName())
		}
		if t.Settings != nil {
			if err := t.Settings.validate(); err != nil {
				return fmt.Errorf("table %s: settings: %v", t.FullName(), err)
			}
		}
		indexes := map[string]bool{}
		for _, ix := range t.Indexes {
			if ix.Name == "" || !isBinaryPseudo(ix.Function) {
				return fmt.Errorf("table %s: index %q has no function binary", t.FullName(), ix.Name)
			}
			if indexes[ix.Name] {
				return fmt.Errorf("table %s: index %q defined twice", t.FullName(), ix.Name)
			}
			if ix.Name == t.PrimaryKey {
				return fmt.Errorf("table %s: index %q has the primary key's name, which RethinkDB refuses", t.FullName(), ix.Name)
			}
			indexes[ix.Name] = true
			if err := checkFunctionBlob(ix.Function, true); err != nil {
				return fmt.Errorf("table %s: the function of index %q cannot be recreated: %v", t.FullName(), ix.Name, err)
			}
		}
		if t.HasWriteHook() {
			var hook struct {
				Function json.RawMessage `json:"function"`
			}
			if json.Unmarshal(t.WriteHook, &hook) != nil || !isBinaryPseudo(hook.Function) {
				return fmt.Errorf("table %s: write hook has no function binary", t.FullName())
			}
			if err := checkFunctionBlob(hook.Function, false); err != nil {
				return fmt.Errorf("table %s: the write hook cannot be set again: %v", t.FullName(), err)
			}
		}
	}
	return nil
}

// maxDefinitionValues bounds the JSON values (jsonl.CountValues) of the
// definitions entry before it is decoded: one array element costs a whole
// Table (about 110 bytes) however few bytes it has, so the entry's size alone
// does not bound the memory decoding takes. A DTR's definitions hold about a
// thousand values; MaxTables tables with a few indexes each fit.
const maxDefinitionValues = 1 << 18

// isBinaryPseudo reports whether raw is a {"$reql_type$":"BINARY","data":...} value.
func isBinaryPseudo(raw json.RawMessage) bool {
	_, ok := BinaryBytes(raw)
	return ok
}

// BinaryBytes is the content of a {"$reql_type$":"BINARY","data":...}
// value; false when raw is not one.
func BinaryBytes(raw json.RawMessage) ([]byte, bool) {
	var v struct {
		Type string `json:"$reql_type$"`
		Data string `json:"data"`
	}
	if json.Unmarshal(raw, &v) != nil || v.Type != "BINARY" {
		return nil, false
	}
	b, err := base64.StdEncoding.DecodeString(v.Data)
	return b, err == nil
}
