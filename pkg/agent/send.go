package agent

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/dtrstorage"
	"github.com/docker-dtr/docker-dtr/pkg/tunnel"
	"github.com/docker-dtr/docker-dtr/pkg/ustar"
)

// The send protocol, between the plugin and "agent --send /storage" over
// the helper's attached stdin and stdout: an incremental image backup
// reads only what its earlier backups lack.
//
//  1. The agent lists the volume on stdout, one ListEntry per line (JSON),
//     from a walk that stats but reads no file, then the line ListEnd.
//  2. The plugin sends on stdin the files to leave out, one "SIZE NAME"
//     line each (blobs its earlier backups hold), then the line "end".
//     Empty lines are the lease's keepalives and count for nothing. A
//     plugin that knows the list without the listing (a backup with no
//     earlier backup: "end" alone) may send it at once; a bucket's agent
//     then reads objects ahead while it is still listing.
//  3. The agent writes on stdout a tar of the volume as the engine's
//     archive API gives it (top directory "storage/", the same headers, in
//     the listing's order), except that a file left out is not sent at all
//     (the plugin makes its manifest line from the listing), and a file
//     inside an unfinished upload comes as its header with no data: Size 0
//     and its size in the PAX record OmittedSize. A file left out whose
//     size is no longer the one the plugin named is sent whole.
//
// Once the plugin's list is read, stdin is the lease: the agent stops,
// with an error, once it ends or stays silent for the idle timeout.
//
// With --no-listing (SendUnlisted) the plugin knows its list without the
// listing (every blob its earlier backups hold, by name and size), and
// there is no step 1: the agent reads the list, then writes the tar of
// step 3 in one walk, a file left out coming as one tar block: a header
// of type LeftOutType, Size 0, its size in decimal as the link name, its
// mode (three blocks of PAX header, as an upload's, would be a quarter of
// what crosses). A large volume is then walked once, and sent as it is
// walked, not after.
//
// On a bucket (--bucket), a line comes before step 1: DTR's storage
// settings as the agent read them (a ListEntry of type "storage", with no
// credential). The plugin starts that helper before it knows where DTR
// keeps its images; on any storage but s3 the agent exits after the line.

// ListEntry is one entry of the volume's listing. Name is relative to the
// volume, "/"-separated; a directory's ends in "/".
type ListEntry struct {
	Name  string `json:"name"`
	Type  string `json:"type"` // "file", "dir", "symlink", "end", or "storage"
	Size  int64  `json:"size,omitempty"`
	MTime int64  `json:"mtime,omitempty"` // Unix seconds
	// Mode is a file's mode as its tar header would give it (type bits
	// too): what the manifest line of a file left out says.
	Mode int64 `json:"mode,omitempty"`
	// Storage is DTR's storage configuration, without credentials: the
	// first line of a bucket's send ("agent --bucket --send"), before its
	// listing, which follows on s3 only.
	Storage *dtrstorage.Backend `json:"storage,omitempty"`
}

// ListEnd is the line after the listing.
var ListEnd = ListEntry{Type: "end"}

// OmittedSize is the PAX record of a file header sent without its data.
const OmittedSize = "DOCKERDTR.omittedsize"

// LeftOutType is the tar type of a file left out with --no-listing: a
// vendor type (POSIX leaves 'A' to 'Z' to vendors; GNU tar uses none of
// 'O'), header only, never written to a backup.
const LeftOutType = 'O'

// maxOmitLine bounds a line of the plugin's list: a size and a path.
const maxOmitLine = 32 + 4096

// Send runs the protocol above on dir.
func Send(dir string, stdin io.Reader, stdout io.Writer, idle time.Duration) error {
	if err := isDir(dir); err != nil {
		return err
	}
	return send(dirTree(dir), stdin, stdout, idle)
}

// isDir says why dir is not a directory to send, if it is not.
func isDir(dir string) error {
	st, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory (%s)", dir, st.Mode().Type())
	}
	return nil
}

