package jsonl

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"
)

// fuzzHeader has the shapes real headers have: strings, numbers, a time,
// lists of objects and of strings, raw JSON.
type fuzzHeader struct {
	Format  string          `json:"format"`
	Version int             `json:"formatVersion"`
	Started time.Time       `json:"started"`
	Tables  []fuzzTable     `json:"tables"`
	Blobs   []string        `json:"blobs"`
	Hook    json.RawMessage `json:"hook,omitempty"`
}

type fuzzTable struct {
	DB    string `json:"db"`
	Table string `json:"table"`
	Rows  int64  `json:"rows"`
}

type fuzzEntry struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Small limits, so that the fuzzer meets them.
var fuzzLimits = Limits{HeaderBytes: 2 << 10, HeaderValues: 48, LineBytes: 256}

// manifestBytes writes a manifest with the package's own writer.
func manifestBytes(tb testing.TB, h fuzzHeader, entries []fuzzEntry) []byte {
	tb.Helper()
	s, err := NewSpool()
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	for _, e := range entries {
		if err := s.Add(e); err != nil {
			tb.Fatal(err)
		}
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := s.WriteEntry(tw, &tar.Header{Name: "m.jsonl", Mode: 0o600}, h); err != nil {
		tb.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	if _, err := tr.Next(); err != nil {
		tb.Fatal(err)
	}
	data, err := io.ReadAll(tr)
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

func seedManifests(tb testing.TB) [][]byte {
	started := time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)
	h := fuzzHeader{
		Format: "docker-dtr-metadata", Version: 1, Started: started,
		Tables: []fuzzTable{{"dtr2", "tags", 60}, {"notaryserver", "tuf_files", 3}},
		Blobs:  []string{"docker/registry/v2/blobs/sha256/aa/aa00/data"},
		Hook:   json.RawMessage(`{"function":{"$reql_type$":"BINARY","data":"AAEC"}}`),
	}
	var entries []fuzzEntry
	for i := range 4 {
		sum := sha256.Sum256([]byte{byte(i)})
		entries = append(entries, fuzzEntry{Name: fmt.Sprintf("dtr-backup-v2.9.4/rethink/tags/%d", i), Size: int64(i), SHA256: hex.EncodeToString(sum[:])})
	}
	good := manifestBytes(tb, h, entries)
	empty := manifestBytes(tb, fuzzHeader{Format: "x", Tables: []fuzzTable{}, Blobs: []string{}}, nil)
	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 0x04
	return [][]byte{
		good,
		empty,
		flipped,
		good[:len(good)-1],                   // cut in the trailer
		good[:bytes.IndexByte(good, '\n')+1], // header only
		append(bytes.Clone(good), '\n'),      // data after the trailer
		append([]byte(`{"tables":[`+string(bytes.Repeat([]byte(`{},`), 60))+`{}]}`+"\n"), good...), // too many values
		append(bytes.Repeat([]byte(" "), 3<<10), good...),                                          // header too long
		[]byte(`{"manifestSHA256":"` + hex.EncodeToString(make([]byte, 32)) + `"}` + "\n"),
	}
}

// FuzzManifest reads arbitrary bytes as a manifest: header, entries,
// trailer. It must not panic or read past its limits, and whatever it
// accepts must be exactly a manifest: its trailer the SHA-256 of every byte
// before it, and the values read back the same when written again.
func FuzzManifest(f *testing.F) {
	for _, s := range seedManifests(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkCountValues(t, data)

		var h fuzzHeader
		_ = StrictUnmarshal(data, &h) // any input: no panic

		r, err := NewReader(bytes.NewReader(data), &h, fuzzLimits)
		if err != nil {
			return
		}
		var entries []fuzzEntry
		for {
			var e fuzzEntry
			err := r.Next(&e)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return
			}
			entries = append(entries, e)
			if len(entries) > len(data) {
				t.Fatalf("more entries than bytes")
			}
		}

		// Accepted: check the framing independently.
		if !bytes.HasSuffix(data, []byte("\n")) {
			t.Fatalf("accepted a manifest without a final newline")
		}
		body := data[:len(data)-1]
		start := bytes.LastIndexByte(body, '\n') + 1
		if start == 0 {
			t.Fatalf("accepted a manifest of one line")
		}
		var tr trailer
		if err := json.Unmarshal(data[start:], &tr); err != nil {
			t.Fatalf("accepted trailer %q: %v", data[start:], err)
		}
		sum := sha256.Sum256(data[:start])
		if tr.ManifestSHA256 != hex.EncodeToString(sum[:]) {
			t.Fatalf("accepted a trailer that is not the SHA-256 of the lines before it")
		}
		lines := bytes.SplitAfter(data[:start], []byte("\n"))
		lines = lines[:len(lines)-1] // after the last newline: nothing
		if len(lines[0]) > fuzzLimits.HeaderBytes || CountValues(lines[0]) > fuzzLimits.HeaderValues {
			t.Fatalf("accepted a header over the limits")
		}
		if len(lines) != len(entries)+1 {
			t.Fatalf("%d lines, %d entries read", len(lines), len(entries))
		}
		for _, l := range lines[1:] {
			if len(l) > fuzzLimits.LineBytes {
				t.Fatalf("accepted a line of %d bytes", len(l))
			}
		}

		// Written again and read back, the values are the same.
		again := manifestBytes(t, h, entries)
		var h2 fuzzHeader
		r2, err := NewReader(bytes.NewReader(again), &h2, Limits{HeaderBytes: 1 << 20, LineBytes: 1 << 20})
		if err != nil {
			t.Fatalf("reading a written manifest: %v", err)
		}
		var entries2 []fuzzEntry
		for {
			var e fuzzEntry
			err := r2.Next(&e)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("reading a written manifest: %v", err)
			}
			entries2 = append(entries2, e)
		}
		a, _ := json.Marshal([]any{h, entries})
		b, _ := json.Marshal([]any{h2, entries2})
		if !bytes.Equal(a, b) {
			t.Fatalf("read back differently:\n%s\n%s", a, b)
		}
	})
}

// checkCountValues: for valid JSON, CountValues is at least the number of
// array elements and object members, the bound that decoding memory relies
// on.
func checkCountValues(t *testing.T, data []byte) {
	if len(data) > 64<<10 || !json.Valid(data) {
		CountValues(data)
		return
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("valid JSON did not decode: %v", err)
	}
	if want, got := countElements(v), CountValues(data); got < want {
		t.Fatalf("CountValues = %d, but %q holds %d values", got, data, want)
	}
}

func countElements(v any) int {
	n := 0
	switch v := v.(type) {
	case []any:
		n += len(v)
		for _, e := range v {
			n += countElements(e)
		}
	case map[string]any:
		n += len(v)
		for _, e := range v {
			n += countElements(e)
		}
	}
	return n
}
