package tunnel

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
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

// The relay exits when its plugin's side closes, even with a stream open
// to RethinkDB, and when the plugin goes silent: the multiplexer's pings
// are what keeps it, so a session that sends none loses it.
func TestServeStdioEndsWithThePlugin(t *testing.T) {
	target := echoServer(t)
	start := func(idle time.Duration, keepalive bool) (*yamux.Session, *io.PipeWriter, chan error) {
		inR, inW := io.Pipe()
		outR, outW := io.Pipe()
		done := make(chan error, 1)
		go func() { done <- ServeStdio(inR, outW, target, io.Discard, idle) }()
		cfg := muxConfig()
		cfg.EnableKeepAlive = keepalive
		cfg.KeepAliveInterval = idle / 4
		sess, err := yamux.Client(stdio{Reader: outR, Writer: inW, close: func() error { inW.Close(); return outR.Close() }}, cfg)
		assert.NilError(t, err)
		t.Cleanup(func() { sess.Close() })
		s, err := sess.OpenStream()
		assert.NilError(t, err)
		assert.NilError(t, readStatus(s))
		return sess, inW, done
	}
	t.Run("end of input", func(t *testing.T) {
		_, in, done := start(time.Hour, true)
		in.Close()
		select {
		case err := <-done:
			assert.NilError(t, err)
		case <-time.After(5 * time.Second):
			t.Fatal("the agent outlived its plugin's connection")
		}
	})
	t.Run("pings hold it", func(t *testing.T) {
		_, _, done := start(400*time.Millisecond, true)
		select {
		case err := <-done:
			t.Fatalf("the agent left a plugin that pings: %v", err)
		case <-time.After(2 * time.Second):
		}
	})
	t.Run("silence", func(t *testing.T) {
		_, _, done := start(400*time.Millisecond, false)
		select {
		case err := <-done:
			assert.ErrorContains(t, err, "no word from the plugin")
		case <-time.After(5 * time.Second):
			t.Fatal("the agent outlived a silent plugin")
		}
	})
}
