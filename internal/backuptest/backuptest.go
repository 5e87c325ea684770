// Package backuptest writes real backups of both kinds, and directories of
// them, for the tests of the commands and engines that read them.
package backuptest

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"github.com/docker-dtr/docker-dtr/pkg/crypt"
	"github.com/docker-dtr/docker-dtr/pkg/imagearchive"
	"gotest.tools/v3/assert"
)

// Passphrase is what EncryptFile encrypts with: the first line of
// pkg/crypt/testdata/passphrase.txt.
var Passphrase = []byte("correct horse battery staple")

// Day is noon local time, n days after 2026-11-20: one backup a day, well
// inside the day whatever $TZ is.
func Day(n int) time.Time {
	return time.Date(2026, 11, 20+n, 12, 0, 0, 0, time.Local)
}

// WriteMetadataBackup writes a real metadata backup started at started.
func WriteMetadataBackup(t *testing.T, path string, started time.Time) {
	t.Helper()
	var buf bytes.Buffer
	tables := []archive.Table{{DB: "dtr2", Name: "properties", PrimaryKey: "id", WriteHook: json.RawMessage("null")}}
	archive.AssignDirs(tables)
	w, err := archive.NewWriter(&buf, archive.Info{Tool: "docker-dtr test", DTRVersion: "2.9.4", ReplicaID: "0123456789ab", Started: started}, archive.Definitions{Tables: tables})
	assert.NilError(t, err)
	assert.NilError(t, w.BeginTable(tables[0]))
	for i := range 3 {
		assert.NilError(t, w.WriteDocument(fmt.Appendf(nil, `{"id":"%d"}`, i)))
	}
	_, err = w.Finish(nil, started.Add(time.Second))
	assert.NilError(t, err)
	assert.NilError(t, os.WriteFile(path, buf.Bytes(), 0o600))
}

// Corrupt changes one document's byte: the manifest still reads, verify fails.
func Corrupt(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	assert.NilError(t, err)
	i := bytes.Index(b, []byte(`{"id":"1"}`))
	assert.Assert(t, i >= 0)
	b[i+7] = '9'
	assert.NilError(t, os.WriteFile(path, b, 0o600))
}

// VolumeWith is a registry volume as the engine's archive API gives it,
// holding one blob file per content, in walk order.
func VolumeWith(t *testing.T, contents ...string) []byte {
	t.Helper()
	var digests []string
	data := map[string]string{}
	for _, c := range contents {
		sum := sha256.Sum256([]byte(c))
		d := hex.EncodeToString(sum[:])
		digests = append(digests, d)
		data[d] = c
	}
	sort.Strings(digests)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mt := time.Unix(1700000000, 0)
	dir := func(name string) {
		assert.NilError(t, tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mt}))
	}
	for _, d := range []string{"storage/", "storage/docker/", "storage/docker/registry/", "storage/docker/registry/v2/", "storage/docker/registry/v2/blobs/", "storage/docker/registry/v2/blobs/sha256/"} {
		dir(d)
	}
	prefix := ""
	for _, d := range digests {
		if d[:2] != prefix {
			prefix = d[:2]
			dir("storage/docker/registry/v2/blobs/sha256/" + prefix + "/")
		}
		dir("storage/docker/registry/v2/blobs/sha256/" + prefix + "/" + d + "/")
		c := data[d]
		assert.NilError(t, tw.WriteHeader(&tar.Header{Name: "storage/docker/registry/v2/blobs/sha256/" + prefix + "/" + d + "/data", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(c)), ModTime: mt}))
		_, err := tw.Write([]byte(c))
		assert.NilError(t, err)
	}
	assert.NilError(t, tw.Close())
	return buf.Bytes()
}

