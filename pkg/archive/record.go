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
	// later, when not nil, leaves a record's work to the caller: next
	// puts it here (one at most) instead of doing it
	later []work
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
		if r.name == DefinitionsName && !rc.sawDefs {
			rc.sawDefs = true
			r.defs = bytes.Clone(data)
			if d, err := parseDefinitions(data); err == nil {
				rc.pks = map[string]string{}
				for _, t := range d.Tables {
					rc.pks[t.Dir] = t.PrimaryKey
				}
			}
		}
		w := work{data: data, isDoc: isDoc}
		if isDoc {
			w.pk, w.hasPK = rc.primaryKey(dir)
		}
		if rc.later != nil {
			rc.later = append(rc.later[:0], w) // for the caller, which queues it
			return r
		}
		w.do(&r, rc.keys.hash, &rc.keys.buf)
		return r
	}
	if isDoc && r.docErr == nil {
		pk, ok := rc.primaryKey(dir)
		r.key = keyOf(pk, ok, data, rc.keys.hash, &rc.keys.buf)
	}
	return r
}

// work is what is left of a record to work out from its content: its
// SHA-256, checkDocument's verdict and its primary key, which depend on
// nothing but the bytes and pk.
type work struct {
	data  []byte
	isDoc bool
	pk    string
	hasPK bool
}

func (w *work) do(r *entryRec, hash func([]byte) uint64, buf *[]byte) {
	r.sum = sha256.Sum256(w.data)
	if w.isDoc {
		r.docErr = checkDocument(w.data)
		if r.docErr == nil {
			r.key = keyOf(w.pk, w.hasPK, w.data, hash, buf)
		}
	}
}

// primaryKey is the primary key of table dir's documents as the check
// will judge them: by the definitions read so far in the plugin's
// archives, by DTR's tables in docker/dtr backup's (primaryKeyOf).
func (rc *recorder) primaryKey(dir string) (string, bool) {
	if rc.plugin {
		pk, ok := rc.pks[dir]
		return pk, ok
	}
	t, _ := OfficialTable(dir)
	return t.PrimaryKey, true
}

// keyOf is the primary key pk of doc, as checkKey judges it.
func keyOf(pk string, ok bool, doc []byte, hash func([]byte) uint64, buf *[]byte) keyRec {
	if !ok {
		return keyRec{}
	}
	raw, found := topField(doc, pk)
	if !found {
		return keyRec{state: keyMissing}
	}
	key, err := primaryKeyBytes((*buf)[:0], raw)
	if err != nil {
		return keyRec{state: keyInvalid, err: err}
	}
	*buf = key
	return keyRec{state: keyOK, hash: hash(key)}
}