// send runs the protocol above on t.
func send(t tree, stdin io.Reader, stdout io.Writer, idle time.Duration) error {
	// Stdin is read from the start, so that the plugin's keepalives count
	// while a large volume is listed.
	in, lease := tunnel.Watch(stdin, idle)
	pl := readPlan(in)
	if p, ok := t.(planner); ok {
		p.expect(pl)
		defer p.done()
	}
	out := bufio.NewWriterSize(stdout, 256<<10)
	// The send goes over the listing's entries, not a second walk: reading
	// the directories again was half the agent's system calls. Only up to
	// maxKeptBytes of them are kept; a larger volume is walked again.
	kept := &keptList{}
	err := list(t, out, func(w walked) {
		if kept != nil && !kept.add(w) {
			kept = nil
		}
	})
	if err != nil {
		return err
	}
	if err := out.Flush(); err != nil {
		return err
	}
	if err := pl.wait(lease); err != nil {
		return err
	}
	if err := sendFrom(t, kept, pl.omit, out, lease.Done()); err != nil {
		if why := lease.Why(); why != "" {
			return fmt.Errorf("%w: %s, taking it for gone", err, why)
		}
		return err
	}
	return out.Flush()
}

// SendUnlisted runs the protocol above with --no-listing on dir.
func SendUnlisted(dir string, stdin io.Reader, stdout io.Writer, idle time.Duration) error {
	if err := isDir(dir); err != nil {
		return err
	}
	return sendUnlisted(dirTree(dir), stdin, stdout, idle)
}

// sendUnlisted is SendUnlisted on t.
func sendUnlisted(t tree, stdin io.Reader, stdout io.Writer, idle time.Duration) error {
	in, lease := tunnel.Watch(stdin, idle)
	// The walk starts at once, while the plugin still reads its earlier
	// backups for the list: up to listWait entries are walked ahead.
	w := startWalk(t, lease.Done(), listWait)
	defer w.abort()
	pl := readPlan(in)
	if err := pl.wait(lease); err != nil {
		return err
	}
	out := bufio.NewWriterSize(stdout, 256<<10)
	if err := sendEntries(t, w.each, pl.omit, true, out, lease.Done()); err != nil {
		if why := lease.Why(); why != "" {
			return fmt.Errorf("%w: %s, taking it for gone", err, why)
		}
		return err
	}
	return out.Flush()
}

// List writes the listing of dir, then ListEnd, one JSON line each.
func List(dir string, w io.Writer) error { return list(dirTree(dir), w, func(walked) {}) }

// walked is an entry as the walk found it.
type walked struct {
	rel, link string
	info      fs.FileInfo
}

// list is List, handing keep every entry too.
func list(t tree, w io.Writer, keep func(walked)) error {
	var line []byte
	err := t.walk(nil, func(rel string, info fs.FileInfo, link string) error {
		keep(walked{rel: rel, link: link, info: info})
		e := ListEntry{Name: rel, MTime: info.ModTime().Unix()}
		switch t := info.Mode().Type(); {
		case t.IsDir():
			e.Type = "dir"
		case t&fs.ModeSymlink != 0:
			e.Type = "symlink"
		case t.IsRegular():
			e.Type, e.Size, e.Mode = "file", info.Size(), tarMode(info)
		default:
			e.Type = "other"
		}
		line = AppendListEntry(line[:0], e)
		_, err := w.Write(line)
		return err
	})
	if err != nil {
		return err
	}
	_, err = w.Write(AppendListEntry(line[:0], ListEnd))
	return err
}

// ReadOmit reads the plugin's list of files to leave out, up to "end".
func ReadOmit(r *bufio.Reader) (map[string]int64, error) {
	omit := map[string]int64{}
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) || len(line) > maxOmitLine {
			return nil, errors.New("a line over 4 KiB")
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, errors.New("the plugin's list ended before its end line")
			}
			return nil, err
		}
		s := strings.TrimSuffix(string(line), "\n")
		switch s {
		case "":
			continue // a keepalive
		case "end":
			return omit, nil
		}
		size, name, ok := strings.Cut(s, " ")
		n, err := strconv.ParseInt(size, 10, 64)
		if !ok || err != nil || n < 0 || name == "" {
			return nil, fmt.Errorf("%q is not a size and a name", s)
		}
		omit[name] = n
	}
}

