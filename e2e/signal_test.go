package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/rethinkserver"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// An interrupted backup exits non-zero and leaves neither the output nor its
// temporary file behind. The real server sends about 1 MB a batch: 30 MB of
// documents keep the dump reading well after its file passes 1 MiB, when
// the signal goes.
func TestInterruptedBackupLeavesNothing(t *testing.T) {
	cfg := dockerConfig(t)
	srv := rethinkserver.Start(t, rethinkserver.Options{})
	driver := srv.Connect(t)
	seedEvents(t, driver, 30000, 1000)

	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(filepath.Join(cfg, "cli-plugins", "docker-dtr"), "backup", "create",
				"--dtr-version", "2.9.4", "-o", filepath.Join(dir, "backup.tar"), "--rethinkdb-addr", srv.Addr)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			assert.NilError(t, cmd.Start())
			deadline := time.Now().Add(60 * time.Second)
			for sent := false; !sent; time.Sleep(time.Millisecond) {
				assert.Assert(t, time.Now().Before(deadline), "the backup never got under way")
				entries, _ := os.ReadDir(dir)
				for _, e := range entries {
					if info, err := e.Info(); err == nil && info.Size() > 1<<20 {
						assert.NilError(t, cmd.Process.Signal(sig))
						sent = true
					}
				}
			}
			err := cmd.Wait()
			assert.Assert(t, err != nil, "exit status must be non-zero")
			assert.Assert(t, is.Contains(stderr.String(), "backup failed, "+filepath.Join(dir, "backup.tar")+" was not written: interrupted"))
			left, _ := os.ReadDir(dir)
			assert.Equal(t, len(left), 0, "left behind: %v", left)
		})
	}
}
