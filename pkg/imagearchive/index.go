package imagearchive

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"github.com/docker-dtr/docker-dtr/pkg/atomicfile"
)

// The index of an encrypted image backup is a plain file beside it,
// FILE.index, that lists the digests and sizes of the blobs whose bytes
// the backup holds, and names the backup by its manifest hash: what
// 'backup images --since' needs of an earlier backup, readable by a job
// that holds only the public key the backups are encrypted to. It holds no
// content, no repository, tag or file name. It is a function of the
// backup's manifest alone (IndexOf), written in one canonical form, so
// verify, which decrypts the backup, rebuilds it and compares the bytes:
// a swapped, edited or stale index is a problem of the backup.
const (
	IndexFormatName    = "docker-dtr-images-index"
	IndexFormatVersion = 1
	// IndexSuffix is appended to the backup's file name.
	IndexSuffix = ".index"
	// maxIndexLine bounds one line of an index: a blob's line is under 100
	// bytes, the header a few hundred.
	maxIndexLine = 4 << 10
)

// IndexHeader is an index's first line.
type IndexHeader struct {
	Format        string `json:"format"`
	FormatVersion int    `json:"formatVersion"`
	// ManifestSHA256 is the backup's manifest hash (Dependency's).
	ManifestSHA256 string    `json:"manifestSHA256"`
	Created        time.Time `json:"created"`
	ReplicaID      string    `json:"replicaId"`
	Volume         string    `json:"volume"`
	Incremental    bool      `json:"incremental,omitempty"`
	// Blobs and Bytes count the lines that follow and their sizes.
	Blobs int64 `json:"blobs"`
	Bytes int64 `json:"bytes"`
}

// IndexBlob is one line after the header.
type IndexBlob struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Index is an image backup's index.
type Index struct {
	IndexHeader
	// Held are the blobs, by digest.
	Held []IndexBlob
}

// IndexPath is where the index of the backup at path is.
func IndexPath(path string) string { return path + IndexSuffix }

// IsIndexName says whether a file name is an index's (by its suffix).
func IsIndexName(name string) bool {
	return len(name) > len(IndexSuffix) && filepath.Ext(name) == IndexSuffix
}

// newIndex is the index of a backup: its manifest's header, its manifest
// hash and the blobs it holds (digest to size).
func newIndex(hash string, started time.Time, replica, volume string, incremental bool, held map[string]int64) *Index {
	ix := &Index{IndexHeader: IndexHeader{
		Format: IndexFormatName, FormatVersion: IndexFormatVersion, ManifestSHA256: hash,
		Created: started.UTC(), ReplicaID: replica, Volume: volume, Incremental: incremental,
	}}
	ix.Held = make([]IndexBlob, 0, len(held))
	for d, s := range held {
		ix.Held = append(ix.Held, IndexBlob{SHA256: d, Size: s})
		ix.Blobs++
		ix.Bytes += s
	}
	sort.Slice(ix.Held, func(i, j int) bool { return ix.Held[i].SHA256 < ix.Held[j].SHA256 })
	return ix
}

// IndexOf is the index of the plain image backup f, from its manifest (the
// content is not read): what Write gave as the manifest's Index.
func IndexOf(f *os.File) (*Index, error) {
	b, err := OpenBase(f, "")
	if err != nil {
		return nil, err
	}
	return b.index(), nil
}

// index is the base's index.
func (b *Base) index() *Index {
	return newIndex(b.ManifestSHA256, b.Created, b.ReplicaID, b.Volume, b.Incremental, b.held)
}

// Index is the index of the backup Write wrote; nil for a Manifest that
// was read, not written.
func (m *Manifest) Index() *Index { return m.index }

// Marshal is the index in its one canonical form.
func (ix *Index) Marshal() []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.Encode(ix.IndexHeader)
	for _, b := range ix.Held {
		enc.Encode(b)
	}
	return buf.Bytes()
}

