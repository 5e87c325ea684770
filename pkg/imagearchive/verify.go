package imagearchive

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"github.com/docker-dtr/docker-dtr/pkg/jsonl"
)

// Kind names image archives in reports, beside archive.KindPlugin.
const Kind = "docker-dtr images"

const maxProblems = 1000

// manifestLimits bound the manifest a reader accepts. The header's one list
// is the corrupt blobs: MaxCorruptBlobs paths of at most a few hundred bytes.
// An entry line holds one path, at most 4096 bytes on Linux, and its hash.
// Each earlier backup an incremental one depends on is an object of 5
// members.
var manifestLimits = jsonl.Limits{HeaderBytes: 16 << 20, HeaderValues: MaxCorruptBlobs + 64 + 8*MaxDependencies, LineBytes: 8 << 10}

// Report is what verify or inspect learned of an image archive.
type Report struct {
	Kind       string `json:"kind"`
	DTRVersion string `json:"dtrVersion"`
	ReplicaID  string `json:"replicaId"`
	Node       string `json:"node,omitempty"`
	Volume     string `json:"volume"`
	// Storage is the manifest's: the bucket a backup of one was read from.
	Storage  string     `json:"storage,omitempty"`
	Tool     string     `json:"tool,omitempty"`
	Started  *time.Time `json:"started,omitempty"`
	Finished *time.Time `json:"finished,omitempty"`
	Totals
	// ManifestSHA256 names this backup in later incremental ones.
	ManifestSHA256 string `json:"manifestSHA256,omitempty"`
	// DependsOn lists, for an incremental backup, the earlier backups that
	// hold the blobs it lists but does not hold.
	DependsOn []Dependency `json:"dependsOn,omitempty"`
	// Chain is what VerifyChain found of them.
	Chain           []ChainLink       `json:"chain,omitempty"`
	Size            int64             `json:"size"`
	FullRead        bool              `json:"fullRead"`
	Verified        bool              `json:"verified"`
	Problems        []archive.Problem `json:"problems"`
	ProblemsOmitted int               `json:"problemsOmitted,omitempty"`

	// Digests of the blobs the archive holds (hex), after Verify.
	BlobDigests map[string]bool `json:"-"`
	// ContentDir is the archive's top directory.
	ContentDir string `json:"-"`
	// Omitted, after Verify, lists the blobs an incremental backup does not
	// hold: by the manifest hash of the backup that does, then digest.
	Omitted map[string]map[string]Entry `json:"-"`
	// manifest is, after Verify or VerifyStream, the manifest entry's
	// content, for ContentStream and CheckVolumeOf.
	manifest []byte
}

// Incremental says the backup depends on earlier ones.
func (r *Report) Incremental() bool { return len(r.DependsOn) > 0 }

// OK reports whether no problem was found.
func (r *Report) OK() bool { return len(r.Problems) == 0 && r.ProblemsOmitted == 0 }

func (r *Report) addProblem(entry, format string, args ...any) {
	if len(r.Problems) >= maxProblems {
		r.ProblemsOmitted++
		return
	}
	r.Problems = append(r.Problems, archive.NewProblem(entry, fmt.Sprintf(format, args...)))
}

// bufferSize is 1 MiB, or what a small file holds.
func bufferSize(f *os.File) int {
	size := int64(1 << 20)
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		size = min(size, st.Size()+4<<10)
	}
	return int(size)
}

// IsImageArchive tells image archives from metadata ones by the first
// entry: metadata archives start with DTR's dtr-backup-v<version>/.
func IsImageArchive(f *os.File) (bool, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return false, err
	}
	defer f.Seek(0, io.SeekStart)
	return IsImageStream(f), nil
}

// IsImageStream is IsImageArchive of what r reads from the archive's
// start; it reads no more than the first entry's headers.
func IsImageStream(r io.Reader) bool {
	hdr, err := tar.NewReader(r).Next()
	if err != nil {
		return false // not a tar: the metadata verifier says what is wrong
	}
	return !strings.HasPrefix(hdr.Name, "dtr-backup-v")
}

// locate finds the manifest, which must be the last entry.
func locate(f *os.File, rep *Report) (off, size int64, ok bool) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		rep.addProblem("", "%v", err)
		return 0, 0, false
	}
	sb, err := archive.NewFileSeeker(f)
	if err != nil {
		rep.addProblem("", "%v", err)
		return 0, 0, false
	}
	tr := tar.NewReader(sb) // a Seeker: tar seeks over content
	var last string
	found := false
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			rep.addProblem(last, "the archive is damaged or truncated after this entry: %v", err)
			return 0, 0, false
		}
		last = hdr.Name
		if hdr.Name == ManifestName {
			if found {
				rep.addProblem(hdr.Name, "a second manifest")
				return 0, 0, false
			}
			found = true
			if off, err = sb.Seek(0, io.SeekCurrent); err != nil {
				rep.addProblem("", "%v", err)
				return 0, 0, false
			}
			size = hdr.Size
		} else if found {
			rep.addProblem(hdr.Name, "entry after the manifest, which must be last")
			return 0, 0, false
		}
	}
	if !found {
		rep.addProblem("", "no %s at the end: not an image backup made by docker-dtr, or cut short", ManifestName)
		return 0, 0, false
	}
	return off, size, true
}

