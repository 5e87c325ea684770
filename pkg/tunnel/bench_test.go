package tunnel

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
	"gotest.tools/v3/assert"
)

// BenchmarkStream measures one stream's download through the agent and the
// multiplexer, over a loopback TCP connection standing in for the attach
// stream, against the same bytes read from the source directly (the limit).
func BenchmarkStream(b *testing.B) {
	const size = 64 << 20
	chunk := make([]byte, 1<<20)
	src, err := net.Listen("tcp", "127.0.0.1:0")
	assert.NilError(b, err)
	defer src.Close()
	go func() {
		for {
			c, err := src.Accept()
			if err != nil {
				return
			}
			go func() {
				for sent := 0; sent < size; sent += len(chunk) {
					if _, err := c.Write(chunk); err != nil {
						break
					}
				}
				c.Close()
			}()
		}
	}()

	// the "attach connection"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	assert.NilError(b, err)
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		Serve(c, src.Addr().String(), io.Discard)
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	assert.NilError(b, err)
	sess, err := yamux.Client(conn, muxConfig())
	assert.NilError(b, err)
	defer sess.Close()

	var direct, tunnel time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		c, err := net.Dial("tcp", src.Addr().String())
		assert.NilError(b, err)
		n, _ := io.Copy(io.Discard, c)
		assert.Equal(b, n, int64(size))
		c.Close()
		t1 := time.Now()
		s, err := sess.OpenStream()
		assert.NilError(b, err)
		assert.NilError(b, readStatus(s))
		n, _ = io.Copy(io.Discard, s)
		assert.Equal(b, n, int64(size))
		s.Close()
		direct += t1.Sub(t0)
		tunnel += time.Since(t1)
	}
	mb := float64(size) / 1e6 * float64(b.N)
	b.ReportMetric(mb/direct.Seconds(), "direct-MB/s")
	b.ReportMetric(mb/tunnel.Seconds(), "tunnel-MB/s")
	b.ReportMetric(direct.Seconds()/tunnel.Seconds(), "tunnel/direct")
}
