// Package imagebackup is the engine of 'backup images': it reads a
// replica's image volume through a helper container into an image archive
// (pkg/imagearchive), incremental when earlier backups are given (Since).
package imagebackup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/version"
	"github.com/docker-dtr/docker-dtr/pkg/backupfile"
	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/human"
	"github.com/docker-dtr/docker-dtr/pkg/imagearchive"
	"github.com/docker-dtr/docker-dtr/pkg/imagevolume"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
)

// Options say what Write reads.
type Options struct {
	Replica *dtr.Replica
	Volume  *imagevolume.Volume
	// Since are the earlier backups whose blobs are listed in the
	// manifest but not written (Since reads them).
	Since []*imagearchive.Base
	// AgentBinary is --agent-binary: the agent that measures the volume
	// for the progress's total.
	AgentBinary string
	Progress    *progress.Printer
}

// Write backs the volume up into out: it measures the volume for the
// progress's total (any failure only costs the total), then streams it
// through a helper into the archive writer. An incremental backup (Since)
// reads only what the bases lack (writeSelected), or the whole volume
// where the agent cannot run. The caller commits or aborts out.
func Write(ctx context.Context, api imagevolume.API, out io.Writer, o Options) (*imagearchive.Manifest, error) {
	rep, vol, prog := o.Replica, o.Volume, o.Progress
	for _, b := range o.Since {
		if b.ReplicaID != rep.ID || b.Volume != vol.Name {
			prog.Warn("%s is a backup of volume %s of replica %s, not of %s of %s: its blobs serve all the same (they are content-addressed)", b.Path, b.Volume, b.ReplicaID, vol.Name, rep.ID)
		}
	}
	prog.Step("reading volume %s (%s) through a helper container on node %s", vol.Name, vol.Driver, rep.Node)
	info := imagearchive.Info{
		Tool: version.Tool(), DTRVersion: rep.Version, ReplicaID: rep.ID, Node: rep.Node,
		Volume: vol.Name, VolumeDriver: vol.Driver, Started: time.Now(), Since: o.Since,
	}
	if len(o.Since) > 0 {
		m, err := writeSelected(ctx, api, out, info, o)
		var noAgent *imagevolume.NoAgentError
		if !errors.As(err, &noAgent) {
			return m, err
		}
		prog.Warn("the agent cannot run on node %s (%v): reading the whole volume, as a full backup does", rep.Node, noAgent.Err)
	}
	total := volumeTotal(ctx, api, vol, o.AgentBinary, prog)
	prog.PhaseOf("reading volume "+vol.Name, "", 0, total)
	return writeFrom(out, info, prog, func(fn func(io.Reader) error) error { return vol.Read(ctx, api, fn) })
}

// writeFrom writes the archive from the tar stream that read hands its
// function, with progress.
func writeFrom(out io.Writer, info imagearchive.Info, prog *progress.Printer, read func(func(io.Reader) error) error) (*imagearchive.Manifest, error) {
	var m *imagearchive.Manifest
	err := read(func(r io.Reader) error {
		var err error
		m, err = imagearchive.Write(out, prog.Reader(r), info, func(t imagearchive.Totals) {
			prog.Step("%d files, %s so far", t.Files, human.Bytes(t.Bytes))
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	prog.Done()
	return m, nil
}

// writeSelected is an incremental backup that reads only what the bases
// lack: the agent lists the volume, Select leaves out the blobs the bases
// hold, and the agent sends the rest (imagevolume.ReadSelected).
func writeSelected(ctx context.Context, api imagevolume.API, out io.Writer, info imagearchive.Info, o Options) (*imagearchive.Manifest, error) {
	prog, vol := o.Progress, o.Volume
	info.Elided = true
	choose := &chooser{Selection: NewSelection(o.Since), prog: prog, vol: vol.Name}
	// The stream starts once the listing is read and the choice made.
	info.LeftOut = func() []imagearchive.LeftOut { return choose.LeftOut }
	return writeFrom(out, info, prog, func(fn func(io.Reader) error) error { return vol.ReadSelected(ctx, api, choose, fn) })
}

// chooser is the Selection that ReadSelected fills, and says so.
type chooser struct {
	*Selection
	prog *progress.Printer
	vol  string
}

func (c *chooser) Omit() (map[string]int64, error) {
	c.Finish()
	c.prog.Step("volume %s holds %d entries: reading %s, %s; %s, %s held by the earlier backups, left out", c.vol,
		c.Entries, human.Plural(int(c.ReadFiles), "file"), human.Bytes(c.ReadBytes),
		human.Plural(int(c.OmittedFiles), "blob"), human.Bytes(c.OmittedBytes))
	c.prog.PhaseOf("reading volume "+c.vol, "", 0, c.Stream)
	return c.Selection.Omit, nil
}

// sizeTimeout bounds measuring the volume: a walk costs a stat per file,
// far less than reading the files, so a huge registry still fits.
const sizeTimeout = 2 * time.Minute

// volumeTotal is the progress's total for reading the volume: the size of
// the archive the engine will send, which the meter counts, measured by
// the agent in a helper. Any failure only costs the total and the ETA,
// never the backup. Quiet progress shows neither: no helper is run.
func volumeTotal(ctx context.Context, api imagevolume.API, vol *imagevolume.Volume, agentBinary string, prog *progress.Printer) int64 {
	if prog.Mode() == progress.Quiet {
		return 0
	}
	sctx, cancel := context.WithTimeout(ctx, sizeTimeout)
	defer cancel()
	u, err := vol.Size(sctx, api, agentBinary)
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return 0 // interrupted: the read that follows says so
	case sctx.Err() != nil:
		prog.Step("volume size unknown (measuring it took over %s): no ETA", sizeTimeout)
		return 0
	default:
		prog.Step("volume size unknown (%v): no ETA", err)
		return 0
	}
	uploads := ""
	if u.UploadFiles > 0 {
		uploads = fmt.Sprintf(", and %s, %s in unfinished uploads to skip", human.Plural(int(u.UploadFiles), "file"), human.Bytes(u.UploadBytes))
	}
	prog.Step("volume %s holds %s, %s%s", vol.Name, human.Plural(int(u.Files), "file"), human.Bytes(u.Bytes), uploads)
	return u.Stream
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
	b, err := imagearchive.OpenBase(f, p)
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
