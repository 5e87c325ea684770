package remotedb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/dtrgen"
	"github.com/docker-dtr/docker-dtr/internal/rethinkserver"
	"github.com/docker-dtr/docker-dtr/internal/tartest"
	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"github.com/docker-dtr/docker-dtr/pkg/metadata"
	"github.com/docker-dtr/docker-dtr/pkg/rethink"
	"github.com/klauspost/compress/zstd"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// caDir lays the server's client material out as DTR's CA volume does.
func caDir(t *testing.T, c *rethinkserver.Certs) string {
	root := t.TempDir()
	for src, dst := range map[string]string{c.ClientCert: "rethink-client/cert.pem", c.ClientKey: "rethink-client/key.pem", c.CA: "rethink/cert.pem"} {
		b, err := os.ReadFile(src)
		assert.NilError(t, err)
		assert.NilError(t, os.MkdirAll(filepath.Dir(filepath.Join(root, dst)), 0o755))
		assert.NilError(t, os.WriteFile(filepath.Join(root, dst), b, 0o600))
	}
	return root
}

// agentPipes runs Serve as the helper's agent does, on pipes: what the
// plugin writes to the returned stdin, and the agent's stdout.
func agentPipes(t *testing.T, connect Connector, idle time.Duration) (stdin *io.PipeWriter, stdout *io.PipeReader, served <-chan error) {
	l, served := agentLink(t, connect, idle)
	return l.in, l.out, served
}

// agentLink runs Serve on pipes, and is the plugin's link to it.
func agentLink(t *testing.T, connect Connector, idle time.Duration) (pipeLink, <-chan error) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := Serve(connect, inR, outW, idle)
		outW.Close()
		done <- err
	}()
	t.Cleanup(func() { inW.Close(); outR.Close() })
	return pipeLink{in: inW, out: outR, agentIn: inR}, done
}

// pipeLink is a session's link to an agent on pipes. Interrupt cuts both
// ways, as closing an attach connection does.
type pipeLink struct {
	in      *io.PipeWriter
	out     *io.PipeReader
	agentIn *io.PipeReader
}

func (l pipeLink) Stdin() io.Writer  { return l.in }
func (l pipeLink) Stdout() io.Reader { return l.out }
func (l pipeLink) Interrupt() {
	l.agentIn.CloseWithError(errors.New("interrupted"))
	l.out.CloseWithError(errors.New("interrupted"))
}
func (l pipeLink) Lost(err error) error { return fmt.Errorf("lost the agent: %w", err) }
func (l pipeLink) Close() error         { return l.in.Close() }

// session starts an agent on pipes and a Session talking to it.
func session(t *testing.T, connect Connector) (*Session, pipeLink, <-chan error) {
	l, served := agentLink(t, connect, time.Minute)
	s := newSession("docker-dtr-db-test", "node1", l, 2)
	t.Cleanup(func() { s.Close() })
	return s, l, served
}

func request(t *testing.T, w io.Writer, req Request) {
	assert.NilError(t, (&frameWriter{w: w}).json(frameRequest, req))
}

type progressLog struct {
	mu          sync.Mutex
	steps       []string
	rows, bytes int64
}

func (p *progressLog) Step(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.steps = append(p.steps, fmt.Sprintf(format, args...))
}

func (p *progressLog) Add(rows, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rows += rows
	p.bytes += bytes
}

