package archive

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"
)

// The manifest is JSON Lines so that it streams both ways: a header line, one
// line per entry in archive order, and a trailer line holding the SHA-256 of
// every byte before it. It never has to fit in memory, however many rows.

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

type trailer struct {
	ManifestSHA256 string `json:"manifestSHA256"`
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
	for _, t := range m.Tables {
		if t.Rows < 0 || t.Bytes < 0 {
			return fmt.Errorf("table %s: negative counts", t.FullName())
		}
	}
	return nil
}

const (
	maxHeaderLine = 16 << 20
	maxEntryLine  = 4 << 10
)

// manifestReader streams a manifest: Header first, then Next until io.EOF,
// which it returns only once the trailer's checksum has matched.
type manifestReader struct {
	br     *bufio.Reader
	sum    hash.Hash
	Header Manifest
	done   bool
}

var errManifestChecksum = errors.New("manifest checksum does not match: the manifest is damaged")

func newManifestReader(r io.Reader) (*manifestReader, error) {
	mr := &manifestReader{br: bufio.NewReaderSize(r, 64<<10), sum: sha256.New()}
	line, err := mr.line(maxHeaderLine)
	if err != nil {
		return nil, fmt.Errorf("manifest header: %w", err)
	}
	if err := strictUnmarshal(line, &mr.Header); err != nil {
		return nil, fmt.Errorf("manifest header: %w", err)
	}
	mr.sum.Write(line)
	if err := mr.Header.validate(); err != nil {
		return nil, err
	}
	return mr, nil
}

// line returns the next line including its newline.
func (mr *manifestReader) line(limit int) ([]byte, error) {
	var buf []byte
	for {
		chunk, err := mr.br.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > limit {
			return nil, fmt.Errorf("line longer than %d bytes", limit)
		}
		switch {
		case err == nil:
			return buf, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(buf) == 0 {
				return nil, errors.New("manifest ends without its trailer")
			}
			return nil, errors.New("manifest ends in the middle of a line")
		default:
			return nil, err
		}
	}
}

// Next returns the next entry, or io.EOF after a valid trailer.
func (mr *manifestReader) Next() (Entry, error) {
	if mr.done {
		return Entry{}, io.EOF
	}
	line, err := mr.line(maxEntryLine)
	if err != nil {
		return Entry{}, err
	}
	if bytes.HasPrefix(line, []byte(`{"manifestSHA256"`)) {
		var t trailer
		if err := strictUnmarshal(line, &t); err != nil {
			return Entry{}, fmt.Errorf("manifest trailer: %w", err)
		}
		if t.ManifestSHA256 != hex.EncodeToString(mr.sum.Sum(nil)) {
			return Entry{}, errManifestChecksum
		}
		if _, err := mr.br.ReadByte(); err != io.EOF {
			return Entry{}, errors.New("data after the manifest trailer")
		}
		mr.done = true
		return Entry{}, io.EOF
	}
	mr.sum.Write(line)
	var e Entry
	if err := strictUnmarshal(line, &e); err != nil {
		return Entry{}, fmt.Errorf("manifest entry: %w", err)
	}
	if _, err := hex.DecodeString(e.SHA256); err != nil || len(e.SHA256) != 64 || e.Size < 0 {
		return Entry{}, fmt.Errorf("manifest entry %q: invalid size or sha256", e.Name)
	}
	return e, nil
}

func strictUnmarshal(line []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more than one JSON value on a line")
	}
	return nil
}
