package agent

import (
	"archive/tar"
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// keptVolume is sendVolume and what else a header carries: odd modes,
// another owner, times with nanoseconds, a fifo, an empty directory, and
// a walk that goes deep and comes back up.
func keptVolume(t *testing.T) string {
	dir, _ := sendVolume(t, 3)
	writeFiles(t, dir, map[string][]byte{
		"a/b/c/d/deep": []byte("deep"),
		"a/z":          []byte("z"),
		"setuid":       []byte("#!"),
	})
	assert.NilError(t, os.Chmod(filepath.Join(dir, "setuid"), 0o4755|os.ModeSetuid))
	assert.NilError(t, os.Chmod(filepath.Join(dir, "a/z"), 0o600))
	assert.NilError(t, os.Mkdir(filepath.Join(dir, "a/empty"), 0o700))
	assert.NilError(t, syscall.Mkfifo(filepath.Join(dir, "a/fifo"), 0o640))
	when := time.Unix(1_700_000_000, 987_654_321)
	assert.NilError(t, os.Chtimes(filepath.Join(dir, "a/b/c/d/deep"), when, when))
	if os.Geteuid() == 0 {
		assert.NilError(t, os.Lchown(filepath.Join(dir, "a/b"), 1234, 5678))
	}
	return dir
}

// The kept list gives the send every entry as the walk gave it: the same
// paths, the same headers, the same links.
func TestKeptSameAsWalk(t *testing.T) {
	dir := keptVolume(t)
	tree := dirTree(dir)
	collect := func(got *[]keptSeen) walkFunc {
		return func(rel string, info fs.FileInfo, link string) error {
			hdr, err := header(tree.top(), rel, info, link)
			assert.NilError(t, err)
			*got = append(*got, keptSeen{rel, link, hdr})
			return nil
		}
	}
	var byWalk, fromKept []keptSeen
	assert.NilError(t, tree.walk(nil, collect(&byWalk)))
	kept := &keptList{}
	assert.NilError(t, list(tree, io.Discard, func(w walked) { assert.Assert(t, kept.add(w)) }))
	assert.NilError(t, kept.each(nil, collect(&fromKept)))
	assert.Equal(t, len(fromKept), len(byWalk))
	for i := range byWalk {
		assert.DeepEqual(t, fromKept[i], byWalk[i], cmp.AllowUnexported(keptSeen{}))
	}
}

type keptSeen struct {
	rel, link string
	hdr       *tar.Header
}

// A volume past the budget is walked again, and sends the same.
func TestKeptOverBudget(t *testing.T) {
	dir := keptVolume(t)
	defer func(n int) { maxKeptBytes = n }(maxKeptBytes)
	for _, budget := range []int{maxKeptBytes, 300} {
		maxKeptBytes = budget
		kept := &keptList{}
		all := true
		assert.NilError(t, list(dirTree(dir), io.Discard, func(w walked) { all = kept.add(w) && all }))
		assert.Check(t, is.Equal(all, budget != 300), "kept all within %d bytes", budget)

		var out bytes.Buffer
		in, w := io.Pipe()
		go io.WriteString(w, "end\n") // then silent: the lease holds
		assert.NilError(t, Send(dir, in, &out, time.Minute))
		w.Close()
		_, tarPart, ok := bytes.Cut(out.Bytes(), []byte(`"type":"end"}`+"\n"))
		assert.Assert(t, ok)
		assert.DeepEqual(t, tarPart, sendTar(t, dir, nil))
	}
}
