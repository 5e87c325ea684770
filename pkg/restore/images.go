package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/version"
	"github.com/docker-dtr/docker-dtr/pkg/backupfile"
	"github.com/docker-dtr/docker-dtr/pkg/bufpipe"
	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/dtrstorage"
	"github.com/docker-dtr/docker-dtr/pkg/dtrversion"
	"github.com/docker-dtr/docker-dtr/pkg/human"
	"github.com/docker-dtr/docker-dtr/pkg/imagearchive"
	"github.com/docker-dtr/docker-dtr/pkg/imagevolume"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
)

// ImagePlan is what an image restore will do, for --dry-run.
type ImagePlan struct {
	Replica string `json:"replica"`
	Node    string `json:"node"`
	Volume  string `json:"volume"`
	// Storage is the bucket written instead of the volume, when DTR keeps
	// its images in s3 ("s3 bucket B (…)"); empty for the volume.
	Storage     string `json:"storage,omitempty"`
	VolumeEmpty bool   `json:"volumeEmpty"`
	// SafetyBackup is where what the volume holds is saved first; empty
	// when the volume is empty or --no-safety-backup.
	SafetyBackup string `json:"safetyBackup,omitempty"`
	// SafetyProtection says how the safety backup is protected
	// ("encrypted with the backup's passphrase", "encrypted to key 0x…",
	// "not encrypted"); empty when there is none.
	SafetyProtection string   `json:"safetyProtection,omitempty"`
	Stop             []string `json:"stop"`
	Files            int64    `json:"files"`
	Bytes            int64    `json:"bytes"`
	// From lists, for an incremental backup, the earlier backups whose
	// blobs are written with it.
	From []string `json:"from,omitempty"`
}

// Images is a verified image backup on its way into a replica's image
// volume: a Target.
type Images struct {
	Name string
	// Open reads the backup from its start, for the content pass: its
	// file, or a fresh decryption of it.
	Open   imagearchive.Source
	Report *imagearchive.Report
	// Chain is, for an incremental backup, the earlier backups it depends
	// on, open.
	Chain   *imagearchive.Chain
	Replica *dtr.Replica
	Volume  *imagevolume.Volume
	Docker  imagevolume.API
	// AgentBinary is --agent-binary: the agent that empties the volume.
	AgentBinary string
	// ToVolume says Volume is the volume whatever DTR's storage settings
	// say (--to-volume; ImageStore): the journal keeps it.
	ToVolume bool
	Plan     ImagePlan
	// NoSafety is --no-safety-backup: a failed write is not put back.
	NoSafety bool
	// SafetySeal encrypts the safety backup (the backup's own
	// Protection, so that the same secret reads it); nil writes it in
	// clear.
	SafetySeal *backupfile.Protection
	// AgentErr says why the agent that empties the volume cannot run on
	// the node, when a failed write would be put back.
	AgentErr error
	Progress *progress.Printer
	// Stderr is told the safety backup's path, whatever the progress mode.
	Stderr io.Writer
	// Check is the volume checked against the manifest, once Apply has
	// succeeded.
	Check *imagearchive.Check
	// wiped says the rollback emptied the volume.
	wiped bool
	// writer is the helper PlanImages looked into the volume through,
	// which Apply writes through; nil once Apply has it.
	writer *imagevolume.Writer
	// closed is the writer's removal, once Apply has started it.
	closed chan error
}

// NewImages plans the restore of a verified image backup into the volume
// of replica: what it stops, writes and saves first. empty says the volume
// holds nothing now; safety is where what it holds is saved ("" for no
// safety backup).
func NewImages(t *Images, empty bool, safety string) *Images {
	t.Plan = ImagePlan{
		Replica: t.Replica.ID, Node: t.Replica.Node, Volume: t.Volume.Name, VolumeEmpty: empty,
		SafetyBackup: safety, Stop: []string{},
		Files: t.Report.Files + t.Report.OmittedBlobs, Bytes: t.Report.Bytes + t.Report.OmittedBytes,
	}
	if t.Volume.Bucket != nil {
		t.Plan.Storage = t.Volume.Where()
	}
	if safety != "" {
		t.Plan.SafetyProtection = sealedHow(t.SafetySeal)
	}
	if t.Chain != nil {
		for _, b := range t.Chain.Bases {
			t.Plan.From = append(t.Plan.From, b.Path)
		}
	}
	for _, c := range t.Volume.Users() {
		t.Plan.Stop = append(t.Plan.Stop, c.Name)
	}
	return t
}

