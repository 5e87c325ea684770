package backupfile

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-dtr/docker-dtr/pkg/crypt"
	"github.com/docker-dtr/docker-dtr/pkg/zstdstream"
)

// A compressed output is the zstd stream of what was written, encrypted
// after it when asked; Open recognises both by their bytes and reads the
// tar in passes, decompressed (and decrypted) anew for each.
func TestCompressedOutputAndInput(t *testing.T) {
	dir := t.TempDir()
	content := strings.Repeat("dtr-backup-v2.9.4/dtr2/repositories.jsonl\n", 5000)
	rcpt := &crypt.Recipients{Passphrase: []byte("correct horse")}
	passphrase := func(string) ([]byte, error) { return []byte("correct horse"), nil }

	for _, tc := range []struct {
		name string
		rcpt *crypt.Recipients
	}{{"plain", nil}, {"sealed", rcpt}} {
		path := filepath.Join(dir, tc.name) // no .zst: the bytes tell
		out, err := Create(path, nil, tc.rcpt, true)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(out, content)
		if err := out.Commit(); err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(path)
		if tc.rcpt == nil && !zstdstream.IsCompressed(data) {
			t.Fatalf("%s: not a zstd stream", tc.name)
		}
		if tc.rcpt != nil {
			// The message's plaintext is the zstd stream.
			r, err := crypt.Decrypt(bytes.NewReader(data), crypt.Secrets{Passphrase: func() ([]byte, error) { return []byte("correct horse"), nil }})
			if err != nil {
				t.Fatal(err)
			}
			inner, err := io.ReadAll(r)
			if err != nil || !zstdstream.IsCompressed(inner) {
				t.Fatalf("the message's plaintext is not a zstd stream: %x… %v", inner[:min(8, len(inner))], err)
			}
		}
		if len(data)*10 > len(content) {
			t.Fatalf("%s: %d bytes for %d: not compressed", tc.name, len(data), len(content))
		}

		in, err := Open(path, OpenOptions{Passphrase: passphrase})
		if err != nil {
			t.Fatal(err)
		}
		if in.File != nil || in.Plain == nil {
			t.Fatalf("%s: a compressed backup is not read as a stream", tc.name)
		}
		if (in.Protection != nil) != (tc.rcpt != nil) {
			t.Fatalf("%s: Protection %v", tc.name, in.Protection)
		}
		want := map[string]string{"plain": "as it is decompressed", "sealed": "as it is decrypted and decompressed"}[tc.name]
		if !in.Compressed || in.Streamed() != want {
			t.Fatalf("%s: Compressed %v, Streamed %q", tc.name, in.Compressed, in.Streamed())
		}
		for pass := range 2 {
			got, err := readPass(in)
			if err != nil || string(got) != content {
				t.Fatalf("%s, pass %d: %d bytes, %v", tc.name, pass, len(got), err)
			}
		}
		// Standard input too: the spool holds the file as it came.
		stdin, err := Open("-", OpenOptions{Stdin: bytes.NewReader(data), Passphrase: passphrase})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := readPass(stdin); err != nil || string(got) != content {
			t.Fatalf("%s from stdin: %d bytes, %v", tc.name, len(got), err)
		}
		stdin.Close()

		// A file changed after the first pass: the next pass says so.
		other, err := Create(path+".other", nil, tc.rcpt, true)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(other, content+"changed")
		if err := other.Commit(); err != nil {
			t.Fatal(err)
		}
		changed, _ := os.ReadFile(path + ".other")
		if err := os.WriteFile(path, changed, 0o600); err != nil { // in place: the open file sees it
			t.Fatal(err)
		}
		if _, err := readPass(in); !errors.Is(err, ErrChanged) {
			t.Fatalf("%s: a pass over the changed file: %v", tc.name, err)
		}
		in.Close()
	}
}

// A cut compressed file fails the pass, naming the file.
func TestCompressedTruncated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cut.tar.zst")
	out, err := Create(path, nil, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(out, strings.Repeat("x", 1<<20))
	if err := out.Commit(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if err := os.WriteFile(path, data[:len(data)-3], 0o600); err != nil {
		t.Fatal(err)
	}
	in, err := Open(path, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if _, err := readPass(in); !errors.Is(err, zstdstream.ErrTruncated) || !strings.HasPrefix(err.Error(), path+": ") {
		t.Fatalf("a cut file: %v", err)
	}
}

// An aborted compressed backup on standard output does not end its
// stream: no reader takes it for whole.
func TestCompressedAbortOnStdout(t *testing.T) {
	var stdout bytes.Buffer
	out, err := Create("-", &stdout, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(out, strings.Repeat("y", 1<<20))
	out.Abort()
	r, err := zstdstream.NewReader(bytes.NewReader(stdout.Bytes()), "-", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := io.ReadAll(r); err == nil {
		t.Fatal("an aborted backup's stream reads as whole")
	}
}
