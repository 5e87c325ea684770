package imagearchive

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkVerifyStream verifies a synthetic registry-shaped image backup
// (the e2e benchmarks' shape: 3,000 small blobs and four large layers, a
// link file for each, 256 MiB in all) from a
// file in the page cache, in turn with its limit: SHA-256 of the same
// file, one pass. It reports the verify's throughput as a fraction of the
// limit's (1.0 = as fast as hashing the file once). A restore verifies the
// whole backup before it touches anything, so this is a fixed share of
// every restore's time against the engine's write:
//
//	go test -run '^$' -bench VerifyStream -benchtime 5x ./pkg/imagearchive
func BenchmarkVerifyStream(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	var files []volumeFile
	add := func(size int) {
		f := blob(string(randomBytes(rng, size)))
		digest := f.name[len("docker/registry/v2/blobs/sha256/xx/"):][:64]
		files = append(files, f, volumeFile{
			name: fmt.Sprintf("docker/registry/v2/repositories/bench/r%d/_layers/sha256/%s/link", len(files), digest),
			data: []byte("sha256:" + digest),
		})
	}
	// The e2e benchmarks' registry shape: a fifth of the bytes in small
	// blobs (configs, manifests: 512 B to 64 KiB), the rest in four large
	// layers.
	const size = 256 << 20
	for small := size / 5; small > 0; {
		n := min(512<<rng.IntN(8)+rng.IntN(512), small)
		add(n)
		small -= n
	}
	for i := 0; i < 4; i++ {
		add((size - size/5) / 4)
	}
	path := filepath.Join(b.TempDir(), "images.tar")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := Write(f, bytes.NewReader(volumeTar(b, files...)), info, nil); err != nil {
		b.Fatal(err)
	}
	st, err := f.Stat()
	if err != nil {
		b.Fatal(err)
	}
	f.Close()

	verify := func() {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		rep, err := VerifyStream(FileSource(f))
		if err != nil || !rep.OK() {
			b.Fatalf("%v %+v", err, rep)
		}
	}
	limit := func() {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			b.Fatal(err)
		}
	}
	verify() // the file into the page cache
	timed := func(step func()) time.Duration {
		start := time.Now()
		step()
		return time.Since(start)
	}
	var ours, sha time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%2 == 0 { // neither always first
			ours += timed(verify)
			sha += timed(limit)
		} else {
			sha += timed(limit)
			ours += timed(verify)
		}
	}
	b.StopTimer()
	mb := float64(st.Size()) / 1e6 * float64(b.N)
	b.ReportMetric(mb/ours.Seconds(), "verify-MB/s")
	b.ReportMetric(mb/sha.Seconds(), "sha256-MB/s")
	b.ReportMetric(sha.Seconds()/ours.Seconds(), "verify/sha256")
}