func (t *Images) Words() Words {
	vol := t.Volume.Where()
	w := Words{
		Name:           t.Name,
		BeforeChange:   "writing anything",
		PuttingBack:    fmt.Sprintf("putting %s back as it was", vol),
		PutBack:        fmt.Sprintf("%s was put back", vol),
		Undone:         fmt.Sprintf("%s was emptied again, as it was before", vol),
		PutBackFailed:  "putting the volume back",
		UndoFailed:     "putting the volume back",
		PartlyRestored: fmt.Sprintf("%s was empty before and may be partly written now", vol),
		NotPutBack:     fmt.Sprintf("%s may be partly written and was not put back (--no-safety-backup)", vol),
	}
	if !t.Plan.VolumeEmpty {
		w.Unprotected = fmt.Sprintf("what %s holds now", vol)
	}
	if !t.wiped {
		w.ByHandNote = "; files the failed restore added stay beside what it puts back"
	}
	return w
}

func (t *Images) Refuse(force, _ bool) error {
	vol := t.Volume.Where()
	if !t.Plan.VolumeEmpty && !force {
		return fmt.Errorf("%s of replica %s is not empty: refusing to restore %s over it; pass --force to write over it (what it holds is saved in a safety backup first; files the backup does not hold stay), or restore into an empty volume", vol, t.Replica.ID, t.Name)
	}
	if t.AgentErr != nil {
		return fmt.Errorf("refusing to restore %s, nothing was changed: putting %s back if writing fails runs this plugin as an agent on node %s: %w", t.Name, vol, t.Replica.Node, t.AgentErr)
	}
	return nil
}

func (t *Images) Question() string {
	q := fmt.Sprintf("Restore %s into %s of replica %s on node %s, writing %d files (%s)", t.Name, t.Volume.Where(), t.Replica.ID, t.Replica.Node, t.Plan.Files, human.Bytes(t.Plan.Bytes))
	if len(t.Plan.From) > 0 {
		q += " with blobs from " + strings.Join(t.Plan.From, ", ")
	}
	if !t.Plan.VolumeEmpty {
		q += " over what it holds now"
	}
	if len(t.Plan.Stop) > 0 {
		q += ", and stopping " + strings.Join(t.Plan.Stop, ", ") + " while it writes"
	}
	return q
}

func (t *Images) SafetyPath() string { return t.Plan.SafetyBackup }

// SafetyProtection says how the safety backup is protected (see the
// package's SafetyProtection).
func (t *Images) SafetyProtection() string { return sealedHow(t.SafetySeal) }

// CanRollBack is false with --no-safety-backup, which gives the safety net up.
func (t *Images) CanRollBack() bool { return !t.NoSafety }

