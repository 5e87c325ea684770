// Package imagearchive is the format of image content backups: a plain tar
// of the registry volume's files under one top directory, so that
// `tar -x --strip-components=1` into the volume restores it by hand, and a
// manifest (every file's size and SHA-256, totals, replica, DTR version) as
// the last entry, at the archive's root, where --strip-components skips it.
package imagearchive

import (
	"fmt"
	"path"
	"regexp"
	"strings"
	"time"
)

const (
	FormatName    = "docker-dtr-images"
	FormatVersion = 1
	// ManifestName is the last entry, outside the content directory.
	ManifestName = "docker-dtr-images.jsonl"
	// FileMode is the mode of the manifest entry: backups hold private data.
	FileMode = 0o600
	// MaxFileSize bounds one file of the volume: a layer of a terabyte is not
	// a layer anyone pushed.
	MaxFileSize = 1 << 40
)

// Manifest is the manifest's header line.
type Manifest struct {
	Format        string    `json:"format"`
	FormatVersion int       `json:"formatVersion"`
	Tool          string    `json:"tool"`
	DTRVersion    string    `json:"dtrVersion"`
	ReplicaID     string    `json:"replicaId"`
	Node          string    `json:"node,omitempty"`
	Volume        string    `json:"volume"`
	VolumeDriver  string    `json:"volumeDriver,omitempty"`
	ContentDir    string    `json:"contentDir"`
	Started       time.Time `json:"started"`
	Finished      time.Time `json:"finished"`
	Totals
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
}

// Entry is one file, directory or link, by its path inside the volume.
type Entry struct {
	Name   string `json:"name"`
	Type   string `json:"type"` // file, dir, symlink
	Mode   int64  `json:"mode"`
	Size   int64  `json:"size,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	Link   string `json:"link,omitempty"`
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
	if m.FormatVersion != FormatVersion {
		return fmt.Errorf("unknown format version %d (this docker-dtr reads version %d: upgrade the plugin)", m.FormatVersion, FormatVersion)
	}
	if !validContentDir(m.ContentDir) {
		return fmt.Errorf("invalid content directory %q", m.ContentDir)
	}
	return nil
}

var contentDirRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*/$`)

func validContentDir(d string) bool { return contentDirRe.MatchString(d) && d != "./" && d != "../" }

// ContentDirFor names the top directory after the volume it holds.
func ContentDirFor(volume string) string {
	d := volume + "/"
	if !validContentDir(d) {
		return "registry/"
	}
	return d
}

// SafeName checks a path inside the volume: relative, clean, no "..".
func SafeName(name string) error {
	trimmed := strings.TrimSuffix(name, "/")
	switch {
	case trimmed == "":
		return fmt.Errorf("empty name")
	case strings.HasPrefix(name, "/"):
		return fmt.Errorf("absolute path")
	case path.Clean(trimmed) != trimmed:
		return fmt.Errorf("path is not clean")
	case trimmed == ".." || strings.HasPrefix(trimmed, "../"):
		return fmt.Errorf("path leaves the volume")
	}
	return nil
}

// SafeLink checks a symlink's target: relative, and inside the volume when
// resolved from the link's directory.
func SafeLink(name, target string) error {
	if target == "" || strings.HasPrefix(target, "/") {
		return fmt.Errorf("link to %q points outside the volume", target)
	}
	resolved := path.Join(path.Dir(strings.TrimSuffix(name, "/")), target)
	if resolved == ".." || strings.HasPrefix(resolved, "../") {
		return fmt.Errorf("link to %q points outside the volume", target)
	}
	return nil
}

// blobPath matches distribution's content-addressed blob files.
var blobPath = regexp.MustCompile(`(?:^|/)docker/registry/v2/blobs/sha256/([0-9a-f]{2})/([0-9a-f]{64})/data$`)

// BlobDigest returns the digest a blob file's path names, if it is one.
func BlobDigest(name string) (hex string, ok bool) {
	m := blobPath.FindStringSubmatch(name)
	if m == nil || m[2][:2] != m[1] {
		return "", false
	}
	return m[2], true
}

// isUpload says the path is inside an unfinished push, which is left out.
func isUpload(name string) bool {
	return strings.Contains("/"+name, "/_uploads/") || strings.HasSuffix(name, "/_uploads")
}
