package imagearchive

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/docker-dtr/docker-dtr/pkg/jsonl"
	"github.com/docker-dtr/docker-dtr/pkg/ustar"
)

// Content writes the archive's content to w as a tar whose names are
// relative to the volume, for the engine's archive API to extract into it.
// Every name and link is checked again on the way: nothing may land outside
// the volume, whatever the archive says.
func Content(f *os.File, contentDir string, w io.Writer) error {
	tw := ustar.NewWriter(w)
	if _, err := content(f, contentDir, tw); err != nil {
		return err
	}
	return tw.Close()
}

// content writes the archive's content to tw, and returns the symlinks it
// met.
func content(f *os.File, contentDir string, tw *ustar.Writer) (linkSet, error) {
	if !validContentDir(contentDir) {
		return nil, fmt.Errorf("invalid content directory %q", contentDir)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	tr := tar.NewReader(bufio.NewReaderSize(f, bufferSize(f)))
	buf := make([]byte, bufferSize(f))
	links := linkSet{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if hdr.Name == ManifestName || hdr.Name == contentDir {
			continue
		}
		rel, ok := strings.CutPrefix(hdr.Name, contentDir)
		if !ok {
			return nil, fmt.Errorf("%s is outside %s: refusing to restore it", hdr.Name, contentDir)
		}
		if err := checkType(hdr); err != nil {
			return nil, fmt.Errorf("%s: %v: refusing to restore it", hdr.Name, err)
		}
		if err := links.checkEntry(hdr, rel); err != nil {
			return nil, fmt.Errorf("%s: %v: refusing to restore it", hdr.Name, err)
		}
		if err := tw.WriteHeader(copyHeader(hdr, rel)); err != nil {
			return nil, err
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := io.CopyBuffer(tw, tr, buf); err != nil {
				return nil, err
			}
		}
	}
	return links, nil
}

// Check is what a restored volume holds against the manifest.
type Check struct {
	Checked int64    `json:"checked"`
	Missing []string `json:"missing"`
	Differ  []string `json:"differ"`
	Extra   int64    `json:"extra"` // files in the volume the backup does not hold
	Omitted int      `json:"omitted,omitempty"`
}

// OK reports whether every file of the manifest is in the volume, intact.
func (c *Check) OK() bool { return len(c.Missing) == 0 && len(c.Differ) == 0 && c.Omitted == 0 }

func (c *Check) note(list *[]string, name string) {
	if len(c.Missing)+len(c.Differ) >= maxProblems {
		c.Omitted++
		return
	}
	*list = append(*list, name)
}

// CheckVolume compares the volume's content, as the archive API gives it,
// with the archive's manifest. Both list entries in the engine's walk order
// (lexical, directory by directory), so they merge in one pass.
func CheckVolume(f *os.File, volume io.Reader) (*Check, error) {
	rep, mr, _ := open(f)
	if mr == nil {
		return nil, fmt.Errorf("reading the manifest: %v", rep.Problems)
	}
	return checkVolume(mr, volume)
}

// checkVolume is CheckVolume with the manifest mr reads, past its header.
func checkVolume(mr *jsonl.Reader, volume io.Reader) (*Check, error) {
	c := &Check{Missing: []string{}, Differ: []string{}}
	want, err := nextFile(mr)
	if err != nil {
		return nil, err
	}
	tr := newVolumeStream(volume)
	buf := make([]byte, 1<<20)
	var readErr error
	for hdr, rel := range tr.entries(&readErr) {
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		for want != nil && walkLess(want.Name, rel) {
			c.note(&c.Missing, want.Name)
			if want, err = nextFile(mr); err != nil {
				return nil, err
			}
		}
		if want == nil || want.Name != rel {
			if !isUpload(rel) {
				c.Extra++
			}
			continue
		}
		n, sum, err := hashCopy(nil, tr, buf)
		if err != nil {
			return nil, fmt.Errorf("reading the volume: %s: %w", rel, err)
		}
		if n != want.Size || sum != want.SHA256 {
			c.note(&c.Differ, rel)
		}
		c.Checked++
		if want, err = nextFile(mr); err != nil {
			return nil, err
		}
	}
	if readErr != nil {
		return nil, readErr
	}
	for want != nil {
		c.note(&c.Missing, want.Name)
		if want, err = nextFile(mr); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// nextFile returns the manifest's next file entry, or nil at the end.
func nextFile(mr *jsonl.Reader) (*Entry, error) {
	for {
		var e Entry
		err := nextEntry(mr, &e)
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if e.Type == TypeFile {
			return &e, nil
		}
	}
}

// walkLess orders paths as a directory walk meets them (WalkCompare).
func walkLess(a, b string) bool { return WalkCompare(a, b) < 0 }
