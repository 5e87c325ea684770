// Package imagearchive is the format of image content backups: a plain tar
// of the registry volume's files under one top directory, so that
// `tar -x --strip-components=1` into the volume restores it by hand, and a
// manifest (every file's size and SHA-256, totals, replica, DTR version) as
// the last entry, at the archive's root, where --strip-components skips it.
package imagearchive

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/jsonl"
)

const (
	FormatName    = "docker-dtr-images"
	FormatVersion = 1
	// IncrementalVersion is the format version of an incremental backup:
	// one that lists blobs whose bytes earlier backups hold (DependsOn).
	// Full backups stay at FormatVersion, which older plugins read.
	IncrementalVersion = 2
	// MaxDependencies bounds the earlier backups one incremental backup
	// depends on.
	MaxDependencies = 100
	// ManifestName is the last entry, outside the content directory.
	ManifestName = "docker-dtr-images.jsonl"
	// FileMode is the mode of the manifest entry: backups hold private data.
	FileMode = 0o600
	// MaxFileSize bounds one file of the volume: a layer of a terabyte is not
	// a layer anyone pushed.
	MaxFileSize = 1 << 40
	// MaxCorruptBlobs bounds the corrupt blobs a manifest lists: a registry
	// with more is not one to back up before it is repaired.
	MaxCorruptBlobs = 50000
)

// Manifest is the manifest's header line.
type Manifest struct {
	Format        string `json:"format"`
	FormatVersion int    `json:"formatVersion"`
	Tool          string `json:"tool"`
	DTRVersion    string `json:"dtrVersion"`
	ReplicaID     string `json:"replicaId"`
	Node          string `json:"node,omitempty"`
	Volume        string `json:"volume"`
	VolumeDriver  string `json:"volumeDriver,omitempty"`
	// Storage names, for a backup of DTR's bucket rather than its volume,
	// the storage it was read from ("s3 bucket B (region R, …)"), never
	// a credential; empty for a volume.
	Storage    string    `json:"storage,omitempty"`
	ContentDir string    `json:"contentDir"`
	Started    time.Time `json:"started"`
	Finished   time.Time `json:"finished"`
	// DependsOn lists, in an incremental backup (IncrementalVersion), the
	// earlier backups that hold the bytes of the blobs it lists but does
	// not hold.
	DependsOn []Dependency `json:"dependsOn,omitempty"`
	Totals
	// index is, once Write wrote the manifest, the backup's index.
	index *Index
}

// Dependency names an earlier image backup by its manifest hash.
type Dependency struct {
	// ManifestSHA256 is the SHA-256 (hex) of the earlier backup's manifest
	// entry's content: the bytes of docker-dtr-images.jsonl as stored in
	// it, trailer included. See ManifestHash.
	ManifestSHA256 string `json:"manifestSHA256"`
	// File is the earlier backup's base name when this one was written: a
	// hint where to look first.
	File      string    `json:"file"`
	Created   time.Time `json:"created"` // its header's started
	ReplicaID string    `json:"replicaId"`
	Volume    string    `json:"volume"`
}

// Totals count what the archive holds and what was left out.
type Totals struct {
	Files int64 `json:"files"`
	Dirs  int64 `json:"dirs"`
	Links int64 `json:"links"`
	Bytes int64 `json:"bytes"`
	Blobs int64 `json:"blobs"`
	// Uploads are unfinished pushes (_uploads), left out.
	UploadFiles int64 `json:"uploadFiles"`
	UploadBytes int64 `json:"uploadBytes"`
	// CorruptBlobs did not match their digest in the live registry.
	CorruptBlobs []string `json:"corruptBlobs"`
	// OmittedBlobs and OmittedBytes count, in an incremental backup, the
	// blobs listed whose bytes an earlier backup holds (not in Files,
	// Bytes or Blobs).
	OmittedBlobs int64 `json:"omittedBlobs,omitempty"`
	OmittedBytes int64 `json:"omittedBytes,omitempty"`
}

