package restore

import (
	"bytes"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"github.com/docker-dtr/docker-dtr/pkg/dtrstorage"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// metadataArchive is a verified backup of dtr2.properties holding docs,
// and of a table after it.
func metadataArchive(t *testing.T, docs ...string) (archive.Source, *archive.Report) {
	t.Helper()
	var buf bytes.Buffer
	tables := []archive.Table{
		{DB: "dtr2", Name: "properties", PrimaryKey: "id", WriteHook: json.RawMessage("null")},
		{DB: "dtr2", Name: "tags", PrimaryKey: "id", WriteHook: json.RawMessage("null")},
	}
	archive.AssignDirs(tables)
	started := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	w, err := archive.NewWriter(&buf, archive.Info{Tool: "docker-dtr test", DTRVersion: "2.9.4", ReplicaID: "0123456789ab", Started: started}, archive.Definitions{Tables: tables})
	assert.NilError(t, err)
	for _, tb := range tables {
		assert.NilError(t, w.BeginTable(tb))
		if tb.Name == "properties" {
			for _, d := range docs {
				assert.NilError(t, w.WriteDocument([]byte(d)))
			}
		} else {
			assert.NilError(t, w.WriteDocument([]byte(`{"id":"t"}`)))
		}
	}
	_, err = w.Finish(nil, started.Add(time.Second))
	assert.NilError(t, err)
	open := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil }
	rep, err := archive.VerifyStream(open)
	assert.NilError(t, err)
	assert.Assert(t, rep.OK())
	return open, rep
}

// The backup's storage is read from its dtr2.properties, as from a live
// database's; its credentials are not kept.
func TestBackupStorage(t *testing.T) {
	open, rep := metadataArchive(t,
		`{"id":"ha.json","value":"{\"replicaCount\":1}"}`,
		`{"id":"registry.json","value":{"storage":{"s3":{"bucket":"old","region":"r","secretkey":"s3cr3t"}}}}`)
	b, err := BackupStorage(open, rep)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(b.String(), "s3 bucket old (region r)"))
	assert.Check(t, is.Equal(b.Setting, "registry.json"))

	open, rep = metadataArchive(t, `{"id":"ha.json","value":"{}"}`)
	b, err = BackupStorage(open, rep)
	assert.NilError(t, err)
	assert.Check(t, !b.Known())
}

func TestStorageDifference(t *testing.T) {
	s3 := dtrstorage.Backend{Driver: "s3", Bucket: "a", RootDirectory: "/dtr"}
	fs := dtrstorage.Backend{Driver: "filesystem", RootDirectory: "/storage"}
	other := s3
	other.Bucket = "b"
	region := s3
	region.Region = "elsewhere"
	assert.Check(t, is.Equal(StorageDifference(s3, s3), ""))
	assert.Check(t, is.Equal(StorageDifference(s3, region), ""), "the same bucket and root, reached otherwise")
	assert.Check(t, is.Equal(StorageDifference(s3, dtrstorage.Backend{Unknown: "x"}), ""), "an unknown side is not compared")
	assert.Check(t, is.Equal(StorageDifference(s3, other), `the backup's DTR kept its images in s3 bucket a (root /dtr), the target keeps them in s3 bucket b (root /dtr) (bucket "a", the target's "b")`))
	assert.Check(t, is.Contains(StorageDifference(s3, fs), `driver s3, the target's filesystem; bucket "a", the target's ""; root directory "/dtr", the target's "/storage"`))
}