// The archive the agent sends is, once decompressed, the archive direct
// mode writes for the same data and Info, byte for byte: only the
// manifest's finished time (and the manifest's checksum over it) differs,
// and those are the only fields the comparison leaves out. Through the real RethinkDB with mutual TLS, the
// client material read from a directory laid out as DTR's /ca.
func TestSameArchiveAsDirect(t *testing.T) {
	srv := rethinkserver.Start(t, rethinkserver.Options{TLS: true})
	stats, err := dtrgen.Generate(context.Background(), srv.Connect(t), dtrgen.Options{Rows: 3000, Seed: 7})
	assert.NilError(t, err)

	info := archive.Info{Tool: "test", DTRVersion: "2.9.4", ReplicaID: "0123456789ab", Started: time.Date(2026, 12, 5, 13, 0, 0, 123456789, time.FixedZone("X", 3600))}
	exclude := []archive.Exclusion{{DB: "dtr2", Table: "events", Reason: "--skip-events"}}

	direct, err := rethink.Connect(context.Background(), rethink.Options{Addr: srv.Addr, CAFile: srv.Certs.CA, CertFile: srv.Certs.ClientCert, KeyFile: srv.Certs.ClientKey,
		ServerName: rethinkserver.ServerName, Connections: 2})
	assert.NilError(t, err)
	defer direct.Close()
	var want bytes.Buffer
	wantM, err := metadata.Backup(context.Background(), direct, &want, metadata.BackupOptions{Info: info, Exclude: exclude, Parallel: 2})
	assert.NilError(t, err)

	s, _, served := session(t, Dial(srv.Addr, caDir(t, srv.Certs)))
	var total int64
	prog := &progressLog{}
	var got bytes.Buffer
	m, err := s.Dump(context.Background(), Request{Info: info, Exclude: exclude, Parallel: 2, Estimate: true}, &got, Hooks{Total: func(n int64) { total = n }, Progress: prog})
	assert.NilError(t, err)
	assert.NilError(t, s.Close())
	assert.NilError(t, <-served)

	// The manifest's own checksum covers its finished time: it differs,
	// and the verification below checks it.
	assert.Assert(t, bytes.Equal(tartest.Normalize(t, got.Bytes(), false, "finished", "manifestSHA256"), tartest.Normalize(t, want.Bytes(), false, "finished", "manifestSHA256")),
		"the agent's archive differs from direct mode's beyond the finished time")
	f, err := os.Create(filepath.Join(t.TempDir(), "got.tar"))
	assert.NilError(t, err)
	defer f.Close()
	_, err = f.Write(got.Bytes())
	assert.NilError(t, err)
	rep, err := archive.Verify(f)
	assert.NilError(t, err)
	assert.Assert(t, rep.OK(), "%+v", rep)
	m.Finished, wantM.Finished = time.Time{}, time.Time{}
	assert.DeepEqual(t, m, wantM)
	rows, docBytes := m.Rows()
	assert.Equal(t, prog.rows, rows, "the progress counted every row")
	assert.Equal(t, prog.bytes, docBytes)
	assert.Assert(t, total > 0 && rows > 0, "estimate %d, rows %d (generated %d)", total, rows, stats.Rows)
	assert.Assert(t, is.Contains(strings.Join(prog.steps, "\n"), "connected to rethinkdb at "+srv.Addr+" from the database helper"))
	assert.Assert(t, is.Contains(strings.Join(prog.steps, "\n"), "dumped dtr2.tags"))
	if runtime.GOOS == "linux" {
		assert.Assert(t, is.Contains(strings.Join(prog.steps, "\n"), "the database helper's peak memory: "))
	}
}

// An agent that cannot reach RethinkDB says why in its result, and the
// plugin returns that reason (not a lost stream).
func TestAgentCannotConnect(t *testing.T) {
	s, _, served := session(t, Dial("127.0.0.1:1", t.TempDir()))
	var got bytes.Buffer
	_, err := s.Dump(context.Background(), Request{Info: archive.Info{Tool: "test"}, Parallel: 1}, &got, Hooks{})
	var ae *AgentError
	assert.Assert(t, errors.As(err, &ae), "%T %v", err, err)
	assert.ErrorContains(t, err, "the database helper docker-dtr-db-test on node node1: reading RethinkDB's TLS material")
	assert.Equal(t, got.Len(), 0)
	assert.NilError(t, s.Broken(), "an agent's error leaves the session usable")
	s.Close()
	assert.ErrorContains(t, <-served, "reading RethinkDB's TLS material")

	fail := func(context.Context, int) (*rethink.Session, error) {
		return nil, errors.New("dial tcp: lookup dtr-rethinkdb-0123456789ab.dtr-ol: no such host")
	}
	s, _, served = session(t, fail)
	_, err = s.Plan(context.Background(), &archive.Report{})
	assert.Error(t, err, "the database helper docker-dtr-db-test on node node1: dial tcp: lookup dtr-rethinkdb-0123456789ab.dtr-ol: no such host")
	s.Close()
	assert.Assert(t, <-served != nil)
}

