package backupfile

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-dtr/docker-dtr/pkg/crypt"
)

// An encrypted backup is decrypted anew for each pass,
// into no file: each pass reads the whole plaintext, and a file changed
// or cut fails the pass that reads it, at the end, with the error a
// decryption into a file gets.
func TestStreamDecryptsEachPass(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TMPDIR", t.TempDir())
	plain := make([]byte, 5<<20+123)
	rand.New(rand.NewSource(1)).Read(plain)
	sealed := filepath.Join(dir, "backup.tar.gpg")
	out, err := Create(sealed, io.Discard, &crypt.Recipients{Passphrase: []byte("correct horse")}, false)
	if err != nil {
		t.Fatal(err)
	}
	out.Write(plain)
	if err := out.Commit(); err != nil {
		t.Fatal(err)
	}
	asked := 0
	o := OpenOptions{Passphrase: func(string) ([]byte, error) { asked++; return []byte("correct horse"), nil }}
	in, err := Open(sealed, o)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if in.File != nil || in.Plain == nil || in.Protection == nil {
		t.Fatalf("a streamed input has File %v, Plain %v, Protection %v", in.File, in.Plain != nil, in.Protection)
	}
	for pass := range 3 {
		rc, err := in.Plain()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("pass %d: %d bytes, %v; want the %d of the plaintext", pass, len(got), err, len(plain))
		}
	}
	// a pass given up early stops its decryption
	rc, err := in.Plain()
	if err != nil {
		t.Fatal(err)
	}
	rc.Read(make([]byte, 10))
	rc.Close()
	if asked != 1 {
		t.Fatalf("the passphrase was asked for %d times, want once", asked)
	}
	if names, _ := filepath.Glob(filepath.Join(os.Getenv("TMPDIR"), "*")); len(names) != 0 {
		t.Fatalf("files in TMPDIR: %v", names)
	}

	data, err := os.ReadFile(sealed)
	if err != nil {
		t.Fatal(err)
	}
	changed := bytes.Clone(data)
	changed[len(changed)-100] ^= 1
	for name, bad := range map[string][]byte{"changed": changed, "cut": data[:len(data)-5000]} {
		p := filepath.Join(dir, name+".tar.gpg")
		if err := os.WriteFile(p, bad, 0o600); err != nil {
			t.Fatal(err)
		}
		in, err := Open(p, o)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := in.Plain()
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.ReadAll(rc)
		rc.Close()
		in.Close()
		if err == nil || !strings.Contains(err.Error(), "cannot decrypt "+p) || !strings.Contains(err.Error(), "nothing decrypted was used") ||
			!errors.Is(err, crypt.ErrTampered) && !errors.Is(err, crypt.ErrTruncated) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	o.Passphrase = func(string) ([]byte, error) { return []byte("wrong"), nil }
	if _, err := Open(sealed, o); !errors.Is(err, crypt.ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
}