// SendTar writes the tar of dir described above; it stops once done is
// closed. A file left out costs no byte of the stream: no header either,
// which was a fifth of what crossed (1.5 KiB of PAX header a blob).
func SendTar(dir string, omit map[string]int64, w io.Writer, done <-chan struct{}) error {
	return sendFrom(dirTree(dir), nil, omit, w, done)
}

// sendFrom is SendTar over the entries kept from the listing, in its
// order, or over a new walk if none were kept (nil).
func sendFrom(t tree, kept *keptList, omit map[string]int64, w io.Writer, done <-chan struct{}) error {
	each := t.walk
	if kept != nil {
		each = kept.each
	}
	return sendEntries(t, each, omit, false, w, done)
}

// sendEntries is sendFrom over the entries each gives; marked sends a
// file left out as its header with no data (--no-listing: the plugin has
// no listing to tell it of them).
func sendEntries(t tree, each func(<-chan struct{}, walkFunc) error, omit map[string]int64, marked bool, w io.Writer, done <-chan struct{}) error {
	if p, ok := t.(planner); ok {
		p.plan(omit)
		defer p.done()
	}
	tw := ustar.NewWriter(w)
	buf := make([]byte, 256<<10)
	top := t.top()
	send := func(rel string, info fs.FileInfo, link string) error {
		if info.Mode().Type()&fs.ModeSocket != 0 {
			return nil // as the archive API: a tar holds no socket
		}
		hdr, err := header(top, rel, info, link)
		if err != nil {
			return err
		}
		if hdr.Typeflag != tar.TypeReg {
			return tw.WriteHeader(hdr)
		}
		if n, ok := omit[rel]; ok && n == hdr.Size {
			if !marked {
				return nil
			}
			return tw.WriteHeader(&tar.Header{Name: hdr.Name, Typeflag: LeftOutType, Linkname: strconv.FormatInt(n, 10), Mode: hdr.Mode, Format: tar.FormatPAX})
		}
		if isUpload(rel) {
			hdr.PAXRecords = map[string]string{OmittedSize: strconv.FormatInt(hdr.Size, 10)}
			hdr.Size = 0
			return tw.WriteHeader(hdr)
		}
		f, err := t.open(rel)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ELOOP) {
			// Gone since the listing (a push or a garbage collection), or
			// a link now: skipped, as the archive API skips a file gone
			// since its walk.
			return nil
		}
		if err != nil {
			return err
		}
		defer f.Close()
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		// A file that shrank since its stat fails the send, naming it; one
		// that grew is cut at its header's size, as the engine's archive
		// does: the backup checks a blob's digest either way.
		n, err := io.CopyBuffer(tw, io.LimitReader(f, hdr.Size), buf)
		if err == nil && n < hdr.Size {
			err = fmt.Errorf("it shrank while it was read (%d of %d bytes)", n, hdr.Size)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		return nil
	}
	if err := each(done, send); err != nil {
		return err
	}
	return tw.Close()
}

var errGone = errors.New("the plugin is gone")

// aheadWalk is a walk on a goroutine of its own, up to its bound of
// entries ahead of its reader: the walk's stats go on while the reader
// reads and sends files (on one goroutine, a large volume's walk and
// send took their sum), and while the plugin's list is still to come.
type aheadWalk struct {
	batches chan []walked
	stop    chan struct{}
	once    sync.Once
	err     error // the walk's, once batches is closed
}

// walkBatch is how many entries go to the reader at a time.
const walkBatch = 256

// listWait bounds the entries walked before the plugin's list comes:
// 64 Ki entries, some 16 MiB (a second or so of a large volume's walk,
// what the plugin takes to read a large earlier backup).
const listWait = 64 << 10

