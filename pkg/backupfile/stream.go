package backupfile

import (
	"fmt"
	"io"
	"sync"

	"github.com/docker-dtr/docker-dtr/pkg/crypt"
)

// stream opens the encrypted backup in as a reopenable stream of its
// plaintext. The first decryption starts here, so that a wrong secret is
// the error of Open; its stream is the first that Plain returns.
func stream(in *Input, name string, o OpenOptions) (*Input, error) {
	f := in.File
	info, secrets, err := secretsFor(f, name, o)
	if err != nil {
		in.Close()
		return nil, err
	}
	if o.Log != nil {
		o.Log("decrypting %s (%s) as it is read", name, info)
	}
	r, opened, err := crypt.DecryptOpened(io.NewSectionReader(f, 0, 1<<62), secrets)
	if err != nil {
		in.Close()
		return nil, fmt.Errorf("cannot decrypt %s: %w", name, err)
	}
	prot, err := protection(opened, secrets)
	if err != nil {
		in.Close()
		return nil, fmt.Errorf("decrypting %s: %w", name, err)
	}
	var mu sync.Mutex
	first := r
	out := &Input{Protection: prot, cleanup: in.cleanup}
	out.Plain = func() (io.ReadCloser, error) {
		mu.Lock()
		r := first
		first = nil
		mu.Unlock()
		if r == nil {
			var err error
			if r, err = crypt.Decrypt(io.NewSectionReader(f, 0, 1<<62), secrets); err != nil {
				return nil, fmt.Errorf("cannot decrypt %s: %w", name, err)
			}
		}
		return decryptAhead(r, name), nil
	}
	return out, nil
}

// decryptAhead decrypts r on a goroutine of its own, a few chunks ahead of
// the reader, so that decrypting and checking use two cores. Its error is
// the reader's last, and stays.
func decryptAhead(r io.Reader, name string) io.ReadCloser {
	a := &ahead{chunks: make(chan []byte, 4), free: make(chan []byte, 6), quit: make(chan struct{})}
	for range cap(a.free) {
		a.free <- make([]byte, 1<<20)
	}
	a.done.Add(1)
	go func() {
		defer a.done.Done()
		defer close(a.chunks)
		for {
			var buf []byte
			select {
			case buf = <-a.free:
			case <-a.quit:
				return
			}
			n, err := io.ReadFull(r, buf)
			if n > 0 {
				select {
				case a.chunks <- buf[:n]:
				case <-a.quit:
					return
				}
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return
			}
			if err != nil {
				a.err = decryptError(name, err)
				return
			}
		}
	}()
	return a
}

type ahead struct {
	chunks chan []byte
	free   chan []byte
	quit   chan struct{}
	done   sync.WaitGroup
	cur    []byte // unread part of the chunk being read
	whole  []byte // that chunk, to give back
	err    error  // set before chunks is closed
	closed bool
}

func (a *ahead) Read(p []byte) (int, error) {
	for len(a.cur) == 0 {
		if a.whole != nil {
			a.free <- a.whole[:cap(a.whole)]
			a.whole = nil
		}
		c, ok := <-a.chunks
		if !ok {
			if a.err != nil {
				return 0, a.err
			}
			return 0, io.EOF
		}
		a.cur, a.whole = c, c
	}
	n := copy(p, a.cur)
	a.cur = a.cur[n:]
	return n, nil
}

// Close stops the decryption and waits for it.
func (a *ahead) Close() error {
	if !a.closed {
		a.closed = true
		close(a.quit)
		a.done.Wait()
	}
	return nil
}
