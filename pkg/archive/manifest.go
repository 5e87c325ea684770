package archive

import (
	"encoding/hex"
	"fmt"
	"io"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/jsonl"
)

// The manifest is JSON Lines (package jsonl) so that it streams both ways: a
// header line, one line per entry in archive order, and a trailer with the
// SHA-256 of every byte before it. It never has to fit in memory.

// Manifest is the header line.
type Manifest struct {
	Format        string       `json:"format"`
	FormatVersion int          `json:"formatVersion"`
	Tool          string       `json:"tool"`
	DTRVersion    string       `json:"dtrVersion"`
	ReplicaID     string       `json:"replicaId,omitempty"`
	Started       time.Time    `json:"started"`
	Finished      time.Time    `json:"finished"`
	Tables        []TableStats `json:"tables"`
	Excluded      []Exclusion  `json:"excluded"`
	Entries       int64        `json:"entries"`
}

// TableStats is what a table contributed to the archive.
type TableStats struct {
	DB    string `json:"db"`
	Table string `json:"table"`
	Dir   string `json:"dir"`
	Rows  int64  `json:"rows"`
	Bytes int64  `json:"bytes"`
}

// FullName is "db.table".
func (t TableStats) FullName() string { return t.DB + "." + t.Table }

// Exclusion is a table left out on purpose, and why.
type Exclusion struct {
	DB     string `json:"db"`
	Table  string `json:"table"`
	Reason string `json:"reason"`
}

// Entry is one archive entry as the manifest records it.
type Entry struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Rows and Bytes total the tables.
func (m *Manifest) Rows() (rows, bytes int64) {
	for _, t := range m.Tables {
		rows += t.Rows
		bytes += t.Bytes
	}
	return rows, bytes
}

func (m *Manifest) validate() error {
	if m.Format != FormatName {
		return fmt.Errorf("format is %q, not %q", m.Format, FormatName)
	}
	if m.FormatVersion != FormatVersion {
		return fmt.Errorf("unknown format version %d (this docker-dtr reads version %d: upgrade the plugin)", m.FormatVersion, FormatVersion)
	}
	if !ValidVersion(m.DTRVersion) {
		return fmt.Errorf("invalid DTR version %q", m.DTRVersion)
	}
	if len(m.Tables) > MaxTables || len(m.Excluded) > MaxTables {
		return fmt.Errorf("lists %d tables and %d exclusions, more than the %d an archive may hold", len(m.Tables), len(m.Excluded), MaxTables)
	}
	if m.Entries < 0 {
		return fmt.Errorf("negative entry count %d", m.Entries)
	}
	var rows, bytes int64
	for _, t := range m.Tables {
		if err := CheckTable(t.DB, t.Table); err != nil {
			return err
		}
		if t.Dir != t.Table && t.Dir != t.DB+"."+t.Table {
			return fmt.Errorf("table %s: invalid directory %q", t.FullName(), t.Dir)
		}
		if t.Rows < 0 || t.Bytes < 0 || rows+t.Rows < rows || bytes+t.Bytes < bytes {
			return fmt.Errorf("table %s: invalid counts", t.FullName())
		}
		rows, bytes = rows+t.Rows, bytes+t.Bytes
	}
	for _, x := range m.Excluded {
		if !ValidName(x.DB) || !ValidName(x.Table) {
			return fmt.Errorf("invalid excluded table %q.%q", x.DB, x.Table)
		}
	}
	return nil
}

// manifestLimits bound the manifest a reader accepts. A header of MaxTables
// tables and as many exclusions holds about 41,000 JSON values and a few
// MiB; an entry line holds one name of a few hundred bytes.
var manifestLimits = jsonl.Limits{HeaderBytes: 16 << 20, HeaderValues: 1 << 16, LineBytes: 4 << 10}

// manifestReader streams a manifest: Header first, then Next until io.EOF,
// which it returns only once the trailer's checksum has matched.
type manifestReader struct {
	r      *jsonl.Reader
	Header Manifest
}

func newManifestReader(r io.Reader) (*manifestReader, error) {
	mr := &manifestReader{}
	var err error
	if mr.r, err = jsonl.NewReader(r, &mr.Header, manifestLimits); err != nil {
		return nil, err
	}
	if err := mr.Header.validate(); err != nil {
		return nil, err
	}
	return mr, nil
}

// Next returns the next entry, or io.EOF after a valid trailer.
func (mr *manifestReader) Next() (Entry, error) {
	var e Entry
	if err := mr.r.Next(&e); err != nil {
		return Entry{}, err
	}
	if _, err := hex.DecodeString(e.SHA256); err != nil || len(e.SHA256) != 64 || e.Size < 0 {
		return Entry{}, fmt.Errorf("manifest entry %q: invalid size or sha256", e.Name)
	}
	return e, nil
}
