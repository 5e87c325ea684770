package rethinktest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// childEnv carries ProcessOptions (paths only, never secrets) to the child.
const childEnv = "RETHINKTEST_CHILD_OPTIONS"

const addrPrefix = "RETHINKTEST_ADDR="

// ProcessOptions configure a server run in a child process.
type ProcessOptions struct {
	AdminPasswordFile string
	Certs             *Certs
	MaxBatchRows      int
	MaxBatchBytes     int
	Directory         string // Options.Directory
}

// Process is a server running in a child process.
type Process struct {
	cmd  *exec.Cmd
	addr string
	once sync.Once
}

// ServeIfChild turns the current test binary into a server when started by
// StartProcess; call it first in TestMain. It never returns in the child.
func ServeIfChild() {
	raw, ok := os.LookupEnv(childEnv)
	if !ok {
		return
	}
	if err := serveChild(raw); err != nil {
		fmt.Fprintln(os.Stderr, "rethinktest child:", err)
		os.Exit(2)
	}
	os.Exit(0)
}

func serveChild(raw string) error {
	var po ProcessOptions
	if err := json.Unmarshal([]byte(raw), &po); err != nil {
		return err
	}
	opts := Options{MaxBatchRows: po.MaxBatchRows, MaxBatchBytes: po.MaxBatchBytes, Directory: po.Directory}
	if po.AdminPasswordFile != "" {
		b, err := os.ReadFile(po.AdminPasswordFile)
		if err != nil {
			return err
		}
		opts.AdminPassword = strings.TrimRight(string(b), "\r\n")
	}
	if po.Certs != nil {
		cfg, err := po.Certs.ServerTLS()
		if err != nil {
			return err
		}
		opts.TLS = cfg
	}
	s, err := Start(opts)
	if err != nil {
		return err
	}
	fmt.Printf("%s%s\n", addrPrefix, s.Addr())
	// Exit when the parent goes away (its end of our stdin closes).
	io.Copy(io.Discard, os.Stdin)
	return s.Close()
}

// StartProcess re-executes the test binary as a server and waits until it
// listens. The process is killed in t.Cleanup.
func StartProcess(t testing.TB, opts ProcessOptions) *Process {
	t.Helper()
	pr, err := Spawn(opts)
	if err != nil {
		t.Fatalf("rethinktest: %v", err)
	}
	t.Cleanup(pr.Kill)
	return pr
}

// Spawn is StartProcess without a test to tie it to: the caller kills it,
// or it exits with the test binary (its stdin closes). Benchmarks use it to
// share one loaded server across their runs.
func Spawn(opts ProcessOptions) (*Process, error) {
	raw, err := json.Marshal(opts)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(raw))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	_ = stdin // kept open for the child's lifetime; closed when we exit
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting server process: %w", err)
	}
	pr := &Process{cmd: cmd}
	addrCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, addrPrefix) {
				addrCh <- strings.TrimPrefix(line, addrPrefix)
				break
			}
		}
		io.Copy(io.Discard, stdout)
		close(addrCh) // exited (or closed stdout) without listening
	}()
	select {
	case addr, ok := <-addrCh:
		if !ok {
			pr.Kill()
			return nil, fmt.Errorf("server process exited without listening")
		}
		pr.addr = addr
	case <-time.After(30 * time.Second):
		pr.Kill()
		return nil, fmt.Errorf("server process did not start listening")
	}
	return pr, nil
}

// Addr is the child server's "127.0.0.1:port".
func (p *Process) Addr() string { return p.addr }

// Kill sends SIGKILL and waits for the process to exit.
func (p *Process) Kill() {
	p.once.Do(func() {
		if p.cmd.Process != nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
	})
}
