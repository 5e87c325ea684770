package imagearchive

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"github.com/docker-dtr/docker-dtr/pkg/jsonl"
	"github.com/docker-dtr/docker-dtr/pkg/ustar"
)

// Source starts a pass over an archive from its start: a plain file read
// again, or a fresh decryption of an encrypted one (backupfile's
// Input.Plain). A Read error of the source (a changed or cut encrypted
// file, found at its end) fails the pass, whatever was read before it.
type Source func() (io.ReadCloser, error)

// FileSource reads f from its start on every pass, through its own
// offset, which progress meters watch: one pass at a time. A verify's
// hashers read its larger files at their offsets too (fileHashers).
func FileSource(f *os.File) Source {
	return func() (io.ReadCloser, error) {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		return fileReader{f}, nil
	}
}

// fileReader is a FileSource's pass: the file from its offset, and at
// offsets; closing it leaves the file open.
type fileReader struct{ f *os.File }

func (r fileReader) Read(b []byte) (int, error)              { return r.f.Read(b) }
func (r fileReader) ReadAt(b []byte, off int64) (int, error) { return r.f.ReadAt(b, off) }
func (fileReader) Close() error                              { return nil }

// Metered is a pass of rc read through meter (a progress count, say),
// which keeps a FileSource's ReadAt for the verify's hashers.
func Metered(rc io.ReadCloser, meter func(io.Reader) io.Reader) io.ReadCloser {
	type metered struct {
		io.Reader
		io.Closer
	}
	if at, ok := rc.(io.ReaderAt); ok {
		return struct {
			metered
			io.ReaderAt
		}{metered{meter(rc), rc}, at}
	}
	return metered{meter(rc), rc}
}

// streamBufferSize is the read buffer of a pass.
const streamBufferSize = 256 << 10

// maxManifestSize bounds the manifest a stream keeps in memory: a line per
// entry of at most jsonl's LineBytes, for millions of files.
const maxManifestSize = 1 << 30

// pass is one reading of a source: the tar, the bytes it read, and the
// source's own error, kept apart from the tar's verdict on the bytes.
type pass struct {
	rc   io.ReadCloser
	at   io.ReaderAt // the source's file, when it is one
	tr   *ustar.Reader
	br   *bufio.Reader
	n    int64
	err  error // the source's, not io.EOF
	done bool
}

