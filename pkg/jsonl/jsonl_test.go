package jsonl

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
)

type head struct{ Kind string }
type entry struct{ Name string }

// write makes a manifest of n entries and returns its bytes.
func write(t *testing.T, n int) []byte {
	s, err := NewSpool()
	assert.NilError(t, err)
	defer s.Close()
	for i := range n {
		assert.NilError(t, s.Add(entry{Name: strings.Repeat("x", i)}))
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	assert.NilError(t, s.WriteEntry(tw, &tar.Header{Name: "m.jsonl", Mode: 0o600}, head{Kind: "test"}))
	assert.NilError(t, tw.Close())
	tr := tar.NewReader(&buf)
	hdr, err := tr.Next()
	assert.NilError(t, err)
	data, err := io.ReadAll(tr)
	assert.NilError(t, err)
	assert.Equal(t, hdr.Size, int64(len(data)))
	return data
}

func read(data []byte) (int, error) {
	var h head
	r, err := NewReader(bytes.NewReader(data), &h, Limits{HeaderBytes: 1 << 10, LineBytes: 1 << 10})
	if err != nil {
		return 0, err
	}
	n := 0
	for {
		var e entry
		err := r.Next(&e)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n++
	}
}

func TestRoundTrip(t *testing.T) {
	data := write(t, 100)
	n, err := read(data)
	assert.NilError(t, err)
	assert.Equal(t, n, 100)
}

func TestDamage(t *testing.T) {
	data := write(t, 3)
	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"edited entry":   {bytes.Replace(data, []byte(`"xx"`), []byte(`"yy"`), 1), ErrChecksum.Error()},
		"no trailer":     {data[:bytes.LastIndex(data[:len(data)-1], []byte("\n"))+1], "manifest ends without its trailer"},
		"cut mid-line":   {data[:len(data)-5], "manifest ends in the middle of a line"},
		"data after":     {append(append([]byte{}, data...), "x"...), "data after the manifest trailer"},
		"unknown field":  {bytes.Replace(data, []byte(`{"Name":"x"}`), []byte(`{"Nome":"x"}`), 1), `manifest entry: json: unknown field "Nome"`},
		"header too big": {append(bytes.Repeat([]byte(" "), 2<<10), data...), "manifest header: line longer than 1024 bytes"},
		// Found by FuzzManifest: a blank line read as io.EOF, the end of a
		// manifest whose checksum matched.
		"blank line for the trailer": {append(bytes.Clone(data[:bytes.LastIndex(data[:len(data)-1], []byte("\n"))+1]), '\n'), "manifest entry: no JSON value on the line"},
		"blank header":               {append([]byte("\n"), data...), "manifest header: no JSON value on the line"},
	} {
		_, err := read(tc.data)
		assert.Error(t, err, tc.want, name)
	}
}

// The spool has no name in $TMPDIR, from its start to its end: a killed
// backup leaves nothing there.
func TestSpoolHasNoName(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	s, err := NewSpool()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 1000 {
		if err := s.Add(map[string]int{"n": i}); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := s.WriteEntry(tw, &tar.Header{Name: "manifest", Mode: 0o644}, map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("%s is in $TMPDIR while the spool is open", e.Name())
	}
}
