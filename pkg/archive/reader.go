package archive

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
)

// Reader yields the documents of an archive that Verify has accepted, in
// archive order, one table after another.
type Reader struct {
	tr         *tar.Reader
	versionDir string
}

// NewReader reads the archive whose top directory is versionDir (Report.VersionDir).
func NewReader(r io.Reader, versionDir string) *Reader {
	return &Reader{tr: tar.NewReader(bufio.NewReaderSize(r, 1<<20)), versionDir: versionDir}
}

// Next returns the next document and the directory of its table, or io.EOF.
func (r *Reader) Next() (dir string, doc []byte, err error) {
	for {
		hdr, err := r.tr.Next()
		if errors.Is(err, tar.ErrInsecurePath) {
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
		dir, _, ok := documentPath(r.versionDir, hdr.Name)
		if !ok {
			continue
		}
		if hdr.Size > MaxDocumentSize {
			return "", nil, fmt.Errorf("%s: size %d exceeds the document limit", hdr.Name, hdr.Size)
		}
		doc := make([]byte, hdr.Size)
		if _, err := io.ReadFull(r.tr, doc); err != nil {
			return "", nil, fmt.Errorf("reading %s: %w", hdr.Name, err)
		}
		return dir, doc, nil
	}
}
