package agent

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

func TestRunModes(t *testing.T) {
	var out bytes.Buffer
	run := func(o Options) error {
		o.WipeOnly = "/storage"
		return Run(o, io.NopCloser(strings.NewReader("")), nopWriteCloser{&out}, io.Discard)
	}
	for _, o := range []Options{{}, {DB: "dtr-rethinkdb-0123456789ab.dtr-ol:28015", Wipe: "/storage"}, {Wipe: "/storage", DU: "/storage"}, {Lease: true, DU: "/storage", Wipe: "/storage"}, {DB: "dtr-rethinkdb-0123456789ab.dtr-ol:28015", Lease: true}} {
		assert.Error(t, run(o), "agent: give exactly one of --db, --wipe, --du, --send and --lease")
	}
	// Only the volume's mount point: never the root, a parent, or a path
	// that only starts like it.
	for _, dir := range []string{"/", "/tmp", "/storage/..", "/storage2", "storage", "/storage/docker"} {
		assert.ErrorContains(t, run(Options{Wipe: dir}), "agent: --wipe "+dir+": refusing, only /storage (the image volume's mount point in a helper) is emptied")
	}
	assert.Equal(t, out.String(), "")
}

// The lease lives as long as its plugin: it returns when stdin ends, and
// fails when stdin stays silent past the bound.
func TestLease(t *testing.T) {
	var said strings.Builder
	assert.NilError(t, Run(Options{Lease: true}, io.NopCloser(strings.NewReader("\n\n")), nopWriteCloser{&said}, io.Discard))
	assert.Equal(t, said.String(), LeaseHeld+"\n", "said first, and alone without --du")
	out := nopWriteCloser{io.Discard}
	pr, pw := io.Pipe()
	defer pw.Close()
	began := time.Now()
	err := Run(Options{Lease: true, IdleTimeout: 200 * time.Millisecond}, pr, out, io.Discard)
	assert.ErrorContains(t, err, "agent: no word from the plugin for")
	assert.Check(t, time.Since(began) < 2*time.Second, "gone within the bound: %s", time.Since(began))
}

// With --du, the lease measures the directory meanwhile: its sizes come
// while the plugin still holds it, and a failed measure is told on stderr
// without ending the lease.
func TestLeaseMeasures(t *testing.T) {
	dir := t.TempDir()
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "data"), make([]byte, 1000), 0o644))
	want, err := DU(dir)
	assert.NilError(t, err)

	pr, pw := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- Run(Options{Lease: true, DU: dir}, pr, outW, io.Discard) }()
	br := bufio.NewReader(outR)
	line, err := br.ReadString('\n')
	assert.NilError(t, err)
	assert.Equal(t, line, LeaseHeld+"\n", "the lease is said before the sizes")
	var got Usage
	assert.NilError(t, json.NewDecoder(br).Decode(&got), "the sizes, while the lease holds")
	assert.DeepEqual(t, got, want)
	select {
	case err := <-done:
		t.Fatalf("the lease ended with its measure: %v", err)
	default:
	}
	pw.Close()
	assert.NilError(t, <-done)

	// The measure's failure comes on stderr while the lease holds.
	missing := filepath.Join(dir, "missing")
	pr, pw = io.Pipe()
	errR, errW := io.Pipe()
	go func() { done <- Run(Options{Lease: true, DU: missing}, pr, nopWriteCloser{io.Discard}, errW) }()
	line, err = bufio.NewReader(errR).ReadString('\n')
	assert.NilError(t, err)
	assert.Assert(t, is.Contains(line, "agent: --du "+missing+": "), line)
	pw.Close()
	assert.NilError(t, <-done)
}
