package rethinkserver

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
)

// ServerName is the name DTR's tools verify a replica's certificate against;
// the certificates of Start carry it, so tests can use it as DTR does.
const ServerName = "dtr-rethinkdb-0123456789ab.dtr-ol"

// Options shape a server started on the host.
type Options struct {
	// TLS makes the driver port require mutual TLS, as DTR's does: the
	// server presents Certs.ServerCert and accepts only clients whose
	// certificate Certs.CA signed. The certificate names ServerName,
	// localhost and 127.0.0.1.
	TLS bool
	// Password is the admin password (--initial-password); empty: none.
	Password string
	// Directory is --directory; empty: a fresh one under t.TempDir(). An
	// existing one keeps its data, as across a restart.
	Directory string
	// CPUs pins the server to these cores (taskset -c), for benchmarks that
	// keep it off the client's cores: "1", "0-1".
	CPUs string
	// CacheMB is --cache-size; 0: the server's default.
	CacheMB int
}

// Server is a running server.
type Server struct {
	// Addr is "127.0.0.1:PORT", the driver port.
	Addr string
	// Certs are the PEM files of the CA, the server's and a client's pair
	// (Options.TLS; nil without it).
	Certs     *Certs
	Directory string
	Options   Options

	cmd *exec.Cmd
	// container is set when the server runs in the image (no host binary).
	container       string
	removeContainer func()
	out             *tail
	done            chan struct{}
	stopOnce        sync.Once
}

var (
	driverPortRe = regexp.MustCompile(`Listening for client driver connections on port (\d+)`)
	readyRe      = regexp.MustCompile(`^Server ready`)
)

// startTimeout bounds how long a server may take to print "Server ready".
const startTimeout = time.Minute

// Start runs a server on loopback with a fresh port and registers its
// removal (t.Cleanup). A source with no host binary runs it as a container
// of the image instead, with the port published on loopback.
func Start(t TB, opts Options) *Server {
	t.Helper()
	return start(t, Require(t), opts)
}

func start(t TB, src *Source, opts Options) *Server {
	t.Helper()
	s := &Server{Options: opts, Directory: opts.Directory, out: &tail{}, done: make(chan struct{})}
	if opts.TLS {
		var err error
		if s.Certs, err = NewCerts(t.TempDir(), ServerName); err != nil {
			t.Fatalf("rethinkserver: certificates: %v", err)
		}
	}
	if src.Binary == "" {
		s.startContainer(t, src)
		return s
	}
	if s.Directory == "" {
		s.Directory = t.TempDir() + "/data"
	}
	args := []string{"--directory", s.Directory, "--bind", "127.0.0.1",
		"--driver-port", "0", "--cluster-port", "0", "--no-http-admin", "--server-name", "rethinkserver"}
	if opts.CacheMB > 0 {
		args = append(args, "--cache-size", strconv.Itoa(opts.CacheMB))
	}
	if opts.Password != "" {
		args = append(args, "--initial-password", opts.Password)
	}
	if s.Certs != nil {
		args = append(args, "--driver-tls-key", s.Certs.ServerKey, "--driver-tls-cert", s.Certs.ServerCert,
			"--driver-tls-ca", s.Certs.CA)
	}
	name := src.Binary
	if opts.CPUs != "" {
		args = append([]string{"-c", opts.CPUs, name}, args...)
		name = "taskset"
	}
	s.cmd = exec.Command(name, args...)
	s.cmd.SysProcAttr = withParent()
	pr, pw := io.Pipe()
	s.cmd.Stdout, s.cmd.Stderr = pw, pw
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("rethinkserver: starting %s (from %s): %v", src.Binary, src.From, err)
	}
	go func() {
		s.cmd.Wait()
		pw.Close()
		close(s.done)
	}()
	t.Cleanup(s.Kill)
	port, err := s.waitReady(pr)
	if err != nil {
		s.Kill()
		t.Fatalf("rethinkserver: %s did not start: %v\n%s", src.Binary, err, s.out)
	}
	s.Addr = net.JoinHostPort("127.0.0.1", port)
	return s
}

// waitReady reads the server's output until "Server ready" and returns the
// driver port it printed; the rest of the output goes to the tail.
func (s *Server) waitReady(out io.Reader) (string, error) {
	type result struct {
		port string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		sc := bufio.NewScanner(out)
		port := ""
		sent := false
		for sc.Scan() {
			line := sc.Text()
			s.out.add(line)
			if m := driverPortRe.FindStringSubmatch(line); m != nil {
				port = m[1]
			}
			if !sent && readyRe.MatchString(line) {
				res <- result{port: port}
				sent = true
			}
		}
		if !sent {
			res <- result{err: fmt.Errorf("it exited")}
		}
		io.Copy(io.Discard, out)
	}()
	select {
	case r := <-res:
		if r.err == nil && r.port == "" {
			r.err = fmt.Errorf("it printed no driver port")
		}
		return r.port, r.err
	case <-time.After(startTimeout):
		return "", fmt.Errorf("no \"Server ready\" after %s", startTimeout)
	}
}

// PID is the server's process id on the host (0 in a container).
func (s *Server) PID() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Kill ends the server at once (SIGKILL), as an OOM kill would; a killed
// server's directory still restarts. Safe to call more than once.
func (s *Server) Kill() {
	s.stopOnce.Do(func() {
		if s.container != "" {
			s.removeContainer()
			return
		}
		s.cmd.Process.Signal(syscall.SIGKILL)
		<-s.done
	})
}

// Stop shuts the server down cleanly (SIGTERM) and waits for it.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		if s.container != "" {
			s.removeContainer()
			return
		}
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			s.cmd.Process.Signal(syscall.SIGKILL)
			<-s.done
		}
	})
}

// ConnectOpts are the driver options for the admin user of this server.
func (s *Server) ConnectOpts() r.ConnectOpts {
	opts := r.ConnectOpts{Address: s.Addr, Password: s.Options.Password, Timeout: 10 * time.Second}
	if s.Certs != nil {
		cfg, err := s.Certs.ClientTLS(ServerName)
		if err != nil {
			panic(err) // the files were written by Start
		}
		opts.TLSConfig = cfg
	}
	return opts
}

// Connect opens a driver session as admin, closed on cleanup.
func (s *Server) Connect(t TB) *r.Session {
	t.Helper()
	sess, err := r.Connect(s.ConnectOpts())
	if err != nil {
		t.Fatalf("rethinkserver: connecting to %s: %v", s.Addr, err)
	}
	t.Cleanup(func() { sess.Close() })
	return sess
}

// Output is the tail of what the server printed, for failure messages.
func (s *Server) Output() string { return s.out.String() }

// tail keeps the last lines a server printed.
type tail struct {
	mu    sync.Mutex
	lines []string
}

const tailLines = 40

func (t *tail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, line)
	if len(t.lines) > tailLines {
		t.lines = t.lines[len(t.lines)-tailLines:]
	}
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}
