package archive

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/human"
	"github.com/docker-dtr/docker-dtr/pkg/jsonl"
)

// Info describes the backup being written.
type Info struct {
	Tool       string
	DTRVersion string
	ReplicaID  string
	Started    time.Time
	// Outdated, when not nil, says the backup reads tables of a cluster
	// that lost its majority (Manifest.Outdated).
	Outdated *Outdated
}

// Writer writes a metadata archive as a stream: tables in the order of the
// definitions, each table's documents as they arrive. Entry checksums are
// spooled to a temporary file, so memory does not grow with the row count.
type Writer struct {
	tw    *tar.Writer
	out   *bufio.Writer // tar writes headers and padding in small pieces
	info  Info
	defs  Definitions
	spool *jsonl.Spool
	stats []TableStats
	cur   int // index into defs.Tables of the open table, -1 before the first
}

// NewWriter starts an archive on w: the versioned directory first (DTR's
// restore learns the version from it), then the definitions.
func NewWriter(w io.Writer, info Info, defs Definitions) (*Writer, error) {
	if err := checkStart(info, &defs); err != nil {
		return nil, err
	}
	spool, err := jsonl.NewSpool()
	if err != nil {
		return nil, err
	}
	out := bufio.NewWriterSize(w, 1<<20)
	aw := &Writer{
		tw: tar.NewWriter(out), out: out, info: info, defs: defs,
		spool: spool, cur: -1,
	}
	defsJSON, err := json.MarshalIndent(defs, "", "  ")
	if err != nil {
		aw.Abort()
		return nil, err
	}
	for _, step := range []func() error{
		func() error { return aw.dir(VersionDir(info.DTRVersion)) },
		func() error { return aw.dir(PluginDir) },
		func() error { return aw.file(DefinitionsName, append(defsJSON, '\n')) },
		func() error { return aw.dir(RethinkDir(info.DTRVersion)) },
	} {
		if err := step(); err != nil {
			aw.Abort()
			return nil, err
		}
	}
	return aw, nil
}

// after is the index of t, which must be the table after the one at cur
// (-1 before the first).
func (d Definitions) after(cur int, t Table) (int, error) {
	next := cur + 1
	if next >= len(d.Tables) || d.Tables[next].Dir != t.Dir {
		return 0, fmt.Errorf("table %s is not the next table of the definitions", t.FullName())
	}
	return next, nil
}

// allWritten says whether n tables are all the definitions'.
func (d Definitions) allWritten(n int) error {
	if n != len(d.Tables) {
		return fmt.Errorf("%d of %d tables written", n, len(d.Tables))
	}
	return nil
}

// checkDocumentSize refuses a document over MaxDocumentSize: row row of table.
func checkDocumentSize(doc []byte, row int64, table string) error {
	if len(doc) > MaxDocumentSize {
		return fmt.Errorf("document %d of table %s is %d bytes, over the %d byte (%s) document limit",
			row, table, len(doc), MaxDocumentSize, human.Bytes(MaxDocumentSize))
	}
	return nil
}

func (aw *Writer) header(name string, typ byte, mode, size int64) *tar.Header {
	return &tar.Header{
		Typeflag: typ, Name: name, Mode: mode, Size: size,
		ModTime: aw.info.Started.Truncate(time.Second),
	}
}

func (aw *Writer) dir(name string) error {
	if err := aw.tw.WriteHeader(aw.header(name, tar.TypeDir, DirMode, 0)); err != nil {
		return err
	}
	return aw.record(name, 0, sha256.Sum256(nil))
}

func (aw *Writer) file(name string, data []byte) error {
	if err := aw.tw.WriteHeader(aw.header(name, tar.TypeReg, FileMode, int64(len(data)))); err != nil {
		return err
	}
	if _, err := aw.tw.Write(data); err != nil {
		return err
	}
	return aw.record(name, int64(len(data)), sha256.Sum256(data))
}

func (aw *Writer) record(name string, size int64, sum [32]byte) error {
	return aw.spool.Add(Entry{Name: name, Size: size, SHA256: hex.EncodeToString(sum[:])})
}

// BeginTable opens the next table of the definitions, which must be t.
func (aw *Writer) BeginTable(t Table) error {
	next, err := aw.defs.after(aw.cur, t)
	if err != nil {
		return err
	}
	aw.cur = next
	aw.stats = append(aw.stats, TableStats{DB: t.DB, Table: t.Name, Dir: t.Dir})
	return aw.dir(TableDirName(aw.info.DTRVersion, t.Dir))
}

// WriteDocument appends one JSON document to the open table.
func (aw *Writer) WriteDocument(doc []byte) error {
	if aw.cur < 0 {
		return fmt.Errorf("document written before any table")
	}
	st := &aw.stats[len(aw.stats)-1]
	if err := checkDocumentSize(doc, st.Rows, st.FullName()); err != nil {
		return err
	}
	name := DocumentName(aw.info.DTRVersion, st.Dir, st.Rows)
	if err := aw.file(name, doc); err != nil {
		return err
	}
	st.Rows++
	st.Bytes += int64(len(doc))
	return nil
}

// Finish writes the manifest as the last entry and closes the tar stream
// (not the underlying writer). Every defined table must have been written.
func (aw *Writer) Finish(excluded []Exclusion, finished time.Time) (*Manifest, error) {
	defer aw.Abort()
	if err := aw.defs.allWritten(len(aw.stats)); err != nil {
		return nil, err
	}
	if excluded == nil {
		excluded = []Exclusion{}
	}
	if len(excluded) > MaxTables {
		return nil, fmt.Errorf("%d tables excluded, more than the %d an archive may list", len(excluded), MaxTables)
	}
	m := &Manifest{
		Format: FormatName, FormatVersion: FormatVersion, Tool: aw.info.Tool,
		DTRVersion: aw.info.DTRVersion, ReplicaID: aw.info.ReplicaID,
		Started: aw.info.Started.UTC(), Finished: finished.UTC(),
		Tables: aw.stats, Excluded: excluded, Entries: aw.spool.Len(),
		Outdated: aw.info.Outdated,
	}
	if m.Tables == nil {
		m.Tables = []TableStats{}
	}
	// A manifest that verify would refuse is an error now, not at restore.
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if err := jsonl.CheckHeader(m, manifestLimits); err != nil {
		return nil, err
	}
	if err := aw.spool.WriteEntry(aw.tw, aw.header(ManifestName, tar.TypeReg, FileMode, 0), m); err != nil {
		return nil, err
	}
	if err := aw.tw.Close(); err != nil {
		return nil, err
	}
	if err := aw.out.Flush(); err != nil {
		return nil, err
	}
	return m, nil
}

// Abort releases the spool; the archive written so far is incomplete.
func (aw *Writer) Abort() {
	aw.spool.Close()
}