func startPass(open Source) (*pass, error) {
	rc, err := open()
	if err != nil {
		return nil, err
	}
	p := &pass{rc: rc}
	p.at, _ = rc.(io.ReaderAt)
	p.br = bufio.NewReaderSize(readerFunc(p.read), streamBufferSize)
	p.tr = ustar.NewReader(p.br)
	return p, nil
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(b []byte) (int, error) { return f(b) }

func (p *pass) read(b []byte) (int, error) {
	n, err := p.rc.Read(b)
	p.n += int64(n)
	if err != nil && !errors.Is(err, io.EOF) && p.err == nil {
		p.err = err
	}
	return n, err
}

// offset is where in the source the tar reader is: after Next, where
// its entry's content starts.
func (p *pass) offset() int64 { return p.n - int64(p.br.Buffered()) }

// finish reads what is left after the tar's end, so that an encrypted
// source reaches its integrity check, and returns the source's error.
func (p *pass) finish() error {
	if !p.done {
		p.done = true
		io.Copy(io.Discard, p.br)
	}
	return p.err
}

func (p *pass) close() {
	p.rc.Close()
}

// record is what a pass learned of one entry, before the manifest that
// it is compared with arrives at the end.
type record struct {
	name     string
	typeflag byte
	mode     int64
	size     int64 // of a regular file, as read
	sha256   string
	link     string
	typeErr  error // checkType's verdict
	tooBig   bool  // a regular file over MaxFileSize, not read
}

// scanned is a pass of a whole archive: every entry's record, and the
// manifest kept when it came.
type scanned struct {
	records  []record
	manifest []byte
	found    bool
	// fatal is what locate finds wrong in a file: a broken tar, a second
	// manifest, an entry after it; fatalAt names the entry.
	fatal, fatalAt string
}

func (s *scanned) stop(entry, format string, args ...any) *scanned {
	s.fatalAt, s.fatal = entry, fmt.Sprintf(format, args...)
	return s
}

// scan reads a whole archive once: each entry is hashed and recorded as
// it passes, the manifest is kept. It stops where locate would.
func scan(p *pass) *scanned {
	h := newFileHashers()
	s := scanEntries(p, h)
	if name, err := h.wait(s.records); err != nil && s.fatal == "" {
		s.stop(name, "reading this entry: %v", err)
	}
	return s
}

// scanEntries is scan's reading; h hashes the larger files.
func scanEntries(p *pass, h *fileHashers) *scanned {
	s := &scanned{}
	buf := make([]byte, streamBufferSize)
	last := ""
	for {
		hdr, err := p.tr.Next()
		if errors.Is(err, io.EOF) {
			return s
		}
		if err != nil {
			return s.stop(last, "the archive is damaged or truncated after this entry: %v", err)
		}
		last = hdr.Name
		switch {
		case hdr.Name == ManifestName && s.found:
			return s.stop(hdr.Name, "a second manifest")
		case s.found:
			return s.stop(hdr.Name, "entry after the manifest, which must be last")
		case hdr.Name == ManifestName:
			s.found = true
			if hdr.Size > maxManifestSize {
				return s.stop(hdr.Name, "a manifest of %d bytes, over the %d byte limit", hdr.Size, maxManifestSize)
			}
			var b bytes.Buffer
			if _, err := io.Copy(&b, p.tr); err != nil {
				return s.stop(hdr.Name, "the archive is damaged or truncated after this entry: %v", err)
			}
			s.manifest = b.Bytes()
			continue
		}
		r := record{name: hdr.Name, typeflag: hdr.Typeflag, mode: hdr.Mode, link: hdr.Linkname, typeErr: checkType(hdr)}
		if hdr.Typeflag == tar.TypeReg && r.typeErr == nil {
			switch {
			case hdr.Size > MaxFileSize:
				r.tooBig, r.size = true, hdr.Size
			case hdr.Size <= inlineHashMax:
				r.size, r.sha256, err = hashCopy(nil, p.tr, buf)
			case p.at != nil && p.tr.ContentFollows():
				// Read at its offset by a hasher; the pass skips it,
				// and finds it cut short if it is.
				r.size = hdr.Size
				h.hashAt(len(s.records), p.at, p.offset(), hdr.Size)
			default:
				r.size, err = h.copy(len(s.records), p.tr)
			}
			if err != nil {
				return s.stop(hdr.Name, "the archive is damaged or truncated after this entry: %v", err)
			}
		}
		s.records = append(s.records, r)
	}
}

// VerifyStream is Verify of an archive read once from open: every entry
// is recorded as it passes (name, kind, mode, size, SHA-256), the
// manifest is kept when it comes, last, and the records are checked
// against it at the end. The report is the one Verify gives the same
// bytes as a file; a Read error of the source is the error, with no
// report. The report keeps the manifest, for ContentStream and
// CheckVolumeOf.
func VerifyStream(open Source) (*Report, error) {
	rep, s, err := scanStream(open)
	if err != nil {
		return nil, err
	}
	mr, m := s.open(rep)
	if mr == nil {
		return rep, nil
	}
	rep.verify(s.records, mr, m)
	rep.manifest = s.manifest
	return rep, nil
}

// InspectStream is Inspect of an archive read once from open.
func InspectStream(open Source) (*Report, error) {
	rep, s, err := scanStream(open)
	if err != nil {
		return nil, err
	}
	s.open(rep)
	return rep, nil
}

// scanStream reads the archive once from open, to its end, and returns
// what it found of each entry and the manifest, beside an empty report of
// its size. A Read error of the source is the error.
func scanStream(open Source) (*Report, *scanned, error) {
	p, err := startPass(open)
	if err != nil {
		return nil, nil, err
	}
	defer p.close()
	s := scan(p)
	if err := p.finish(); err != nil {
		return nil, nil, err
	}
	rep := &Report{Kind: Kind, Problems: []archive.Problem{}, Size: p.n}
	return rep, s, nil
}

// open reads the kept manifest into rep as open does a file's.
func (s *scanned) open(rep *Report) (*jsonl.Reader, *Manifest) {
	switch {
	case s.fatal != "":
		rep.addProblem(s.fatalAt, "%s", s.fatal)
		return nil, nil
	case !s.found:
		rep.addProblem("", "no %s at the end: not an image backup made by docker-dtr, or cut short", ManifestName)
		return nil, nil
	}
	data := s.manifest
	return rep.readManifest(func() io.Reader { return bytes.NewReader(data) })
}

// ErrChanged is the error of a content pass that read something other
// than what was verified: the file changed or was replaced between the
// passes, or its decryption failed at the end.
var ErrChanged = errors.New("the backup changed since it was verified")

// ContentStream writes, as Content (and, for an incremental backup,
// Chain.Content) does, the content of the archive that Verify or
// VerifyStream reported in rep, read afresh from open; and checks it on
// the way against the verified manifest: every entry in its place, of its
// kind, mode and link, every file's size and SHA-256, the manifest by its
// hash, and the source to its end (an encrypted one's integrity check).
// So the one pass that writes the volume's content is the check of what
// it wrote. The Check counts the files written; an error (ErrChanged when
// the archive differs) means that nothing written may be used.
func ContentStream(open Source, rep *Report, chain *Chain, w io.Writer) (*Check, error) {
	if rep.manifest == nil || !rep.OK() {
		return nil, errors.New("ContentStream needs a verified report")
	}
	if rep.Incremental() && chain == nil {
		return nil, errors.New("ContentStream: an incremental backup needs its chain")
	}
	var m Manifest
	mr, err := jsonl.NewReader(bytes.NewReader(rep.manifest), &m, manifestLimits)
	if err != nil {
		return nil, err
	}
	p, err := startPass(open)
	if err != nil {
		return nil, err
	}
	defer p.close()
	changed := func(entry, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s; refusing what was written of it", ErrChanged, entry, fmt.Sprintf(format, args...))
	}
	tw := ustar.NewWriter(w)
	c := &Check{Missing: []string{}, Differ: []string{}}
	links := linkSet{}
	buf := make([]byte, streamBufferSize)
	seen := false // the manifest
	for {
		hdr, err := p.tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if p.err != nil {
				return nil, p.err
			}
			return nil, changed(rep.ContentDir, "%v", err)
		}
		switch {
		case seen:
			return nil, changed(hdr.Name, "an entry after the manifest")
		case hdr.Name == ManifestName:
			seen = true
			if _, sum, err := hashCopy(nil, p.tr, buf); err != nil {
				return nil, p.errOr(changed(hdr.Name, "%v", err))
			} else if sum != rep.ManifestSHA256 {
				return nil, changed(hdr.Name, "not the manifest that was verified")
			}
			continue
		case hdr.Name == rep.ContentDir:
			continue
		}
		rel, ok := strings.CutPrefix(hdr.Name, rep.ContentDir)
		if !ok {
			return nil, fmt.Errorf("%s is outside %s: refusing to restore it", hdr.Name, rep.ContentDir)
		}
		if err := checkType(hdr); err != nil {
			return nil, fmt.Errorf("%s: %v: refusing to restore it", hdr.Name, err)
		}
		if err := links.checkEntry(hdr, rel); err != nil {
			return nil, fmt.Errorf("%s: %v: refusing to restore it", hdr.Name, err)
		}
		want, err := nextHeld(mr)
		if err != nil {
			return nil, changed(hdr.Name, "the verified manifest lists no more entries")
		}
		got := Entry{Name: rel, Mode: hdr.Mode}
		switch hdr.Typeflag {
		case tar.TypeDir:
			got.Type, got.Name = TypeDir, strings.TrimSuffix(rel, "/")+"/"
		case tar.TypeSymlink:
			got.Type, got.Link = TypeSymlink, hdr.Linkname
		case tar.TypeReg:
			got.Type = TypeFile
		}
		if want.Name != got.Name || want.Type != got.Type || want.Mode != got.Mode || want.Link != got.Link ||
			(got.Type == TypeFile && hdr.Size != want.Size) {
			return nil, changed(hdr.Name, "not the entry that was verified there (%s)", want.Name)
		}
		if err := tw.WriteHeader(copyHeader(hdr, rel)); err != nil {
			return nil, err
		}
		if got.Type != TypeFile {
			continue
		}
		n, sum, err := hashCopy(tw, p.tr, buf)
		switch {
		case p.err != nil:
			return nil, p.err
		case err != nil:
			return nil, err // the writer's: the engine stopped reading
		case n != want.Size || sum != want.SHA256:
			return nil, changed(hdr.Name, "its content is not what was verified")
		}
		c.Checked++
	}
	if err := p.finish(); err != nil {
		return nil, err
	}
	if !seen {
		return nil, changed(ManifestName, "missing")
	}
	if extra, err := nextHeld(mr); err == nil {
		return nil, changed(rep.ContentDir+extra.Name, "missing")
	}
	if rep.Incremental() {
		n, err := chain.blobs(rep, links, tw)
		if err != nil {
			return nil, err
		}
		c.Checked += int64(n)
	}
	return c, tw.Close()
}

// errOr is the source's error, which explains err, or err.
func (p *pass) errOr(err error) error {
	if p.err != nil {
		return p.err
	}
	return err
}

// nextHeld returns the manifest's next entry that the archive holds
// (blobs an earlier backup holds skipped), or io.EOF.
func nextHeld(mr *jsonl.Reader) (Entry, error) {
	for {
		var e Entry
		if err := nextEntry(mr, &e); err != nil || e.In == "" {
			return e, err
		}
	}
}

// CheckVolumeOf is CheckVolume with the manifest that Verify or
// VerifyStream kept in rep.
func CheckVolumeOf(rep *Report, volume io.Reader) (*Check, error) {
	if rep.manifest == nil {
		return nil, errors.New("CheckVolumeOf needs a verified report")
	}
	var m Manifest
	mr, err := jsonl.NewReader(bytes.NewReader(rep.manifest), &m, manifestLimits)
	if err != nil {
		return nil, err
	}
	return checkVolume(mr, volume)
}
