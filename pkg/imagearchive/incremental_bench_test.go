package imagearchive

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkIncrementalImageBackup writes a full backup of a synthetic
// registry volume (400 blobs of 256 KiB, 100 MiB, with a link file per
// blob as a registry writes them), then adds 5 % new blobs and writes a full
// and an incremental backup of the grown volume, to files. It reports the
// incremental backup's time and size as fractions of the full one's. (At
// the pkg/imagearchive level: pushing 400 layers through the fixture's
// registry would take minutes; the engine's archive API reads the volume
// whole for both kinds alike.)
func BenchmarkIncrementalImageBackup(b *testing.B) {
	const blobs, blobSize, newPercent = 400, 256 << 10, 5
	var files []volumeFile
	add := func(n int) {
		for i := 0; i < n; i++ {
			data := make([]byte, blobSize)
			rand.Read(data)
			f := blob(string(data))
			files = append(files, f, volumeFile{
				name: fmt.Sprintf("docker/registry/v2/repositories/bench/r%d/_layers/sha256/%s/link", len(files), f.name[len("docker/registry/v2/blobs/sha256/xx/"):][:64]),
				data: []byte("sha256:" + f.name[len("docker/registry/v2/blobs/sha256/xx/"):][:64]),
			})
		}
	}
	add(blobs)
	before := volumeTar(b, files...)
	add(blobs * newPercent / 100)
	after := volumeTar(b, files...)
	dir := b.TempDir()

	writeTo := func(name string, vol []byte, since []*Base) (time.Duration, int64) {
		p := filepath.Join(dir, name)
		f, err := os.Create(p)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		in := info
		in.Since = since
		start := time.Now()
		if _, err := Write(f, bytes.NewReader(vol), in, nil); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		d := time.Since(start)
		st, err := f.Stat()
		if err != nil {
			b.Fatal(err)
		}
		return d, st.Size()
	}
	writeTo("base.tar", before, nil)
	var fullTime, incTime time.Duration
	var fullSize, incSize int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d, n := writeTo("full.tar", after, nil)
		fullTime += d
		fullSize = n
		start := time.Now()
		f, err := os.Open(filepath.Join(dir, "base.tar"))
		if err != nil {
			b.Fatal(err)
		}
		base, err := OpenBase(f, f.Name())
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		open := time.Since(start)
		d, n = writeTo("inc.tar", after, []*Base{base})
		incTime += open + d
		incSize = n
	}
	b.StopTimer()
	b.ReportMetric(float64(fullTime.Milliseconds())/float64(b.N), "full-ms")
	b.ReportMetric(float64(incTime.Milliseconds())/float64(b.N), "incr-ms")
	b.ReportMetric(float64(incTime)/float64(fullTime), "time-ratio")
	b.ReportMetric(float64(fullSize)/(1<<20), "full-MiB")
	b.ReportMetric(float64(incSize)/(1<<20), "incr-MiB")
	b.ReportMetric(float64(incSize)/float64(fullSize), "size-ratio")
}