// SaveSafety backs up what the volume holds, the way 'backup images' does,
// and verifies the copy, before anything is changed.
func (t *Images) SaveSafety(ctx context.Context) error {
	vol, path := t.Volume, t.SafetyPath()
	t.Progress.Step("saving what %s holds now to %s, %s", vol.Where(), path, t.SafetyProtection())
	var m *imagearchive.Manifest
	write := func(out io.Writer) error {
		info := imagearchive.Info{
			Tool: version.Tool(), DTRVersion: t.Replica.Version, ReplicaID: t.Replica.ID, Node: t.Replica.Node,
			Volume: vol.Name, VolumeDriver: vol.Driver, Started: time.Now(),
		}
		return vol.Read(ctx, t.Docker, func(rd io.Reader) error {
			var err error
			m, err = imagearchive.Write(out, rd, info, func(n imagearchive.Totals) {
				t.Progress.Step("%d files, %s so far", n.Files, human.Bytes(n.Bytes))
			})
			return err
		})
	}
	interrupted := func(err error) error {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted: %w", err)
		}
		return err
	}
	if err := saveSafetyStreamed(t.Progress, path, t.SafetySeal, write, interrupted, checkImageSafety); err != nil {
		return err
	}
	if n := len(m.CorruptBlobs); n > 0 {
		t.Progress.Warn("%s in %s already did not match their digests; the safety backup keeps them as they are", human.Plural(n, "blob"), vol.Where())
	}
	fmt.Fprintf(t.Stderr, "safety backup of %s: %s\n", vol.Where(), path)
	return nil
}

func (t *Images) Stop(ctx context.Context) (func() error, error) {
	return t.Volume.Stop(ctx, t.Docker, t.Progress.Step)
}

// Apply writes the content through the archive API, a fresh read of the
// backup checked entry by entry against the verified manifest as it goes
// (imagearchive.ContentStream): the volume counts as restored only if
// what was written is what was verified. A volume that held files before
// is then read back and checked against the manifest too: what was there
// (a symlink, a directory where a file goes) may have turned the writing
// aside. An emptied one holds only what the engine wrote, which said it
// wrote all of it: reading it back would cost what the writing did.
func (t *Images) Apply(ctx context.Context) error {
	prog, vol, rep := t.Progress, t.Volume, t.Report
	prog.Step("writing %d files (%s) into %s, each checked against the manifest", t.Plan.Files, human.Bytes(t.Plan.Bytes), vol.Where())
	// The stream re-tars the archive's content (with, when incremental,
	// the blobs of earlier backups): its size is close to the archive's.
	streamSize := rep.Size + rep.OmittedBytes
	prog.PhaseOf("writing into volume "+vol.Name, "", 0, streamSize)
	w, err := t.takeWriter(ctx)
	if err != nil {
		prog.Close()
		return err
	}
	pass := contentPass{
		Open: t.Open, Report: rep, Chain: t.Chain, ReadBack: !t.Plan.VolumeEmpty, Meter: prog.Reader,
		BeforeReadBack: func() {
			prog.Done()
			prog.Step("checking %s against the manifest (it held files before)", vol.Where())
			prog.PhaseOf("checking volume "+vol.Name, "", 0, streamSize)
		},
	}
	checked, err := pass.write(func(content io.Reader, check func(io.Reader) error) error {
		return w.Write(ctx, content, check)
	})
	if err == nil && checked.OK() {
		// The helper goes while the registry starts again (Close waits).
		t.closed = make(chan error, 1)
		go func() { t.closed <- w.Close() }()
	} else if cerr := w.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err == nil {
		prog.Done()
	}
	prog.Close()
	if err != nil {
		return err
	}
	if !checked.OK() {
		for _, m := range checked.Missing {
			prog.Warn("missing from the volume: %s", m)
		}
		for _, d := range checked.Differ {
			prog.Warn("differs from the backup: %s", d)
		}
		return fmt.Errorf("after writing, %d files are missing from the volume and %d differ from the backup (listed above)", len(checked.Missing), len(checked.Differ))
	}
	t.Check = checked
	return nil
}

// contentPass is one writing of a verified image backup's content into a
// volume: the content read afresh from Open and checked entry by entry
// against the verified Report as it goes (imagearchive.ContentStream),
// and, with ReadBack, the volume read back once written and checked
// against the manifest too (what a volume held before may have turned
// the writing aside). Apply and the rollback's writeSafetyBack both
// write this way.
type contentPass struct {
	Open   imagearchive.Source
	Report *imagearchive.Report
	Chain  *imagearchive.Chain
	// ReadBack reads the volume back after writing and checks it.
	ReadBack bool
	// Meter, when not nil, wraps what goes into the engine and what comes
	// back from it (a progress meter).
	Meter func(io.Reader) io.Reader
	// BeforeReadBack, when not nil, runs once all is written, before the
	// volume is read back.
	BeforeReadBack func()
}

