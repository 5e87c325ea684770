package atomicfile

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"gotest.tools/v3/assert"
)

func names(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	assert.NilError(t, err)
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func TestCommitRenamesA0600File(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "backup.tar")
	assert.NilError(t, os.WriteFile(target, []byte("old"), 0o644))
	f, err := Create(target)
	assert.NilError(t, err)
	_, err = f.WriteString("new")
	assert.NilError(t, err)
	b, _ := os.ReadFile(target)
	assert.Equal(t, string(b), "old", "the target is untouched until Commit")
	assert.NilError(t, f.Commit())
	f.Abort() // after Commit: no effect
	b, _ = os.ReadFile(target)
	assert.Equal(t, string(b), "new")
	st, _ := os.Stat(target)
	assert.Equal(t, st.Mode().Perm(), os.FileMode(0o600))
	assert.DeepEqual(t, names(t, dir), []string{"backup.tar"})
}

func TestAbortLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	f, err := Create(filepath.Join(dir, "backup.tar"))
	assert.NilError(t, err)
	_, err = f.WriteString("partial")
	assert.NilError(t, err)
	f.Abort()
	assert.Equal(t, len(names(t, dir)), 0)
}

func TestCreateRefusesDirectoriesAndMissingParents(t *testing.T) {
	dir := t.TempDir()
	_, err := Create(dir)
	assert.ErrorContains(t, err, "is a directory")
	_, err = Create(filepath.Join(dir, "missing", "backup.tar"))
	assert.ErrorContains(t, err, "cannot write")
}

// TestSyncBehind writes past SyncBehind twice, by Write, WriteString and
// io.Copy: syncs run in the background while it writes, and the file
// committed or aborted after them is whole or gone.
func TestSyncBehind(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "backup.tar")
	f, err := Create(target)
	assert.NilError(t, err)
	chunk := bytes.Repeat([]byte("x"), SyncBehind/4+1)
	var want []byte
	for range 4 {
		_, err := f.Write(chunk)
		assert.NilError(t, err)
		want = append(want, chunk...)
	}
	assert.Assert(t, f.behind != nil, "a sync runs behind the writes")
	_, err = f.WriteString(string(chunk))
	assert.NilError(t, err)
	_, err = io.Copy(f, struct{ io.Reader }{bytes.NewReader(bytes.Repeat(chunk, 4))}) // through ReadFrom
	assert.NilError(t, err)
	want = append(want, bytes.Repeat(chunk, 5)...)
	assert.Equal(t, f.unsynced < SyncBehind, true, "io.Copy counted: %d", f.unsynced)
	assert.NilError(t, f.Commit())
	got, err := os.ReadFile(target)
	assert.NilError(t, err)
	assert.Assert(t, bytes.Equal(got, want), "%d bytes, want %d", len(got), len(want))

	f, err = Create(filepath.Join(dir, "other.tar"))
	assert.NilError(t, err)
	_, err = f.Write(bytes.Repeat(chunk, 4))
	assert.NilError(t, err)
	f.Abort()
	assert.DeepEqual(t, names(t, dir), []string{"backup.tar"})
}

// BenchmarkCommit writes 512 MiB and commits it, against the same bytes
// written to a plain file and fsynced at the end: at full speed (the
// worst case for syncs behind the writes, which then contend with them),
// and at 150 MB/s, the pace of a backup through the Docker API, where the
// syncs behind take the final sync's wait off the end. commit/plain
// above 1 is faster than the plain file.
//
//	go test -run '^$' -bench Commit -benchtime 5x ./pkg/atomicfile
func BenchmarkCommit(b *testing.B) {
	for _, pace := range []struct {
		name string
		mbps float64 // 0: as fast as it goes
	}{{"full-speed", 0}, {"150MB/s", 150}} {
		b.Run(pace.name, func(b *testing.B) { benchCommit(b, pace.mbps) })
	}
}

func benchCommit(b *testing.B, mbps float64) {
	dir := b.TempDir()
	chunk := bytes.Repeat([]byte{0x5a}, 256<<10)
	const total = 512 << 20
	write := func(w io.Writer) {
		start := time.Now()
		for n := 0; n < total; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				b.Fatal(err)
			}
			if mbps > 0 {
				due := time.Duration(float64(n+len(chunk)) / (mbps * 1e6) * float64(time.Second))
				time.Sleep(due - time.Since(start))
			}
		}
	}
	var ours, plain time.Duration
	for i := range b.N {
		runs := []func(){
			func() {
				start := time.Now()
				f, err := Create(filepath.Join(dir, "ours.tar"))
				assert.NilError(b, err)
				write(f)
				assert.NilError(b, f.Commit())
				ours += time.Since(start)
			},
			func() {
				start := time.Now()
				f, err := os.Create(filepath.Join(dir, "plain.tar"))
				assert.NilError(b, err)
				write(f)
				assert.NilError(b, f.Sync())
				assert.NilError(b, f.Close())
				plain += time.Since(start)
			},
		}
		if i%2 == 1 {
			runs[0], runs[1] = runs[1], runs[0]
		}
		for _, r := range runs {
			r()
		}
	}
	b.ReportMetric(plain.Seconds()/ours.Seconds(), "commit/plain")
	b.ReportMetric(float64(total)/1e6*float64(b.N)/ours.Seconds(), "commit-MB/s")
}
