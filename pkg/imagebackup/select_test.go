package imagebackup

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/docker-dtr/docker-dtr/internal/backuptest"
	"github.com/docker-dtr/docker-dtr/pkg/agent"
	"github.com/docker-dtr/docker-dtr/pkg/imagearchive"
	"github.com/google/go-cmp/cmp/cmpopts"
	"gotest.tools/v3/assert"
)

func blobName(content string) string {
	sum := sha256.Sum256([]byte(content))
	d := hex.EncodeToString(sum[:])
	return "docker/registry/v2/blobs/sha256/" + d[:2] + "/" + d + "/data"
}

// Select leaves out only the blobs a base holds at the same size: new
// blobs, a held blob's digest at another size, links, _manifests and
// files that are not blobs are read; uploads are neither read nor kept.
func TestSelect(t *testing.T) {
	full := filepath.Join(t.TempDir(), "full.tar")
	backuptest.WriteImageBackup(t, full, backuptest.Day(1), backuptest.VolumeWith(t, "layer one", "layer two"))
	f, err := os.Open(full)
	assert.NilError(t, err)
	defer f.Close()
	base, err := imagearchive.OpenBase(f, full)
	assert.NilError(t, err)

	one, two, three := blobName("layer one"), blobName("layer two"), blobName("layer three")
	link := "docker/registry/v2/repositories/r/_layers/sha256/x/link"
	list := []agent.ListEntry{
		{Name: "", Type: "dir"},
		{Name: "docker/", Type: "dir"},
		{Name: one, Type: "file", Size: int64(len("layer one")), Mode: 0o100644},
		{Name: two, Type: "file", Size: 1000}, // the digest at another size
		{Name: three, Type: "file", Size: int64(len("layer three"))},
		{Name: link, Type: "file", Size: 71},
		{Name: "docker/registry/v2/repositories/r/_manifests/tags/1/current/link", Type: "file", Size: 71},
		// A file of a held blob's bytes, but not at a blob's path.
		{Name: "docker/registry/v2/repositories/r/copy-of-one", Type: "file", Size: int64(len("layer one"))},
		{Name: "docker/registry/v2/repositories/r/_uploads/u/data", Type: "file", Size: 5000},
		{Name: "docker/registry/v2/repositories/alias", Type: "symlink"},
	}
	s := Select(list, []*imagearchive.Base{base})
	checkPending(t, list, base, s)
	assert.DeepEqual(t, s.Omit, map[string]int64{one: int64(len("layer one"))})
	assert.DeepEqual(t, s.LeftOut, []imagearchive.LeftOut{{Name: one, Size: int64(len("layer one")), Mode: 0o100644}})
	assert.Equal(t, s.OmittedFiles, int64(1))
	assert.Equal(t, s.OmittedBytes, int64(len("layer one")))
	assert.Equal(t, s.ReadFiles, int64(5))
	assert.Equal(t, s.ReadBytes, int64(1000+len("layer three")+71+71+len("layer one")))
	assert.Equal(t, s.UploadFiles, int64(1))
	assert.Equal(t, s.UploadBytes, int64(5000))
	// A blob left out costs the stream nothing, not even a header.
	assert.Assert(t, s.Stream >= s.ReadBytes+int64(len(list)-1)*512)
	// Against reading it: its header and its 9 bytes' block.
	assert.Equal(t, s.Stream, Select(list, nil).Stream-2*512)

	// No bases: everything is read.
	s = Select(list, nil)
	assert.Equal(t, len(s.Omit), 0)
	assert.Equal(t, s.ReadFiles, int64(6))
}

// checkPending checks that a selection whose bases come while the listing
// is read (after each of its entries in turn, or only at the choice)
// chooses as one that had them from the start.
func checkPending(t *testing.T, list []agent.ListEntry, base *imagearchive.Base, want Selection) {
	t.Helper()
	for at := range len(list) + 1 {
		p := NewPendingSelection()
		for i, e := range list {
			if i == at {
				p.Decide([]*imagearchive.Base{base})
			}
			p.Add(e)
		}
		if at == len(list) {
			p.Decide([]*imagearchive.Base{base})
		}
		p.Finish()
		assert.DeepEqual(t, *p, want, cmpopts.IgnoreUnexported(Selection{}))
	}
}
