package crosscheck

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"gotest.tools/v3/assert"
)

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// metadata writes a metadata archive with the given documents per table.
func metadata(t *testing.T, docs map[string][]map[string]any) *os.File {
	var tables []archive.Table
	for _, name := range []string{"blobs", "manifests", "repositories", "tags"} {
		tables = append(tables, archive.Table{DB: "dtr2", Name: name, Dir: name, PrimaryKey: "id", Indexes: []archive.Index{}, WriteHook: json.RawMessage("null")})
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "meta.tar"))
	assert.NilError(t, err)
	t.Cleanup(func() { f.Close() })
	w, err := archive.NewWriter(f, archive.Info{Tool: "test", DTRVersion: "2.9.4", Started: time.Now()}, archive.Definitions{Tables: tables})
	assert.NilError(t, err)
	for _, tb := range tables {
		assert.NilError(t, w.BeginTable(tb))
		for _, d := range docs[tb.Name] {
			b, _ := json.Marshal(d)
			assert.NilError(t, w.WriteDocument(b))
		}
	}
	_, err = w.Finish(nil, time.Now())
	assert.NilError(t, err)
	return f
}

func TestCheck(t *testing.T) {
	layer, config, manifest, gone := digest("layer"), digest("config"), digest("manifest"), digest("gone")
	unused, other := digest("unused"), digest("other repo's")
	f := metadata(t, map[string][]map[string]any{
		"tags": {
			{"id": "t1", "repository": "team/app", "name": "1.0", "digest": "sha256:" + manifest},
			{"id": "t2", "repository": "team/app", "name": "1.1", "digest": "sha256:" + gone},
		},
		"manifests": {{"id": "m1", "repository": "team/app", "digest": "sha256:" + manifest,
			"configDigest": "sha256:" + config, "layers": []any{map[string]any{"digest": "sha256:" + layer}}}},
		"blobs": {{"id": "sha256:" + layer, "size": 5}},
		// other tables are not read, whatever they hold
		"repositories": {{"id": "r", "digest": "sha256:" + other}},
	})
	rep, err := archive.Verify(f)
	assert.NilError(t, err)
	assert.Assert(t, rep.OK())

	res, err := Check(f, rep, map[string]bool{layer: true, config: true, manifest: true, unused: true})
	assert.NilError(t, err)
	assert.Equal(t, res.Referenced, 4)
	assert.DeepEqual(t, res.Missing, []Missing{{Digest: "sha256:" + gone, By: []string{"team/app:1.1"}}})
	assert.Assert(t, !res.OK())
	assert.Equal(t, res.UnreferencedCount, 1)
	assert.DeepEqual(t, res.Unreferenced, []string{"sha256:" + unused})
	assert.DeepEqual(t, res.TablesFound, []string{"manifests", "blobs", "tags"})

	res, err = Check(f, rep, map[string]bool{layer: true, config: true, manifest: true, gone: true})
	assert.NilError(t, err)
	assert.Assert(t, res.OK())
}