// ReadIndex reads and checks the index at path: strictly (unknown fields,
// a bad digest, unsorted or repeated lines, totals that do not add up are
// errors), one line at a time within bounds.
func ReadIndex(path string) (*Index, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ix, err := readIndex(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ix, nil
}

func readIndex(r io.Reader) (*Index, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), maxIndexLine)
	line := 0
	next := func(v any) error {
		if !sc.Scan() {
			if err := sc.Err(); err != nil {
				return fmt.Errorf("line %d: %w", line+1, err)
			}
			return io.EOF
		}
		line++
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		if dec.More() {
			return fmt.Errorf("line %d: more than one value", line)
		}
		return nil
	}
	ix := &Index{}
	if err := next(&ix.IndexHeader); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty: not an index")
		}
		return nil, fmt.Errorf("not an index: %w", err)
	}
	h := ix.IndexHeader
	switch {
	case h.Format != IndexFormatName:
		return nil, fmt.Errorf("format is %q, not %q", h.Format, IndexFormatName)
	case h.FormatVersion != IndexFormatVersion:
		return nil, fmt.Errorf("unknown index format version %d (this docker-dtr reads version %d: upgrade the plugin)", h.FormatVersion, IndexFormatVersion)
	case !validHash(h.ManifestSHA256):
		return nil, fmt.Errorf("manifest hash %q is not 64 hex digits", h.ManifestSHA256)
	case h.Blobs < 0 || h.Bytes < 0:
		return nil, errors.New("negative totals")
	}
	var bytes int64
	for {
		var b IndexBlob
		err := next(&b)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		switch {
		case !validHash(b.SHA256):
			return nil, fmt.Errorf("line %d: digest %q is not 64 hex digits", line, b.SHA256)
		case b.Size < 0 || b.Size > MaxFileSize:
			return nil, fmt.Errorf("line %d: size %d out of range", line, b.Size)
		case len(ix.Held) > 0 && ix.Held[len(ix.Held)-1].SHA256 >= b.SHA256:
			return nil, fmt.Errorf("line %d: blobs not in order, or listed twice", line)
		case int64(len(ix.Held)) >= h.Blobs:
			return nil, fmt.Errorf("line %d: more blobs than the header's %d", line, h.Blobs)
		}
		bytes += b.Size
		ix.Held = append(ix.Held, b)
	}
	if int64(len(ix.Held)) != h.Blobs || bytes != h.Bytes {
		return nil, fmt.Errorf("totals do not match the lines: the header says %d blobs, %d bytes; the lines list %d blobs, %d bytes (cut short?)", h.Blobs, h.Bytes, len(ix.Held), bytes)
	}
	return ix, nil
}

// Base is the earlier backup at path as its index describes it, for
// --since without the secret that would open it. The index is trusted as
// the backup's owner wrote it: nothing here checks it against the backup,
// which only its secret opens ('backup verify' does).
func (ix *Index) Base(path string) *Base {
	b := &Base{
		Dependency: Dependency{
			ManifestSHA256: ix.ManifestSHA256, File: filepath.Base(path), Created: ix.Created,
			ReplicaID: ix.ReplicaID, Volume: ix.Volume,
		},
		Path: path, Incremental: ix.Incremental, held: make(map[string]int64, len(ix.Held)),
		FromIndex: true,
	}
	for _, h := range ix.Held {
		b.held[h.SHA256] = h.Size
	}
	return b
}

// IndexFile is an index being written beside its backup.
type IndexFile struct {
	path string
	f    *atomicfile.File
}

// CreateIndex writes ix to a 0600 temporary file beside path+IndexSuffix,
// synced at Commit. Abort it in every case.
func CreateIndex(path string, ix *Index) (*IndexFile, error) {
	if ix == nil {
		return nil, errors.New("no index: the manifest was not written here")
	}
	p := IndexPath(path)
	f, err := atomicfile.Create(p)
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(ix.Marshal()); err != nil {
		f.Abort()
		return nil, fmt.Errorf("writing %s: %w", p, err)
	}
	return &IndexFile{path: p, f: f}, nil
}

// CommitWith puts the backup in place with its index: the old index at
// the name first goes (no backup is ever beside another's index), then
// commit puts the backup in place, then the index follows. A kill between
// the two leaves a backup without an index, which --since refuses or skips
// and 'backup verify' reports, never a wrong one.
func (x *IndexFile) CommitWith(commit func() error) error {
	if err := os.Remove(x.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		x.f.Abort()
		return fmt.Errorf("removing the old index %s: %w", x.path, err)
	}
	if err := commit(); err != nil {
		x.f.Abort()
		return err
	}
	if err := x.f.Commit(); err != nil {
		return fmt.Errorf("the backup is written, but not its index: %w", err)
	}
	return nil
}

