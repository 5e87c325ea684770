package archive

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
)

// entryRec is one step of the tar stream as the check needs it: an
// entry's header, where its content is, and what the content is (its
// SHA-256, checkDocument's verdict, its primary key) without the content
// itself. A file's check applies each step as it reads it; a stream's
// (VerifyStream) records them all, since the manifest they are matched
// against is the stream's last entry, and applies them at its end.
type entryRec struct {
	end    bool  // the end of the archive, at pos
	err    error // why the next header could not be read
	name   string
	typ    byte
	size   int64
	sparse bool
	pos    int64 // of the content
	posErr bool
	unread bool // the content could not be read
	sum    [sha256.Size]byte
	docErr error
	defs   []byte // the content of the first table definitions read
	key    keyRec
}

// keyRec is a document's primary key as checkKey judges it.
type keyRec struct {
	state uint8
	err   error  // keyInvalid: why
	hash  uint64 // keyOK: keySet.hash of the key
}

const (
	keyNone    = iota // not worked out: the table's key is not known
	keyMissing        // the document has no primary key field
	keyInvalid        // its key is not one RethinkDB takes
	keyOK
)

// A recorder reads the entries of a tar stream for the check. Whatever
// depends on content it works out from what it has read so far alone, so
// that the check finds the same whether it applies each step at once or
// after the end.
type recorder struct {
	versionD string
	pre      *prehasher
	keys     *keySet
	buf      *[]byte
	// a docker-dtr/ entry seen: the archive is the plugin's, and its
	// primary keys are the definitions' (pks), not DTR's
	plugin  bool
	sawDefs bool
	pks     map[string]string
	// layout, when set, is the layout scan finds, made as the entries
	// pass; its first entry gives versionD. manifest is told where each
	// entry named as the manifest has its content.
	layout   *layout
	manifest func(off, size int64) error
	err      error // from manifest
}

// next reads the next step of tr.
func (rc *recorder) next(tr *tarStream) (r entryRec) {
	hdr, err := tr.Next()
	if errors.Is(err, io.EOF) {
		at, err := tr.pos()
		r.end, r.pos, r.posErr = true, at, err != nil
		return r
	}
	if errors.Is(err, tar.ErrInsecurePath) {
		err = nil // reported by checkName with the reason
	}
	if err != nil {
		if rc.layout != nil {
			rc.layout.err = err
		}
		r.err = err
		return r
	}
	r.name, r.typ, r.size, r.sparse = hdr.Name, hdr.Typeflag, hdr.Size, isSparse(hdr)
	at, posErr := tr.pos()
	r.pos, r.posErr = at, posErr != nil
	if strings.HasPrefix(r.name, PluginDir) {
		rc.plugin = true
	}
	if l := rc.layout; l != nil {
		l.add(hdr, at, posErr)
		if l.entries == 1 {
			rc.versionD = l.versionDir
		}
		if rc.manifest != nil && r.name == ManifestName && r.typ == tar.TypeReg && posErr == nil {
			if err := rc.manifest(at, r.size); err != nil && rc.err == nil {
				rc.err = err
			}
		}
	}
	if checkName(r.name) != nil || r.sparse || r.typ != tar.TypeReg {
		return r
	}
	if r.name == ManifestName {
		r.unread = tr.discardContent() != nil
		return r
	}
	if r.size > contentLimit(r.name) {
		return r
	}
	dir, _, isDoc := documentPath(rc.versionD, r.name)
	var data []byte
	prehashed := false
	if r.name != DefinitionsName && posErr == nil {
		if h, ok := rc.pre.take(at, r.size); ok {
			if h.hasSum && (!isDoc || h.docErr != nil) {
				if tr.discardContent() != nil {
					r.unread = true
					return r
				}
			} else if data, err = tr.content(rc.buf); err != nil {
				r.unread = true
				return r
			}
			if h.hasSum {
				r.sum = h.sum
			} else {
				r.sum = sha256.Sum256(data)
			}
			r.docErr, prehashed = h.docErr, true
		}
	}
	if !prehashed {
		if data, err = tr.content(rc.buf); err != nil {
			r.unread = true
			return r
		}
		r.sum = sha256.Sum256(data)
		if r.name == DefinitionsName && !rc.sawDefs {
			rc.sawDefs = true
			r.defs = bytes.Clone(data)
			if d, err := parseDefinitions(data); err == nil {
				rc.pks = map[string]string{}
				for _, t := range d.Tables {
					rc.pks[t.Dir] = t.PrimaryKey
				}
			}
		} else if isDoc {
			r.docErr = checkDocument(data)
		}
	}
	if isDoc && r.docErr == nil {
		r.key = rc.key(dir, data)
	}
	return r
}

// key is the primary key of a document of table dir, as the check will
// judge it: by the definitions read so far in the plugin's archives, by
// DTR's tables in docker/dtr backup's (primaryKeyOf).
func (rc *recorder) key(dir string, doc []byte) keyRec {
	var pk string
	if rc.plugin {
		var ok bool
		if pk, ok = rc.pks[dir]; !ok {
			return keyRec{}
		}
	} else {
		t, _ := OfficialTable(dir)
		pk = t.PrimaryKey
	}
	raw, found := topField(doc, pk)
	if !found {
		return keyRec{state: keyMissing}
	}
	key, err := primaryKeyBytes(rc.keys.buf[:0], raw)
	if err != nil {
		return keyRec{state: keyInvalid, err: err}
	}
	rc.keys.buf = key
	return keyRec{state: keyOK, hash: rc.keys.hash(key)}
}
