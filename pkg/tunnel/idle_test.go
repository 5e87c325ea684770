package tunnel

import (
	"io"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// A plugin that keeps talking keeps its agent; one that goes silent, or
// whose connection ends, loses it within the bound.
func TestWatch(t *testing.T) {
	const idle = 300 * time.Millisecond
	t.Run("keepalives hold it", func(t *testing.T) {
		pr, pw := io.Pipe()
		stop := make(chan struct{})
		go KeepAliveWriter(pw, idle/4, stop)
		r, w := Watch(pr, idle)
		go io.Copy(io.Discard, r)
		select {
		case <-w.Done():
			t.Fatalf("gone while the plugin talks: %s", w.Why())
		case <-time.After(4 * idle):
		}
		close(stop)
		began := time.Now()
		select {
		case <-w.Done():
		case <-time.After(4 * idle):
			t.Fatal("still there after the plugin went silent")
		}
		assert.Check(t, time.Since(began) < 2*idle, "gone within the bound: %s", time.Since(began))
		assert.Check(t, is.Contains(w.Why(), "no word from the plugin"))
		pw.Close()
	})
	t.Run("end of input", func(t *testing.T) {
		pr, pw := io.Pipe()
		r, w := Watch(pr, time.Hour)
		go io.Copy(io.Discard, r)
		pw.Close()
		select {
		case <-w.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("still there after its input ended")
		}
		assert.Equal(t, w.Why(), "the plugin's connection ended")
	})
	t.Run("hold", func(t *testing.T) {
		assert.Equal(t, Hold(strings.NewReader("\n\n"), time.Hour), "the plugin's connection ended")
		pr, pw := io.Pipe()
		defer pw.Close()
		assert.Check(t, is.Contains(Hold(pr, idle), "no word from the plugin"))
	})
}

// A reader held up by its consumer (Busy) is not a silent plugin: the
// bound counts again once it is free.
func TestWatchBusy(t *testing.T) {
	const idle = 200 * time.Millisecond
	pr, pw := io.Pipe()
	defer pw.Close()
	_, w := Watch(pr, idle)
	w.Busy(true)
	select {
	case <-w.Done():
		t.Fatalf("gone while its reader was busy: %s", w.Why())
	case <-time.After(4 * idle):
	}
	w.Busy(false)
	select {
	case <-w.Done():
		assert.Check(t, is.Contains(w.Why(), "no word from the plugin"))
	case <-time.After(10 * idle):
		t.Fatal("a silent plugin kept its agent once the reader was free")
	}
}