// Abort removes the index's temporary file; a no-op after CommitWith, and
// on a nil IndexFile.
func (x *IndexFile) Abort() {
	if x != nil {
		x.f.Abort()
	}
}

// CheckIndex compares the index at indexPath with the one the manifest
// that Verify or VerifyStream kept in rep makes, byte for byte,
// and reports a difference as a problem in rep. A missing index is not a
// problem (backups written before indexes, or to standard output, have
// none); a wrong one is, since --since trusts it.
func CheckIndex(rep *Report, indexPath string) error {
	data, err := os.ReadFile(indexPath)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		rep.addProblem(indexPath, "%v", err)
		rep.Verified = false
		return nil
	}
	want, err := rep.keptIndex()
	if err != nil {
		return err
	}
	if want.ManifestSHA256 != rep.ManifestSHA256 {
		return errors.New("the backup changed while it was read")
	}
	if bytes.Equal(data, want.Marshal()) {
		return nil
	}
	ix, err := readIndex(bytes.NewReader(data))
	switch {
	case err != nil:
		rep.addProblem(indexPath, "not a readable index (%v): --since trusts it; remove it (--since then skips this backup)", err)
	case ix.ManifestSHA256 != want.ManifestSHA256:
		rep.addProblem(indexPath, "the index of another backup (manifest sha256:%s), not of this one (sha256:%s): swapped, or left from an earlier backup of the same name", ix.ManifestSHA256, want.ManifestSHA256)
	default:
		rep.addProblem(indexPath, "does not match the manifest (%s): edited? --since trusts it, so an incremental backup made with it may lack blobs; remove it", indexDiff(ix, want))
	}
	rep.Verified = false
	return nil
}

// indexDiff says, in a few words, how got differs from want.
func indexDiff(got, want *Index) string {
	w := make(map[string]int64, len(want.Held))
	for _, b := range want.Held {
		w[b.SHA256] = b.Size
	}
	extra, wrong := 0, 0
	for _, b := range got.Held {
		s, ok := w[b.SHA256]
		switch {
		case !ok:
			extra++
		case s != b.Size:
			wrong++
		}
		delete(w, b.SHA256)
	}
	switch {
	case extra > 0 || wrong > 0 || len(w) > 0:
		return fmt.Sprintf("%d blobs the backup does not hold, %d of the wrong size, %d left out", extra, wrong, len(w))
	}
	return "its header differs"
}

// ReadBaseIndex is the encrypted image backup at path as its index
// describes it, for --since; the one-line error says what to do when it
// has none.
func ReadBaseIndex(path string) (*Base, error) {
	ix, err := ReadIndex(IndexPath(path))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("encrypted, and no index beside it (%s, which docker-dtr writes beside every encrypted image backup since it learned to): take a full backup, or give --since a plain or indexed earlier backup", filepath.Base(IndexPath(path)))
	}
	if err != nil {
		return nil, fmt.Errorf("encrypted, and its index is not readable: %w", err)
	}
	return ix.Base(path), nil
}

// IsIndexFile says whether the file at path is an index: its name ends in
// IndexSuffix and it starts as one does.
func IsIndexFile(path string) bool {
	if !IsIndexName(path) {
		return false
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	want := `{"format":"` + IndexFormatName + `"`
	head := make([]byte, len(want))
	_, err = io.ReadFull(f, head)
	return err == nil && string(head) == want
}

// keptIndex is the index of the backup whose manifest Verify or
// VerifyStream kept in rep: what Write gave as the manifest's Index.
func (rep *Report) keptIndex() (*Index, error) {
	if rep.manifest == nil {
		return nil, errors.New("checking an index needs a verified report")
	}
	r := &Report{Kind: Kind, Problems: []archive.Problem{}}
	mr, m := r.readManifest(func() io.Reader { return bytes.NewReader(rep.manifest) })
	b, err := baseOf(r, mr, m, "")
	if err != nil {
		return nil, err
	}
	return b.index(), nil
}
