package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/rethinkserver"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// SIGKILL, as an OOM kill or a dropped session delivers it, leaves no
// plaintext of an encrypted backup and no temporary file of the plugin in
// $TMPDIR, and nothing beside the output but the killed backup's own
// temporary file, which the next backup create into that directory removes.
// Each run goes through the docker CLI; the plugin it starts is killed.
func TestKilledRunsLeaveNoPlaintext(t *testing.T) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skip("needs /proc to see the plugin's open files")
	}
	cfg := dockerConfig(t)
	// Where a direct restore keeps its journal.
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	srv := rethinkserver.Start(t, rethinkserver.Options{TLS: true})
	driver := srv.Connect(t)
	// 30 MB of documents: the dump is still writing after its file passes
	// 1 MiB, and so is a decryption after its plaintext does.
	seedEvents(t, driver, 30000, 1000)
	proxy := startFreezableProxy(t, srv.Addr)
	conn := []string{"--rethinkdb-addr", proxy.addr, "--rethinkdb-ca", srv.Certs.CA, "--rethinkdb-cert", srv.Certs.ClientCert,
		"--rethinkdb-key", srv.Certs.ClientKey, "--rethinkdb-server-name", rethinkserver.ServerName}

	tmp := t.TempDir() // the plugin's $TMPDIR
	out := t.TempDir() // where the backups go
	pass := filepath.Join(t.TempDir(), "passphrase")
	assert.NilError(t, os.WriteFile(pass, []byte("correct horse battery staple\n"), 0o600))
	sealed := filepath.Join(out, "backup.tar.gpg")
	create := append([]string{"dtr", "backup", "create", "--dtr-version", "2.9.4", "--encrypt", "--passphrase-file", pass, "-o", sealed}, conn...)

	// backup create, killed mid-write: its temporary file stays beside
	// the output, and nothing (no manifest spool) in $TMPDIR.
	run := startPlugin(t, cfg, tmp, nil, create...)
	run.waitUntil(t, "the backup's temporary file passes 1 MiB", func() bool {
		return largestIn(out) > 1<<20
	})
	run.kill(t)
	assertEmpty(t, tmp)
	left := names(t, out)
	assert.Equal(t, len(left), 1, "beside the output: %v", left)
	assert.Assert(t, strings.HasPrefix(left[0], ".backup.tar.gpg.tmp-"), left[0])
	killedTemp := filepath.Join(out, left[0])

	t.Log("create killed mid-write: nothing left")

	// The next create into the directory removes it, and says so.
	res := dockerEnv(t, cfg, tmp, create...)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Assert(t, is.Contains(res.stderr, "removed "+killedTemp+", the temporary file of a backup that was killed"))
	assert.DeepEqual(t, names(t, out), []string{"backup.tar.gpg"})
	assertEmpty(t, tmp)

	t.Log("the next create swept: nothing left")

	// verify, killed while it decrypts: it checks the backup as it is
	// decrypted, and holds no file in $TMPDIR at any moment.
	run = startPlugin(t, cfg, tmp, nil, "dtr", "backup", "verify", "--progress", "plain", "--passphrase-file", pass, sealed)
	held := int64(-1)
	run.waitUntil(t, "the decryption begun", func() bool {
		held = max(held, run.openIn(tmp))
		return strings.Contains(run.stderr(), "as it is read")
	})
	// Stopped at once: the decryption (faster than gpg's) would otherwise
	// finish the verify before the kill.
	run.stop(t)
	held = max(held, run.openIn(tmp))
	run.kill(t)
	assert.Equal(t, held, int64(-1), "verify held a file in $TMPDIR; stderr: %s", run.stderr())
	assertEmpty(t, tmp)
	assert.DeepEqual(t, names(t, out), []string{"backup.tar.gpg"})

	t.Log("verify killed while decrypting: nothing left, and nothing ever held in $TMPDIR")

	// verify -, killed while it spools a pipe: the spool (ciphertext) has
	// no name either.
	data, err := os.ReadFile(sealed)
	assert.NilError(t, err)
	pr, pw, err := os.Pipe()
	assert.NilError(t, err)
	run = startPlugin(t, cfg, tmp, pr, "dtr", "backup", "verify", "--passphrase-file", pass, "-")
	pr.Close()
	go pw.Write(data[:len(data)/2]) // and no more: the spool waits for the rest
	run.waitUntil(t, "half the backup spooled into $TMPDIR", func() bool { return run.openIn(tmp) >= int64(len(data)/2) })
	run.kill(t)
	pw.Close()
	assertEmpty(t, tmp)

	t.Log("verify - killed while spooling: nothing left")

	// restore, killed while it loads: the server stops answering once the
	// load has begun, so the restore waits there, decrypting the backup as
	// it reads it, with no file in $TMPDIR.
	safety := t.TempDir()
	run = startPlugin(t, cfg, tmp, nil, append([]string{"dtr", "backup", "restore", "--force", "--dtr-version", "2.9.4",
		"--passphrase-file", pass, "--safety-dir", safety, "--progress", "plain", sealed}, conn...)...)
	// The load comes right after the safety backup is saved.
	run.waitUntil(t, "the safety backup saved", func() bool { return strings.Contains(run.stderr(), "safety backup of the 1 table") })
	proxy.freeze()
	time.Sleep(200 * time.Millisecond)
	assert.Assert(t, run.plugin() != 0, "the restore ended before the kill; stderr: %s", run.stderr())
	assert.Equal(t, run.openIn(tmp), int64(-1), "the restore holds a file in $TMPDIR while it loads; stderr: %s", run.stderr())
	assert.Assert(t, is.Contains(run.stderr(), "verifying "+sealed+" as it is decrypted"))
	assert.Assert(t, !strings.Contains(run.stderr(), "restored dtr2.events"), "the load ended before the kill; stderr: %s", run.stderr())
	run.kill(t)
	proxy.thaw()
	assertEmpty(t, tmp)
	assert.DeepEqual(t, names(t, out), []string{"backup.tar.gpg"})
	for _, n := range names(t, safety) {
		assert.Assert(t, !strings.Contains(n, ".tmp-"), "a temporary file beside the safety backup: %s", n)
	}

	// The killed restore's journal refuses the next backup, and --undo
	// puts the safety backup back and removes it: the safety backup is
	// encrypted like the backup, so --undo needs the same passphrase, and
	// is refused without it before anything changes.
	res = dockerEnv(t, cfg, tmp, create...)
	assert.Equal(t, res.code, 1, res.stderr)
	assert.Assert(t, is.Contains(res.stderr, "refusing to back up: a metadata restore of "+sealed+" into the database"))
	res = dockerEnv(t, cfg, tmp, append([]string{"dtr", "backup", "restore", "--undo"}, conn...)...)
	assert.Equal(t, res.code, 1, res.stderr)
	assert.Assert(t, is.Contains(res.stderr, "needs a passphrase"))
	res = dockerEnv(t, cfg, tmp, append([]string{"dtr", "backup", "restore", "--undo", "--passphrase-file", pass}, conn...)...)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Assert(t, is.Contains(res.stdout, "undid a metadata restore of "+sealed))
	res = dockerEnv(t, cfg, tmp, create...)
	assert.Equal(t, res.code, 0, res.stderr)
	assertEmpty(t, tmp)
}

