package bufpipe

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
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