// write runs the pass through write (a volume's Write: the content, and
// the check of what the volume holds after, nil for none). The Check is
// the read-back's with ReadBack, else the content pass's. What the
// content pass found wrong is the error, unless it only saw the engine
// stop reading.
func (p contentPass) write(write func(content io.Reader, check func(io.Reader) error) error) (*imagearchive.Check, error) {
	meter := p.Meter
	if meter == nil {
		meter = func(r io.Reader) io.Reader { return r }
	}
	var written *imagearchive.Check
	content, wait := produce(func(w io.Writer) error {
		var err error
		written, err = imagearchive.ContentStream(p.Open, p.Report, p.Chain, w)
		return err
	})
	var check func(io.Reader) error
	var readBack *imagearchive.Check
	if p.ReadBack {
		check = func(rd io.Reader) error {
			// The engine read the stream to its end: its verdict is in.
			if err := wait(); err != nil {
				return err
			}
			if p.BeforeReadBack != nil {
				p.BeforeReadBack()
			}
			var err error
			readBack, err = imagearchive.CheckVolumeOf(p.Report, meter(rd))
			return err
		}
	}
	err := write(meter(content), check)
	content.Close() // ends the writer if the engine stopped reading
	if werr := wait(); werr != nil && (err == nil || !errors.Is(werr, io.ErrClosedPipe)) {
		err = werr
	}
	switch {
	case err != nil:
		return nil, err
	case !p.ReadBack:
		return written, nil
	case readBack == nil:
		return nil, errors.New("the volume was not read back to check it")
	}
	return readBack, nil
}

// takeWriter is the helper to write through: the one PlanImages made, or
// a new one.
func (t *Images) takeWriter(ctx context.Context) (*imagevolume.Writer, error) {
	if w := t.writer; w != nil {
		t.writer = nil
		return w, nil
	}
	return t.Volume.NewWriter(ctx, t.Docker)
}

// Close removes the helper PlanImages made, if Apply did not take it, or
// waits until Apply's removal of it is done. Call it once the restore is
// over, whatever happened.
func (t *Images) Close() error {
	if w := t.writer; w != nil {
		t.writer = nil
		return w.Close()
	}
	if c := t.closed; c != nil {
		t.closed = nil
		return <-c
	}
	return nil
}

// Rollback empties the volume and writes the safety backup back, checking
// every file against its manifest.
func (t *Images) Rollback(ctx context.Context) error {
	vol, prog := t.Volume, t.Progress
	prog.Step("emptying %s (a helper container runs this plugin as an agent)", vol.Where())
	if err := vol.Wipe(ctx, t.Docker, t.AgentBinary); err != nil {
		return err
	}
	t.wiped = true
	path := t.SafetyPath()
	if path == "" {
		empty, err := vol.Empty(ctx, t.Docker)
		if err != nil {
			return err
		}
		if !empty {
			return fmt.Errorf("%s still holds files after emptying it", vol.Where())
		}
		prog.Step("emptied %s again", vol.Where())
		return nil
	}
	return withSafetyStreamed(path, t.SafetySeal, func(in *backupfile.Input) error {
		return writeSafetyBack(t.Progress, in, path, vol.Name, func(content io.Reader, check func(io.Reader) error) error {
			return vol.Write(ctx, t.Docker, content, check)
		})
	})
}

// checkImageSafety verifies an image safety backup just written, reading
// it once (a sealed one as it is decrypted, with no plaintext file).
// Blobs already corrupt in the registry are listed in the manifest, kept
// as they are, and not problems.
func checkImageSafety(in *backupfile.Input) error {
	rep, err := imagearchive.VerifyStream(in.Pass)
	if err == nil && !rep.OK() {
		err = fmt.Errorf("%s: %s", rep.Problems[0].Entry, rep.Problems[0].Message)
	}
	return err
}

