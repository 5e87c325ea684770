// Package imagebackup is the engine of 'backup images': it reads a
// replica's image volume through a helper container into an image archive
// (pkg/imagearchive), incremental when earlier backups are given (Since).
package imagebackup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/version"
	"github.com/docker-dtr/docker-dtr/pkg/agent"
	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/dtrstorage"
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
	// manifest but not written, being read (ReadSince); nil for a full
	// backup.
	Since *Pending
	// AgentBinary is --agent-binary: the agent that measures the volume
	// for the progress's total.
	AgentBinary string
	// NoVolume says why the replica has no image volume (Volume is then
	// imagevolume.WithoutVolume's): only an s3 bucket can be backed up.
	NoVolume error
	Progress *progress.Printer
}

// Write backs the volume up into out: it streams the volume through a
// helper into the archive writer, the helper's agent measuring it
// meanwhile for the progress's total (any failure only costs the total).
// An incremental backup (Since) reads only what the bases lack
// (writeSelected), or the whole volume
// where the agent cannot run. DTR's storage configuration is read
// meanwhile, by the agent in the bucket's helper (probe), and decides
// before anything is written: an s3 bucket is backed up instead, by that
// same helper, another external driver refused; what the volume held is
// judged against it (judgeStorage). The caller commits or aborts out.
func Write(ctx context.Context, api imagevolume.API, out io.Writer, o Options) (*imagearchive.Manifest, error) {
	// The settings' helper starts at once, beside the volume's helper and
	// its first read: its ~0.5 s and theirs would otherwise add up on
	// every backup.
	p := startProbe(ctx, func(ctx context.Context, storage func(dtrstorage.Backend) error) (*imagearchive.Manifest, error) {
		return writeBucket(ctx, api, out, o, storage)
	})
	defer p.stop()
	if o.NoVolume != nil {
		a := p.answer()
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case a.err == nil && a.backend.Driver == "s3":
			return p.bucket()
		case a.err == nil && a.backend.External():
			return nil, judgeStorage(a, &imagearchive.Manifest{}, "", o.Progress)
		}
		return nil, o.NoVolume
	}
	// The volume's helper starts and its stream opens (an incremental's
	// listing runs) while the settings are read; nothing is taken from
	// it, and nothing written, before they decide (the gate).
	m, err := write(ctx, api, out, o, func() error { return decide(p.answer(), o) })
	if errors.Is(err, errUseBucket) {
		return p.bucket()
	}
	if err != nil {
		return m, err
	}
	if err := judgeStorage(p.answer(), m, o.Volume.Name, o.Progress); err != nil {
		return nil, err
	}
	return m, nil
}

// errUseBucket stops a volume's read before anything is written: DTR
// keeps its images in an s3 bucket.
var errUseBucket = errors.New("DTR keeps its images in an s3 bucket")

// decide says, from DTR's storage settings, whether the volume is what
// to back up: errUseBucket for s3, a refusal for another external driver.
func decide(a storageAnswer, o Options) error {
	switch {
	case a.err == nil && a.backend.Driver == "s3":
		return errUseBucket
	case a.err == nil && a.backend.External():
		// Refused before anything is read: the volume holds none of it.
		return judgeStorage(a, &imagearchive.Manifest{}, o.Volume.Name, o.Progress)
	}
	return nil
}

