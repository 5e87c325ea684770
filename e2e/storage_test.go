package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-dtr/docker-dtr/internal/dtrfixture"
	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// backup images reads where DTR keeps its images from DTR's own settings
// (dtr2.properties, read by the agent in the bucket's helper), and refuses, in one line
// and with nothing written, a backup that would restore no image: the
// images in a bucket (the volume mounted at /storage all the same), or an
// empty volume. No credential of the storage appears anywhere.
func TestImageBackupStorage(t *testing.T) {
	cfg := dockerConfig(t)
	c := dtrfixture.Start(t, dtrfixture.Options{Replicas: 1, Components: []string{"rethinkdb", "registry"}})
	rep := c.Replicas[0]
	vol := "dtr-registry-" + rep.ID
	driver := c.Connect(t, rep.ID)
	dir := t.TempDir()
	out := filepath.Join(dir, "backup-images.tar")
	const secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYSECRET"

	refused := func(t *testing.T, want ...string) {
		t.Helper()
		res := docker(t, cfg, nil, "dtr", "backup", "images", "--progress", "plain", "-o", out)
		assert.Equal(t, res.code, 1, res.stderr)
		lines := strings.Split(strings.TrimSpace(res.stderr), "\n")
		last := lines[len(lines)-1]
		for _, w := range want {
			assert.Check(t, is.Contains(last, w))
		}
		assert.Check(t, is.Contains(last, "this backup would restore no image"))
		assert.Check(t, !strings.Contains(res.stderr+res.stdout, secret), "a credential was printed")
		assert.Check(t, !strings.Contains(res.stderr+res.stdout, "AKIAEXAMPLE"), "a credential was printed")
		_, err := os.Stat(out)
		assert.Check(t, os.IsNotExist(err), "nothing written at -o")
		assertDir(t, dir)
		assertNoHelpers(t, c)
	}
	setStorage := func(t *testing.T, value string) {
		t.Helper()
		_, err := r.DB("dtr2").Table("properties").Insert(map[string]any{"id": "registry.json", "value": value}, r.InsertOpts{Conflict: "replace"}).RunWrite(driver)
		assert.NilError(t, err)
	}

	t.Run("no settings, empty volume", func(t *testing.T) {
		refused(t, "volume "+vol+" holds no image content, and DTR's storage configuration is unknown (the database has no dtr2.properties)")
		res := docker(t, cfg, nil, "dtr", "status")
		assert.Equal(t, res.code, 0, res.stderr)
		assert.Check(t, is.Contains(res.stdout, "Image storage: unknown (the database has no dtr2.properties)."))
	})

	assert.NilError(t, r.DBCreate("dtr2").Exec(driver))
	assert.NilError(t, r.DB("dtr2").TableCreate("properties").Exec(driver))
	_, err := r.DB("dtr2").Table("properties").Insert(map[string]any{"id": "ha.json", "value": `{"replicaCount":1}`}).RunWrite(driver)
	assert.NilError(t, err)

	t.Run("s3", func(t *testing.T) {
		// A bucket that cannot be reached: the backup fails naming it,
		// writes nothing, and prints no credential (e2e TestS3Images
		// backs a real bucket up).
		setStorage(t, `{"storage":{"s3":{"bucket":"dtr-images","region":"eu-west-1","regionendpoint":"http://127.0.0.1:9","accesskey":"AKIAEXAMPLE","secretkey":"`+secret+`"},"redirect":{"disable":true}}}`)
		res := docker(t, cfg, nil, "dtr", "backup", "images", "--progress", "plain", "-o", out)
		assert.Equal(t, res.code, 1, res.stderr)
		assert.Check(t, is.Contains(res.stderr, "DTR keeps its images in s3 bucket dtr-images (region eu-west-1, endpoint http://127.0.0.1:9) (its setting registry.json): reading the bucket"))
		assert.Check(t, is.Contains(res.stderr, "listing s3 bucket dtr-images"))
		assert.Check(t, !strings.Contains(res.stderr+res.stdout, secret) && !strings.Contains(res.stderr+res.stdout, "AKIAEXAMPLE"), "a credential was printed")
		_, err := os.Stat(out)
		assert.Check(t, os.IsNotExist(err), "nothing written at -o")
		assertDir(t, dir)
		assertNoHelpers(t, c)

		// status shows the bucket, in text and JSON, and no credential.
		res = docker(t, cfg, nil, "dtr", "status")
		assert.Equal(t, res.code, 0, res.stderr)
		assert.Check(t, is.Contains(res.stdout, "Image storage: s3 bucket dtr-images (region eu-west-1, endpoint http://127.0.0.1:9) (DTR's setting registry.json): not in the replicas' volumes"))
		assert.Check(t, is.Contains(res.stdout, "not used (images in s3)"))
		res2 := docker(t, cfg, nil, "dtr", "status", "--format", "json")
		assert.Equal(t, res2.code, 0, res2.stderr)
		var st struct {
			Storage struct{ Driver, Bucket, Region, Setting, ReadFrom, Error string }
		}
		assert.NilError(t, json.Unmarshal([]byte(res2.stdout), &st))
		assert.Check(t, is.Equal(st.Storage.Driver, "s3"))
		assert.Check(t, is.Equal(st.Storage.Bucket, "dtr-images"))
		assert.Check(t, is.Equal(st.Storage.ReadFrom, rep.ID))
		assert.Check(t, is.Equal(st.Storage.Error, ""))
		for _, out := range []string{res.stdout + res.stderr, res2.stdout + res2.stderr} {
			assert.Check(t, !strings.Contains(out, secret) && !strings.Contains(out, "AKIAEXAMPLE"), "a credential was printed")
		}
		assertNoHelpers(t, c)
	})
	t.Run("azure", func(t *testing.T) {
		setStorage(t, "storage:\n  azure:\n    accountname: acct\n    accountkey: "+secret+"\n    container: images\n")
		refused(t, "DTR keeps its images in azure container images (its setting registry.json)", "back the container up")
	})
	t.Run("filesystem, empty volume", func(t *testing.T) {
		setStorage(t, `{"storage":{"filesystem":{"rootdirectory":"/storage"}}}`)
		refused(t, "volume "+vol+" holds no image content, though DTR's setting registry.json says its images are there (filesystem (root /storage))")
	})
	t.Run("filesystem, a blob in the volume", func(t *testing.T) {
		data := "a layer"
		sum := sha256.Sum256([]byte(data))
		putFile(t, c, vol, dtrfixture.BlobPath("sha256:"+hex.EncodeToString(sum[:])), data)
		res := docker(t, cfg, nil, "dtr", "backup", "images", "--progress", "plain", "-o", out)
		assert.Equal(t, res.code, 0, res.stderr)
		assert.Check(t, is.Contains(res.stderr, "DTR keeps its images in filesystem (root /storage) (its setting registry.json): volume "+vol))
		// The settings come from the agent in the bucket's helper: no
		// database helper of their own.
		assert.Check(t, !strings.Contains(res.stderr, "started database helper "), res.stderr)
		assert.Check(t, is.Contains(res.stdout, "1 blobs"))
		assertNoHelpers(t, c)
	})
}

