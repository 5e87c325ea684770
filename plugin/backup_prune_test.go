package plugin

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
	"strings"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"github.com/docker-dtr/docker-dtr/pkg/crypt"
	"github.com/docker-dtr/docker-dtr/pkg/imagearchive"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// day is noon local time, n days after 2026-11-20: one backup a day, well
// inside the day whatever $TZ is.
func day(n int) time.Time {
	return time.Date(2026, 11, 20+n, 12, 0, 0, 0, time.Local)
}

// writeMetadataBackup writes a real metadata backup started at started.
func writeMetadataBackup(t *testing.T, path string, started time.Time) {
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

// corrupt changes one document's byte: the manifest still reads, verify fails.
func corrupt(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	assert.NilError(t, err)
	i := bytes.Index(b, []byte(`{"id":"1"}`))
	assert.Assert(t, i >= 0)
	b[i+7] = '9'
	assert.NilError(t, os.WriteFile(path, b, 0o600))
}

// volumeWith is a registry volume as the engine's archive API gives it,
// holding one blob file per content, in walk order.
func volumeWith(t *testing.T, contents ...string) []byte {
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

// writeImageBackup writes a real image backup, incremental when since
// names earlier ones.
func writeImageBackup(t *testing.T, path string, started time.Time, vol []byte, since ...string) {
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

// encryptFile writes src encrypted with the test passphrase to dst.
func encryptFile(t *testing.T, src, dst string) {
	t.Helper()
	pw, err := readPassphraseFile(filepath.Join(cryptTestdata, "passphrase.txt"))
	assert.NilError(t, err)
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

// pruneDir fills a directory with real backups of both kinds and with
// what prune must leave alone.
func pruneDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }

	// Metadata: the newest is damaged, so the newest verified is meta-2.
	scratch := filepath.Join(t.TempDir(), "meta-0.tar")
	writeMetadataBackup(t, scratch, day(0))
	encryptFile(t, scratch, p("meta-0.tar.gpg"))
	writeMetadataBackup(t, p("meta-1.tar"), day(1))
	writeMetadataBackup(t, p("meta-2.tar"), day(2))
	writeMetadataBackup(t, p("meta-3.tar"), day(3))
	corrupt(t, p("meta-3.tar"))

	// Images: img-3 is incremental on img-1; img-2 is a full backup.
	writeImageBackup(t, p("img-1.tar"), day(1), volumeWith(t, "layer one", "layer two"))
	writeImageBackup(t, p("img-2.tar"), day(2), volumeWith(t, "layer one", "layer two", "layer three"))
	writeImageBackup(t, p("img-3.tar"), day(3), volumeWith(t, "layer one", "layer two", "layer four"), p("img-1.tar"))

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
	assert.NilError(t, os.WriteFile(p(".img-4.tar.tmp-123"), []byte("being written"), 0o600))
	assert.NilError(t, os.Mkdir(p("old"), 0o700))
	assert.NilError(t, os.Symlink("meta-1.tar", p("latest.tar")))

	// Old enough files: a changed time would tell a file changed.
	for _, name := range []string{"meta-0.tar.gpg", "meta-1.tar", "meta-2.tar", "meta-3.tar", "img-1.tar", "img-2.tar", "img-3.tar"} {
		assert.NilError(t, os.Chtimes(p(name), day(5), day(5)))
	}
	return dir
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	assert.NilError(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

type pruneJSON struct {
	DryRun  bool `json:"dryRun"`
	Removed int  `json:"removed"`
	Failed  int  `json:"failed"`
	Files   []struct {
		File     string   `json:"file"`
		Kind     string   `json:"kind"`
		Action   string   `json:"action"`
		Rules    []string `json:"rules"`
		Reason   string   `json:"reason"`
		Verified *bool    `json:"verified"`
		Removed  bool     `json:"removed"`
		Error    string   `json:"error"`
	} `json:"files"`
}

// actions maps each file to "action: rules or reason".
func actions(t *testing.T, out string) (pruneJSON, map[string]string) {
	t.Helper()
	var res pruneJSON
	assert.NilError(t, json.Unmarshal([]byte(out), &res), out)
	m := map[string]string{}
	for _, f := range res.Files {
		why := f.Reason
		if f.Action == "keep" {
			why = strings.Join(f.Rules, "; ")
		}
		m[f.File] = f.Action + ": " + why
	}
	return res, m
}

func TestPruneWithoutSecrets(t *testing.T) {
	t.Setenv(passphraseEnv, "")
	os.Unsetenv(passphraseEnv)
	dir := pruneDir(t)
	before := dirNames(t, dir)

	out, errOut, code := run(t, nil, "backup", "prune", dir, "--keep-last", "1", "--dry-run", "--format", "json")
	assert.Equal(t, code, 0, errOut)
	res, got := actions(t, out)
	assert.Assert(t, res.DryRun)
	assert.Equal(t, res.Removed, 0)
	assert.DeepEqual(t, dirNames(t, dir), before)

	want := map[string]string{
		"meta-3.tar":     "keep: last 1",
		"meta-2.tar":     "keep: newest verified",
		"meta-1.tar":     "remove: no rule keeps it",
		"meta-0.tar.gpg": "skip: encrypted: give --passphrase-file, --identity-file or $DTR_BACKUP_PASSPHRASE to read its manifest",
		// An unreadable encrypted file could be an incremental backup.
		"img-3.tar": "keep: last 1; DIR holds an encrypted file that could not be read (meta-0.tar.gpg), perhaps an incremental backup that needs it",
		"img-2.tar": "keep: DIR holds an encrypted file that could not be read (meta-0.tar.gpg), perhaps an incremental backup that needs it",
		"img-1.tar": "keep: needed by img-3.tar; DIR holds an encrypted file that could not be read (meta-0.tar.gpg), perhaps an incremental backup that needs it",
	}
	for file, w := range want {
		assert.Equal(t, got[file], w, file)
	}
	for _, file := range []string{"notes.txt", "foreign.tar", "dtr-official.tar", ".img-4.tar.tmp-123", "old", "latest.tar"} {
		assert.Assert(t, strings.HasPrefix(got[file], "skip: "), "%s: %s", file, got[file])
	}
	assert.Assert(t, is.Contains(got["dtr-official.tar"], "docker/dtr backup archive"))
	assert.Assert(t, is.Contains(got["foreign.tar"], "docker-dtr-images.jsonl"))
	assert.Assert(t, is.Contains(got[".img-4.tar.tmp-123"], "hidden"))
	assert.Assert(t, is.Contains(got["old"], "a directory"))
	assert.Assert(t, is.Contains(got["latest.tar"], "a symbolic link"))
	for _, f := range res.Files {
		switch f.File {
		case "meta-3.tar":
			assert.Assert(t, f.Verified != nil && !*f.Verified, "the damaged newest failed verify")
		case "meta-2.tar":
			assert.Assert(t, f.Verified != nil && *f.Verified)
		}
	}
	assert.Assert(t, is.Contains(errOut, "meta-3.tar does not pass verify"))

	// The table, for people, says the same.
	out, _, code = run(t, nil, "backup", "prune", dir, "--keep-last", "1", "--dry-run", "-q")
	assert.Equal(t, code, 0)
	assert.Assert(t, is.Contains(out, "ACTION"))
	assert.Assert(t, is.Regexp(`(?m)^REMOVE +meta-1\.tar +metadata +2026-11-21 12:00:00 `, out))
	assert.Assert(t, is.Regexp(`(?m)^SKIP +notes\.txt +- +- +not a readable docker-dtr backup`, out))
	assert.Assert(t, is.Contains(out, "dry run: 1 backup would be removed"))
	assert.DeepEqual(t, dirNames(t, dir), before)
}

func TestPruneRemoves(t *testing.T) {
	dir := pruneDir(t)
	pass := filepath.Join(cryptTestdata, "passphrase.txt")

	out, errOut, code := run(t, nil, "backup", "prune", dir, "--keep-last", "1", "--passphrase-file", pass, "--format", "json")
	assert.Equal(t, code, 0, errOut)
	res, got := actions(t, out)
	assert.Equal(t, got["meta-0.tar.gpg"], "remove: no rule keeps it", "decrypted, read, and old")
	assert.Equal(t, got["img-2.tar"], "remove: no rule keeps it")
	assert.Equal(t, got["img-1.tar"], "keep: needed by img-3.tar")
	assert.Equal(t, got["img-3.tar"], "keep: last 1; newest verified", "its chain verified")
	assert.Equal(t, res.Removed, 3)
	assert.Assert(t, is.Contains(errOut, "decrypting"))
	assert.DeepEqual(t, dirNames(t, dir), []string{".img-4.tar.tmp-123", "dtr-official.tar", "foreign.tar", "img-1.tar", "img-3.tar", "latest.tar", "meta-2.tar", "meta-3.tar", "notes.txt", "old"})

	// What is left still restores: the incremental's chain is whole.
	_, errOut, code = run(t, nil, "backup", "verify", filepath.Join(dir, "img-3.tar"))
	assert.Equal(t, code, 0, errOut)

	// Again: nothing more to remove.
	out, errOut, code = run(t, nil, "backup", "prune", dir, "--keep-last", "1")
	assert.Equal(t, code, 0, errOut)
	assert.Assert(t, is.Contains(out, "removed 0 backups"))
	assert.Assert(t, is.Contains(errOut, "verifying"), "meta-2 would go if meta-3 passed: %s", errOut)

	// A policy that removes nothing reads no backup in full.
	out, errOut, code = run(t, nil, "backup", "prune", dir, "--keep-last", "5")
	assert.Equal(t, code, 0, errOut)
	assert.Assert(t, is.Contains(out, "removed 0 backups"))
	assert.Assert(t, !strings.Contains(errOut, "verifying"), errOut)
}

func TestPruneDailyAndWeekly(t *testing.T) {
	dir := t.TempDir()
	// Two a day for six days: the evening backup of each day is the one kept.
	for d := range 6 {
		writeMetadataBackup(t, filepath.Join(dir, fmt.Sprintf("m-%d-am.tar", d)), day(d).Add(-3*time.Hour))
		writeMetadataBackup(t, filepath.Join(dir, fmt.Sprintf("m-%d-pm.tar", d)), day(d).Add(6*time.Hour))
	}
	out, errOut, code := run(t, nil, "backup", "prune", dir, "--keep-daily", "3", "--keep-weekly", "2", "--format", "json")
	assert.Equal(t, code, 0, errOut)
	_, got := actions(t, out)
	// 2026-11-20 is a Friday: days 0-2 are in ISO week 47, days 3-5 in 48.
	assert.Equal(t, got["m-5-pm.tar"], "keep: daily 2026-11-25; weekly 2026-W48; newest verified")
	assert.Equal(t, got["m-4-pm.tar"], "keep: daily 2026-11-24")
	assert.Equal(t, got["m-3-pm.tar"], "keep: daily 2026-11-23")
	assert.Equal(t, got["m-2-pm.tar"], "keep: weekly 2026-W47")
	assert.DeepEqual(t, dirNames(t, dir), []string{"m-2-pm.tar", "m-3-pm.tar", "m-4-pm.tar", "m-5-pm.tar"})
}

func TestPruneKeepsAllWhenNoneVerifies(t *testing.T) {
	dir := t.TempDir()
	for d := range 3 {
		p := filepath.Join(dir, fmt.Sprintf("m-%d.tar", d))
		writeMetadataBackup(t, p, day(d))
		corrupt(t, p)
	}
	out, errOut, code := run(t, nil, "backup", "prune", dir, "--keep-last", "1")
	assert.Equal(t, code, 0, errOut)
	assert.Assert(t, is.Contains(errOut, "no metadata backup in "+dir+" passes verify"))
	assert.Assert(t, is.Contains(out, "removed 0 backups"))
	assert.Equal(t, len(dirNames(t, dir)), 3)
}

func TestPruneReportsAFileItCannotRemove(t *testing.T) {
	dir := t.TempDir()
	for d := range 4 {
		writeMetadataBackup(t, filepath.Join(dir, fmt.Sprintf("m-%d.tar", d)), day(d))
	}
	// Another process writes over m-0.tar once the decisions are made.
	pruneBeforeRemove = func() {
		assert.NilError(t, os.WriteFile(filepath.Join(dir, "m-0.tar"), []byte("replaced"), 0o600))
	}
	t.Cleanup(func() { pruneBeforeRemove = nil })
	out, errOut, code := run(t, nil, "backup", "prune", dir, "--keep-last", "2", "-q")
	assert.Equal(t, code, 1)
	assert.Assert(t, is.Contains(out, "NOT REMOVED: it changed since prune read it"))
	assert.Assert(t, is.Contains(errOut, "1 backup in "+dir+" could not be removed"))
	assert.DeepEqual(t, dirNames(t, dir), []string{"m-0.tar", "m-2.tar", "m-3.tar"}) // the others still go
}

func TestPruneUsage(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	assert.NilError(t, os.WriteFile(file, nil, 0o600))
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{dir}, 2, "give at least one of --keep-last, --keep-daily, --keep-weekly above 0"},
		{[]string{dir, "--keep-last", "0"}, 2, "give at least one of"},
		{[]string{dir, "--keep-daily", "-1"}, 2, "--keep-daily -1: give a count of 0 or more"},
		{[]string{"--keep-last", "1"}, 2, "requires a directory DIR of backups"},
		{[]string{dir, "--keep-last", "x"}, 2, "--keep-last"},
		{[]string{file, "--keep-last", "1"}, 1, file + " is not a directory"},
		{[]string{filepath.Join(dir, "nope"), "--keep-last", "1"}, 1, "cannot read the backup directory"},
		{[]string{dir, "--keep-last", "1", "--format", "yaml"}, 2, `--format "yaml"`},
	} {
		out, errOut, code := run(t, nil, append([]string{"backup", "prune"}, tc.args...)...)
		assert.Equal(t, code, tc.code, "%v: %s", tc.args, errOut)
		assert.Assert(t, is.Contains(errOut, tc.want), "%v", tc.args)
		assert.Equal(t, out, "", "%v", tc.args)
		if tc.code == 1 {
			assert.Equal(t, strings.Count(errOut, "\n"), 1, "one line: %q", errOut)
		}
	}
	assert.DeepEqual(t, dirNames(t, dir), []string{"f"})
}