// pluginProc is a docker CLI running the plugin, whose plugin process a test
// kills.
type pluginProc struct {
	cmd    *exec.Cmd
	errBuf *syncBuffer
	done   chan struct{}
}

func startPlugin(t *testing.T, cfg, tmp string, stdin io.Reader, args ...string) *pluginProc {
	t.Helper()
	cmd := exec.Command("docker", append([]string{"--config", cfg}, args...)...)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	p := &pluginProc{cmd: cmd, errBuf: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdin, cmd.Stderr = stdin, p.errBuf
	assert.NilError(t, cmd.Start())
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *pluginProc) stderr() string { return p.errBuf.String() }

// plugin is the pid of the docker-dtr process the docker CLI started, or 0.
func (p *pluginProc) plugin() int { return pluginUnder(p.cmd.Process.Pid) }

// pluginUnder is the pid of the docker-dtr process that the docker CLI of
// pid parent started, or 0.
func pluginUnder(parent int) int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, st := range stats {
		b, err := os.ReadFile(st)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || !strings.Contains(s[:i], "(docker-dtr") {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(parent) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(st)))
			return pid
		}
	}
	return 0
}

// openIn is the size of the largest regular file under dir that the plugin
// holds open, named or not, or -1.
func (p *pluginProc) openIn(dir string) int64 { return openUnder(p.plugin(), dir) }

