package imagearchive

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-dtr/docker-dtr/pkg/crypt"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// writeIndexed writes an image backup of vol to dir/name against the bases,
// with its index beside it, as 'backup images' does.
func writeIndexed(t *testing.T, dir, name string, vol []byte, since ...*Base) (string, *Manifest) {
	t.Helper()
	p, m := writeFile(t, dir, name, vol, since...)
	assert.Assert(t, m.Index() != nil)
	x, err := CreateIndex(p, m.Index())
	assert.NilError(t, err)
	defer x.Abort()
	assert.NilError(t, x.CommitWith(func() error { return nil }))
	return p, m
}

// verifyIndexed is Verify and CheckIndex of the backup at p.
func verifyIndexed(t *testing.T, p string) *Report {
	t.Helper()
	f, err := os.Open(p)
	assert.NilError(t, err)
	defer f.Close()
	rep, err := Verify(f)
	assert.NilError(t, err)
	assert.Assert(t, rep.OK(), "%v", rep.Problems)
	assert.NilError(t, CheckIndex(rep, IndexPath(p)))
	return rep
}

func TestIndexWrittenAndRead(t *testing.T) {
	dir := t.TempDir()
	full, _ := writeIndexed(t, dir, "full.tar.gpg", sampleVolume(t))
	st, err := os.Stat(IndexPath(full))
	assert.NilError(t, err)
	assert.Equal(t, st.Mode().Perm(), os.FileMode(0o600))
	data, err := os.ReadFile(IndexPath(full))
	assert.NilError(t, err)
	// Digests and sizes, no names.
	assert.Assert(t, !strings.Contains(string(data), "docker/registry"), "%s", data)
	assert.Assert(t, !strings.Contains(string(data), "team/app"), "%s", data)

	ix, err := ReadIndex(IndexPath(full))
	assert.NilError(t, err)
	fromManifest := openBase(t, full)
	b := ix.Base(full)
	assert.Assert(t, b.FromIndex)
	assert.Equal(t, b.Dependency, fromManifest.Dependency, "the index names the backup as its manifest does")
	assert.DeepEqual(t, b.held, fromManifest.held)
	assert.Equal(t, b.Blobs(), 3)

	// An incremental backup written against the index alone names the
	// full backup, and its chain verifies and restores from the full one.
	inc, m := writeIndexed(t, dir, "inc.tar", volume2(t), b)
	assert.Equal(t, len(m.DependsOn), 1)
	assert.Equal(t, m.DependsOn[0].ManifestSHA256, fromManifest.ManifestSHA256)
	assert.Equal(t, m.OmittedBlobs, int64(3))
	ixInc, err := ReadIndex(IndexPath(inc))
	assert.NilError(t, err)
	assert.Assert(t, ixInc.Incremental)
	assert.Equal(t, ixInc.Blobs, int64(1), "an incremental backup's index lists only the blobs it holds")
	f, rep, bases, files := verifyChain(t, inc, dir)
	var out bytes.Buffer
	assert.NilError(t, ChainContent(f, rep, bases, files, &out))
	assert.DeepEqual(t, contentFiles(t, out.Bytes()), contentFiles(t, mustContent(t, volume2(t))))

	assert.Assert(t, verifyIndexed(t, full).OK())
	assert.Assert(t, verifyIndexed(t, inc).OK())
}

// mustContent is the content stream of a full backup of vol.
func mustContent(t *testing.T, vol []byte) []byte {
	t.Helper()
	p, _ := writeFile(t, t.TempDir(), "x.tar", vol)
	f, err := os.Open(p)
	assert.NilError(t, err)
	defer f.Close()
	var out bytes.Buffer
	assert.NilError(t, Content(f, ContentDirFor(info.Volume), &out))
	return out.Bytes()
}