// The agent stops once the plugin is gone: its lease (stdin) ends, or
// stays silent past the idle bound.
func TestAgentLease(t *testing.T) {
	block := func(ctx context.Context, _ int) (*rethink.Session, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	stdin, stdout, served := agentPipes(t, block, 300*time.Millisecond)
	go io.Copy(io.Discard, stdout)
	request(t, stdin, Request{Parallel: 1})
	select {
	case err := <-served:
		assert.ErrorContains(t, err, "no word from the plugin for")
	case <-time.After(10 * time.Second):
		t.Fatal("the agent outlived its silent plugin")
	}

	stdin, stdout, served = agentPipes(t, block, time.Minute)
	go io.Copy(io.Discard, stdout)
	request(t, stdin, Request{Parallel: 1})
	stdin.Close()
	select {
	case err := <-served:
		assert.ErrorContains(t, err, "the plugin's connection ended")
	case <-time.After(10 * time.Second):
		t.Fatal("the agent outlived its plugin's connection")
	}
}

// frames builds an agent's stdout by hand.
func frames(t *testing.T, archiveBytes []byte, size int64, cut int, result *Result) []byte {
	var buf bytes.Buffer
	fw := &frameWriter{w: &buf}
	assert.NilError(t, fw.json(frameProgress, Progress{Total: 10}))
	zw, err := zstd.NewWriter(fw, zstd.WithEncoderCRC(true))
	assert.NilError(t, err)
	zw.Write(archiveBytes)
	assert.NilError(t, zw.Close())
	assert.NilError(t, fw.json(frameProgress, Progress{Rows: 3, Bytes: 30}))
	if result != nil {
		assert.NilError(t, fw.json(frameResult, result))
	}
	b := buf.Bytes()
	return b[:len(b)-cut]
}

// sampleDump is a dump's document stream, as an agent sends it, and the
// archive and manifest a dump in the plugin's process writes of the same
// documents.
func sampleDump(t *testing.T) (stream, want []byte, m *archive.Manifest) {
	t.Helper()
	tables := []archive.Table{{DB: "dtr2", Name: "tags", PrimaryKey: "id", WriteHook: json.RawMessage("null"), Indexes: []archive.Index{}}}
	archive.AssignDirs(tables)
	info := archive.Info{Tool: "test", DTRVersion: "2.9.4", ReplicaID: "0123456789ab", Started: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)}
	write := func(w interface {
		BeginTable(archive.Table) error
		WriteDocument([]byte) error
		Finish([]archive.Exclusion, time.Time) (*archive.Manifest, error)
	}) *archive.Manifest {
		assert.NilError(t, w.BeginTable(tables[0]))
		for i := range 2000 {
			assert.NilError(t, w.WriteDocument([]byte(fmt.Sprintf(`{"id":"tag-%d","doc":"document document"}`, i))))
		}
		m, err := w.Finish(nil, info.Started.Add(time.Second))
		assert.NilError(t, err)
		return m
	}
	var sb, ab bytes.Buffer
	sw, err := archive.NewStreamWriter(&sb, info, archive.Definitions{Tables: tables})
	assert.NilError(t, err)
	write(sw)
	aw, err := archive.NewWriter(&ab, info, archive.Definitions{Tables: tables})
	assert.NilError(t, err)
	m = write(aw)
	return sb.Bytes(), ab.Bytes(), m
}

// The plugin's side without an agent: what a stream that ends early, a
// size that does not match, an unknown frame and a good stream give.
func TestReceive(t *testing.T) {
	data, want, m := sampleDump(t)
	var total int64
	prog := &progressLog{}
	hooks := Hooks{Total: func(n int64) { total = n }, Progress: prog}

	var out bytes.Buffer
	got, lost, err := receiveFrom(bytes.NewReader(frames(t, data, 0, 0, &Result{Size: int64(len(data))})), &out, hooks)
	assert.NilError(t, err)
	assert.Assert(t, !lost)
	assert.DeepEqual(t, got, m)
	assert.Assert(t, bytes.Equal(out.Bytes(), want), "the replayed archive is not the one a dump in this process writes")
	assert.Equal(t, total, int64(10))
	assert.Equal(t, prog.rows, int64(3))

	// The agent went away: no result, at any point of the stream.
	full := frames(t, data, 0, 0, nil)
	for _, cut := range []int{0, 1, 5, len(full) / 2, len(full) - 1} {
		_, lost, err = receiveFrom(bytes.NewReader(full[:len(full)-cut]), io.Discard, Hooks{})
		assert.Assert(t, lost, "cut %d", cut)
		assert.ErrorIs(t, err, ErrNoResult, "cut %d", cut)
	}
	// A result whose size is not what arrived.
	_, lost, err = receiveFrom(bytes.NewReader(frames(t, data, 0, 0, &Result{Size: 5})), io.Discard, Hooks{})
	assert.Assert(t, !lost)
	assert.ErrorContains(t, err, fmt.Sprintf("%d bytes of documents arrived, the helper sent 5", len(data)))
	// The agent's error wins over its truncated stream.
	_, lost, err = receiveFrom(bytes.NewReader(frames(t, data[:100], 0, 0, &Result{Error: "rethinkdb: EOF"})), io.Discard, Hooks{})
	assert.Assert(t, !lost)
	var ae *AgentError
	assert.Assert(t, errors.As(err, &ae), "%T", err)
	assert.Error(t, err, "rethinkdb: EOF")
	// Not this protocol.
	_, _, err = receiveFrom(strings.NewReader("HTTP/1.1 500\r\n"), io.Discard, Hooks{})
	assert.ErrorContains(t, err, "frame of unknown type")
	// The backup file's error is the file's, not the stream's.
	_, lost, err = receiveFrom(bytes.NewReader(frames(t, data, 0, 0, &Result{Size: int64(len(data))})), failWriter{}, Hooks{})
	assert.Assert(t, !lost)
	assert.Error(t, err, "no space left on device")
}

// receiveFrom is receive of the frames r holds.
func receiveFrom(r io.Reader, w io.Writer, hooks Hooks) (*archive.Manifest, bool, error) {
	return receive(newFrameReader(r, hooks.onProgress()), w)
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }
