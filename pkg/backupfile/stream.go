package backupfile

import (
	"fmt"
	"io"
	"sync"

	"github.com/docker-dtr/docker-dtr/pkg/bufpipe"
	"github.com/docker-dtr/docker-dtr/pkg/crypt"
	"github.com/docker-dtr/docker-dtr/pkg/zstdstream"
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
	// Whether the plaintext is compressed, from its first bytes: nothing
	// decrypted is used before the integrity check but to choose the stage.
	first, compressed, err := zstdstream.Detect(r)
	if err != nil {
		in.Close()
		return nil, decryptError(name, err)
	}
	var mu sync.Mutex
	out := &Input{Protection: prot, Compressed: compressed, cleanup: in.cleanup}
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
		return decompressIf(decryptAhead(r, name), name)
	}
	return out, nil
}

// decompressed opens the plain compressed backup in as a reopenable stream
// of its tar, decompressed anew for each pass.
func decompressed(in *Input, name string, o OpenOptions) *Input {
	if o.Log != nil {
		o.Log("decompressing %s (zstd) as it is read", name)
	}
	f := in.File
	out := &Input{Compressed: true, cleanup: in.cleanup}
	out.Plain = func() (io.ReadCloser, error) {
		return zstdstream.NewReader(io.NewSectionReader(f, 0, 1<<62), name, nil)
	}
	return out
}

// decompressIf is the stage after decryption: the plaintext of an
// encrypted backup is the zstd stream of its tar when it was compressed
// before it was encrypted, and is then decompressed as it is read.
func decompressIf(rc io.ReadCloser, name string) (io.ReadCloser, error) {
	r, compressed, err := zstdstream.Detect(rc)
	if err != nil {
		rc.Close()
		return nil, err
	}
	if !compressed {
		return struct {
			io.Reader
			io.Closer
		}{r, rc}, nil
	}
	return zstdstream.NewReader(r, name, rc)
}

// decryptAhead decrypts r on a goroutine of its own, a few chunks ahead of
// the reader, so that decrypting and checking use two cores. Its error is
// the reader's last, and stays; Close stops the decryption and waits for
// it.
func decryptAhead(r io.Reader, name string) io.ReadCloser {
	return bufpipe.ReadAheadOwned(fullChunks{r: r, name: name}, 1<<20, 4)
}

// fullChunks reads whole chunks of the decryption (its reads give a few
// KiB each), and names the backup in its error.
type fullChunks struct {
	r    io.Reader
	name string
}

func (f fullChunks) Read(p []byte) (int, error) {
	n, err := io.ReadFull(f.r, p)
	switch err {
	case nil:
		return n, nil
	case io.EOF, io.ErrUnexpectedEOF:
		return n, io.EOF
	}
	return n, decryptError(f.name, err)
}
