package agent

import (
	"encoding/json"
	"testing"

	"github.com/docker-dtr/docker-dtr/pkg/dtrstorage"
	"gotest.tools/v3/assert"
)

func TestListLine(t *testing.T) {
	for _, e := range []ListEntry{
		{Name: "docker/registry/v2/blobs/sha256/ab/abcd/data", Type: "file", Size: 20001, MTime: 1_700_000_000, Mode: 0o100644},
		{Name: "", Type: "dir", MTime: 1},
		{Name: "a/", Type: "dir"},
		{Name: "l", Type: "symlink", MTime: -5},
		{Name: `odd "name" <&> \ é` + "\n\x00", Type: "file", Size: 1},
		{Name: "bad utf-8 \xff", Type: "file"},
		ListEnd,
		{Type: "storage", Storage: &dtrstorage.Backend{Driver: "s3", Bucket: "b"}},
	} {
		checkListLine(t, e)
	}
	// Lines the hand-written reader leaves to encoding/json, which reads
	// them all the same or refuses them.
	for _, line := range []string{
		`{"type":"file","name":"a"}`, `{"name":"a","type":"file","size":0}`, `{"name":"a","type":"file","size":01}`,
		`{"name":"a","type":"file","Size":3}`, `{"name":"a","type":"file","mode":1,"size":2}`,
		`{"name":"a\u0041","type":"file"}`, `{"name":"a","type":"file","size":99999999999999999999}`,
		`{"name":"a","type":"file"} `, `{"name":"a","type":"file","size":-0}`, `{"name":"a","type":"file","x":1}`,
	} {
		checkParse(t, []byte(line))
	}
}

// checkListLine checks that e's line is encoding/json's, and reads back
// as encoding/json reads it.
func checkListLine(t *testing.T, e ListEntry) {
	t.Helper()
	want, err := json.Marshal(e)
	assert.NilError(t, err)
	got := AppendListEntry([]byte("before"), e)
	assert.Equal(t, string(got), "before"+string(want)+"\n")
	checkParse(t, got[len("before"):])
}

// checkParse checks that ParseListEntry reads line as json.Unmarshal.
func checkParse(t *testing.T, line []byte) {
	t.Helper()
	var want ListEntry
	wantErr := json.Unmarshal(line, &want)
	got, err := ParseListEntry(line)
	if wantErr != nil {
		assert.Assert(t, err != nil, "%q read as %+v", line, got)
		return
	}
	assert.NilError(t, err, "%q", line)
	assert.DeepEqual(t, got, want)
}

func FuzzListLine(f *testing.F) {
	f.Add("docker/registry/v2/blobs/sha256/ab/abcd/data", "file", int64(20001), int64(1_700_000_000), int64(0o100644), []byte(`{"name":"a","type":"dir","mtime":5}`))
	f.Add("a\"<", "dir", int64(0), int64(-1), int64(0), []byte(`{"name":"a","type":"file","size":01}`))
	f.Fuzz(func(t *testing.T, name, typ string, size, mtime, mode int64, line []byte) {
		checkListLine(t, ListEntry{Name: name, Type: typ, Size: size, MTime: mtime, Mode: mode})
		checkParse(t, line)
	})
}

func BenchmarkListLine(b *testing.B) {
	e := ListEntry{Name: "docker/registry/v2/repositories/team3/app/_layers/sha256/5feceb66ffc86f38d952786c6d696c79c2dbc239dd4e91b46729d73a27fb57e9/link", Type: "file", Size: 71, MTime: 1_700_000_000, Mode: 0o100644}
	line := AppendListEntry(nil, e)
	b.Run("hand", func(b *testing.B) {
		for range b.N {
			line = AppendListEntry(line[:0], e)
			if _, err := ParseListEntry(line); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for range b.N {
			l, _ := json.Marshal(e)
			var got ListEntry
			if err := json.Unmarshal(l, &got); err != nil {
				b.Fatal(err)
			}
		}
	})
}
