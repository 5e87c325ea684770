package archive

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkVerify reports verify's throughput and its ratio to the limit
// measured in the same run: SHA-256 of the same bytes read from the same file.
// DTR's tables hold documents of very different sizes (events and scan data
// most of all), so it runs with small, medium and large documents.
func BenchmarkVerify(b *testing.B) {
	for _, bc := range []struct {
		name     string
		docSize  int // approximate bytes per document
		perTable int
		typed    bool // a TIME and a BINARY before the key, as RethinkDB sorts fields
	}{
		{"doc=380B", 380, 20000, false},
		{"doc=3KiB", 3 << 10, 6000, false},
		{"doc=50B", 50, 20000, false},
		{"doc=380B,typed", 380, 20000, true},
	} {
		b.Run(bc.name, func(b *testing.B) { benchVerify(b, bc.docSize, bc.perTable, bc.typed) })
	}
}

func benchVerify(b *testing.B, docSize, perTable int, typed bool) {
	p := filepath.Join(b.TempDir(), "bench.tar")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	tables := sampleTables()
	w, err := NewWriter(f, Info{DTRVersion: "2.9.4", Started: time.Now()}, Definitions{Tables: tables})
	if err != nil {
		b.Fatal(err)
	}
	for _, tb := range tables {
		if err := w.BeginTable(tb); err != nil {
			b.Fatal(err)
		}
		// {"<pk>":"<i>","payload":"xxx…","n":[1,2,3]} is about 42 bytes
		// plus the padding.
		pad := strings.Repeat("x", max(docSize-42-len(tb.PrimaryKey), 0))
		if typed {
			pad = pad[min(len(pad), 110):]
		}
		for i := range perTable {
			doc := fmt.Appendf(nil, `{%q:"%d","payload":%q,"n":[1,2,3]}`, tb.PrimaryKey, i, pad)
			if typed {
				doc = fmt.Appendf(nil, `{"created_at":{"$reql_type$":"TIME","epoch_time":1709205255.25,"timezone":"+02:00"},"digest":{"$reql_type$":"BINARY","data":"AAEC/v8DAQ=="},%q:"%d","payload":%q,"n":[1,2,3]}`, tb.PrimaryKey, i, pad)
			}
			if err := w.WriteDocument(doc); err != nil {
				b.Fatal(err)
			}
		}
	}
	if _, err := w.Finish(nil, time.Now()); err != nil {
		b.Fatal(err)
	}
	f.Close()
	st, _ := os.Stat(p)
	b.SetBytes(st.Size())

	limit := func() time.Duration {
		start := time.Now()
		f, _ := os.Open(p)
		defer f.Close()
		h := sha256.New()
		io.Copy(h, f)
		return time.Since(start)
	}
	var limitTotal, cpuTotal, limitCPU time.Duration
	b.ResetTimer()
	for b.Loop() {
		f, err := os.Open(p)
		if err != nil {
			b.Fatal(err)
		}
		cpu0 := cpuTime()
		rep, err := Verify(f)
		cpuTotal += cpuTime() - cpu0
		f.Close()
		if err != nil || !rep.OK() {
			b.Fatal(err, rep.Problems)
		}
		b.StopTimer()
		cpu0 = cpuTime()
		limitTotal += limit()
		limitCPU += cpuTime() - cpu0
		b.StartTimer()
	}
	b.ReportMetric(float64(limitTotal)/float64(b.Elapsed()), "ratio-to-sha256")
	// The same ratio in CPU time, all threads: Verify runs on more than
	// one core where it can, and CPU time is less disturbed by other load.
	if cpuTotal > 0 {
		b.ReportMetric(float64(limitCPU)/float64(cpuTotal), "cpu-ratio-to-sha256")
	}
}
