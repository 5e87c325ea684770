package archive

import (
	"hash/maphash"
	"io"
	"os"
	"slices"
	"strconv"
)

// Duplicate primary keys are found in two steps, so that memory does not
// hold the keys themselves, which may be 127 bytes each and millions of
// rows: the first pass keeps a 64-bit hash of each key of the table being
// read (8 bytes a row, for one table at a time), sorts them at the table's
// end and notes every hash seen twice. Two different keys share a hash
// with a chance of about n²/2⁶⁵: for ten million rows, one in 300,000.
// So a repeated hash is only a candidate: a second pass, which runs only
// when there is one, reads just the tables with candidates and compares
// the keys whose hash is a candidate exactly.
type keySet struct {
	// hash is maphash with a seed of this verify's; a test makes every key
	// collide
	hash   func(key []byte) uint64
	dir    string   // table of the hashes
	hashes []uint64 // of dir's keys so far
	done   map[string]bool
	// candidates are the hashes seen twice, by table directory; at most
	// maxCandidates in all, the rest counted in overflow
	candidates map[string]map[uint64]bool
	n          int
	overflow   map[string]int
	buf        []byte
}

// maxCandidates bounds the hashes the second pass compares exactly.
const maxCandidates = 1 << 12

func newKeySet() *keySet {
	seed := maphash.MakeSeed()
	return &keySet{hash: func(key []byte) uint64 { return maphash.Bytes(seed, key) },
		done: map[string]bool{}, candidates: map[string]map[uint64]bool{}, overflow: map[string]int{}}
}

// add records the hash of a key of table dir; false when the table's
// documents came earlier already, apart from these.
func (k *keySet) add(dir string, hash uint64) bool {
	split := false
	if dir != k.dir {
		k.finish()
		split = k.done[dir]
		k.dir = dir
	}
	k.hashes = append(k.hashes, hash)
	return !split
}

// finish ends the current table: its repeated hashes become candidates.
func (k *keySet) finish() {
	if k.dir == "" {
		return
	}
	if len(k.done) <= MaxTables {
		k.done[k.dir] = true
	}
	slices.Sort(k.hashes)
	for i := 1; i < len(k.hashes); i++ {
		h := k.hashes[i]
		if h != k.hashes[i-1] || (i > 1 && h == k.hashes[i-2]) {
			continue
		}
		if k.n >= maxCandidates {
			k.overflow[k.dir]++
			continue
		}
		if k.candidates[k.dir] == nil {
			k.candidates[k.dir] = map[uint64]bool{}
		}
		k.candidates[k.dir][h] = true
		k.n++
	}
	k.dir, k.hashes = "", k.hashes[:0]
	if cap(k.hashes) > 1<<20 {
		k.hashes = nil // the next table starts small again
	}
}

// recheck is the second pass: it reads the tables with candidates again
// from f and reports each document whose key an earlier one has.
func (c *checker) recheck(f *os.File) error {
	return c.recheckFrom(func() (io.Reader, func() error, error) {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, nil, err
		}
		return f, func() error { return nil }, nil
	})
}

// recheckFrom is recheck of an archive that open reads from its start;
// done, once the pass has read what it needs, says whether the reading
// failed (a stream's integrity check).
func (c *checker) recheckFrom(open func() (r io.Reader, done func() error, err error)) error {
	k := c.keys
	k.finish()
	for dir, n := range k.overflow {
		c.rep.addProblem(c.rethinkD+dir+"/", "%d more primary keys of table %s appear more than once (by a 64-bit hash of each key; not compared one by one)", n, c.tableName(dir))
	}
	if len(k.candidates) == 0 {
		return nil
	}
	r, done, err := open()
	if err != nil {
		return err
	}
	rd := NewReader(r, c.versionD)
	seen := map[string]map[string]int64{} // dir -> exact key -> first document
	next := map[string]int64{}
	for {
		dir, doc, err := rd.Next()
		if err != nil {
			// at io.EOF; or the first pass reported what is wrong with
			// the archive
			return done()
		}
		cand := k.candidates[dir]
		n := next[dir]
		next[dir] = n + 1
		if cand == nil {
			continue
		}
		key, ok := c.docKey(dir, doc)
		if !ok || !cand[k.hash(key)] {
			continue
		}
		if seen[dir] == nil {
			seen[dir] = map[string]int64{}
		}
		if first, dup := seen[dir][string(key)]; dup {
			c.rep.addProblem(c.rethinkD+dir+"/"+strconv.FormatInt(n, 10),
				"document %d of table %s has the primary key of document %d: RethinkDB refuses the second (duplicate primary key)", n, c.tableName(dir), first)
		} else {
			seen[dir][string(key)] = n
		}
	}
}

// docKey is a document's primary key as primaryKeyBytes gives it, in
// k.buf; false where the table or key is unknown or invalid (reported by
// the first pass).
func (c *checker) docKey(dir string, doc []byte) ([]byte, bool) {
	pk, ok := c.primaryKeyOf(dir)
	if !ok {
		return nil, false
	}
	raw, found := topField(doc, pk)
	if !found {
		return nil, false
	}
	key, err := primaryKeyBytes(c.keys.buf[:0], raw)
	if err != nil {
		return nil, false
	}
	c.keys.buf = key
	return key, true
}

// primaryKeyOf is the primary key of a table directory: the definitions'
// for the plugin's archives, DTR's for docker/dtr backup's.
func (c *checker) primaryKeyOf(dir string) (string, bool) {
	if c.rep.Kind == KindOfficial {
		t, _ := OfficialTable(dir)
		return t.PrimaryKey, true
	}
	pk, ok := c.pks[dir]
	return pk, ok
}

// checkKey checks document n of table dir for its primary key, as the
// recorder found it, and records the key.
func (c *checker) checkKey(name, dir string, n int64, key *keyRec) {
	pk, ok := c.primaryKeyOf(dir)
	if !ok {
		return
	}
	switch key.state {
	case keyMissing:
		c.rep.addProblem(name, "document %d of table %s has no primary key field %q: RethinkDB would give it a key of its own", n, c.tableName(dir), pk)
	case keyInvalid:
		c.rep.addProblem(name, "document %d of table %s: its primary key %q %v", n, c.tableName(dir), pk, key.err)
	case keyOK:
		if !c.keys.add(dir, key.hash) {
			c.rep.addProblem(name, "the documents of table %s are not together: a backup writes a table's documents one after another", c.tableName(dir))
		}
	}
}