// writeSafetyBack writes the safety backup in (at path) back into the
// emptied volume vol through write (the volume's Write: the content, and
// the check of what the volume holds after). It reads the backup in
// passes (Input.Pass), a sealed one decrypted anew for each, with no
// plaintext file: one verifies it, the next is the content, checked entry
// by entry against that manifest as it is written (ContentStream); then
// the volume is read back and checked against the manifest, files it
// should not hold included.
func writeSafetyBack(prog *progress.Printer, in *backupfile.Input, path, vol string, write func(content io.Reader, check func(io.Reader) error) error) error {
	rep, err := imagearchive.VerifyStream(in.Pass)
	if err != nil {
		return fmt.Errorf("the safety backup %s: %w", path, err)
	}
	if !rep.OK() {
		return fmt.Errorf("the safety backup %s: %s", path, rep.Problems[0].Message)
	}
	prog.Step("writing the safety backup %s back into volume %s: %s (%s)", path, vol, human.Plural(int(rep.Files), "file"), human.Bytes(rep.Bytes))
	check, err := contentPass{Open: in.Pass, Report: rep, ReadBack: true}.write(write)
	if err != nil {
		return err
	}
	if !check.OK() || check.Extra > 0 {
		return fmt.Errorf("volume %s does not match the safety backup after writing it back: %d files missing, %d differ, %d not in it",
			vol, len(check.Missing)+check.Omitted, len(check.Differ), check.Extra)
	}
	prog.Step("put volume %s back from %s: %s, every file checked", vol, path, human.Plural(int(check.Checked), "file"))
	return nil
}

// produce runs write on a goroutine of its own and returns the reader of
// what it writes, and wait: write's error, once it has returned. The
// writer runs ahead of the engine by up to 4 MiB (bufpipe): through an
// io.Pipe, which hands each write over in lockstep with the HTTP client's
// 32 KiB reads, the content pass (hashing each file as it goes) left the
// engine short between writes; it then read the stream in smaller pieces
// and took 1 s more for 537 MB (BenchmarkImageWriteParts, docs/benchmarks.md
// section 5). A writer's error reaches the engine at once, as a broken
// stream.
func produce(write func(io.Writer) error) (io.ReadCloser, func() error) {
	return bufpipe.Run(256<<10, 16, write)
}

// VolumeLook is what a restore finds of a replica's image volume before
// it plans: whether it is empty, and whether the agent that empties it
// again can run on the node. Finding it only reads, so it runs while the
// backup verifies; it holds the helper the restore writes through,
// created and never started, which changes nothing. Close it, unless
// PlanImages took it.
type VolumeLook struct {
	Volume *imagevolume.Volume
	Empty  bool
	// AgentErr says why the agent cannot run (with a rollback only).
	AgentErr error
	writer   *imagevolume.Writer
}

// LookAtVolume looks at the image volume of replica through a helper that
// mounts it (the one the restore will write through). rollBack says a
// failed write would be put back: then the agent that empties the volume
// (agentBinary, --agent-binary) must be able to run on the node. storage,
// when not nil, reads DTR's storage settings first: where they say s3,
// the bucket is looked at and written instead of the volume; another
// external driver is refused, since nothing would be restored where the
// registry reads. toVolume is ImageStore's.
func LookAtVolume(ctx context.Context, api imagevolume.API, replica *dtr.Replica, agentBinary string, rollBack bool, storage func(context.Context) (dtrstorage.Backend, error), toVolume bool, prog *progress.Printer) (*VolumeLook, error) {
	vol, err := ImageStore(ctx, replica, storage, toVolume, prog)
	if err != nil {
		return nil, err
	}
	vol.AgentBinary = agentBinary
	w, err := vol.NewWriter(ctx, api)
	if err != nil {
		return nil, err
	}
	l := &VolumeLook{Volume: vol, writer: w}
	if l.Empty, err = w.Empty(ctx); err != nil {
		l.Close()
		return nil, err
	}
	if l.Empty {
		prog.Step("%s is empty", vol.Where())
	} else {
		prog.Step("%s holds files", vol.Where())
	}
	// Putting the volume back empties it first, which only the agent can
	// do: make sure it can run there before anything changes.
	if rollBack {
		l.AgentErr = vol.CheckAgent(ctx, api, agentBinary)
	}
	return l, nil
}

