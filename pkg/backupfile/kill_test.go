package backupfile

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/crypt"
)

// TestMain runs the child of TestKillLeavesNothing when asked.
func TestMain(m *testing.M) {
	if name := os.Getenv("BACKUPFILE_TEST_OPEN"); name != "" {
		in, err := Open(name, OpenOptions{Stdin: os.Stdin, Passphrase: func(string) ([]byte, error) { return []byte("correct horse"), nil }})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		b := make([]byte, 4)
		rc, _ := in.Pass()
		io.ReadFull(rc, b)
		fmt.Printf("opened %q\n", b)
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// While an input is open, and after it is closed, the temporary directory
// holds nothing of it: neither the plaintext of an encrypted backup nor the
// spool of standard input.
func TestTemporaryFilesHaveNoName(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	sealed := sealedFile(t, "plaintext that must not be left")
	passphrase := func(string) ([]byte, error) { return []byte("correct horse"), nil }
	data, _ := os.ReadFile(sealed)
	for _, name := range []string{sealed, "-"} {
		in, err := Open(name, OpenOptions{Stdin: bytes.NewReader(data), Passphrase: passphrase})
		if err != nil {
			t.Fatal(err)
		}
		assertNothingIn(t, tmp)
		// read twice, as the engines do
		for range 2 {
			got, err := readPass(in)
			if err != nil || string(got) != "plaintext that must not be left" {
				t.Fatalf("%s read %q, %v", name, got, err)
			}
			assertNothingIn(t, tmp)
		}
		in.Close()
		assertNothingIn(t, tmp)
	}
	// a plain backup on standard input too
	in, err := Open("-", OpenOptions{Stdin: strings.NewReader("plain")})
	if err != nil {
		t.Fatal(err)
	}
	assertNothingIn(t, tmp)
	in.Close()
}

// SIGKILL while standard input is being spooled, and once an encrypted
// backup is decrypted and open, leaves nothing in the temporary directory.
func TestKillLeavesNothing(t *testing.T) {
	sealed := sealedFile(t, strings.Repeat("secret ", 1000))
	data, _ := os.ReadFile(sealed)
	for _, c := range []struct {
		name      string
		stdinOnly bool // never ends standard input: killed while spooling
	}{{"file, decrypted", false}, {"stdin, decrypted", false}, {"stdin, spooling", true}} {
		t.Run(c.name, func(t *testing.T) {
			tmp := t.TempDir()
			arg := sealed
			if strings.HasPrefix(c.name, "stdin") {
				arg = "-"
			}
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "BACKUPFILE_TEST_OPEN="+arg)
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			stdin.Write(data[:len(data)/2])
			if c.stdinOnly {
				// wait until the spool has the half written so far
				waitFor(t, func() bool { return spooled(cmd.Process.Pid) >= int64(len(data)/2) })
			} else {
				stdin.Write(data[len(data)/2:])
				stdin.Close()
				line, _ := bufio.NewReader(stdout).ReadString('\n')
				if !strings.HasPrefix(line, "opened") {
					t.Fatalf("child: %q", line)
				}
			}
			cmd.Process.Kill() // SIGKILL
			cmd.Wait()
			assertNothingIn(t, tmp)
		})
	}
}

// spooled is the size of the largest file that process pid has open, or
// -1 before it has one.
func spooled(pid int) int64 {
	fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	size := int64(-1)
	for _, fd := range fds {
		if st, err := os.Stat(fd); err == nil && st.Mode().IsRegular() && !strings.Contains(mustReadlink(fd), "backupfile.test") {
			size = max(size, st.Size())
		}
	}
	return size
}

func mustReadlink(p string) string { s, _ := os.Readlink(p); return s }

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		time.Sleep(time.Second) // no /proc: give the child time
		return
	}
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the child never spooled its input")
		}
	}
}

func sealedFile(t *testing.T, content string) string {
	t.Helper()
	sealed := filepath.Join(t.TempDir(), "sealed.tar.gpg")
	out, err := Create(sealed, io.Discard, &crypt.Recipients{Passphrase: []byte("correct horse")}, false)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(out, content)
	if err := out.Commit(); err != nil {
		t.Fatal(err)
	}
	return sealed
}

func assertNothingIn(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("%s is left in %s", e.Name(), dir)
	}
}