func open(f *os.File) (*Report, *jsonl.Reader, *Manifest) { return openWith(f, locate) }

// openWith is open with find locating the manifest (rep.Size is set).
func openWith(f *os.File, find func(*os.File, *Report) (off, size int64, ok bool)) (*Report, *jsonl.Reader, *Manifest) {
	rep := &Report{Kind: Kind, Problems: []archive.Problem{}}
	if st, err := f.Stat(); err == nil {
		rep.Size = st.Size()
	}
	off, size, ok := find(f, rep)
	if !ok {
		return rep, nil, nil
	}
	mr, m := rep.readManifest(func() io.Reader { return io.NewSectionReader(f, off, size) })
	return rep, mr, m
}

// readManifest hashes and reads the manifest, which manifest gives from
// its start on each call, into rep's header fields.
func (rep *Report) readManifest(manifest func() io.Reader) (*jsonl.Reader, *Manifest) {
	_, sum, err := hashCopy(nil, manifest(), nil)
	if err != nil {
		rep.addProblem(ManifestName, "reading: %v", err)
		return nil, nil
	}
	rep.ManifestSHA256 = sum
	var m Manifest
	mr, err := jsonl.NewReader(manifest(), &m, manifestLimits)
	if err == nil {
		err = m.validate()
	}
	if err != nil {
		rep.addProblem(ManifestName, "%v", err)
		return nil, nil
	}
	rep.DTRVersion, rep.ReplicaID, rep.Node, rep.Volume, rep.Tool = m.DTRVersion, m.ReplicaID, m.Node, m.Volume, m.Tool
	rep.Storage = m.Storage
	rep.Started, rep.Finished = &m.Started, &m.Finished
	rep.Totals, rep.ContentDir, rep.DependsOn = m.Totals, m.ContentDir, m.DependsOn
	return mr, &m
}

// Inspect reads the manifest's header only.
func Inspect(f *os.File) (*Report, error) {
	rep, _, _ := open(f)
	return rep, nil
}

// Verify reads every entry: names, kinds and modes against the manifest,
// every file's SHA-256, every blob against its digest, links kept inside.
// It reads f once, from its start, as VerifyStream does.
func Verify(f *os.File) (*Report, error) {
	return VerifyStream(FileSource(f))
}

// verify checks the records of an archive's entries, in order, against
// its manifest, read by mr up to its header.
func (rep *Report) verify(records []record, mr *jsonl.Reader, m *Manifest) {
	rep.FullRead = true
	rep.BlobDigests = map[string]bool{}
	om := &omissions{m: m, rep: rep}
	// corrupt blobs the manifest lists, and whether the archive's are
	known := map[string]bool{}
	for _, name := range m.CorruptBlobs {
		known[name] = false
	}
	var got Totals
	links := linkSet{}
	first, inSync := true, true
	for _, r := range records {
		if first {
			first = false
			if r.name != m.ContentDir || r.typeflag != tar.TypeDir {
				rep.addProblem(r.name, "the first entry must be the directory %s", m.ContentDir)
				inSync = false
			}
			continue
		}
		rel, ok := strings.CutPrefix(r.name, m.ContentDir)
		if !ok {
			rep.addProblem(r.name, "outside the content directory %s", m.ContentDir)
			continue
		}
		if err := SafeName(rel); err != nil {
			rep.addProblem(r.name, "%v", err)
			continue
		}
		if err := links.check(rel); err != nil {
			rep.addProblem(r.name, "%v", err)
			continue
		}
		if r.typeErr != nil {
			rep.addProblem(r.name, "%v", r.typeErr)
			continue
		}
		e := Entry{Name: rel, Mode: r.mode}
		switch r.typeflag {
		case tar.TypeDir:
			e.Type, e.Name = TypeDir, strings.TrimSuffix(rel, "/")+"/"
			got.Dirs++
		case tar.TypeSymlink:
			e.Type, e.Link = TypeSymlink, r.link
			if err := SafeLink(rel, r.link); err != nil {
				rep.addProblem(r.name, "%v", err)
			}
			if err := links.add(rel); err != nil {
				rep.addProblem(r.name, "%v", err)
				return
			}
			got.Links++
		case tar.TypeReg:
			if r.tooBig {
				rep.addProblem(r.name, "a file of %d bytes, over the %d byte limit", r.size, int64(MaxFileSize))
				continue
			}
			e.Type, e.Size, e.SHA256 = TypeFile, r.size, r.sha256
			got.Files++
			got.Bytes += r.size
			if digest, ok := BlobDigest(rel); ok {
				got.Blobs++
				rep.BlobDigests[digest] = true
				if digest != e.SHA256 {
					if _, listed := known[rel]; listed {
						known[rel] = true
					} else {
						rep.addProblem(r.name, "blob data does not match its digest sha256:%s", digest)
					}
				}
			}
		}
		if inSync {
			inSync = rep.match(om.next(mr, links), e, r.name)
		}
	}
	if inSync {
		switch extra, err := om.next(mr, links)(); {
		case err == nil:
			rep.addProblem(ManifestName, "lists %s, which the archive does not hold", extra.Name)
		case !errors.Is(err, io.EOF):
			rep.addProblem(ManifestName, "%v", err)
		}
		if om.blobs != m.OmittedBlobs || om.bytes != m.OmittedBytes {
			rep.addProblem(ManifestName, "totals do not match the entries: the header says %d blobs, %d bytes held by earlier backups; the entries list %d blobs, %d bytes",
				m.OmittedBlobs, m.OmittedBytes, om.blobs, om.bytes)
		}
	}
	if got.Files != m.Files || got.Bytes != m.Bytes || got.Blobs != m.Blobs || got.Dirs != m.Dirs || got.Links != m.Links {
		rep.addProblem(ManifestName, "totals do not match the archive: manifest %d files, %d bytes, %d blobs; archive %d files, %d bytes, %d blobs",
			m.Files, m.Bytes, m.Blobs, got.Files, got.Bytes, got.Blobs)
	}
	// Blobs corrupt in the registry when it was backed up are kept as they
	// were, and reported; a new mismatch is a problem (above).
	for _, name := range m.CorruptBlobs {
		if !known[name] {
			rep.addProblem(m.ContentDir+name, "listed as corrupt in the manifest, but the archive holds no such corrupt blob")
			known[name] = true // once
		}
	}
	rep.Verified = rep.OK()
}