// ImageStore is where an image restore into replica writes: its image
// volume, or, where DTR's storage settings (storage, when not nil) say s3,
// its bucket. Another external driver is refused, since nothing would be
// restored where the registry reads. toVolume (--to-volume) writes the
// volume whatever the settings say: the first step of moving DTR's images
// out of a bucket, which the registry serves once its storage is set to
// filesystem; the settings are still read, to say so.
func ImageStore(ctx context.Context, replica *dtr.Replica, storage func(context.Context) (dtrstorage.Backend, error), toVolume bool, prog *progress.Printer) (*imagevolume.Volume, error) {
	vol, err := imagevolume.Of(replica)
	var b dtrstorage.Backend
	var berr error = errors.New("not read")
	if storage != nil {
		b, berr = storage(ctx)
	}
	switch {
	case toVolume && err != nil:
		return nil, fmt.Errorf("--to-volume: %w", err)
	case toVolume && berr == nil && b.External():
		prog.Warn("DTR keeps its images in %s (its setting %s): --to-volume writes volume %s instead, which DTR's registry serves only once its storage is set to filesystem", b, b.Setting, vol.Name)
	case toVolume:
		prog.Step("--to-volume: restoring into volume %s", vol.Name)
	case berr == nil && b.Driver == "s3":
		if err != nil {
			if vol, err = imagevolume.WithoutVolume(replica); err != nil {
				return nil, err
			}
		}
		vol.InBucket(b)
		prog.Step("DTR keeps its images in %s (its setting %s): the restore writes there", b, b.Setting)
	case berr == nil && b.External():
		return nil, fmt.Errorf("DTR keeps its images in %s (its setting %s): restore writes filesystem, NFS and s3 storage only, nothing was changed: restore the %s with its provider's tools", b, b.Setting, b.Place())
	case err != nil:
		return nil, err
	case storage != nil && berr != nil:
		prog.Step("DTR's storage configuration could not be read (%v): restoring into volume %s", berr, vol.Name)
	case storage != nil && !b.Known():
		prog.Step("DTR's storage configuration is unknown (%s): restoring into volume %s", b.Unknown, vol.Name)
	}
	return vol, nil
}

// Close removes the helper, unless PlanImages took it. A nil look is
// closed already.
func (l *VolumeLook) Close() error {
	if l == nil || l.writer == nil {
		return nil
	}
	w := l.writer
	l.writer = nil
	return w.Close()
}

// PlanImages plans the restore of t, a verified image backup, into the
// image volume of t.Replica that look found: where what it holds is saved
// first (in safetyDir, or beside input; sealed with t.SafetySeal), and
// what is stopped. It changes nothing; the target takes look's helper:
// Close the target (or, when PlanImages fails, look).
func PlanImages(t *Images, look *VolumeLook, safetyDir, input string) (*Images, error) {
	if !dtrversion.SameMajorMinor(t.Report.DTRVersion, t.Replica.Version) {
		t.Progress.Warn("%s is a backup of DTR %s, replica %s runs DTR %s", t.Name, t.Report.DTRVersion, t.Replica.ID, t.Replica.Version)
	}
	safety := ""
	if !look.Empty && !t.NoSafety {
		if err := checkSeal(t.SafetySeal); err != nil {
			return nil, err
		}
		safety = safetyPathFor(safetyDir, input, "images", t.Replica.ID, t.SafetySeal)
	}
	t.Volume = look.Volume
	NewImages(t, look.Empty, safety)
	if t.CanRollBack() {
		t.AgentErr = look.AgentErr
	}
	t.writer, look.writer = look.writer, nil
	return t, nil
}