// A metadata backup of a DTR with one storage configuration, restored into
// a DTR configured with another, is refused without --force, and the dry
// run says what differs: the restored settings would point the registry
// at the backup's storage.
func TestMetadataRestoreStorage(t *testing.T) {
	cfg := dockerConfig(t)
	c := dtrfixture.Start(t, dtrfixture.Options{Replicas: 1, Components: []string{"rethinkdb", "registry"}})
	driver := c.Connect(t, c.Replicas[0].ID)
	assert.NilError(t, r.DBCreate("dtr2").Exec(driver))
	assert.NilError(t, r.DB("dtr2").TableCreate("properties").Exec(driver))
	setStorage := func(t *testing.T, value string) {
		t.Helper()
		_, err := r.DB("dtr2").Table("properties").Insert(map[string]any{"id": "registry.json", "value": value}, r.InsertOpts{Conflict: "replace"}).RunWrite(driver)
		assert.NilError(t, err)
	}
	setStorage(t, `{"storage":{"s3":{"bucket":"dtr-old","region":"eu-west-1","accesskey":"AKIAEXAMPLE","secretkey":"not-shown"}}}`)
	backup := filepath.Join(t.TempDir(), "backup-metadata.tar")
	res := docker(t, cfg, nil, "dtr", "backup", "create", "-o", backup)
	assert.Equal(t, res.code, 0, res.stderr)

	setStorage(t, `{"storage":{"filesystem":{"rootdirectory":"/storage"}}}`)
	const differs = `the backup's DTR kept its images in s3 bucket dtr-old (region eu-west-1), the target keeps them in filesystem (root /storage) (driver s3, the target's filesystem; bucket "dtr-old", the target's ""; root directory "", the target's "/storage")`
	res = docker(t, cfg, nil, "dtr", "backup", "restore", "--dry-run", backup)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Check(t, is.Contains(res.stdout, "point the registry at the backup's image storage: "+differs))
	assert.Check(t, is.Contains(res.stdout, "refuse without --force: DTR's guidance is never to change storage"))

	res = docker(t, cfg, nil, "dtr", "backup", "restore", backup)
	assert.Equal(t, res.code, 1, res.stderr)
	assert.Check(t, is.Contains(res.stderr, differs+": the restored settings would point the registry at the backup's storage"))
	assert.Check(t, is.Contains(res.stderr, "pass --force"))
	assert.Check(t, !strings.Contains(res.stderr+res.stdout, "not-shown") && !strings.Contains(res.stderr+res.stdout, "AKIAEXAMPLE"), "a credential was printed")
	assertNoHelpers(t, c)

	// The same storage: nothing to say about it.
	setStorage(t, `{"storage":{"s3":{"bucket":"dtr-old","region":"eu-west-1","accesskey":"AKIANEW","secretkey":"rotated"}}}`)
	res = docker(t, cfg, nil, "dtr", "backup", "restore", "--dry-run", backup)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Check(t, !strings.Contains(res.stdout, "image storage"), res.stdout)

	setStorage(t, `{"storage":{"filesystem":{"rootdirectory":"/storage"}}}`)
	res = docker(t, cfg, nil, "dtr", "backup", "restore", "--force", "--no-safety-backup", backup)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Check(t, is.Contains(res.stderr, differs+": the restored settings point the registry at the backup's storage (--force)"))
	assertNoHelpers(t, c)
}
