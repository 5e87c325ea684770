package metadata

import (
	"context"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/archive"
)

// BenchmarkDump measures Backup against its limit: a bare cursor scan of the
// same tables through the same session, the documents discarded. Both run
// in every iteration, alternating which goes first; ns/op is Backup's.
//
// The archive goes to io.Discard (through a counter): the limit writes
// nothing, so a file would add the disk to one side only; writing a file is
// the page cache's work, and the plugin's memory benchmark writes one.
func BenchmarkDump(b *testing.B) {
	ls := loadedWith(b, benchRows(b))
	ctx := context.Background()
	parallel := benchParallel(b)
	s := benchConnect(b, ls.proc.Addr(), parallel)
	refs, err := s.Tables(ctx)
	if err != nil {
		b.Fatal(err)
	}
	var rows, docBytes, archiveBytes int64
	var ours, limit time.Duration
	dump := func() {
		var out countingWriter
		start := time.Now()
		m, err := Backup(ctx, s, &out, BackupOptions{Info: archive.Info{Tool: "bench", DTRVersion: "2.9.4"}, Parallel: parallel})
		if err != nil {
			b.Fatal(err)
		}
		ours += time.Since(start)
		n, _ := m.Rows()
		if n != ls.stats.Rows {
			b.Fatalf("backup holds %d rows, the server %d", n, ls.stats.Rows)
		}
		archiveBytes = out.n.Load()
	}
	scan := func() {
		var n, size int64
		start := time.Now()
		for _, ref := range refs {
			err := s.Scan(ctx, ref, func(doc []byte) error {
				n++
				size += int64(len(doc))
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		limit += time.Since(start)
		rows, docBytes = n, size
	}
	b.ResetTimer()
	b.StopTimer()
	for i := range b.N {
		if i%2 == 0 {
			b.StartTimer()
			dump()
			b.StopTimer()
			scan()
		} else {
			scan()
			b.StartTimer()
			dump()
			b.StopTimer()
		}
	}
	per := time.Duration(b.N)
	report(b, rows, docBytes, ours/per, limit/per)
	b.ReportMetric(float64(archiveBytes)/1e6/(ours/per).Seconds(), "archive-MB/s")
	b.ReportMetric(float64(rows), "rows")
}
