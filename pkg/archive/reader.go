package archive

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/docker-dtr/docker-dtr/pkg/human"
)

// Reader yields the documents of an archive that Verify has accepted, in
// archive order, one table after another.
type Reader struct {
	tr interface {
		Next() (*tar.Header, error)
		io.Reader
	}
	versionDir string
}

// NewReader reads the archive whose top directory is versionDir
// (Report.VersionDir), with verify's tar parser, which restore feels: a
// tar header per document. A stream (a pass of a decryption) is read as
// VerifyStream reads it.
func NewReader(r io.Reader, versionDir string) *Reader {
	if f, ok := r.(*os.File); ok {
		if bs, err := newBufSeeker(f); err == nil {
			return &Reader{tr: newTarStream(bs, false), versionDir: versionDir}
		}
	}
	return &Reader{tr: newTarStream(newBufStream(r), false), versionDir: versionDir}
}

// Next returns the next document and the directory of its table, or io.EOF.
// It checks again what Verify refused, so that a document never reaches
// RethinkDB, nor memory, because of a mistake elsewhere.
func (r *Reader) Next() (dir string, doc []byte, err error) {
	for {
		hdr, err := r.tr.Next()
		if errors.Is(err, tar.ErrInsecurePath) && hdr != nil {
			return "", nil, fmt.Errorf("unsafe name %q in archive", hdr.Name)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return "", nil, io.EOF
			}
			return "", nil, fmt.Errorf("reading archive: %w", err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		dir, n, ok := documentPath(r.versionDir, hdr.Name)
		if !ok {
			continue
		}
		if err := checkName(hdr.Name); err != nil {
			return "", nil, fmt.Errorf("%s: unsafe name: %v", hdr.Name, err)
		}
		if isSparse(hdr) {
			return "", nil, fmt.Errorf("document %d of table directory %s: a sparse file", n, dir)
		}
		if hdr.Size > MaxDocumentSize {
			return "", nil, fmt.Errorf("document %d of table directory %s is %d bytes, over the %d byte (%s) document limit",
				n, dir, hdr.Size, MaxDocumentSize, human.Bytes(MaxDocumentSize))
		}
		doc, err := readFull(r.tr, hdr.Size)
		if err != nil {
			return "", nil, fmt.Errorf("reading %s: %w", hdr.Name, err)
		}
		return dir, doc, nil
	}
}

// readFull reads size bytes. Memory grows with what arrives, not with what
// the header claims: a cut or crafted archive costs no more than it holds.
func readFull(r io.Reader, size int64) ([]byte, error) {
	const first = 1 << 20
	doc := make([]byte, min(size, first))
	if _, err := io.ReadFull(r, doc); err != nil {
		return nil, err
	}
	for int64(len(doc)) < size {
		start := len(doc)
		more := int(min(size-int64(start), int64(start))) // double at most
		doc = slices.Grow(doc, more)[:start+more]
		if _, err := io.ReadFull(r, doc[start:]); err != nil {
			return nil, err
		}
	}
	return doc, nil
}
