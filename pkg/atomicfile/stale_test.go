//go:build unix

package atomicfile

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"gotest.tools/v3/assert"
)

func TestMain(m *testing.M) {
	// the child of TestSweepRemovesOnlyAKilledRunsFile: a writer that
	// is killed
	if target := os.Getenv("ATOMICFILE_TEST_WRITE"); target != "" {
		f, err := Create(target)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		f.WriteString("partial")
		fmt.Println(f.Name())
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// A killed writer's temporary file is swept; a live writer's, in this
// process or another, and files that are not Create's, are not.
func TestSweepRemovesOnlyAKilledRunsFile(t *testing.T) {
	dir := t.TempDir()
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	killed := startWriter(t, filepath.Join(dir, "backup.tar"))
	killed.kill(t)
	alive := startWriter(t, filepath.Join(dir, "other.tar"))
	defer alive.kill(t)
	mine, err := Create(filepath.Join(dir, "mine.tar"))
	assert.NilError(t, err)
	defer mine.Abort()
	st, err := mine.Stat()
	assert.NilError(t, err)
	assert.Equal(t, st.Mode().Perm(), os.FileMode(0o600))
	for _, name := range []string{".hidden", ".x.tmp-abc", "y.tmp-123", "backup.tar"} {
		assert.NilError(t, os.WriteFile(filepath.Join(dir, name), nil, 0o600))
	}

	for path, want := range map[string]bool{killed.temp: true, alive.temp: false, mine.Name(): false, filepath.Join(dir, ".hidden"): false} {
		stale, err := Stale(path)
		assert.NilError(t, err)
		assert.Equal(t, stale, want, path)
	}
	removed, errs := SweepStale(dir)
	assert.Equal(t, len(errs), 0, "%v", errs)
	assert.DeepEqual(t, removed, []string{killed.temp})
	got := names(t, dir)
	for _, want := range []string{".hidden", ".x.tmp-abc", "y.tmp-123", "backup.tar", filepath.Base(alive.temp), filepath.Base(mine.Name())} {
		assert.Assert(t, contains(got, want), "%s was removed: %v", want, got)
	}
	assert.Assert(t, !contains(got, filepath.Base(killed.temp)))

	// the live ones still commit
	_, err = mine.WriteString("done")
	assert.NilError(t, err)
	assert.NilError(t, mine.Commit())
	b, _ := os.ReadFile(filepath.Join(dir, "mine.tar"))
	assert.Equal(t, string(b), "done")
	// and once its writer is gone, the other is stale too
	alive.kill(t)
	removed, _ = SweepStale(dir)
	assert.DeepEqual(t, removed, []string{alive.temp})
}

type writer struct {
	cmd  *exec.Cmd
	temp string
}

func startWriter(t *testing.T, target string) *writer {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "ATOMICFILE_TEST_WRITE="+target)
	out, err := cmd.StdoutPipe()
	assert.NilError(t, err)
	assert.NilError(t, cmd.Start())
	line, _ := bufio.NewReader(out).ReadString('\n')
	line = strings.TrimSpace(line)
	assert.Assert(t, strings.HasPrefix(filepath.Base(line), "."+filepath.Base(target)+".tmp-"), "child: %q", line)
	return &writer{cmd: cmd, temp: line}
}

func (w *writer) kill(t *testing.T) {
	if w.cmd.ProcessState != nil {
		return
	}
	w.cmd.Process.Kill() // SIGKILL: no cleanup runs
	w.cmd.Wait()
	_, err := os.Stat(w.temp)
	assert.NilError(t, err, "a killed writer leaves its temporary file")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
