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
func BenchmarkVerify(b *testing.B) {
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
	pad := strings.Repeat("x", 300)
	for _, tb := range tables {
		if err := w.BeginTable(tb); err != nil {
			b.Fatal(err)
		}
		for i := range 20000 {
			if err := w.WriteDocument(fmt.Appendf(nil, `{%q:"%d","payload":%q,"n":[1,2,3]}`, tb.PrimaryKey, i, pad)); err != nil {
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
	var limitTotal time.Duration
	b.ResetTimer()
	for b.Loop() {
		f, err := os.Open(p)
		if err != nil {
			b.Fatal(err)
		}
		rep, err := Verify(f)
		f.Close()
		if err != nil || !rep.OK() {
			b.Fatal(err, rep.Problems)
		}
		b.StopTimer()
		limitTotal += limit()
		b.StartTimer()
	}
	b.ReportMetric(float64(limitTotal)/float64(b.Elapsed()), "ratio-to-sha256")
}
