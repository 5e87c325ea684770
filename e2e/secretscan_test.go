package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/dtrfixture"
	"github.com/docker-dtr/docker-dtr/internal/dtrtest"
	"github.com/docker-dtr/docker-dtr/pkg/helpercontainer"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// Neither the passphrase of an encrypted backup nor DTR's client key (the
// rethink-client key of dtr-ca, which the database helper mounts) appears
// anywhere another user or process could read it while create, verify and
// restore of an encrypted backup run through the context: in `ps`, in the
// plugin's environment, in any helper's `docker inspect` or `docker
// logs`, or in any file a run wrote (beside the output, in $TMPDIR, and
// the unnamed files the plugin holds open there). TestFaultBackupCreate's
// "secrets and file modes" checks one helper's definition; this samples
// every place, all through the runs.
func TestSecretsAppearNowhere(t *testing.T) {
	if _, err := os.Stat("/proc/self/environ"); err != nil {
		t.Skip("needs /proc to read the plugin's environment")
	}
	cfg := dockerConfig(t)
	c := dtrfixture.Start(t, dtrfixture.Options{Replicas: 1, Components: []string{"rethinkdb", "registry", "api"}})
	rep := c.Replicas[0]
	driver := c.Connect(t, rep.ID)
	dtrtest.Seed(t, driver)
	addEvents(t, driver, faultEvents) // a backup takes a moment: many samples

	// A passphrase no file or process holds by chance.
	raw := make([]byte, 12)
	rand.Read(raw)
	phrase := "secret-scan-" + hex.EncodeToString(raw)
	pass := filepath.Join(t.TempDir(), "passphrase")
	assert.NilError(t, os.WriteFile(pass, []byte(phrase+"\n"), 0o600))
	secrets := map[string]string{"the passphrase": phrase}
	key, err := os.ReadFile(c.KeyFile)
	assert.NilError(t, err)
	n := 0
	for _, line := range strings.Split(string(key), "\n") {
		if line = strings.TrimSpace(line); len(line) >= 16 && !strings.HasPrefix(line, "-----") {
			n++
			secrets[fmt.Sprintf("line %d of DTR's client key", n)] = line
		}
	}
	assert.Assert(t, n > 0, "%s holds a PEM key", c.KeyFile)

	tmp, out := t.TempDir(), t.TempDir()
	sealed := filepath.Join(out, "backup-metadata.tar.gpg")
	scan := &secretScan{t: t, c: c, secrets: secrets, tmp: tmp}
	for _, args := range [][]string{
		{"dtr", "backup", "create", "--progress", "plain", "--encrypt", "--passphrase-file", pass, "-o", sealed},
		{"dtr", "backup", "verify", "--progress", "plain", "--passphrase-file", pass, sealed},
		{"dtr", "backup", "restore", "-y", "--progress", "plain", "--replica-id", rep.ID, "--passphrase-file", pass, sealed},
	} {
		what := strings.Join(args[:3], " ")
		run := startPlugin(t, cfg, tmp, nil, args...)
		samples := scan.during(run, what)
		scan.check(what, "its stderr", run.stderr())
		assert.Assert(t, run.cmd.ProcessState.Success(), "%s: %s", what, run.stderr())
		scan.files(what, out, tmp)
		assert.Check(t, len(scan.found) == 0, "%s:\n%s", what, strings.Join(scan.found, "\n"))
		scan.found = nil
		assert.Assert(t, samples.environ > 0, "%s: the plugin's environment was never read", what)
		t.Logf("%s: %d samples of ps, %d of the plugin's environment, %d helper inspects, %d helper logs, %d open temporary files read",
			what, samples.ps, samples.environ, samples.inspects, samples.logs, samples.openFiles)
		if what != "dtr backup verify" {
			assert.Assert(t, samples.inspects > 0, "%s: its database helper was never inspected", what)
		}
	}
	assert.Assert(t, len(names(t, out)) == 2, "the backup and its safety backup: %v", names(t, out))
	assertNoHelpers(t, c)

	// The scan finds a secret where one is: the passphrase given through
	// the environment, as $DTR_BACKUP_PASSPHRASE allows, is in the
	// plugin's.
	t.Setenv("DTR_BACKUP_PASSPHRASE", phrase)
	run := startPlugin(t, cfg, tmp, nil, "dtr", "backup", "verify", sealed)
	samples := scan.during(run, "the control")
	assert.Assert(t, run.cmd.ProcessState.Success(), run.stderr())
	assert.Assert(t, samples.environ > 0, "the plugin's environment was never read")
	assert.Assert(t, is.Contains(strings.Join(scan.found, "\n"), "the control: the plugin's environment holds the passphrase"), "the scan missed a passphrase in the environment: %v", scan.found)
}