func TestIndexMismatchDetected(t *testing.T) {
	dir := t.TempDir()
	full, _ := writeIndexed(t, dir, "full.tar", sampleVolume(t))
	other, _ := writeIndexed(t, dir, "other.tar", volume3(t))
	good, err := os.ReadFile(IndexPath(full))
	assert.NilError(t, err)
	otherIndex, err := os.ReadFile(IndexPath(other))
	assert.NilError(t, err)
	ix, err := ReadIndex(IndexPath(full))
	assert.NilError(t, err)

	// One more blob, claimed held: --since would leave it out.
	forged := *ix
	forged.Held = append([]IndexBlob{{SHA256: strings.Repeat("0", 64), Size: 7}}, ix.Held...)
	forged.Blobs++
	forged.Bytes += 7
	// A blob of another size.
	resized := *ix
	resized.Held = append([]IndexBlob(nil), ix.Held...)
	resized.Held[0].Size++
	resized.Bytes++
	// The header's times differ.
	retimed := *ix
	retimed.Created = retimed.Created.Add(1)

	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"swapped", otherIndex, "the index of another backup"},
		{"forged", forged.Marshal(), "1 blobs the backup does not hold, 0 of the wrong size, 0 left out"},
		{"resized", resized.Marshal(), "0 blobs the backup does not hold, 1 of the wrong size"},
		{"retimed", retimed.Marshal(), "its header differs"},
		{"cut", good[:len(good)-10], "not a readable index"},
		{"reformatted", append([]byte(" "), good...), "its header differs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.NilError(t, os.WriteFile(IndexPath(full), tc.data, 0o600))
			f, err := os.Open(full)
			assert.NilError(t, err)
			defer f.Close()
			rep, err := Verify(f)
			assert.NilError(t, err)
			assert.Assert(t, rep.OK())
			assert.NilError(t, CheckIndex(rep, IndexPath(full)))
			assert.Assert(t, !rep.OK())
			assert.Assert(t, !rep.Verified)
			assert.Equal(t, len(rep.Problems), 1)
			assert.Assert(t, is.Contains(rep.Problems[0].String(), tc.want))
		})
	}

	// No index: nothing to check.
	assert.NilError(t, os.Remove(IndexPath(full)))
	assert.Assert(t, verifyIndexed(t, full).OK())
}

func TestReadIndexRefuses(t *testing.T) {
	dir := t.TempDir()
	full, _ := writeIndexed(t, dir, "full.tar", sampleVolume(t))
	good, err := os.ReadFile(IndexPath(full))
	assert.NilError(t, err)
	lines := strings.SplitAfter(string(good), "\n")
	for name, data := range map[string]string{
		"empty":     "",
		"not json":  "hello\n",
		"unknown":   strings.Replace(lines[0], `"format"`, `"extra":1,"format"`, 1) + strings.Join(lines[1:], ""),
		"unsorted":  lines[0] + lines[2] + lines[1] + strings.Join(lines[3:], ""),
		"repeated":  lines[0] + lines[1] + lines[1] + strings.Join(lines[3:], ""),
		"short":     lines[0] + lines[1],
		"bad hash":  lines[0] + `{"sha256":"zz","size":1}` + "\n",
		"long line": lines[0] + strings.Repeat("x", 2*maxIndexLine) + "\n",
	} {
		p := filepath.Join(dir, "bad.index")
		assert.NilError(t, os.WriteFile(p, []byte(data), 0o600))
		_, err := ReadIndex(p)
		assert.Assert(t, err != nil, "%s: read", name)
	}
}

func TestIndexCommitReplacesStale(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "b.tar.gpg")
	assert.NilError(t, os.WriteFile(IndexPath(p), []byte("old index\n"), 0o600))
	_, m := writeFile(t, dir, "src.tar", sampleVolume(t))
	x, err := CreateIndex(p, m.Index())
	assert.NilError(t, err)
	// The backup's commit fails: the old index is gone, no new one.
	err = x.CommitWith(func() error { return os.ErrPermission })
	assert.ErrorIs(t, err, os.ErrPermission)
	_, err = os.Stat(IndexPath(p))
	assert.Assert(t, os.IsNotExist(err), "%v", err)
	ents, err := os.ReadDir(dir)
	assert.NilError(t, err)
	assert.Equal(t, len(ents), 1, "no temporary file left: %v", ents)
}

