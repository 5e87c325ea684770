package archive

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/dtrversion"
)

// A document stream carries what a dump gives a Writer (the archive's
// info and definitions, each table's start, each document, the finish)
// instead of the tar the Writer makes of it. A dump next to the database
// (the database helper's agent) sends it, and the plugin replays it into a
// Writer (Replay): the archive is the one a dump in the plugin's own
// process writes, byte for byte. It is what the agent compresses, and it
// is a fraction of the tar: no 512-byte header and padding per document,
// no manifest line, no hashing on the DTR node.
//
// The stream is the line DocStreamMagic, then records: a type byte, the
// payload's length (uvarint) and the payload. 'H' (JSON of the info and
// definitions) comes first, then 'T' (JSON of the table) before each
// table's 'D' records (one document each), and 'F' (JSON of the
// exclusions and the finish time) last.
const DocStreamMagic = "DOCKERDTR-DOCSTREAM 1\n"

const (
	recHeader   = 'H'
	recTable    = 'T'
	recDocument = 'D'
	recFinish   = 'F'
)

type streamHeader struct {
	Info        Info        `json:"info"`
	Definitions Definitions `json:"definitions"`
}

type streamFinish struct {
	Excluded []Exclusion `json:"excluded"`
	Finished time.Time   `json:"finished"`
}

// StreamWriter writes a document stream. It checks what a Writer checks
// before it writes (the definitions, the tables' order, a document's
// size), so that a bad dump fails where it runs.
type StreamWriter struct {
	out   *bufio.Writer
	defs  Definitions
	cur   int // index into defs.Tables of the open table, -1 before the first
	rows  int64
	small [binary.MaxVarintLen64 + 1]byte
}

// NewStreamWriter starts a document stream on w.
func NewStreamWriter(w io.Writer, info Info, defs Definitions) (*StreamWriter, error) {
	if err := checkStart(info, &defs); err != nil {
		return nil, err
	}
	sw := &StreamWriter{out: bufio.NewWriterSize(w, 1<<20), defs: defs, cur: -1}
	if _, err := sw.out.WriteString(DocStreamMagic); err != nil {
		return nil, err
	}
	if err := sw.json(recHeader, streamHeader{Info: info, Definitions: defs}); err != nil {
		return nil, err
	}
	return sw, nil
}

// checkStart is what NewWriter checks of its info and definitions.
func checkStart(info Info, defs *Definitions) error {
	if !dtrversion.Valid(info.DTRVersion) {
		return fmt.Errorf("invalid DTR version %q", info.DTRVersion)
	}
	defs.Format, defs.FormatVersion = FormatName, FormatVersion
	return defs.validate()
}

func (sw *StreamWriter) record(typ byte, p []byte) error {
	sw.small[0] = typ
	n := binary.PutUvarint(sw.small[1:], uint64(len(p)))
	if _, err := sw.out.Write(sw.small[:1+n]); err != nil {
		return err
	}
	_, err := sw.out.Write(p)
	return err
}

func (sw *StreamWriter) json(typ byte, v any) error {
	p, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return sw.record(typ, p)
}

// BeginTable is Writer.BeginTable.
func (sw *StreamWriter) BeginTable(t Table) error {
	next, err := sw.defs.after(sw.cur, t)
	if err != nil {
		return err
	}
	sw.cur, sw.rows = next, 0
	return sw.json(recTable, t)
}

// WriteDocument is Writer.WriteDocument.
func (sw *StreamWriter) WriteDocument(doc []byte) error {
	if sw.cur < 0 {
		return fmt.Errorf("document written before any table")
	}
	if err := checkDocumentSize(doc, sw.rows, sw.defs.Tables[sw.cur].FullName()); err != nil {
		return err
	}
	sw.rows++
	return sw.record(recDocument, doc)
}

// Finish ends the stream (not the underlying writer). The manifest is the
// replay's: nil here.
func (sw *StreamWriter) Finish(excluded []Exclusion, finished time.Time) (*Manifest, error) {
	if err := sw.defs.allWritten(sw.cur + 1); err != nil {
		return nil, err
	}
	if err := sw.json(recFinish, streamFinish{Excluded: excluded, Finished: finished}); err != nil {
		return nil, err
	}
	return nil, sw.out.Flush()
}

// Abort is Writer.Abort: nothing to release.
func (sw *StreamWriter) Abort() {}

// ErrStreamCut is a document stream that ended before its finish record.
var ErrStreamCut = errors.New("the document stream ended before its finish")

// Replay writes the archive of the document stream r to w, as the dump
// that sent the stream would have written it there, and returns its
// manifest. A stream cut short returns ErrStreamCut (wrapped), with the
// archive written so far on w.
func Replay(r io.Reader, w io.Writer) (*Manifest, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	magic := make([]byte, len(DocStreamMagic))
	if _, err := io.ReadFull(br, magic); err != nil {
		return nil, cut(err)
	}
	if string(magic) != DocStreamMagic {
		return nil, fmt.Errorf("not a document stream (it starts %q)", magic)
	}
	var buf []byte
	next := func() (byte, []byte, error) {
		typ, err := br.ReadByte()
		if err != nil {
			return 0, nil, cut(err)
		}
		n, err := binary.ReadUvarint(br)
		if err != nil {
			return 0, nil, cut(err)
		}
		if n > MaxDocumentSize+1<<20 {
			return 0, nil, fmt.Errorf("a record of %d bytes in the document stream", n)
		}
		if uint64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(br, buf); err != nil {
			return 0, nil, cut(err)
		}
		return typ, buf, nil
	}
	typ, p, err := next()
	if err != nil {
		return nil, err
	}
	var h streamHeader
	if typ != recHeader {
		return nil, fmt.Errorf("the document stream starts with a %q record, not its header", typ)
	}
	if err := json.Unmarshal(p, &h); err != nil {
		return nil, fmt.Errorf("the document stream's header: %w", err)
	}
	aw, err := NewWriter(w, h.Info, h.Definitions)
	if err != nil {
		return nil, err
	}
	defer aw.Abort()
	for {
		typ, p, err := next()
		if err != nil {
			return nil, err
		}
		switch typ {
		case recDocument:
			err = aw.WriteDocument(p)
		case recTable:
			var t Table
			if err = json.Unmarshal(p, &t); err == nil {
				err = aw.BeginTable(t)
			}
		case recFinish:
			var f streamFinish
			if err := json.Unmarshal(p, &f); err != nil {
				return nil, fmt.Errorf("the document stream's finish: %w", err)
			}
			return aw.Finish(f.Excluded, f.Finished)
		default:
			err = fmt.Errorf("a %q record in the document stream", typ)
		}
		if err != nil {
			return nil, err
		}
	}
}

func cut(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return ErrStreamCut
	}
	return err
}
