package imagearchive

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"

	"github.com/docker-dtr/docker-dtr/pkg/ustar"
)

// volumeStream reads the tar of a volume that the engine's archive API gives:
// its first entry is the mount point itself, every other one is below it.
// Backing a volume up and checking a restored one read it the same way.
type volumeStream struct {
	// A volume's stream is 200,000 headers at 4 GB: archive/tar's, read
	// without its cost per header (pkg/ustar).
	*ustar.Reader
	root string
}

func newVolumeStream(r io.Reader) *volumeStream { return &volumeStream{Reader: ustar.NewReader(r)} }

// entries yields each entry and its name inside the volume (rel), the
// mount point's own entry first, with rel "". It stops at the end, or at
// the first error, which it puts in *err.
func (v *volumeStream) entries(err *error) iter.Seq2[*tar.Header, string] {
	return func(yield func(*tar.Header, string) bool) {
		for {
			hdr, rel, e := v.next()
			if e != nil {
				if !errors.Is(e, io.EOF) {
					*err = e
				}
				return
			}
			if !yield(hdr, rel) {
				return
			}
		}
	}
}

// next returns the next entry and its name inside the volume (rel), or
// io.EOF at the end. The mount point's own entry comes first, with rel "".
func (v *volumeStream) next() (hdr *tar.Header, rel string, err error) {
	hdr, err = v.Next()
	if errors.Is(err, io.EOF) {
		return nil, "", io.EOF
	}
	if err != nil {
		return nil, "", fmt.Errorf("reading the volume: %w", err)
	}
	if v.root == "" {
		if hdr.Typeflag != tar.TypeDir {
			return nil, "", fmt.Errorf("reading the volume: the archive API gave %q, not a directory", hdr.Name)
		}
		v.root = strings.TrimSuffix(hdr.Name, "/") + "/"
		return hdr, "", nil
	}
	rel, ok := strings.CutPrefix(hdr.Name, v.root)
	if !ok {
		return nil, "", fmt.Errorf("reading the volume: entry %q is outside %s", hdr.Name, v.root)
	}
	return hdr, rel, nil
}