// encryptTo encrypts the file at src to dst for the test key, and returns
// a Decrypter with its secret key that counts its calls.
func encryptTo(t *testing.T, src, dst string) {
	t.Helper()
	keys, err := crypt.ReadRecipients(filepath.Join("..", "crypt", "testdata", "ecc-pub.asc"))
	assert.NilError(t, err)
	plain, err := os.ReadFile(src)
	assert.NilError(t, err)
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	assert.NilError(t, err)
	defer out.Close()
	w, err := crypt.Encrypt(out, crypt.Recipients{Keys: keys})
	assert.NilError(t, err)
	_, err = w.Write(plain)
	assert.NilError(t, err)
	assert.NilError(t, w.Close())
}

func testDecrypter(t *testing.T, calls *[]string) Decrypter {
	ids, err := crypt.ReadIdentity(filepath.Join("..", "crypt", "testdata", "ecc-sec.asc"), nil)
	assert.NilError(t, err)
	// Every pass decrypts the file anew, as the plugin's does: no
	// plaintext file.
	return func(path string) (Source, func(), error) {
		*calls = append(*calls, filepath.Base(path))
		in, err := os.Open(path)
		if err != nil {
			return nil, nil, err
		}
		open := func() (io.ReadCloser, error) {
			r, err := crypt.Decrypt(io.NewSectionReader(in, 0, 1<<62), crypt.Secrets{Identities: ids})
			if err != nil {
				return nil, err
			}
			return io.NopCloser(r), nil
		}
		return open, func() { in.Close() }, nil
	}
}

// An incremental backup written against an encrypted full backup's index
// alone: its chain is found (by the index, decrypting only the backup it
// names) and restores with the secret; without it, the chain is broken.
func TestChainOfEncryptedBases(t *testing.T) {
	work, dir := t.TempDir(), t.TempDir()
	plainFull, fm := writeFile(t, work, "full.tar", sampleVolume(t))
	full := filepath.Join(dir, "full.tar.gpg")
	encryptTo(t, plainFull, full)
	x, err := CreateIndex(full, fm.Index())
	assert.NilError(t, err)
	assert.NilError(t, x.CommitWith(func() error { return nil }))
	// A decoy, encrypted and indexed, of another backup.
	plainOther, om := writeFile(t, work, "other.tar", volume3(t))
	encryptTo(t, plainOther, filepath.Join(dir, "a-other.tar.gpg"))
	x, err = CreateIndex(filepath.Join(dir, "a-other.tar.gpg"), om.Index())
	assert.NilError(t, err)
	assert.NilError(t, x.CommitWith(func() error { return nil }))

	base, err := ReadBaseIndex(full)
	assert.NilError(t, err)
	inc, m := writeFile(t, dir, "inc.tar", volume2(t), base)
	assert.Equal(t, m.DependsOn[0].File, "full.tar.gpg")
	f, err := os.Open(inc)
	assert.NilError(t, err)
	defer f.Close()

	rep, err := Verify(f)
	assert.NilError(t, err)
	assert.NilError(t, CheckChain(rep, dir, nil))
	assert.Assert(t, !rep.OK(), "no secret: the encrypted base is not searched")
	assert.Assert(t, is.Contains(rep.Problems[0].String(), "is not in "+dir))

	var calls []string
	rep, err = Verify(f)
	assert.NilError(t, err)
	c, err := OpenChain(rep, dir, testDecrypter(t, &calls))
	assert.NilError(t, err)
	defer c.Close()
	assert.Assert(t, rep.OK(), "%v", rep.Problems)
	assert.DeepEqual(t, calls, []string{"full.tar.gpg"})
	var out bytes.Buffer
	assert.NilError(t, c.Content(f, rep, &out))
	assert.DeepEqual(t, contentFiles(t, out.Bytes()), contentFiles(t, mustContent(t, volume2(t))))

	// Renamed: found through the index, not by the name the manifest
	// gives; the decoy, whose index names another backup, is not decrypted.
	assert.NilError(t, os.Rename(full, filepath.Join(dir, "b-renamed.gpg")))
	assert.NilError(t, os.Rename(IndexPath(full), IndexPath(filepath.Join(dir, "b-renamed.gpg"))))
	calls = nil
	rep, err = Verify(f)
	assert.NilError(t, err)
	assert.NilError(t, CheckChain(rep, dir, testDecrypter(t, &calls)))
	assert.Assert(t, rep.OK(), "%v", rep.Problems)
	assert.DeepEqual(t, calls, []string{"b-renamed.gpg"})
}
