package agent

import (
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// Usage is what a walk of an image volume found: the regular files an
// image backup keeps (Files, Bytes), the unfinished pushes it leaves out
// (UploadFiles, UploadBytes), and Stream, an estimate of the tar the
// archive API sends for the whole volume, which is what the backup's
// progress meter counts (it reads the uploads too, and tar headers).
type Usage struct {
	Files       int64 `json:"files"`
	Bytes       int64 `json:"bytes"`
	UploadFiles int64 `json:"uploadFiles"`
	UploadBytes int64 `json:"uploadBytes"`
	Dirs        int64 `json:"dirs"`
	Links       int64 `json:"links"`
	Stream      int64 `json:"stream"`
}

const tarBlock = 512

// DU walks dir without following symbolic links (a link counts as one
// entry, whatever it points to) and adds up what is in it. dir must be a
// directory, not a link to one. Sockets are not counted: the archive API
// skips them. It walks as the listing does (walk: each name statted
// relative to its directory's descriptor), a sixth less CPU than
// filepath.WalkDir's whole paths: a measure runs beside the backup's
// read, on the same cores (docs/benchmarks.md, section 4).
func DU(dir string) (Usage, error) { return usage(dirTree(dir)) }

// usage adds up what a walk of t finds: the volume's DU, or the bucket's.
func usage(t tree) (Usage, error) {
	var u Usage
	top := t.top()
	err := t.walk(nil, func(rel string, info fs.FileInfo, link string) error {
		var size int64
		switch typ := info.Mode().Type(); {
		case typ.IsDir():
			if rel != "" {
				u.Dirs++
			}
		case typ&fs.ModeSymlink != 0:
			u.Links++
		case typ&fs.ModeSocket != 0:
			return nil
		case typ.IsRegular():
			size = info.Size()
			if isUpload(rel) {
				u.UploadFiles++
				u.UploadBytes += size
			} else {
				u.Files++
				u.Bytes += size
			}
		}
		u.Stream += tarEntry(top+"/"+rel, link, size)
		return nil
	})
	u.Stream += 2 * tarBlock // the end of the archive
	return u, err
}

// tarEntry estimates one entry's bytes in the engine's tar (Go's writer in
// PAX format): a header; a PAX header and its records when the name does
// not fit the header (100 bytes, or 155 more split at a slash) or the
// link's target is over 100 bytes; the data padded to a block.
func tarEntry(name, link string, size int64) int64 {
	n := int64(tarBlock)
	var records int64
	if !fitsUSTAR(name) {
		records += paxRecord("path", name)
	}
	if len(link) > 100 || !ascii(link) {
		records += paxRecord("linkpath", link)
	}
	if records > 0 {
		n += tarBlock + padded(records)
	}
	return n + padded(size)
}

// fitsUSTAR is archive/tar's test for a name in a plain header.
func fitsUSTAR(name string) bool {
	if !ascii(name) {
		return false
	}
	if len(name) <= 100 {
		return true
	}
	length := len(name)
	if length > 156 {
		length = 156
	} else if name[length-1] == '/' {
		length--
	}
	i := strings.LastIndex(name[:length], "/")
	return i > 0 && len(name)-i-1 <= 100 && len(name)-i-1 > 0 && i <= 155
}

// paxRecord is the length of "LEN key=value\n", LEN counting itself.
func paxRecord(key, value string) int64 {
	n := len(key) + len(value) + 3
	size := n + len(strconv.Itoa(n))
	if len(strconv.Itoa(size)) > len(strconv.Itoa(n)) {
		size++
	}
	return int64(size)
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func padded(n int64) int64 {
	return (n + tarBlock - 1) / tarBlock * tarBlock
}

// isUpload says the path (relative to the volume) is inside an unfinished
// push, which an image backup leaves out: as imagearchive's isUpload.
func isUpload(rel string) bool {
	rel = path.Clean(rel)
	return strings.Contains("/"+rel, "/_uploads/") || strings.HasSuffix("/"+rel, "/_uploads")
}
