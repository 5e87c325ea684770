package metadata

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/rethinkserver"
	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"github.com/docker-dtr/docker-dtr/pkg/rethink"
	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
)

type countingWriter struct{ n atomic.Int64 }

func (w *countingWriter) Write(p []byte) (int, error) { w.n.Add(int64(len(p))); return len(p), nil }

// peakHeap runs fn and returns how far the live heap rose above where it
// started, sampled while fn runs.
func peakHeap(fn func()) uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > peak.Load() {
				peak.Store(m.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	fn()
	close(stop)
	wg.Wait()
	if peak.Load() < base {
		return 0
	}
	return peak.Load() - base
}

// The server is the real RethinkDB in a process of its own, so the heap
// measured is the dump's alone.
func TestBackupHeapDoesNotGrowWithRows(t *testing.T) {
	if testing.Short() {
		t.Skip("inserts 220,000 rows")
	}
	srv := rethinkserver.Start(t, rethinkserver.Options{})
	// The seeding session is closed before the dumps: its connections keep
	// buffers the size of their largest query, which would stay in the
	// heap the dumps are measured against and raise the GC's goal.
	co := srv.ConnectOpts()
	co.MaxOpen = 4
	driver, err := r.Connect(co)
	assert.NilError(t, err)
	payload := strings.Repeat("x", 400)
	// Four writers with soft durability, as a restore writes: the test is
	// about the dump, not the disk.
	fill := func(table string, rows int) {
		_, err := r.DB("dtr2").TableCreate(table).RunWrite(driver)
		assert.NilError(t, err)
		starts := make(chan int)
		errs := make(chan error, 4)
		for range 4 {
			go func() {
				var err error
				for start := range starts {
					batch := make([]any, 0, 5000)
					for i := start; i < min(start+5000, rows); i++ {
						batch = append(batch, map[string]any{"id": fmt.Sprintf("%s-%07d", table, i), "published_at": time.Unix(int64(i), 0), "payload": payload})
					}
					res, werr := r.DB("dtr2").Table(table).Insert(batch, r.InsertOpts{Durability: "soft"}).RunWrite(driver)
					if werr == nil && res.Inserted != len(batch) {
						werr = fmt.Errorf("inserted %d of %d: %s", res.Inserted, len(batch), res.FirstError)
					}
					if err == nil {
						err = werr
					}
				}
				errs <- err
			}()
		}
		for start := 0; start < rows; start += 5000 {
			starts <- start
		}
		close(starts)
		for range 4 {
			assert.NilError(t, <-errs)
		}
	}
	_, err = r.DBCreate("dtr2").RunWrite(driver)
	assert.NilError(t, err)

	s, err := rethink.Connect(context.Background(), rethink.Options{Addr: srv.Addr})
	assert.NilError(t, err)
	defer s.Close()
	dump := func(exclude string) (uint64, int64, int64) {
		var out countingWriter
		var m *archive.Manifest
		grew := peakHeap(func() {
			m, err = Backup(context.Background(), s, &out, BackupOptions{
				Info:    archive.Info{DTRVersion: "2.9.4"},
				Exclude: []archive.Exclusion{{DB: "dtr2", Table: exclude, Reason: "test"}},
			})
			assert.NilError(t, err)
		})
		rows, _ := m.Rows()
		return grew, rows, out.n.Load()
	}

	fill("small", 20_000)
	fill("large", 200_000)
	driver.Close()
	smallHeap, smallRows, _ := dump("large")
	largeHeap, largeRows, largeBytes := dump("small")
	assert.Equal(t, smallRows, int64(20_000))
	assert.Equal(t, largeRows, int64(200_000))
	t.Logf("heap growth: %d KiB for 20,000 rows, %d KiB for 200,000 rows (%d MiB archive)", smallHeap>>10, largeHeap>>10, largeBytes>>20)

	// Holding the table would need more than its 80 MiB of documents.
	const bound = 32 << 20
	assert.Assert(t, largeHeap < bound, "heap grew %d MiB dumping 200,000 rows", largeHeap>>20)
	// Ten times the rows, about the same heap: nothing grows with the row count.
	assert.Assert(t, largeHeap < 2*smallHeap+8<<20, "heap %d KiB for 200k rows vs %d KiB for 20k", largeHeap>>10, smallHeap>>10)
}
