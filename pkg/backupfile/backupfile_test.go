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
)

func TestOutputAndInput(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain.tar")
	sealed := filepath.Join(dir, "sealed.tar.gpg")
	passphrase := func(string) ([]byte, error) { return []byte("correct horse"), nil }

	// Nothing at the name before Commit, and nothing after Abort.
	out, err := Create(plain, io.Discard, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(out, "not really a tar")
	if _, err := os.Stat(plain); !os.IsNotExist(err) {
		t.Fatalf("%s exists before Commit: %v", plain, err)
	}
	if err := out.Commit(); err != nil {
		t.Fatal(err)
	}
	out.Abort() // a no-op once committed
	aborted, err := Create(filepath.Join(dir, "aborted.tar"), io.Discard, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	aborted.Abort()

	enc, err := Create(sealed, io.Discard, &crypt.Recipients{Passphrase: []byte("correct horse")}, false)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(enc, "not really a tar")
	if err := enc.Commit(); err != nil {
		t.Fatal(err)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(names) != 2 {
		t.Fatalf("files %v, want the two committed", names)
	}
	if st, _ := os.Stat(sealed); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", st.Mode().Perm())
	}

	for _, p := range []string{plain, sealed} {
		isEnc, err := EncryptedFile(p)
		if err != nil || isEnc != (p == sealed) {
			t.Fatalf("EncryptedFile(%s) = %v, %v", p, isEnc, err)
		}
		in, err := Open(p, OpenOptions{Passphrase: passphrase})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := readPass(in)
		if p == sealed && (in.File != nil || in.Plain == nil) {
			t.Fatal("an encrypted backup is not read as it is decrypted")
		}
		in.Close()
		if string(got) != "not really a tar" {
			t.Fatalf("%s read %q", p, got)
		}
	}

	// Standard input is spooled, and refused from a terminal.
	data, _ := os.ReadFile(sealed)
	in, err := Open("-", OpenOptions{Stdin: bytes.NewReader(data), Passphrase: passphrase})
	if err != nil {
		t.Fatal(err)
	}
	in.Close()
	if _, err := Open("-", OpenOptions{StdinIsTerminal: true}); err == nil || !strings.Contains(err.Error(), "it is a terminal") {
		t.Fatalf("stdin from a terminal: %v", err)
	}
	// A wrong passphrase, and a directory, are refused with the file named.
	_, err = Open(sealed, OpenOptions{Passphrase: func(string) ([]byte, error) { return []byte("wrong"), nil }})
	if err == nil || !strings.Contains(err.Error(), "cannot decrypt "+sealed) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if _, err := Open(dir, OpenOptions{}); err == nil || !strings.Contains(err.Error(), dir+" is a directory") {
		t.Fatalf("a directory: %v", err)
	}
}

// Create removes what a killed run left beside the output, and nothing
// else: not its own temporary file, nor another hidden file.
func TestCreateSweepsStaleTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, ".old.tar.tmp-123")
	other := filepath.Join(dir, ".hidden")
	for _, p := range []string{stale, other} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, err := Create(filepath.Join(dir, "new.tar"), io.Discard, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Abort()
	if len(out.Swept) != 1 || out.Swept[0] != stale || len(out.SweepErrors) != 0 {
		t.Fatalf("swept %v (%v), want %s", out.Swept, out.SweepErrors, stale)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("%s is left: %v", stale, err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Fatalf("%s was removed: %v", other, err)
	}
	// a second output beside the first leaves the first's file alone
	second, err := Create(filepath.Join(dir, "second.tar"), io.Discard, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Abort()
	if len(second.Swept) != 0 {
		t.Fatalf("swept a live run's file: %v", second.Swept)
	}
	io.WriteString(out, "x")
	if err := out.Commit(); err != nil {
		t.Fatal(err)
	}
}

// An encrypted input says how to seal another file for the secret that
// opened it, and a file sealed so opens with the Protection alone: with
// the passphrase, or with the identity whose public key it is sealed to.
func TestProtection(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join("..", "crypt", "testdata")
	pub, err := crypt.ReadRecipients(filepath.Join(keys, "ecc-pub.asc"))
	if err != nil {
		t.Fatal(err)
	}
	pass := []byte("correct horse")
	asked := 0
	passphrase := func(string) ([]byte, error) { asked++; return pass, nil }
	for _, tc := range []struct {
		name string
		to   crypt.Recipients
		open OpenOptions
		how  string
	}{
		{"passphrase", crypt.Recipients{Passphrase: pass}, OpenOptions{Passphrase: passphrase}, "encrypted with the backup's passphrase"},
		{"key", crypt.Recipients{Keys: pub}, OpenOptions{IdentityFile: filepath.Join(keys, "ecc-sec.asc")}, "encrypted to key 0x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			asked = 0
			backup := filepath.Join(dir, tc.name+".tar.gpg")
			write(t, backup, &tc.to, "the backup")
			in, err := Open(backup, tc.open)
			if err != nil {
				t.Fatal(err)
			}
			in.Close()
			p := in.Protection
			if p == nil || p.Err != nil || !strings.HasPrefix(p.How, tc.how) {
				t.Fatalf("Protection = %+v", p)
			}
			safety := filepath.Join(dir, tc.name+"-safety.tar.gpg")
			write(t, safety, &p.To, "the safety backup")
			if enc, err := EncryptedFile(safety); err != nil || !enc {
				t.Fatalf("the sealed file is not encrypted: %v, %v", enc, err)
			}
			if raw, _ := os.ReadFile(safety); bytes.Contains(raw, []byte("the safety backup")) {
				t.Fatal("the sealed file holds its plaintext")
			}
			if tc.name == "key" {
				info, err := crypt.Inspect(mustOpen(t, safety))
				if err != nil || info.Symmetric || len(info.KeyIDs) != 1 || p.How != "encrypted to key "+crypt.KeyID(info.KeyIDs[0]) {
					t.Fatalf("sealed %+v (%v), said %q", info, err, p.How)
				}
			}
			// The Protection opens it without asking; nothing else does.
			again, err := Open(safety, OpenOptions{Protection: p, Passphrase: func(string) ([]byte, error) {
				t.Error("asked for a passphrase")
				return nil, io.EOF
			}})
			if err != nil {
				t.Fatal(err)
			}
			got, _ := readPass(again)
			again.Close()
			if string(got) != "the safety backup" {
				t.Fatalf("read %q", got)
			}
			if asked > 1 {
				t.Fatalf("passphrase asked %d times", asked)
			}
			if _, err := Open(safety, OpenOptions{Passphrase: func(string) ([]byte, error) { return []byte("wrong"), nil }}); err == nil {
				t.Fatal("opened without the secret")
			}
		})
	}
}

func write(t *testing.T, path string, to *crypt.Recipients, content string) {
	t.Helper()
	out, err := Create(path, nil, to, false)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Abort()
	io.WriteString(out, content)
	if err := out.Commit(); err != nil {
		t.Fatal(err)
	}
}

func mustOpen(t *testing.T, path string) io.Reader {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// Unlock checks the secret and gives the Protection without reading the
// content; a wrong secret is the same error Open gives, and a file in
// clear has none.
func TestUnlock(t *testing.T) {
	dir := t.TempDir()
	pass := []byte("correct horse")
	sealed := filepath.Join(dir, "safety.tar.gpg")
	write(t, sealed, &crypt.Recipients{Passphrase: pass}, "the safety backup")
	p, err := Unlock(sealed, OpenOptions{Passphrase: func(string) ([]byte, error) { return pass, nil }})
	if err != nil || p == nil || p.How != "encrypted with the backup's passphrase" {
		t.Fatalf("Unlock = %+v, %v", p, err)
	}
	in, err := Open(sealed, OpenOptions{Protection: p})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := readPass(in)
	in.Close()
	if string(got) != "the safety backup" {
		t.Fatalf("read %q", got)
	}
	_, err = Unlock(sealed, OpenOptions{Passphrase: func(string) ([]byte, error) { return []byte("wrong"), nil }})
	if !errors.Is(err, crypt.ErrWrongPassphrase) {
		t.Fatalf("a wrong passphrase: %v", err)
	}
	plain := filepath.Join(dir, "plain.tar")
	if err := os.WriteFile(plain, []byte("in clear"), 0o600); err != nil {
		t.Fatal(err)
	}
	if p, err := Unlock(plain, OpenOptions{}); p != nil || err != nil {
		t.Fatalf("a file in clear: %+v, %v", p, err)
	}
}

// readPass reads one whole pass of in.
func readPass(in *Input) ([]byte, error) {
	rc, err := in.Pass()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}