// match compares an archive entry with the manifest's next; false means they
// went out of step, and the rest is not compared line by line.
func (rep *Report) match(next func() (Entry, error), got Entry, entry string) bool {
	want, err := next()
	if err != nil {
		if errors.Is(err, io.EOF) {
			rep.addProblem(entry, "not in the manifest")
		} else {
			rep.addProblem(ManifestName, "%v", err)
		}
		return false
	}
	if want.Name != got.Name {
		rep.addProblem(entry, "the manifest lists %s here: archive and manifest differ from this entry on", want.Name)
		return false
	}
	switch {
	case want.Type != got.Type:
		rep.addProblem(entry, "is a %s, the manifest says %s", got.Type, want.Type)
	case want.Size != got.Size:
		rep.addProblem(entry, "size %d, the manifest says %d", got.Size, want.Size)
	case want.SHA256 != got.SHA256:
		rep.addProblem(entry, "SHA-256 does not match the manifest")
	case want.Link != got.Link:
		rep.addProblem(entry, "links to %q, the manifest says %q", got.Link, want.Link)
	case want.Mode != got.Mode:
		rep.addProblem(entry, "mode %o, the manifest says %o", got.Mode, want.Mode)
	}
	return true
}

// omissions checks and records the entries of an incremental backup's
// manifest that the archive does not hold: blobs an earlier backup holds.
type omissions struct {
	m            *Manifest
	rep          *Report
	blobs, bytes int64
}

// next returns a function that reads the manifest's next entry the archive
// holds, recording the omitted ones before it.
func (o *omissions) next(mr *jsonl.Reader, links linkSet) func() (Entry, error) {
	return func() (Entry, error) {
		for {
			var e Entry
			if err := nextEntry(mr, &e); err != nil {
				return e, err
			}
			if e.In == "" {
				return e, nil
			}
			o.add(e, links)
		}
	}
}

func (o *omissions) add(e Entry, links linkSet) {
	rep, entry := o.rep, o.m.ContentDir+e.Name
	if _, ok := o.m.dependency(e.In); !ok {
		rep.addProblem(entry, "held by the earlier backup %s, which the manifest does not list", e.In)
		return
	}
	digest, ok := BlobDigest(e.Name)
	switch {
	case !ok || e.Type != TypeFile:
		rep.addProblem(entry, "left out as held by an earlier backup, but only blob files may be")
		return
	case SafeName(e.Name) != nil:
		rep.addProblem(entry, "%v", SafeName(e.Name))
		return
	case links.check(e.Name) != nil:
		rep.addProblem(entry, "%v", links.check(e.Name))
		return
	case e.SHA256 != digest:
		rep.addProblem(entry, "left out as held by an earlier backup, with a SHA-256 that is not its digest")
		return
	case e.Size < 0 || e.Size > MaxFileSize:
		rep.addProblem(entry, "a file of %d bytes, over the %d byte limit", e.Size, int64(MaxFileSize))
		return
	}
	if rep.Omitted == nil {
		rep.Omitted = map[string]map[string]Entry{}
	}
	if rep.Omitted[e.In] == nil {
		rep.Omitted[e.In] = map[string]Entry{}
	}
	rep.Omitted[e.In][digest] = e
	rep.BlobDigests[digest] = true
	o.blobs++
	o.bytes += e.Size
}
