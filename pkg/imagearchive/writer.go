package imagearchive

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/jsonl"
	"github.com/docker-dtr/docker-dtr/pkg/ustar"
)

// Info describes the backup being written.
type Info struct {
	Tool         string
	DTRVersion   string
	ReplicaID    string
	Node         string
	Volume       string
	VolumeDriver string
	// Storage is Manifest.Storage: set for a bucket's backup.
	Storage string
	Started time.Time
	// Since makes the backup incremental: a blob whose bytes one of these
	// earlier backups holds is listed, not written.
	Since []*Base
	// Elided says src is the agent's tar of the volume (agent --send), in
	// which a file comes with no data when its size is in the PAX record
	// OmittedSizeRecord (an upload's, or a blob's that one of Since holds)
	// or it is of type LeftOutType (a blob's that one of Since holds): a
	// blob's is listed as that backup's by its content address without
	// reading it.
	Elided bool
	// LeftOut, in an elided stream, gives the blobs the agent left out of
	// it altogether (not even a header), in the listing's order, which is
	// the stream's: their manifest lines come from it, each where the
	// blob's entry would have been. Called once, when the stream starts.
	LeftOut func() []LeftOut
	// Clock gives the manifest's finish time; nil for time.Now (tests fix
	// it, for archives the same on every run).
	Clock func() time.Time
}

