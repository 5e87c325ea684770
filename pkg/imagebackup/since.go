package imagebackup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/docker-dtr/docker-dtr/pkg/backupfile"
	"github.com/docker-dtr/docker-dtr/pkg/human"
	"github.com/docker-dtr/docker-dtr/pkg/imagearchive"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
)

// Pending is the reading of the earlier backups --since names, which
// runs while the DTR is found and the helper starts and lists: a base's
// manifest is the last entry of an archive as large as the volume, found
// by stepping over every entry, and takes as long as the helper's start.
type Pending struct {
	done    chan struct{}
	bases   []*imagearchive.Base
	err     error
	release func()
}

// ReadSince starts reading the earlier backups path names (Since). Its
// lines wait for Wait, so that they come where the backup uses them.
func ReadSince(path, output string, prog *progress.Printer) *Pending {
	held, release := prog.Held()
	p := &Pending{done: make(chan struct{}), release: release}
	go func() {
		defer close(p.done)
		p.bases, p.err = Since(path, output, held)
	}()
	return p
}

// Wait gives the bases once read, and prints what their reading said.
func (p *Pending) Wait() ([]*imagearchive.Base, error) {
	<-p.done
	p.release()
	return p.bases, p.err
}

// read says the reading has ended: Wait returns at once.
func (p *Pending) read() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// failed is the reading's error if it has ended with one already: the
// backup then starts no helper.
func (p *Pending) failed() error {
	if p.read() {
		return p.err
	}
	return nil
}

// Since reads the earlier image backups --since names: a file, or
// every image backup in a directory, oldest first. output, the backup
// being written, is not one of them.
func Since(path, output string, prog *progress.Printer) ([]*imagearchive.Base, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("--since: %w", err)
	}
	if !st.IsDir() {
		b, err := readBase(path)
		if err != nil {
			return nil, fmt.Errorf("--since %s: %w", path, err)
		}
		prog.Step("incremental: %s holds %s%s", path, human.Plural(b.Blobs(), "blob"), fromIndex(b))
		return []*imagearchive.Base{b}, nil
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("--since: %w", err)
	}
	outAbs, _ := filepath.Abs(output)
	var bases []*imagearchive.Base
	seen := map[string]bool{}
	blobs := map[string]bool{}
	for _, e := range ents {
		p := filepath.Join(path, e.Name())
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if abs, _ := filepath.Abs(p); output != "-" && abs == outAbs {
			continue // written over: not an earlier backup
		}
		b, err := readBase(p)
		switch {
		case errors.Is(err, errNotImages), imagearchive.IsIndexName(e.Name()):
			continue
		case err != nil:
			prog.Warn("--since: skipping %s: %v", p, err)
			continue
		case seen[b.ManifestSHA256]:
			continue // a copy
		}
		seen[b.ManifestSHA256] = true
		bases = append(bases, b)
	}
	if len(bases) == 0 {
		return nil, fmt.Errorf("--since %s: the directory holds no readable image backup", path)
	}
	// The oldest first: a full backup before the incremental ones after it.
	sort.SliceStable(bases, func(i, j int) bool { return bases[i].Created.Before(bases[j].Created) })
	for _, b := range bases {
		for _, d := range b.HeldDigests() {
			blobs[d] = true
		}
	}
	prog.Step("incremental: %s in %s hold %s", human.Plural(len(bases), "image backup"), path, human.Plural(len(blobs), "blob"))
	return bases, nil
}

var errNotImages = errors.New("not an image backup")

// readBase reads one earlier image backup's manifest.
func readBase(p string) (*imagearchive.Base, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if enc, err := backupfile.Encrypted(f); err != nil {
		return nil, err
	} else if enc {
		return imagearchive.ReadBaseIndex(p)
	}
	if ok, err := imagearchive.IsImageArchive(f); err != nil {
		return nil, err
	} else if !ok {
		return nil, errNotImages
	}
	b, err := imagearchive.OpenBaseFromEnd(f, p)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// fromIndex says, in a step, that a base was read from its index.
func fromIndex(b *imagearchive.Base) string {
	if b.FromIndex {
		return ", says its index " + filepath.Base(imagearchive.IndexPath(b.Path))
	}
	return ""
}
