package metadata

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/rethinkserver"
	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"github.com/docker-dtr/docker-dtr/pkg/rethink"
)

// benchWriters is the plugin's default --writers.
const benchWriters = 4

// BenchmarkRestore measures MakePlan+Restore of an archive of the generated
// data into an empty server against its limit: the same documents, held in
// memory in the batches Restore makes (500 rows or 4 MiB, one table a
// batch), inserted by as many writers through rethink.Session.Insert (soft
// durability, as Restore), into tables created bare, then, as Restore does,
// every table synced and its secondary indexes created from the same saved
// functions, then waited for: the server's own copy of the same tables,
// same indexes, same durability. index-s says how long the limit's syncs
// and indexes took of that. Both run in every iteration into the same server emptied
// first, alternating which goes first; ns/op is Restore's. The server is
// the real RethinkDB with mutual TLS, as DTR's; shared and pinned are the
// cpuModes.
func BenchmarkRestore(b *testing.B) {
	ld := loadedWith(b, benchRows(b))
	ctx := context.Background()

	// The archive, made once from the loaded data; the source server
	// is gone before anything is measured.
	path := filepath.Join(b.TempDir(), "backup-metadata.tar")
	srcServer := ld.start(b, "")
	src := benchConnect(b, srcServer, 1)
	w, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := Backup(ctx, src, w, BackupOptions{Info: archive.Info{Tool: "bench", DTRVersion: "2.9.4"}}); err != nil {
		b.Fatal(err)
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	srcServer.Stop()
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	rep, err := archive.Verify(f)
	if err != nil {
		b.Fatal(err)
	}

	// The limit's input: the archive's documents in Restore's batches.
	var batches []restoreBatch
	var rows, docBytes int64
	tables := map[string]archive.Table{}
	for _, st := range rep.Tables {
		t, _ := rep.Table(st.Dir)
		tables[st.Dir] = t
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		b.Fatal(err)
	}
	rd := archive.NewReader(f, rep.VersionDir)
	var cur restoreBatch
	size := 0
	for {
		dir, doc, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		t := tables[dir]
		ref := rethink.TableRef{DB: t.DB, Table: t.Name}
		if ref != cur.ref && len(cur.docs) > 0 || len(cur.docs) >= 500 || size+len(doc) > 4<<20 && len(cur.docs) > 0 {
			batches = append(batches, cur)
			cur, size = restoreBatch{}, 0
		}
		cur.ref = ref
		cur.docs = append(cur.docs, append([]byte(nil), doc...))
		size += len(doc)
		rows++
		docBytes += int64(len(doc))
	}
	batches = append(batches, cur)

	runModes(b, func(b *testing.B, m cpuMode) {
		benchRestore(b, m, f, rep, tables, batches, rows, docBytes)
	})
}

// restoreBatch is a batch of the limit: documents of one table.
type restoreBatch struct {
	ref  rethink.TableRef
	docs [][]byte
}

func benchRestore(b *testing.B, m cpuMode, f *os.File, rep *archive.Report, tables map[string]archive.Table, batches []restoreBatch, rows, docBytes int64) {
	ctx := context.Background()
	srv := rethinkserver.Start(b, rethinkserver.Options{TLS: true, CPUs: m.server})
	s := benchConnect(b, srv, benchWriters+1)
	empty := func() {
		dbs, err := s.DBList(ctx)
		if err != nil {
			b.Fatal(err)
		}
		for _, db := range dbs {
			if db != rethink.SystemDB {
				if err := s.DBDrop(ctx, db); err != nil {
					b.Fatal(err)
				}
			}
		}
	}

	var ours, limit, indexes time.Duration
	restore := func() {
		empty()
		start := time.Now()
		b.StartTimer()
		plan, err := MakePlan(ctx, s, rep)
		if err != nil {
			b.Fatal(err)
		}
		res, err := Restore(ctx, s, f, rep, plan, RestoreOptions{Writers: benchWriters})
		b.StopTimer()
		ours += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		var n int64
		for _, t := range res {
			n += t.Rows
		}
		if n != rows {
			b.Fatalf("restored %d rows of %d", n, rows)
		}
	}
	bare := func() {
		empty()
		start := time.Now()
		created := map[string]bool{}
		for _, t := range rep.Tables {
			def := tables[t.Dir]
			if !created[def.DB] {
				if err := s.DBCreate(ctx, def.DB); err != nil {
					b.Fatal(err)
				}
				created[def.DB] = true
			}
			if err := s.TableCreate(ctx, rethink.TableRef{DB: def.DB, Table: def.Name}, def.PrimaryKey, nil); err != nil {
				b.Fatal(err)
			}
		}
		work := make(chan restoreBatch, benchWriters)
		var wg sync.WaitGroup
		var errOnce sync.Once
		var werr error
		for range benchWriters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for bt := range work {
					if _, err := s.Insert(ctx, bt.ref, bt.docs); err != nil {
						errOnce.Do(func() { werr = err })
					}
				}
			}()
		}
		for _, bt := range batches {
			work <- bt
		}
		close(work)
		wg.Wait()
		if werr != nil {
			b.Fatal(werr)
		}
		// As Restore: each table synced and its indexes started, then
		// every index waited for (RethinkDB builds them in the background).
		ixStart := time.Now()
		for _, t := range rep.Tables {
			def := tables[t.Dir]
			ref := rethink.TableRef{DB: def.DB, Table: def.Name}
			if err := s.Sync(ctx, ref); err != nil {
				b.Fatal(err)
			}
			for _, ix := range def.Indexes {
				if err := s.IndexCreate(ctx, ref, ix.Name, ix.Function); err != nil {
					b.Fatal(err)
				}
			}
		}
		for _, t := range rep.Tables {
			def := tables[t.Dir]
			if len(def.Indexes) > 0 {
				if _, err := s.IndexWait(ctx, rethink.TableRef{DB: def.DB, Table: def.Name}); err != nil {
					b.Fatal(err)
				}
			}
		}
		limit += time.Since(start)
		indexes += time.Since(ixStart)
	}
	m.pinClient(b)
	b.ResetTimer()
	b.StopTimer()
	for i := range b.N {
		if i%2 == 0 {
			restore()
			bare()
		} else {
			bare()
			restore()
		}
	}
	per := time.Duration(b.N)
	report(b, rows, docBytes, ours/per, limit/per)
	b.ReportMetric((indexes / per).Seconds(), "index-s")
	b.ReportMetric(float64(rows), "rows")
}
