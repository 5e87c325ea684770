package metadata

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/dtrtest"
	"github.com/docker-dtr/docker-dtr/pkg/archive"
	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
)

// counted is a Progress that counts what Backup reports.
type counted struct{ rows, bytes atomic.Int64 }

func (*counted) Step(string, ...any)     {}
func (c *counted) Add(rows, bytes int64) { c.rows.Add(rows); c.bytes.Add(bytes) }

func dumpWith(t *testing.T, srv server, parallel, queue int, prog Progress) string {
	t.Helper()
	s := connect(t, srv.opts)
	p := filepath.Join(t.TempDir(), "backup-metadata.tar")
	f, err := os.Create(p)
	assert.NilError(t, err)
	defer f.Close()
	_, err = Backup(context.Background(), s, f, BackupOptions{
		Info:     archive.Info{Tool: "test", DTRVersion: "2.9.4", ReplicaID: "0123456789ab", Started: time.Unix(1700000000, 0)},
		Parallel: parallel, QueueBytes: queue, Progress: prog,
	})
	assert.NilError(t, err)
	return p
}

// entries are an archive's tar entries but the manifest, which holds the
// finishing time.
func entries(t *testing.T, p string) []string {
	t.Helper()
	f, err := os.Open(p)
	assert.NilError(t, err)
	defer f.Close()
	var out []string
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		assert.NilError(t, err)
		if strings.HasSuffix(h.Name, archive.ManifestName) {
			continue
		}
		body, err := io.ReadAll(tr)
		assert.NilError(t, err)
		out = append(out, h.Name+"\x00"+string(body))
	}
}

// Tables read at once, through queues small enough that readers wait for
// the writer, give the archive a serial dump gives, entry for entry.
func TestParallelDumpWritesTheSerialArchive(t *testing.T) {
	t.Parallel()
	srv := startTLS(t)
	dtrtest.Seed(t, srv.driver)
	seedBulk(t, srv.driver, 3000) // several server batches in one table
	serial := dumpWith(t, srv, 1, 0, nil)
	var c counted
	parallel := dumpWith(t, srv, 4, 1, &c) // a queue of 2 batches
	_, rep := verifyFile(t, parallel)
	assert.Assert(t, rep.Rows > 0)
	assert.Equal(t, c.rows.Load(), rep.Rows)
	assert.Equal(t, c.bytes.Load(), rep.Bytes)
	want, got := entries(t, serial), entries(t, parallel)
	assert.Equal(t, len(got), len(want))
	for i := range want {
		assert.Equal(t, got[i], want[i], "entry %d", i)
	}
}

// A table that fails while others are read ahead ends the dump with its
// error, and no reader is left running.
func TestParallelDumpStopsOnAReadError(t *testing.T) {
	srv := startTLS(t)
	dtrtest.Seed(t, srv.driver)
	s := connect(t, srv.opts)
	// The table vanishes between listing and reading: its scan fails.
	fail := &dropOnStep{srv: srv}
	_, err := Backup(context.Background(), s, io.Discard, BackupOptions{
		Info: archive.Info{Tool: "test", DTRVersion: "2.9.4"}, Parallel: 3, QueueBytes: 1, Progress: fail,
	})
	assert.ErrorContains(t, err, "dtr2.tags")
	// Backup waited for its readers (the driver's pool keeps its own).
	buf := make([]byte, 1<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	assert.Assert(t, !strings.Contains(stacks, "metadata.readTable") && !strings.Contains(stacks, "metadata.dump"), stacks)
}

// dropOnStep drops dtr2.tags when the first table has been written.
type dropOnStep struct {
	srv     server
	dropped bool
}

func (d *dropOnStep) Step(string, ...any) {
	if !d.dropped {
		d.dropped = true
		_, _ = r.DB("dtr2").TableDrop("tags").RunWrite(d.srv.driver)
	}
}