// Entry is one file, directory or link, by its path inside the volume.
type Entry struct {
	Name   string `json:"name"`
	Type   string `json:"type"` // file, dir, symlink
	Mode   int64  `json:"mode"`
	Size   int64  `json:"size,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	Link   string `json:"link,omitempty"`
	// In, for a blob an incremental backup lists but does not hold, is
	// the manifest hash of the earlier backup (of DependsOn) that holds it.
	In string `json:"in,omitempty"`
}

// appendLine appends e's manifest line as json.Marshal writes it,
// without the newline: by hand where every string is plain (a registry's
// 220,000 lines cost encoding/json's reflection a second of CPU).
func (e *Entry) appendLine(b []byte) []byte {
	if !jsonl.Plain(e.Name) || !jsonl.Plain(e.Type) || !jsonl.Plain(e.SHA256) || !jsonl.Plain(e.Link) || !jsonl.Plain(e.In) {
		line, err := json.Marshal(e)
		if err != nil {
			panic(err) // an Entry always encodes
		}
		return append(b, line...)
	}
	b = append(append(append(b, `{"name":"`...), e.Name...), `","type":"`...)
	b = append(append(b, e.Type...), `","mode":`...)
	b = strconv.AppendInt(b, e.Mode, 10)
	if e.Size != 0 {
		b = strconv.AppendInt(append(b, `,"size":`...), e.Size, 10)
	}
	for _, f := range [3][2]string{{`,"sha256":"`, e.SHA256}, {`,"link":"`, e.Link}, {`,"in":"`, e.In}} {
		if f[1] != "" {
			b = append(append(append(b, f[0]...), f[1]...), '"')
		}
	}
	return append(b, '}')
}

// nextEntry decodes the manifest's next entry line into e, or returns
// io.EOF after a valid trailer, as mr.Next does. A line of appendLine's
// form, its strings all jsonl.Plain, is decoded by hand: encoding/json
// took a tenth of a verify's time on a registry's small files
// (BenchmarkVerifyStream). Any other line goes to mr's strict decoding;
// both read and refuse the same lines alike (TestEntryLineReadAsJSON).
func nextEntry(mr *jsonl.Reader, e *Entry) error {
	line, err := mr.NextLine()
	if err != nil {
		return err
	}
	return decodeEntry(line, e)
}

// decodeEntry is nextEntry's decoding of one line, newline included.
func decodeEntry(line []byte, e *Entry) error {
	if e.parseLine(bytes.TrimSuffix(line, []byte("\n"))) {
		return nil
	}
	*e = Entry{}
	if err := jsonl.StrictUnmarshal(line, e); err != nil {
		return fmt.Errorf("manifest entry: %w", err)
	}
	return nil
}

// parseLine reads line as appendLine writes it by hand, its keys in that
// order and its strings and numbers as jsonl.CutString and jsonl.CutInt
// read them, and says whether it was such a line.
func (e *Entry) parseLine(line []byte) bool {
	*e = Entry{}
	rest, ok := bytes.CutPrefix(line, []byte(`{"name":"`))
	if !ok {
		return false
	}
	var name, typ []byte
	if name, rest, ok = jsonl.CutString(rest); !ok {
		return false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"type":"`)); !ok {
		return false
	}
	if typ, rest, ok = jsonl.CutString(rest); !ok {
		return false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"mode":`)); !ok {
		return false
	}
	if e.Mode, rest, ok = jsonl.CutInt(rest); !ok {
		return false
	}
	if after, found := bytes.CutPrefix(rest, []byte(`,"size":`)); found {
		if e.Size, rest, ok = jsonl.CutInt(after); !ok {
			return false
		}
	}
	for _, f := range [...]struct {
		key string
		v   *string
	}{{`,"sha256":"`, &e.SHA256}, {`,"link":"`, &e.Link}, {`,"in":"`, &e.In}} {
		if after, found := bytes.CutPrefix(rest, []byte(f.key)); found {
			var s []byte
			if s, rest, ok = jsonl.CutString(after); !ok {
				return false
			}
			*f.v = string(s)
		}
	}
	if string(rest) != "}" {
		return false
	}
	e.Name, e.Type = string(name), string(typ)
	return true
}

const (
	TypeFile    = "file"
	TypeDir     = "dir"
	TypeSymlink = "symlink"
)

func (m *Manifest) validate() error {
	if m.Format != FormatName {
		return fmt.Errorf("format is %q, not %q", m.Format, FormatName)
	}
	switch m.FormatVersion {
	case FormatVersion:
		if len(m.DependsOn) > 0 || m.OmittedBlobs != 0 || m.OmittedBytes != 0 {
			return fmt.Errorf("format version %d lists earlier backups or omitted blobs: only incremental backups (version %d) do", FormatVersion, IncrementalVersion)
		}
	case IncrementalVersion:
		if len(m.DependsOn) == 0 {
			return fmt.Errorf("an incremental backup (format version %d) that depends on no earlier backup", IncrementalVersion)
		}
		if len(m.DependsOn) > MaxDependencies {
			return fmt.Errorf("depends on %d earlier backups, more than %d", len(m.DependsOn), MaxDependencies)
		}
		seen := map[string]bool{}
		for _, d := range m.DependsOn {
			if !validHash(d.ManifestSHA256) {
				return fmt.Errorf("depends on a backup whose manifest hash %q is not 64 hex digits", d.ManifestSHA256)
			}
			if seen[d.ManifestSHA256] {
				return fmt.Errorf("depends twice on the backup %s", d.ManifestSHA256)
			}
			seen[d.ManifestSHA256] = true
			if d.File != "" && (len(d.File) > 255 || strings.ContainsAny(d.File, "/\x00") || d.File == "." || d.File == "..") {
				return fmt.Errorf("depends on a backup whose file name %q is not a base name", d.File)
			}
		}
		if m.OmittedBlobs < 0 || m.OmittedBytes < 0 {
			return fmt.Errorf("negative totals")
		}
	default:
		return fmt.Errorf("unknown format version %d (this docker-dtr reads versions %d and %d: upgrade the plugin)", m.FormatVersion, FormatVersion, IncrementalVersion)
	}
	if !validContentDir(m.ContentDir) {
		return fmt.Errorf("invalid content directory %q", m.ContentDir)
	}
	t := m.Totals
	if t.Files < 0 || t.Dirs < 0 || t.Links < 0 || t.Bytes < 0 || t.Blobs < 0 || t.UploadFiles < 0 || t.UploadBytes < 0 {
		return fmt.Errorf("negative totals")
	}
	if len(t.CorruptBlobs) > MaxCorruptBlobs {
		return fmt.Errorf("lists %d corrupt blobs, more than %d", len(t.CorruptBlobs), MaxCorruptBlobs)
	}
	for _, name := range t.CorruptBlobs {
		if _, ok := BlobDigest(name); !ok || SafeName(name) != nil {
			return fmt.Errorf("lists %q as a corrupt blob, which is not a blob's path", name)
		}
	}
	return nil
}

// validHash says h is a SHA-256 as the manifests write it: 64 lowercase
// hex digits.
func validHash(h string) bool {
	if len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// dependency returns the earlier backup the manifest names by hash.
func (m *Manifest) dependency(hash string) (Dependency, bool) {
	for _, d := range m.DependsOn {
		if d.ManifestSHA256 == hash {
			return d, true
		}
	}
	return Dependency{}, false
}

var contentDirRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*/$`)

func validContentDir(d string) bool {
	return len(d) <= 256 && contentDirRe.MatchString(d) && d != "./" && d != "../"
}

// ContentDirFor names the top directory after the volume it holds.
func ContentDirFor(volume string) string {
	d := volume + "/"
	if !validContentDir(d) {
		return "registry/"
	}
	return d
}

// MaxNameSize bounds a path inside the volume: Linux's PATH_MAX.
const MaxNameSize = 4096

// MaxLinks bounds the symlinks of an archive, which Verify and Content
// remember while they read it. A registry writes none.
const MaxLinks = 10000

// SafeName checks a path inside the volume: relative, clean, no "..".
func SafeName(name string) error {
	trimmed := strings.TrimSuffix(name, "/")
	switch {
	case trimmed == "":
		return fmt.Errorf("empty name")
	case len(name) > MaxNameSize:
		return fmt.Errorf("name of %d bytes, longer than Linux's %d byte paths", len(name), MaxNameSize)
	case strings.HasPrefix(name, "/"):
		return fmt.Errorf("absolute path")
	case strings.ContainsRune(name, 0):
		return fmt.Errorf("NUL in name")
	case path.Clean(trimmed) != trimmed:
		return fmt.Errorf("path is not clean")
	case trimmed == ".." || strings.HasPrefix(trimmed, "../"):
		return fmt.Errorf("path leaves the volume")
	}
	return nil
}

// SafeLink checks a symlink's target: relative, clean, and inside the volume
// when resolved from the link's directory. Clean means ".." only at the
// start: "d/t/../.." resolves inside the volume on paper, but not where t is
// itself a symlink, to "." say.
func SafeLink(name, target string) error {
	if target == "" || strings.HasPrefix(target, "/") {
		return fmt.Errorf("link to %q points outside the volume", target)
	}
	if len(target) > MaxNameSize || strings.ContainsRune(target, 0) || path.Clean(target) != target {
		return fmt.Errorf("link to %q: the target is not a clean path", target)
	}
	resolved := path.Join(path.Dir(strings.TrimSuffix(name, "/")), target)
	if resolved == ".." || strings.HasPrefix(resolved, "../") {
		return fmt.Errorf("link to %q points outside the volume", target)
	}
	return nil
}

// linkSet remembers the symlinks met so far in an archive, in order. An
// entry at or under one of them would be written through the link, wherever
// it points: a link "a/l" to ".." then a link "a/l/m" to "../.." reaches out
// of the volume although each resolves inside it on paper.
type linkSet map[string]bool

// check refuses a name (relative to the volume) at or under a symlink.
func (s linkSet) check(name string) error {
	if len(s) == 0 {
		return nil
	}
	name = strings.TrimSuffix(name, "/")
	for i := 0; i < len(name); i++ {
		if name[i] == '/' && s[name[:i]] {
			return fmt.Errorf("lies under the symlink %s: it would be written wherever the link points", name[:i])
		}
	}
	if s[name] {
		return fmt.Errorf("a second entry for the symlink %s", name)
	}
	return nil
}

// add records a symlink.
func (s linkSet) add(name string) error {
	if len(s) >= MaxLinks {
		return fmt.Errorf("more than %d symlinks: a registry writes none", MaxLinks)
	}
	s[strings.TrimSuffix(name, "/")] = true
	return nil
}

// checkType refuses what a registry volume never holds and a restore must
// not create: hard links, devices, fifos, sparse files and unknown kinds.
// (A tar cannot hold a socket.)
func checkType(hdr *tar.Header) error {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return fmt.Errorf("a sparse file: refused")
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return fmt.Errorf("a sparse file: refused")
		}
	}
	switch hdr.Typeflag {
	case tar.TypeDir, tar.TypeReg, tar.TypeSymlink:
		return nil
	case tar.TypeLink:
		return fmt.Errorf("a hard link to %q: refused (only directories, regular files and symlinks)", hdr.Linkname)
	case tar.TypeChar:
		return fmt.Errorf("a character device: refused (only directories, regular files and symlinks)")
	case tar.TypeBlock:
		return fmt.Errorf("a block device: refused (only directories, regular files and symlinks)")
	case tar.TypeFifo:
		return fmt.Errorf("a fifo: refused (only directories, regular files and symlinks)")
	}
	return fmt.Errorf("entry type %q: refused (only directories, regular files and symlinks)", hdr.Typeflag)
}

// blobDir is where distribution keeps its content-addressed blobs: each
// is blobDir/<first two hex digits>/<64 hex digits>/data.
const blobDir = "docker/registry/v2/blobs/sha256/"

// BlobDigest returns the digest a blob file's path names, if it is one:
// a path ending in blobDir/xx/<digest>/data, at its start or after a
// slash, xx the digest's first two digits. It runs for every entry of
// every archive and listing; a regular expression spent 16 % of an
// incremental backup's CPU here (docs/benchmarks.md, section 9).
func BlobDigest(name string) (hex string, ok bool) {
	rest, ok := strings.CutSuffix(name, "/data")
	// rest ends in blobDir + "xx/" + the digest.
	if !ok || len(rest) < len(blobDir)+3+64 {
		return "", false
	}
	n := len(rest)
	hex, xx, before := rest[n-64:], rest[n-67:n-65], rest[:n-67]
	if rest[n-65] != '/' || !validHash(hex) || xx != hex[:2] {
		return "", false
	}
	before, ok = strings.CutSuffix(before, blobDir)
	if !ok || (before != "" && !strings.HasSuffix(before, "/")) {
		return "", false
	}
	return hex, true
}

// isUpload says the path is inside an unfinished push, which is left out.
func isUpload(name string) bool {
	return strings.Contains("/"+name, "/_uploads/") || strings.HasSuffix(name, "/_uploads")
}

// checkEntry checks an entry of a volume's content, named rel inside the
// volume, before it is written anywhere: a name that stays inside, under
// no symlink met before, a symlink whose target stays inside, a regular
// file within MaxFileSize. Symlinks are remembered for the entries after.
// Backing up and restoring refuse the same entries.
func (l linkSet) checkEntry(hdr *tar.Header, rel string) error {
	if err := SafeName(rel); err != nil {
		return err
	}
	if err := l.check(rel); err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeSymlink:
		if err := SafeLink(rel, hdr.Linkname); err != nil {
			return err
		}
		return l.add(rel)
	case tar.TypeReg:
		if hdr.Size > MaxFileSize {
			return fmt.Errorf("a file of %d bytes, over the %d byte limit", hdr.Size, int64(MaxFileSize))
		}
	}
	return nil
}

// hashCopy copies src to w (nowhere when nil) through buf, and returns
// how many bytes it copied and their SHA-256, in hex: every file of an
// image archive is checked by it.
func hashCopy(w io.Writer, src io.Reader, buf []byte) (int64, string, error) {
	h := sha256.New()
	dst := io.Writer(h)
	if w != nil {
		dst = io.MultiWriter(w, h)
	}
	n, err := io.CopyBuffer(dst, src, buf)
	return n, hex.EncodeToString(h.Sum(nil)), err
}