// secretScan looks for secrets where they must not be.
type secretScan struct {
	t       *testing.T
	c       *dtrfixture.Cluster
	secrets map[string]string
	tmp     string
	mu      sync.Mutex
	// found lists where secrets were found.
	found []string
}

type scanCounts struct{ ps, environ, inspects, logs, openFiles int }

// check notes each secret in text, found in where.
func (s *secretScan) check(run, where, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, secret := range s.secrets {
		if strings.Contains(text, secret) {
			s.found = append(s.found, fmt.Sprintf("%s: %s holds %s", run, where, name))
		}
	}
}

// during samples ps, the plugin's environment and open temporary files,
// and every helper's inspect and logs, until run ends.
func (s *secretScan) during(run *pluginProc, what string) scanCounts {
	var n scanCounts
	ctx := context.Background()
	var lastRead time.Time
	for done := false; !done; {
		select {
		case <-run.done:
			done = true // one last sample: what is left after the run
		default:
		}
		if ps, err := exec.Command("ps", "-eww", "-o", "pid,args").Output(); err == nil {
			n.ps++
			s.check(what, "ps", string(ps))
		}
		if pid := run.plugin(); pid != 0 {
			if env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid)); err == nil {
				n.environ++
				s.check(what, "the plugin's environment", string(env))
			}
			if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil {
				s.check(what, "the plugin's command line", string(cmdline))
			}
			// The plugin's unnamed temporary files (decrypted plaintext,
			// spools) are read through its descriptors, every half
			// second: they are tens of MB.
			var fds []string
			if time.Since(lastRead) > 500*time.Millisecond {
				fds, _ = filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
				lastRead = time.Now()
			}
			for _, fd := range fds {
				target, err := os.Readlink(fd)
				if err != nil || !strings.HasPrefix(target, s.tmp+"/") {
					continue
				}
				if b, err := os.ReadFile(fd); err == nil {
					n.openFiles++
					s.check(what, "open temporary file "+target, string(b))
				}
			}
		}
		list, err := s.c.Client.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", helpercontainer.LabelKind))})
		if err == nil {
			for _, h := range list {
				if info, err := s.c.Client.ContainerInspect(ctx, h.ID); err == nil {
					b, _ := json.Marshal(info)
					n.inspects++
					s.check(what, "docker inspect of helper "+info.Name, string(b))
				}
				if rc, err := s.c.Client.ContainerLogs(ctx, h.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true}); err == nil {
					b, _ := io.ReadAll(rc)
					rc.Close()
					n.logs++
					s.check(what, "docker logs of helper "+h.ID[:12], string(b))
				} else if !strings.Contains(err.Error(), "does not support reading") && !strings.Contains(err.Error(), "No such container") {
					s.check(what, "the error of docker logs of helper "+h.ID[:12], err.Error())
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return n
}

// files checks every file in dirs: what the runs wrote.
func (s *secretScan) files(what string, dirs ...string) {
	for _, dir := range dirs {
		filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
			if err != nil || !info.Mode().IsRegular() {
				return nil
			}
			b, err := os.ReadFile(p)
			assert.NilError(s.t, err)
			s.check(what, "file "+p, string(b))
			return nil
		})
	}
}