// write backs the volume up. gate, when not nil, is asked before anything
// is written (before the listing's choice, or once the whole read's
// stream is open and before it is read): its error stops the backup
// there.
func write(ctx context.Context, api imagevolume.API, out io.Writer, o Options, gate func() error) (*imagearchive.Manifest, error) {
	rep, vol, prog := o.Replica, o.Volume, o.Progress
	prog.Step("reading volume %s (%s) through a helper container on node %s", vol.Name, vol.Driver, rep.Node)
	info := imagearchive.Info{
		Tool: version.Tool(), DTRVersion: rep.Version, ReplicaID: rep.ID, Node: rep.Node,
		Volume: vol.Name, VolumeDriver: vol.Driver, Started: time.Now(),
	}
	if o.Since != nil {
		m, err := writeSelected(ctx, api, out, info, o, gate, nil)
		var noAgent *imagevolume.NoAgentError
		if !errors.As(err, &noAgent) {
			return m, err
		}
		if gate != nil {
			if err := gate(); err != nil {
				return nil, err
			}
		}
		prog.Warn("the agent cannot run on node %s (%v): reading the whole volume, as a full backup does", rep.Node, noAgent.Err)
		if info.Since, err = o.bases(); err != nil {
			return nil, err
		}
	}
	// The reading helper's agent measures the volume for the progress's
	// total (a walk of every file, long on a large registry) while the
	// engine sends it: the phase begins as the stream opens, and gets its
	// total when measured. Quiet progress shows none, and an incremental
	// backup here has just been told its agent cannot run: nothing is
	// measured.
	var total phaseTotal
	var sized imagevolume.Sized
	if prog.Mode() != progress.Quiet && o.Since == nil {
		sized = func(u agent.Usage, err error) { total.set(announce(prog, vol, u, err)) }
	}
	return writeFrom(out, &info, prog, func(fn func(io.Reader) error) error {
		return vol.ReadSized(ctx, api, sized, func(r io.Reader) error {
			if gate != nil {
				if err := gate(); err != nil {
					return err
				}
			}
			total.begin(prog.PhaseOf("reading volume "+vol.Name, "", 0, 0))
			return fn(r)
		})
	})
}

// phaseTotal is the reading phase's total, which may be measured before
// the phase begins or while it runs (a phase not yet begun, the zero
// Running, ignores it).
type phaseTotal struct {
	mu    sync.Mutex
	total int64
	ph    progress.Running
}

func (t *phaseTotal) set(total int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.total = total
	t.ph.SetTotal(0, total)
}

func (t *phaseTotal) begin(ph progress.Running) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ph = ph
	ph.SetTotal(0, t.total)
}