// openUnder is the size of the largest regular file under dir that the
// process pid holds open, named or not, or -1 (and -1 for pid 0).
func openUnder(pid int, dir string) int64 {
	if pid == 0 {
		return -1
	}
	fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	size := int64(-1)
	for _, fd := range fds {
		target, err := os.Readlink(fd)
		if err != nil || !strings.HasPrefix(target, dir+"/") {
			continue
		}
		if st, err := os.Stat(fd); err == nil && st.Mode().IsRegular() {
			size = max(size, st.Size())
		}
	}
	return size
}

// waitUntil waits for ok while the run goes on; a run that ends first
// fails the test, as the kill would come too late.
func (p *pluginProc) waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !ok() {
		select {
		case <-p.done:
			t.Fatalf("the run ended before %s: the kill would come too late\nstderr: %s", what, p.stderr())
		default:
		}
		assert.Assert(t, time.Now().Before(deadline), "never %s; stderr: %s", what, p.stderr())
		time.Sleep(time.Millisecond)
	}
}

// stop sends SIGSTOP to the plugin, which must still be running: the kill
// then comes where it stopped.
func (p *pluginProc) stop(t *testing.T) {
	t.Helper()
	pid := p.plugin()
	assert.Assert(t, pid != 0, "the plugin ended before it could be stopped; stderr: %s", p.stderr())
	assert.NilError(t, syscall.Kill(pid, syscall.SIGSTOP))
}

// kill sends SIGKILL to the plugin, and waits for the docker CLI to end.
func (p *pluginProc) kill(t *testing.T) {
	t.Helper()
	pid := p.plugin()
	assert.Assert(t, pid != 0, "no plugin process under the docker CLI")
	assert.NilError(t, syscall.Kill(pid, syscall.SIGKILL))
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		t.Fatalf("the docker CLI did not end after its plugin was killed")
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
			return
		}
		assert.Assert(t, time.Now().Before(deadline), "the killed plugin %d is still there", pid)
	}
}

// dockerEnv is docker with $TMPDIR set to tmp.
func dockerEnv(t *testing.T, cfg, tmp string, args ...string) result {
	t.Helper()
	cmd := exec.Command("docker", append([]string{"--config", cfg}, args...)...)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	return run(t, cmd, nil)
}

func largestIn(dir string) int64 {
	size := int64(-1)
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if info, err := e.Info(); err == nil {
			size = max(size, info.Size())
		}
	}
	return size
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	assert.NilError(t, err)
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	left := names(t, dir)
	assert.Equal(t, len(left), 0, "left in %s: %v", dir, left)
}

// freezableProxy relays TCP to a server; frozen, it relays nothing, as a
// server that stopped answering.
type freezableProxy struct {
	addr   string
	mu     sync.Mutex
	frozen bool
	thawed *sync.Cond
}

func startFreezableProxy(t *testing.T, backend string) *freezableProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	assert.NilError(t, err)
	t.Cleanup(func() { ln.Close() })
	p := &freezableProxy{addr: ln.Addr().String()}
	p.thawed = sync.NewCond(&p.mu)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				s, err := net.Dial("tcp", backend)
				if err != nil {
					return
				}
				defer s.Close()
				go p.relay(s, c)
				p.relay(c, s)
			}()
		}
	}()
	return p
}

func (p *freezableProxy) relay(dst, src net.Conn) {
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		for p.frozen {
			p.thawed.Wait()
		}
		p.mu.Unlock()
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

func (p *freezableProxy) freeze() { p.mu.Lock(); p.frozen = true; p.mu.Unlock() }

func (p *freezableProxy) thaw() {
	p.mu.Lock()
	p.frozen = false
	p.thawed.Broadcast()
	p.mu.Unlock()
}
