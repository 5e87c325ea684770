package backupfile

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
)

// ErrChanged is a pass over a backup that did not read what the first
// pass read: the file was changed after it was checked.
var ErrChanged = errors.New("the backup changed since it was checked")

// Pass starts a pass over the backup's plaintext, from its start: the
// File of a plain backup (read at offsets, leaving its own alone), or, for
// an encrypted one, a fresh decryption (Plain), so that
// a reader that needs the content more than once (a restore: the check,
// the load, the key check) never has its plaintext on disk.
//
// The first pass read to its end records the SHA-256 of what it read;
// each later one compares at its end, and ends with ErrChanged instead of
// io.EOF when it read something else (the file was changed, or replaced
// by another message for the same secret, after the first pass checked
// it): nothing that pass read may be used. A pass must be read to its
// end, io.EOF, for either check, and the integrity check of a decryption,
// to have run.
func (in *Input) Pass() (io.ReadCloser, error) {
	var rc io.ReadCloser
	if in.Plain != nil {
		var err error
		if rc, err = in.Plain(); err != nil {
			return nil, err
		}
	} else {
		rc = io.NopCloser(io.NewSectionReader(in.File, 0, 1<<62))
	}
	return &pass{rc: rc, in: in, h: sha256.New()}, nil
}

// SHA256 is the hex SHA-256 of the backup's plaintext, which the first
// pass read to its end recorded: one is read now if none was.
func (in *Input) SHA256() (string, error) {
	in.passMu.Lock()
	sum := in.sum
	in.passMu.Unlock()
	if sum == nil {
		rc, err := in.Pass()
		if err != nil {
			return "", err
		}
		defer rc.Close()
		if _, err := io.Copy(io.Discard, rc); err != nil {
			return "", err
		}
		in.passMu.Lock()
		sum = in.sum
		in.passMu.Unlock()
	}
	return hex.EncodeToString(sum), nil
}

// settle records sum as the first whole pass's, or compares it with that.
func (in *Input) settle(sum []byte) error {
	in.passMu.Lock()
	defer in.passMu.Unlock()
	if in.sum == nil {
		in.sum = sum
		return nil
	}
	if !bytes.Equal(in.sum, sum) {
		return fmt.Errorf("%w: its content's sha256 is now %x, was %x", ErrChanged, sum, in.sum)
	}
	return nil
}

// pass is one read of the plaintext, hashed as it goes.
type pass struct {
	rc  io.ReadCloser
	in  *Input
	h   hash.Hash
	err error // sticky
}

func (p *pass) Read(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	n, err := p.rc.Read(b)
	p.h.Write(b[:n])
	if errors.Is(err, io.EOF) {
		if serr := p.in.settle(p.h.Sum(nil)); serr != nil {
			err = serr
		}
	}
	if err != nil {
		p.err = err
	}
	return n, err
}

func (p *pass) Close() error { return p.rc.Close() }
