package archive

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/dtrversion"
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
	// Outdated says the backup was taken from a cluster that had lost
	// its majority (--allow-outdated): nil for every other backup.
	Outdated *Outdated `json:"outdated,omitempty"`
}

// Outdated records the tables a backup read with RethinkDB's read_mode
// "outdated", from one server's replica, because their majority was
// lost: they may miss the last writes the lost replicas took.
type Outdated struct {
	// Server is the RethinkDB server they were read from.
	Server string `json:"server"`
	// Tables are those read that way, as db.table.
	Tables []string `json:"tables"`
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
	if !dtrversion.Valid(m.DTRVersion) {
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
	if o := m.Outdated; o != nil {
		if len(o.Tables) == 0 || len(o.Tables) > MaxTables || len(o.Server) > 255 {
			return fmt.Errorf("invalid outdated record: %d tables", len(o.Tables))
		}
		for _, name := range o.Tables {
			db, table, ok := strings.Cut(name, ".")
			if !ok || !ValidName(db) || !ValidName(table) {
				return fmt.Errorf("invalid outdated table %q", name)
			}
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
	ahead  <-chan []entryOrErr // set by prefetch
	batch  []entryOrErr
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
	if mr.ahead == nil {
		return mr.next()
	}
	for len(mr.batch) == 0 {
		b, ok := <-mr.ahead
		if !ok {
			return Entry{}, io.EOF // not reached: the last batch ends with an error
		}
		mr.batch = b
	}
	r := mr.batch[0]
	mr.batch = mr.batch[1:]
	return r.e, r.err
}

func (mr *manifestReader) next() (Entry, error) {
	line, err := mr.r.NextLine()
	if err != nil {
		return Entry{}, err
	}
	e, ok := parseEntryLine(line)
	if ok {
		return e, nil // its sha256 is 64 hex digits and its size not negative
	}
	if err := jsonl.StrictUnmarshal(line, &e); err != nil {
		return Entry{}, fmt.Errorf("manifest entry: %w", err)
	}
	if !isHexSHA256(e.SHA256) || e.Size < 0 {
		return Entry{}, fmt.Errorf("manifest entry %q: invalid size or sha256", e.Name)
	}
	return e, nil
}

// isHexSHA256 is what hex.DecodeString accepts, of 64 digits.
func isHexSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if charClass[s[i]]&classHex == 0 {
			return false
		}
	}
	return true
}

// charClass classifies bytes for the manifest's fast decoder.
var charClass = func() (t [256]uint8) {
	for c := 0x20; c <= 0x7e; c++ {
		if c != '"' && c != '\\' {
			t[c] |= classPlain
		}
	}
	for _, c := range "0123456789abcdefABCDEF" {
		t[c] |= classHex
	}
	return t
}()

const (
	classPlain = 1 << iota // printable ASCII but a quote or backslash
	classHex
)

// parseEntryLine decodes an entry line as the writer writes it,
// {"name":"…","size":…,"sha256":"…"} and a newline, where the name is
// printable ASCII without escapes, the size a plain decimal and the sha256
// 64 hex digits: a line Next accepts. For any
// other line it reports false, and jsonl.StrictUnmarshal decides:
// FuzzEntryLine checks that the two agree wherever this one decodes.
func parseEntryLine(line []byte) (Entry, bool) {
	var e Entry
	rest, ok := bytes.CutPrefix(line, []byte(`{"name":"`))
	if !ok {
		return e, false
	}
	name, rest, ok := plainString(rest)
	if !ok {
		return e, false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"size":`)); !ok {
		return e, false
	}
	n := 0
	for n < len(rest) && '0' <= rest[n] && rest[n] <= '9' {
		n++
	}
	if n == 0 || n > 18 || (n > 1 && rest[0] == '0') {
		return e, false
	}
	var size int64
	for _, c := range rest[:n] {
		size = size*10 + int64(c-'0')
	}
	if rest, ok = bytes.CutPrefix(rest[n:], []byte(`,"sha256":"`)); !ok {
		return e, false
	}
	if len(rest) != sha256Hex+3 || rest[sha256Hex] != '"' || string(rest[sha256Hex+1:]) != "}\n" {
		return e, false
	}
	sum := rest[:sha256Hex]
	for _, c := range sum {
		if charClass[c]&classHex == 0 {
			return e, false
		}
	}
	return Entry{Name: string(name), Size: size, SHA256: string(sum)}, true
}

// plainString splits b after a string's closing quote, where the string
// is printable ASCII without a backslash.
func plainString(b []byte) (s, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '"')
	if i < 0 {
		return nil, nil, false
	}
	for _, c := range b[:i] {
		if charClass[c]&classPlain == 0 {
			return nil, nil, false
		}
	}
	return b[:i], b[i+1:], true
}

const sha256Hex = 64

// entryOrErr is one result of manifestReader.Next.
type entryOrErr struct {
	e   Entry
	err error
}

// prefetch reads the manifest's entries on another goroutine, in batches,
// so that decoding them and hashing the lines runs alongside the check.
// Next then returns exactly what it would have returned without. stop ends
// the reading, and waits for it.
func (mr *manifestReader) prefetch() (stop func()) {
	ch := make(chan []entryOrErr, 64)
	quit := make(chan struct{})
	var done sync.WaitGroup
	done.Add(1)
	go func() {
		defer done.Done()
		defer close(ch)
		batch := make([]entryOrErr, 0, 128)
		for {
			e, err := mr.next()
			batch = append(batch, entryOrErr{e, err})
			if err != nil || len(batch) == cap(batch) {
				select {
				case ch <- batch:
				case <-quit:
					return
				}
				if err != nil {
					return
				}
				batch = make([]entryOrErr, 0, 128)
			}
		}
	}()
	mr.ahead = ch
	return func() {
		close(quit)
		done.Wait()
	}
}
