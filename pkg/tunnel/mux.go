// Package tunnel reaches a DTR replica's RethinkDB, which listens only on the
// dtr-ol overlay, from wherever the Docker CLI runs: a short-lived helper
// container on the replica's node runs this plugin's binary as an agent, and
// TCP streams travel multiplexed over the container's attach connection.
package tunnel

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
)

// muxConfig is shared by both ends. Windows are large because RethinkDB
// sends batches of about a megabyte; the write timeout is long because the
// attach connection can stall behind a busy engine without being broken.
func muxConfig() *yamux.Config {
	c := yamux.DefaultConfig()
	c.MaxStreamWindowSize = 4 << 20
	c.ConnectionWriteTimeout = time.Minute
	c.KeepAliveInterval = KeepAlive
	c.LogOutput = io.Discard
	return c
}

// Each stream starts with one status line from the agent, "ok" or
// "error <reason>", so a failed dial on the far side reaches the user as a
// reason rather than an EOF.
const maxStatusLine = 1024

func writeStatus(w io.Writer, err error) error {
	line := "ok\n"
	if err != nil {
		line = "error " + strings.ReplaceAll(err.Error(), "\n", " ") + "\n"
	}
	_, werr := io.WriteString(w, line)
	return werr
}

// readStatus reads the status line byte by byte, so nothing of the relayed
// stream is consumed with it.
func readStatus(r io.Reader) error {
	var line []byte
	b := make([]byte, 1)
	for len(line) < maxStatusLine {
		if _, err := io.ReadFull(r, b); err != nil {
			return fmt.Errorf("the agent closed the stream: %w", err)
		}
		if b[0] == '\n' {
			s := string(line)
			if s == "ok" {
				return nil
			}
			if reason, ok := strings.CutPrefix(s, "error "); ok {
				return errors.New(reason)
			}
			return fmt.Errorf("unexpected status from the agent: %q", s)
		}
		line = append(line, b[0])
	}
	return errors.New("the agent's status line is too long")
}

// relay copies both ways and closes both ends when either side is done.
func relay(a, b net.Conn) {
	var once sync.Once
	closeBoth := func() { a.Close(); b.Close() }
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); io.Copy(a, b); once.Do(closeBoth) }()
	go func() { defer wg.Done(); io.Copy(b, a); once.Do(closeBoth) }()
	wg.Wait()
}

// Serve is the agent: it accepts streams on rw (the container's stdin and
// stdout) and relays each to target. It returns when rw closes.
func Serve(rw io.ReadWriteCloser, target string, log io.Writer) error {
	sess, err := yamux.Server(rw, muxConfig())
	if err != nil {
		return err
	}
	defer sess.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		stream, err := sess.AcceptStream()
		if err != nil {
			if sess.IsClosed() || errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.DialTimeout("tcp", target, 15*time.Second)
			if err != nil {
				fmt.Fprintf(log, "agent: %v\n", err)
				writeStatus(stream, err)
				stream.Close()
				return
			}
			if err := writeStatus(stream, nil); err != nil {
				conn.Close()
				stream.Close()
				return
			}
			relay(stream, conn)
		}()
	}
}

// stdio joins a reader and a writer into the connection Serve wants.
type stdio struct {
	io.Reader
	io.Writer
	close func() error
}

func (s stdio) Close() error { return s.close() }

// ServeStdio runs the agent on the process's standard input and output
// until the plugin is gone: its input ends, or brings nothing (not even
// the multiplexer's keepalive pings) for idle. It returns then, without
// waiting for the relayed streams, so that the process exits and its
// container goes.
func ServeStdio(in io.ReadCloser, out io.WriteCloser, target string, log io.Writer, idle time.Duration) error {
	r, w := Watch(in, idle)
	rw := stdio{Reader: bufio.NewReaderSize(r, 64<<10), Writer: out, close: func() error {
		in.Close()
		return out.Close()
	}}
	served := make(chan error, 1)
	go func() { served <- Serve(rw, target, log) }()
	select {
	case err := <-served:
		return err
	case <-w.Done():
	}
	why := w.Why()
	if strings.HasPrefix(why, "no word") {
		return fmt.Errorf("agent: %s: taking it for gone", why)
	}
	return nil
}
