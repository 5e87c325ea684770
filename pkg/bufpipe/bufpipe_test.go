package bufpipe

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"
)

// TestOrder: what is written, in writes of every size from a byte to
// several chunks, is read back in order, whatever the reads' sizes.
func TestOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 3<<20)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	r, wait := Run(1000, 3, func(w io.Writer) error {
		rest := data
		for len(rest) > 0 {
			n := min(len(rest), rng.IntN(2500)+1)
			if _, err := w.Write(rest[:n]); err != nil {
				return err
			}
			rest = rest[n:]
		}
		return nil
	})
	defer r.Close()
	got, err := io.ReadAll(io.LimitReader(r, int64(len(data))+1))
	if err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, not the %d written", len(got), len(data))
	}
}

// TestWriterErrorFirst: a writer's error reaches the reader at once, even
// with written chunks still buffered, and never as an end.
func TestWriterErrorFirst(t *testing.T) {
	boom := errors.New("boom")
	r, wait := Run(10, 4, func(w io.Writer) error {
		w.Write(bytes.Repeat([]byte("x"), 35)) // three full chunks, buffered
		return boom
	})
	defer r.Close()
	if err := wait(); !errors.Is(err, boom) {
		t.Fatalf("wait: %v", err)
	}
	n, err := r.Read(make([]byte, 100))
	if n != 0 || !errors.Is(err, boom) {
		t.Fatalf("read %d, %v; want 0, boom", n, err)
	}
}

// TestCloseStopsWriter: once the reader is closed, a writer blocked on a
// full buffer fails with io.ErrClosedPipe.
func TestCloseStopsWriter(t *testing.T) {
	r, wait := Run(10, 2, func(w io.Writer) error {
		for {
			if _, err := w.Write(make([]byte, 7)); err != nil {
				return err
			}
		}
	})
	if _, err := r.Read(make([]byte, 5)); err != nil {
		t.Fatal(err)
	}
	r.Close()
	done := make(chan error, 1)
	go func() { done <- wait() }()
	select {
	case err := <-done:
		if !errors.Is(err, io.ErrClosedPipe) {
			t.Fatalf("writer: %v, want io.ErrClosedPipe", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the writer did not stop once the reader was closed")
	}
	if _, err := r.Read(make([]byte, 5)); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("read after close: %v", err)
	}
}

// TestEmpty: a writer that writes nothing gives an immediate end.
func TestEmpty(t *testing.T) {
	r, wait := Run(8, 2, func(io.Writer) error { return nil })
	defer r.Close()
	if n, err := r.Read(make([]byte, 8)); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("read %d, %v", n, err)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
}

// ReadAhead gives back its source in order, whatever the sizes of the
// source's reads and of the reader's; the source's error comes after
// everything read before it.
func TestReadAheadOrderThenError(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	lost := errors.New("connection lost")
	src := io.MultiReader(&choppy{r: bytes.NewReader(data), rng: rng}, errorsAfter{lost})
	r := ReadAhead(src, 1000, 3)
	defer r.Close()
	var got bytes.Buffer
	buf := make([]byte, 777)
	for {
		n, err := r.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			if !errors.Is(err, lost) {
				t.Fatalf("error %v, want %v", err, lost)
			}
			break
		}
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("read %d bytes, not the %d written, in order", got.Len(), len(data))
	}
}

// What the source has given is readable at once, though the source has
// not ended (an agent's stream, open until it exits) and fills no chunk.
func TestReadAheadHandsOverEachRead(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	r := ReadAhead(pr, 1<<20, 4)
	defer r.Close()
	go pw.Write([]byte("the end of a tar"))
	got := make(chan string, 1)
	go func() {
		b := make([]byte, 100)
		n, _ := r.Read(b)
		got <- string(b[:n])
	}()
	select {
	case s := <-got:
		if s != "the end of a tar" {
			t.Fatalf("read %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("what the source gave waited for a full chunk")
	}
}

// An owned source is not read after Close returns, nor while Close waits
// past the read under way; and Close waits for that read.
func TestReadAheadOwnedCloseWaits(t *testing.T) {
	src := &gated{next: make(chan struct{})}
	r := ReadAheadOwned(src, 10, 100)
	src.next <- struct{}{} // one read done, the next under way
	for src.reads.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	closed := make(chan struct{})
	go func() {
		r.Close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("Close returned while a read of the source was under way")
	case <-time.After(50 * time.Millisecond):
	}
	src.next <- struct{}{} // the read under way ends, with room for more
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return once the read under way ended")
	}
	if n := src.reads.Load(); n != 2 {
		t.Fatalf("the source was read %d times, not 2: read on after Close", n)
	}
}

// gated gives a byte each time next lets it.
type gated struct {
	next  chan struct{}
	reads atomic.Int32
}

func (g *gated) Read(p []byte) (int, error) {
	g.reads.Add(1)
	<-g.next
	p[0] = 'x'
	return 1, nil
}

type choppy struct {
	r   io.Reader
	rng *rand.Rand
}

func (c *choppy) Read(p []byte) (int, error) {
	return c.r.Read(p[:min(len(p), c.rng.IntN(3000)+1)])
}

type errorsAfter struct{ err error }

func (e errorsAfter) Read([]byte) (int, error) { return 0, e.err }
