package backupfile

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/docker-dtr/docker-dtr/pkg/crypt"
)

// Every pass over a backup must read what the first whole pass read: a
// file changed in place after it (another message for the same secret,
// which decrypts without error; another plain tar) fails the pass that
// reads it, at its end, with ErrChanged. A pass given up early records
// nothing; the same content sealed anew is the same backup.
func TestPassesReadWhatTheFirstRead(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TMPDIR", filepath.Join(dir, "missing")) // no plaintext file, ever
	seal := func(path string, plain []byte) {
		t.Helper()
		out, err := Create(path, nil, &crypt.Recipients{Passphrase: []byte("correct horse")}, false)
		if err != nil {
			t.Fatal(err)
		}
		out.Write(plain)
		if err := out.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	first, second := bytes.Repeat([]byte("first "), 300000), bytes.Repeat([]byte("other "), 300000)
	sealed, plain := filepath.Join(dir, "backup.tar.gpg"), filepath.Join(dir, "backup.tar")
	seal(sealed, first)
	if err := os.WriteFile(plain, first, 0o600); err != nil {
		t.Fatal(err)
	}
	// rewrite puts the content of what into path in place: the open file
	// reads it.
	rewrite := func(path string, what []byte) {
		t.Helper()
		if err := os.WriteFile(path, what, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	readPass := func(in *Input) ([]byte, error) {
		rc, err := in.Pass()
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		return io.ReadAll(rc)
	}
	sum := sha256.Sum256(first)
	for _, tc := range []struct {
		name string
		path string
		// changed is the same path holding other content.
		changed, same func() []byte
	}{
		{"encrypted", sealed, func() []byte {
			other := filepath.Join(dir, "other.tar.gpg")
			seal(other, second)
			b, _ := os.ReadFile(other)
			return b
		}, func() []byte {
			again := filepath.Join(dir, "again.tar.gpg")
			seal(again, first)
			b, _ := os.ReadFile(again)
			return b
		}},
		{"plain", plain, func() []byte { return second }, func() []byte { return first }},
	} {
		orig, err := os.ReadFile(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		in, err := Open(tc.path, OpenOptions{Passphrase: func(string) ([]byte, error) { return []byte("correct horse"), nil }})
		if err != nil {
			t.Fatal(err)
		}
		if (in.Plain != nil) != (tc.name == "encrypted") {
			t.Fatalf("%s: Plain %v", tc.name, in.Plain != nil)
		}
		// A pass given up early records nothing.
		rc, _ := in.Pass()
		rc.Read(make([]byte, 100))
		rc.Close()
		if got, err := readPass(in); err != nil || !bytes.Equal(got, first) {
			t.Fatalf("%s: the first whole pass: %d bytes, %v", tc.name, len(got), err)
		}
		if got, err := in.SHA256(); err != nil || got != hex.EncodeToString(sum[:]) {
			t.Fatalf("%s: SHA256 %s, %v", tc.name, got, err)
		}
		rewrite(tc.path, tc.same())
		if got, err := readPass(in); err != nil || !bytes.Equal(got, first) {
			t.Fatalf("%s: the same content again: %d bytes, %v", tc.name, len(got), err)
		}
		rewrite(tc.path, tc.changed())
		if _, err := readPass(in); !errors.Is(err, ErrChanged) {
			t.Fatalf("%s: a pass over a changed file: %v", tc.name, err)
		}
		in.Close()
		rewrite(tc.path, orig)
	}

	// A plain input that no pass read yet: SHA256 reads one.
	in, err := Open(plain, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if got, err := in.SHA256(); err != nil || got != hex.EncodeToString(sum[:]) {
		t.Fatalf("SHA256 %s, %v", got, err)
	}
}
