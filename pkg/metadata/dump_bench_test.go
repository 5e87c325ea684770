package metadata

import (
	"context"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/archive"
)

// BenchmarkDump measures Backup against its limit: a bare cursor scan of the
// same tables through the same session, one table after another (one
// connection at a time), the documents discarded. Both run in every
// iteration, alternating which goes first; ns/op is Backup's. The server
// is the real RethinkDB with mutual TLS, as DTR's; shared and pinned are
// the cpuModes.
//
// The archive goes to io.Discard (through a counter): the limit writes
// nothing, so a file would add the disk to one side only; writing a file is
// the page cache's work, and the plugin's memory benchmark writes one.
func BenchmarkDump(b *testing.B) {
	ld := loadedWith(b, benchRows(b))
	runModes(b, func(b *testing.B, m cpuMode) { benchDump(b, ld, m) })
}

func benchDump(b *testing.B, ld *loadedData, m cpuMode) {
	ctx := context.Background()
	parallel := benchParallel(b)
	srv := ld.start(b, m.server)
	s := benchConnect(b, srv, parallel)
	refs, err := s.Tables(ctx)
	if err != nil {
		b.Fatal(err)
	}
	var rows, docBytes, archiveBytes int64
	var ours, limit time.Duration
	dump := func() {
		var out countingWriter
		start := time.Now()
		man, err := Backup(ctx, s, &out, BackupOptions{Info: archive.Info{Tool: "bench", DTRVersion: "2.9.4"}, Parallel: parallel})
		if err != nil {
			b.Fatal(err)
		}
		ours += time.Since(start)
		n, _ := man.Rows()
		if n != ld.stats.Rows {
			b.Fatalf("backup holds %d rows, the server %d", n, ld.stats.Rows)
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
	m.pinClient(b)
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