// WriteImageBackup writes a real image backup of vol, incremental on the
// backups since names.
func WriteImageBackup(t *testing.T, path string, started time.Time, vol []byte, since ...string) {
	t.Helper()
	var bases []*imagearchive.Base
	for _, s := range since {
		f, err := os.Open(s)
		assert.NilError(t, err)
		b, err := imagearchive.OpenBase(f, s)
		f.Close()
		assert.NilError(t, err)
		bases = append(bases, b)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	assert.NilError(t, err)
	defer f.Close()
	m, err := imagearchive.Write(f, bytes.NewReader(vol), imagearchive.Info{
		Tool: "docker-dtr test", DTRVersion: "2.9.4", ReplicaID: "0123456789ab",
		Volume: "dtr-registry-0123456789ab", VolumeDriver: "local", Started: started, Since: bases,
	}, nil)
	assert.NilError(t, err)
	assert.Equal(t, len(m.DependsOn), len(since), "incremental as intended")
}

// EncryptFile writes src encrypted with the test passphrase to dst.
func EncryptFile(t *testing.T, src, dst string) {
	t.Helper()
	pw := Passphrase
	plain, err := os.ReadFile(src)
	assert.NilError(t, err)
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	assert.NilError(t, err)
	defer out.Close()
	w, err := crypt.Encrypt(out, crypt.Recipients{Passphrase: pw})
	assert.NilError(t, err)
	_, err = w.Write(plain)
	assert.NilError(t, err)
	assert.NilError(t, w.Close())
}

// PruneDir fills a directory with real backups of both kinds and with
// what prune must leave alone.
func PruneDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }

	// Metadata: the newest is damaged, so the newest verified is meta-2.
	scratch := filepath.Join(t.TempDir(), "meta-0.tar")
	WriteMetadataBackup(t, scratch, Day(0))
	EncryptFile(t, scratch, p("meta-0.tar.gpg"))
	WriteMetadataBackup(t, p("meta-1.tar"), Day(1))
	WriteMetadataBackup(t, p("meta-2.tar"), Day(2))
	WriteMetadataBackup(t, p("meta-3.tar"), Day(3))
	Corrupt(t, p("meta-3.tar"))

	// Images: img-3 is incremental on img-1; img-2 is a full backup.
	WriteImageBackup(t, p("img-1.tar"), Day(1), VolumeWith(t, "layer one", "layer two"))
	WriteImageBackup(t, p("img-2.tar"), Day(2), VolumeWith(t, "layer one", "layer two", "layer three"))
	WriteImageBackup(t, p("img-3.tar"), Day(3), VolumeWith(t, "layer one", "layer two", "layer four"), p("img-1.tar"))

	// Not ours: prune leaves them alone.
	assert.NilError(t, os.WriteFile(p("notes.txt"), []byte("remember the milk\n"), 0o644))
	var foreign bytes.Buffer
	tw := tar.NewWriter(&foreign)
	assert.NilError(t, tw.WriteHeader(&tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755}))
	assert.NilError(t, tw.Close())
	assert.NilError(t, os.WriteFile(p("foreign.tar"), foreign.Bytes(), 0o644))
	var official bytes.Buffer
	tw = tar.NewWriter(&official)
	assert.NilError(t, tw.WriteHeader(&tar.Header{Name: "dtr-backup-v2.9.4-online/", Typeflag: tar.TypeDir, Mode: 0o700}))
	assert.NilError(t, tw.WriteHeader(&tar.Header{Name: "dtr-backup-v2.9.4-online/rethink/properties/0", Typeflag: tar.TypeReg, Mode: 0o600, Size: 10}))
	_, err := tw.Write([]byte(`{"id":"0"}`))
	assert.NilError(t, err)
	assert.NilError(t, tw.Close())
	assert.NilError(t, os.WriteFile(p("dtr-official.tar"), official.Bytes(), 0o600))
	assert.NilError(t, os.WriteFile(p(".img-4.tar.tmp-123"), []byte("left by a killed backup"), 0o600))
	assert.NilError(t, os.Mkdir(p("old"), 0o700))
	assert.NilError(t, os.Symlink("meta-1.tar", p("latest.tar")))

	// Old enough files: a changed time would tell a file changed.
	for _, name := range []string{"meta-0.tar.gpg", "meta-1.tar", "meta-2.tar", "meta-3.tar", "img-1.tar", "img-2.tar", "img-3.tar"} {
		assert.NilError(t, os.Chtimes(p(name), Day(5), Day(5)))
	}
	return dir
}

// DirNames are the names in dir.
func DirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	assert.NilError(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// Set is a metadata backup and a chain of two image backups in one
// directory: Full, and Incremental on it.
type Set struct {
	Dir, Metadata, Full, Incremental string
}

// WriteSet writes a Set in dir: meta.tar, img-1.tar (full) and img-2.tar
// (incremental on img-1.tar), a day apart.
func WriteSet(t *testing.T, dir string) Set {
	t.Helper()
	s := Set{Dir: dir, Metadata: filepath.Join(dir, "meta.tar"), Full: filepath.Join(dir, "img-1.tar"), Incremental: filepath.Join(dir, "img-2.tar")}
	WriteMetadataBackup(t, s.Metadata, Day(0))
	WriteImageBackup(t, s.Full, Day(1), VolumeWith(t, "layer one"))
	WriteImageBackup(t, s.Incremental, Day(2), VolumeWith(t, "layer one", "layer two"), s.Full)
	return s
}

func OfficialArchive(t testing.TB, docs map[string][]string) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, body string) {
		typ := byte(tar.TypeReg)
		if body == "" {
			typ = tar.TypeDir
		}
		assert.NilError(t, tw.WriteHeader(&tar.Header{Name: name, Typeflag: typ, Mode: 0o600, Size: int64(len(body))}))
		_, err := tw.Write([]byte(body))
		assert.NilError(t, err)
	}
	v := "dtr-backup-v2.9.4-online/"
	add(v, "")
	add(v+"rethink/", "")
	tables := make([]string, 0, len(docs))
	for table := range docs {
		tables = append(tables, table)
	}
	sort.Strings(tables)
	for _, table := range tables {
		add(v+"rethink/"+table+"/", "")
		for i, d := range docs[table] {
			add(fmt.Sprintf("%srethink/%s/%d", v, table, i), d)
		}
	}
	assert.NilError(t, tw.Close())
	p := filepath.Join(t.TempDir(), "official.tar")
	assert.NilError(t, os.WriteFile(p, buf.Bytes(), 0o600))
	return p
}