// writeFrom writes the archive from the tar stream that read hands its
// function, with progress; info is read when the stream starts.
func writeFrom(out io.Writer, info *imagearchive.Info, prog *progress.Printer, read func(func(io.Reader) error) error) (*imagearchive.Manifest, error) {
	var m *imagearchive.Manifest
	err := read(func(r io.Reader) error {
		var err error
		m, err = imagearchive.Write(out, prog.Reader(r), *info, func(t imagearchive.Totals) {
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

// bases waits for the earlier backups, and says where one is of another
// replica or volume.
func (o Options) bases() ([]*imagearchive.Base, error) {
	bases, err := o.Since.Wait()
	if err != nil {
		return nil, err
	}
	for _, b := range bases {
		if b.ReplicaID != o.Replica.ID || b.Volume != o.Volume.Name {
			o.Progress.Warn("%s is a backup of volume %s of replica %s, not of %s of %s: its blobs serve all the same (they are content-addressed)", b.Path, b.Volume, b.ReplicaID, o.Volume.Name, o.Replica.ID)
		}
	}
	return bases, nil
}

// writeSelected is an incremental backup that reads only what the bases
// lack: the agent lists the volume, Select leaves out the blobs the bases
// hold, and the agent sends the rest (imagevolume.ReadSelected). The
// helper starts and lists while the bases are still being read: the
// blobs listed before they are wait for them (a pending Selection), the
// listing does not.
// On a bucket, storage gets DTR's settings as its agent read them,
// before the listing (StorageChooser); nil on a volume.
func writeSelected(ctx context.Context, api imagevolume.API, out io.Writer, info imagearchive.Info, o Options, gate func() error, storage func(dtrstorage.Backend) error) (*imagearchive.Manifest, error) {
	prog, vol := o.Progress, o.Volume
	bases := func() ([]*imagearchive.Base, error) { return nil, nil }
	if o.Since != nil {
		if err := o.Since.failed(); err != nil {
			return nil, err
		}
		bases = o.bases
	}
	info.Elided = true // the agent's stream: uploads come without data
	choose := &chooser{bases: bases, prog: prog, vol: vol.Where(), gate: gate, whole: o.Since == nil && gate == nil,
		storage: storage, info: &info, unlisted: o.Since != nil && vol.Bucket == nil}
	if o.Since != nil {
		choose.read = o.Since.read
	}
	if !choose.unlisted {
		// The stream starts once the listing is read and the choice made.
		info.LeftOut = func() []imagearchive.LeftOut { return choose.LeftOut }
	}
	return writeFrom(out, &info, prog, func(fn func(io.Reader) error) error {
		return vol.ReadSelected(ctx, api, choose, func(r io.Reader) error {
			info.Since = choose.since
			return fn(r)
		})
	})
}

// chooser is the Selection that ReadSelected fills, and says so; the
// listing's entries wait for no base (a pending Selection): the bases
// are taken once read, or at the choice.
type chooser struct {
	*Selection
	bases func() ([]*imagearchive.Base, error)
	// read says the bases are read (bases returns at once); nil: bases
	// is taken at the listing's first entry.
	read    func() bool
	decided bool
	since   []*imagearchive.Base
	err     error // reading the bases failed: nothing is chosen
	prog    *progress.Printer
	vol     string // "volume V", or the bucket
	// gate, when not nil, is asked before the choice: its error ends the
	// read before anything is sent.
	gate func() error
	// storage takes a bucket's settings line (Storage), which info's
	// Storage then names.
	storage func(dtrstorage.Backend) error
	info    *imagearchive.Info
	// whole says there are no bases and no gate: nothing is left out,
	// which is known before the listing (imagevolume.WholeChooser).
	whole bool
	// unlisted says the bases say what to leave out, on a volume: every
	// blob they hold, by name and size, with no listing
	// (imagevolume.UnlistedChooser).
	unlisted bool
}

// Unlisted is imagevolume.UnlistedChooser's.
func (c *chooser) Unlisted() bool { return c.unlisted }

// Whole is imagevolume.WholeChooser's.
func (c *chooser) Whole() bool { return c.whole }

// Storage is imagevolume.StorageChooser's: DTR's settings, as the agent
// that reads the bucket read them, before its listing.
func (c *chooser) Storage(b dtrstorage.Backend) error {
	if err := c.storage(b); err != nil {
		return err
	}
	c.vol = b.String()
	c.info.Storage = c.vol
	return nil
}

// decide waits for the bases, once, and gives them to the Selection.
func (c *chooser) decide() bool {
	if c.Selection == nil {
		c.Selection = NewPendingSelection()
	}
	if !c.decided {
		c.decided = true
		if c.since, c.err = c.bases(); c.err == nil {
			c.Selection.Decide(c.since)
		}
	}
	return c.err == nil
}

func (c *chooser) Add(e agent.ListEntry) {
	if c.Selection == nil {
		c.Selection = NewPendingSelection()
	}
	if !c.decided && (c.read == nil || c.read()) && !c.decide() {
		return
	}
	if c.err == nil {
		c.Selection.Add(e)
	}
}

func (c *chooser) Omit() (map[string]int64, error) {
	if c.gate != nil {
		if err := c.gate(); err != nil {
			return nil, err
		}
	}
	if !c.decide() {
		return nil, c.err
	}
	if c.unlisted {
		// The agent meets the volume as it sends it: what it holds and
		// reads is known at the end, not now.
		omit := imagearchive.HeldPaths(c.since)
		c.prog.Step("reading what %s holds beyond the %s the earlier backups hold, which are left out", c.vol, human.Plural(len(omit), "blob"))
		c.prog.PhaseOf("reading "+c.vol, "", 0, 0)
		return omit, nil
	}
	c.Finish()
	if len(c.since) == 0 {
		c.prog.Step("%s holds %d entries: reading %s, %s", c.vol, c.Entries,
			human.Plural(int(c.ReadFiles), "file"), human.Bytes(c.ReadBytes))
	} else {
		c.prog.Step("%s holds %d entries: reading %s, %s; %s, %s held by the earlier backups, left out", c.vol,
			c.Entries, human.Plural(int(c.ReadFiles), "file"), human.Bytes(c.ReadBytes),
			human.Plural(int(c.OmittedFiles), "blob"), human.Bytes(c.OmittedBytes))
	}
	c.prog.PhaseOf("reading "+c.vol, "", 0, c.Stream)
	return c.Selection.Omit, nil
}

// announce says what the volume holds, or why that is unknown (which
// only costs the total and the ETA, never the backup), and returns the
// progress's total for reading it: the size of the archive the engine
// sends, which the meter counts.
func announce(prog *progress.Printer, vol *imagevolume.Volume, u agent.Usage, err error) int64 {
	if err != nil {
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