// startWalk starts t's walk, up to ahead entries ahead of each.
func startWalk(t tree, done <-chan struct{}, ahead int) *aheadWalk {
	w := &aheadWalk{batches: make(chan []walked, max(ahead/walkBatch, 1)), stop: make(chan struct{})}
	go func() {
		defer close(w.batches)
		b := make([]walked, 0, walkBatch)
		w.err = t.walk(done, func(rel string, info fs.FileInfo, link string) error {
			b = append(b, walked{rel: rel, link: link, info: info})
			if len(b) < walkBatch {
				return nil
			}
			select {
			case w.batches <- b:
			case <-w.stop:
				return errGone
			}
			b = make([]walked, 0, walkBatch)
			return nil
		})
		if w.err == nil && len(b) > 0 {
			select {
			case w.batches <- b:
			case <-w.stop:
			}
		}
	}()
	return w
}

// each hands fn every entry of the walk, in its order (done is the
// walk's own, given to startWalk).
func (w *aheadWalk) each(_ <-chan struct{}, fn walkFunc) error {
	for b := range w.batches {
		for _, e := range b {
			if err := fn(e.rel, e.info, e.link); err != nil {
				w.abort()
				return err
			}
		}
	}
	return w.err
}

// abort stops the walk and waits for its goroutine to end.
func (w *aheadWalk) abort() {
	w.once.Do(func() { close(w.stop) })
	for range w.batches {
	}
}

// planner is a tree that reads faster when told what a send will read:
// expect before the listing, plan once it is listed (and the plan read).
type planner interface {
	expect(p *planned)
	plan(omit map[string]int64)
	done()
}

// planned is the plugin's list of files to leave out, once read: the
// plugin may send it before the listing ends (or starts), when it knows
// it without the listing.
type planned struct {
	ready chan struct{}
	omit  map[string]int64
	err   error
}

// readPlan reads the plugin's list from in on a goroutine of its own,
// then the rest of in (the lease's keepalives).
func readPlan(in io.Reader) *planned {
	pl := &planned{ready: make(chan struct{})}
	go func() {
		br := bufio.NewReaderSize(in, 64<<10)
		pl.omit, pl.err = ReadOmit(br)
		close(pl.ready)
		if pl.err == nil {
			io.Copy(io.Discard, br)
		}
	}()
	return pl
}

// wait waits for the list, or for the lease's end (with a second more
// for a stream that ended with, or inside, the list).
func (p *planned) wait(lease *tunnel.Watcher) error {
	select {
	case <-p.ready:
	case <-lease.Done():
		select {
		case <-p.ready:
		case <-time.After(time.Second):
			return fmt.Errorf("waiting for the files to leave out: %s, taking it for gone", lease.Why())
		}
	}
	if p.err != nil {
		return fmt.Errorf("reading the files to leave out: %w", p.err)
	}
	return nil
}

// known is the list, if it is read; never for a nil planned.
func (p *planned) known() (map[string]int64, bool) {
	if p == nil {
		return nil, false
	}
	select {
	case <-p.ready:
		return p.omit, p.err == nil
	default:
		return nil, false
	}
}

// header is the engine's archive API's header for an entry (moby's
// archive.FileInfoHeader): PAX, whole seconds, no access or change time,
// and the file's type in the mode's high bits.
func header(top, rel string, info fs.FileInfo, link string) (*tar.Header, error) {
	hdr, err := tar.FileInfoHeader(info, link)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	hdr.Format = tar.FormatPAX
	hdr.ModTime = hdr.ModTime.Truncate(time.Second)
	hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
	switch t := info.Mode().Type(); {
	case t.IsDir():
		hdr.Mode |= 0o40000
	case t&fs.ModeSymlink != 0:
		hdr.Mode |= 0o120000
	case t.IsRegular():
		hdr.Mode |= 0o100000
	}
	hdr.Name = top + "/" + rel
	if rel == "" {
		hdr.Name = top + "/"
	}
	return hdr, nil
}

// tarMode is a regular file's mode as header gives it: tar.FileInfoHeader's
// permission and setuid, setgid and sticky bits, and the type's high bits.
func tarMode(info fs.FileInfo) int64 {
	m := info.Mode()
	mode := int64(m.Perm()) | 0o100000
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}