// Write copies a volume's content, as the engine's archive API gives it (one
// top directory, the mount point's base name), into an image archive on w.
// Blob files are hashed while they stream and checked against the digest
// their path names; a mismatch is recorded in the manifest, not an error.
// progress, if set, is called now and then with the totals so far.
func Write(w io.Writer, src io.Reader, info Info, progress func(Totals)) (*Manifest, error) {
	spool, err := jsonl.NewSpool()
	if err != nil {
		return nil, err
	}
	defer spool.Close()
	// 256 KiB, not more: 1 MiB writes cost the kernel 2-3x the system
	// time of 256 KiB ones here (docs/benchmarks.md, section 4).
	out := bufio.NewWriterSize(w, writeBuffer)
	tw := ustar.NewWriter(out)
	m := &Manifest{
		Format: FormatName, FormatVersion: FormatVersion, Tool: info.Tool,
		DTRVersion: info.DTRVersion, ReplicaID: info.ReplicaID, Node: info.Node,
		Volume: info.Volume, VolumeDriver: info.VolumeDriver, Storage: info.Storage,
		ContentDir: ContentDirFor(info.Volume), Started: info.Started.UTC(),
	}
	m.CorruptBlobs = []string{}
	tr := newVolumeStream(src)
	buf := make([]byte, writeBuffer)
	links := linkSet{}
	used := map[*Base]bool{}
	held := map[string]int64{} // for the index: the blobs written, good ones
	var nextReport int64
	var readErr error
	var line []byte
	// addLine spools an entry's manifest line, through one buffer.
	addLine := func(e *Entry) error {
		line = e.appendLine(line[:0])
		return spool.AddLine(line)
	}
	// omitted lists a blob sent without its data, or left out, as the
	// base's: trusted by its content address, since the base's manifest,
	// verified with it, lists these bytes under this digest.
	omitted := func(rel string, mode, size int64) error {
		b := heldBy(info.Since, rel, size)
		if b == nil {
			return fmt.Errorf("reading the volume: %s came without its data, and no earlier backup holds a blob of its digest and size", rel)
		}
		digest, _ := BlobDigest(rel)
		used[b] = true
		m.OmittedBlobs++
		m.OmittedBytes += size
		return addLine(&Entry{Name: rel, Mode: mode, Type: TypeFile, Size: size, SHA256: digest, In: b.ManifestSHA256})
	}
	var left []LeftOut
	if info.Elided && info.LeftOut != nil {
		left = info.LeftOut()
	}
	// leftBefore lists the blobs left out that the listing has before rel
	// (all of them for ""); one of rel's own name was sent whole after all.
	leftBefore := func(rel string) error {
		for len(left) > 0 {
			l := left[0]
			c := 0
			if rel != "" {
				c = WalkCompare(l.Name, rel)
			}
			if c > 0 {
				return nil
			}
			left = left[1:]
			if c < 0 || rel == "" {
				if err := omitted(l.Name, l.Mode, l.Size); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for hdr, rel := range tr.entries(&readErr) {
		if rel != "" {
			if err := leftBefore(rel); err != nil {
				return nil, err
			}
		}
		if rel == "" { // the mount point itself
			if err := tw.WriteHeader(copyHeader(hdr, m.ContentDir)); err != nil {
				return nil, err
			}
			continue
		}
		if err := links.checkEntry(hdr, rel); err != nil {
			return nil, fmt.Errorf("reading the volume: %s: %v", hdr.Name, err)
		}
		size, isOmitted, err := elidedSize(hdr, info.Elided)
		if err != nil {
			return nil, fmt.Errorf("reading the volume: %s: %v", hdr.Name, err)
		}
		if isUpload(strings.TrimSuffix(rel, "/")) {
			if hdr.Typeflag == tar.TypeReg {
				m.UploadFiles++
				m.UploadBytes += size
			}
			continue
		}
		e := Entry{Name: rel, Mode: hdr.Mode}
		nh := copyHeader(hdr, m.ContentDir+rel)
		switch hdr.Typeflag {
		case tar.TypeDir:
			e.Type = TypeDir
			e.Name = strings.TrimSuffix(rel, "/") + "/"
			nh.Name = m.ContentDir + e.Name
			m.Dirs++
			if err := tw.WriteHeader(nh); err != nil {
				return nil, err
			}
		case tar.TypeSymlink:
			e.Type, e.Link = TypeSymlink, hdr.Linkname
			m.Links++
			if err := tw.WriteHeader(nh); err != nil {
				return nil, err
			}
		case tar.TypeReg:
			if isOmitted {
				if err := omitted(rel, hdr.Mode, size); err != nil {
					return nil, err
				}
				continue
			}
			if b := heldBy(info.Since, rel, hdr.Size); b != nil {
				// Read, to check it is the blob the base holds, not written.
				n, sum, err := hashCopy(nil, tr, buf)
				if err != nil {
					return nil, fmt.Errorf("copying %s: %w", rel, err)
				}
				if digest, _ := BlobDigest(rel); sum != digest {
					return nil, fmt.Errorf("blob %s in the live registry does not match its digest, and the earlier backup %s holds good bytes for it: take a full backup (without --since), which keeps it as it is and reports it, or repair the registry", rel, b.File)
				}
				e.Type, e.Size, e.SHA256, e.In = TypeFile, n, sum, b.ManifestSHA256
				used[b] = true
				m.OmittedBlobs++
				m.OmittedBytes += n
				break
			}
			if err := tw.WriteHeader(nh); err != nil {
				return nil, err
			}
			n, sum, err := hashCopy(tw, tr, buf)
			if err != nil {
				return nil, fmt.Errorf("copying %s: %w", rel, err)
			}
			e.Type, e.Size, e.SHA256 = TypeFile, n, sum
			m.Files++
			m.Bytes += n
			if digest, ok := BlobDigest(rel); ok {
				m.Blobs++
				if digest != e.SHA256 {
					if len(m.CorruptBlobs) == MaxCorruptBlobs {
						return nil, fmt.Errorf("the registry holds more than %d blobs whose data does not match their digest, more than a backup lists: repair it first", MaxCorruptBlobs)
					}
					m.CorruptBlobs = append(m.CorruptBlobs, rel)
				} else {
					held[digest] = n
				}
			}
		default:
			return nil, fmt.Errorf("the volume holds %s, of a kind a registry does not write (tar type %q)", rel, hdr.Typeflag)
		}
		if err := addLine(&e); err != nil {
			return nil, err
		}
		if progress != nil && m.Bytes >= nextReport {
			progress(m.Totals)
			nextReport = m.Bytes + 256<<20
		}
	}
	if readErr != nil {
		return nil, readErr
	}
	if tr.root == "" {
		return nil, errors.New("reading the volume: the archive API gave nothing")
	}
	if err := leftBefore(""); err != nil {
		return nil, err
	}
	clock := info.Clock
	if clock == nil {
		clock = time.Now
	}
	m.Finished = clock().UTC()
	for _, b := range info.Since {
		if used[b] {
			m.DependsOn = append(m.DependsOn, b.Dependency)
		}
	}
	if len(m.DependsOn) > 0 {
		m.FormatVersion = IncrementalVersion
	}
	// A manifest that verify would refuse is an error now, not at restore.
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if err := jsonl.CheckHeader(m, manifestLimits); err != nil {
		return nil, err
	}
	mh := &tar.Header{Name: ManifestName, Typeflag: tar.TypeReg, Mode: FileMode, ModTime: m.Finished}
	hash, err := spool.WriteEntrySum(tw, mh, m)
	if err != nil {
		return nil, err
	}
	m.index = newIndex(hash, m.Started, m.ReplicaID, m.Volume, len(m.DependsOn) > 0, held)
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := out.Flush(); err != nil {
		return nil, err
	}
	return m, nil
}

// OmittedSizeRecord is the PAX record of a file that the agent's tar
// (Info.Elided) sends without its data: its size. pkg/agent writes it.
const OmittedSizeRecord = "DOCKERDTR.omittedsize"

// LeftOutType is the tar type of a blob file that the agent's tar
// (Info.Elided) left out, header only: its size in decimal as the link
// name. pkg/agent writes it (agent --send --no-listing).
const LeftOutType byte = 'O'

// elidedSize returns a regular file's size, and whether it came without
// its data (only in an elided stream). A left-out file (LeftOutType) is
// made a regular file's header.
func elidedSize(hdr *tar.Header, elided bool) (int64, bool, error) {
	if elided && hdr.Typeflag == LeftOutType {
		n, err := strconv.ParseInt(hdr.Linkname, 10, 64)
		if err != nil || n < 0 || n > MaxFileSize || hdr.Size != 0 {
			return 0, false, fmt.Errorf("left out, with the size %q", hdr.Linkname)
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeReg, ""
		return n, true, nil
	}
	v, ok := hdr.PAXRecords[OmittedSizeRecord]
	if !elided || !ok {
		return hdr.Size, false, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	switch {
	case hdr.Typeflag != tar.TypeReg || hdr.Size != 0:
		return 0, false, fmt.Errorf("an entry with data, or not a file, marked as sent without it")
	case err != nil || n < 0 || n > MaxFileSize:
		return 0, false, fmt.Errorf("sent without its data, with the size %q", v)
	}
	return n, true, nil
}

// LeftOut is a blob file the agent's tar leaves out (Info.LeftOut): its
// path inside the volume, its size, and its tar header's mode, all from
// the agent's listing.
type LeftOut struct {
	Name       string
	Size, Mode int64
}

// WalkCompare orders two paths inside the volume as a walk visits them
// (the agent's listing and tar): by name in each directory, a directory
// before what it holds. Plain string order differs: "a-b" sorts before
// "a/c", though the walk gives a's content first.
func WalkCompare(a, b string) int {
	a, b = strings.TrimSuffix(a, "/"), strings.TrimSuffix(b, "/")
	for {
		ac, arest, amore := strings.Cut(a, "/")
		bc, brest, bmore := strings.Cut(b, "/")
		if c := strings.Compare(ac, bc); c != 0 {
			return c
		}
		switch {
		case !amore && !bmore:
			return 0
		case !amore:
			return -1
		case !bmore:
			return 1
		}
		a, b = arest, brest
	}
}

// heldBy returns the earlier backup that holds the bytes of the blob file
// rel, if one does and it is one.
func heldBy(bases []*Base, rel string, size int64) *Base {
	if len(bases) == 0 {
		return nil
	}
	digest, ok := BlobDigest(rel)
	if !ok {
		return nil
	}
	return holder(bases, digest, size)
}

// writeBuffer is the size of Write's output buffer and copy buffer.
const writeBuffer = 256 << 10

// copyHeader keeps what a restore by hand needs (mode, owner, times) under a
// new name. Nothing else is carried: no PAX records, so no extended
// attributes such as file capabilities, and a link target only for links.
func copyHeader(h *tar.Header, name string) *tar.Header {
	nh := &tar.Header{
		Name: name, Typeflag: h.Typeflag, Mode: h.Mode, Size: h.Size,
		Uid: h.Uid, Gid: h.Gid, Uname: h.Uname, Gname: h.Gname, ModTime: h.ModTime,
	}
	if h.Typeflag == tar.TypeSymlink {
		nh.Linkname = h.Linkname
	}
	if h.Typeflag != tar.TypeReg {
		nh.Size = 0
	}
	return nh
}

// Held says whether one of bases holds the bytes of the blob file rel
// (its path inside the volume) at that size: what an incremental backup
// need not read.
func Held(bases []*Base, rel string, size int64) bool { return heldBy(bases, rel, size) != nil }

// IsUpload says the path inside the volume is in an unfinished push,
// which a backup leaves out.
func IsUpload(rel string) bool { return isUpload(strings.TrimSuffix(rel, "/")) }
