package archive

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/docker-dtr/docker-dtr/pkg/human"
	"github.com/docker-dtr/docker-dtr/pkg/jsonl"
)

// layout is what a header-only pass over an archive finds.
type layout struct {
	versionDir, version string
	hasPlugin           bool
	manifestOff         int64
	manifestSize        int64
	hasManifest         bool
	// per table directory of an official archive, in order: documents and bytes
	official []TableStats
	// tooManyTables is set when more than MaxTables directories hold documents
	tooManyTables bool
	entries       int64
	err           error // why the pass stopped early; verify reports it in its own pass
	dirIndex      map[string]int
}

// scan reads only headers, seeking over content, to find the manifest.
// slow reads them with archive/tar (see verifyAll).
func scan(f *os.File, slow bool) layout {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return layout{err: err}
	}
	bs, err := newBufSeeker(f)
	if err != nil {
		return layout{err: err}
	}
	return scanFrom(bs, slow, nil)
}

// scanFrom is scan of what bs reads; manifest, when set, is told where
// the content of each entry named as the manifest is.
func scanFrom(bs *bufSeeker, slow bool, manifest func(off, size int64)) layout {
	var l layout
	tr := newTarStream(bs, slow)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, tar.ErrInsecurePath) {
			err = nil
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				l.err = err
			}
			return l
		}
		off, err := tr.pos()
		if !l.add(hdr, off, err) {
			return l
		}
		if manifest != nil && hdr.Name == ManifestName && hdr.Typeflag == tar.TypeReg {
			manifest(off, hdr.Size)
		}
	}
}

// add is one entry of scan, whose content is at off (unless posErr): false
// where scan stops.
func (l *layout) add(hdr *tar.Header, off int64, posErr error) bool {
	l.entries++
	if l.entries == 1 {
		if dir, v, ok := parseVersionDir(hdr.Name); ok && hdr.Typeflag == tar.TypeDir {
			l.versionDir, l.version = dir, v
		}
	}
	if strings.HasPrefix(hdr.Name, PluginDir) {
		l.hasPlugin = true
	}
	if hdr.Name == ManifestName && hdr.Typeflag == tar.TypeReg {
		if posErr != nil {
			l.err = posErr
			return false
		}
		l.hasManifest, l.manifestOff, l.manifestSize = true, off, hdr.Size
	}
	if l.versionDir != "" && hdr.Typeflag == tar.TypeReg {
		// Invalid directories are reported by verify; none is kept here.
		if dir, _, ok := documentPath(l.versionDir, hdr.Name); ok && validDir(dir) {
			i, seen := l.dirIndex[dir]
			if !seen {
				if len(l.official) >= MaxTables {
					l.tooManyTables = true
					return true
				}
				dir = strings.Clone(dir) // not the whole name
				i = len(l.official)
				if l.dirIndex == nil {
					l.dirIndex = map[string]int{}
				}
				l.dirIndex[dir] = i
				t, _ := OfficialTable(dir)
				l.official = append(l.official, TableStats{DB: t.DB, Table: t.Name, Dir: dir})
			}
			l.official[i].Rows++
			l.official[i].Bytes += hdr.Size
		}
	}
	return true
}

// documentPath splits "<versionDir>rethink/<dir>/<n>".
func documentPath(versionDir, name string) (dir string, n int64, ok bool) {
	if !strings.HasPrefix(name, versionDir) {
		return "", 0, false
	}
	return documentIn(name[len(versionDir):])
}

// documentIn splits "rethink/<dir>/<n>", where n is a number as
// strconv.FormatInt writes it.
func documentIn(name string) (dir string, n int64, ok bool) {
	rest, found := strings.CutPrefix(name, rethinkDir)
	if !found {
		return "", 0, false
	}
	dir, num, found := strings.Cut(rest, "/")
	if !found || dir == "" || num == "" || len(num) > 1 && num[0] == '0' {
		return "", 0, false
	}
	for i := 0; i < len(num); i++ {
		if num[i] < '0' || num[i] > '9' {
			return "", 0, false
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return "", 0, false
	}
	return dir, n, true
}

// Inspect summarises an archive from its headers and manifest without reading
// the documents. It does not verify checksums.
func Inspect(f *os.File) (*Report, error) {
	rep, l, m, err := open(f)
	if err != nil {
		return nil, err
	}
	rep.summarise(l, m)
	return rep, nil
}

// summarise fills in what Inspect reports: from the manifest, or for an
// official archive, which has none, from its layout.
func (rep *Report) summarise(l layout, m *manifestReader) {
	if m != nil {
		rep.fromManifest(&m.Header)
	} else if rep.Kind == KindOfficial {
		rep.fromOfficial(l)
	}
}

// Verify reads the whole archive and checks everything the format promises:
// structure, names, every document, every checksum, row counts, the
// manifest. Problems go into the report; the error is for I/O on f itself.
func Verify(f *os.File) (*Report, error) { return verifyAll(f, false) }

// verifyAll is Verify; slow turns off what makes it fast (the quick
// layout, the fast tar header parser, the prehasher and the manifest's
// prefetch), for tests that compare the two.
func verifyAll(f *os.File, slow bool) (*Report, error) {
	// The writer's archives are checked in one pass, from a layout found
	// without reading the whole archive. The pass confirms that layout,
	// the one scan finds; where it does not, the archive is checked again
	// from what scan finds.
	if l, ok := quickLayout(f); ok && !slow {
		rep, c, err := verify(f, l, false)
		if err != nil {
			return nil, err
		}
		if c != nil && c.manifestOff == l.manifestOff && c.manifestSize == l.manifestSize {
			return rep, nil
		}
	}
	rep, _, err := verify(f, scan(f, slow), slow)
	return rep, err
}

// verify checks the archive against its layout.
func verify(f *os.File, l layout, slow bool) (*Report, *checker, error) {
	rep, m, err := openLayout(f, l)
	if err != nil {
		return nil, nil, err
	}
	rep.FullRead = true
	if rep.Kind == "" {
		return rep, nil, nil
	}
	c := newChecker(rep, l)
	if m != nil {
		rep.fromManifest(&m.Header)
		c.expect(&m.Header, m)
	} else if rep.Kind == KindOfficial {
		rep.fromOfficial(l)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, nil, err
	}
	bs, err := newBufSeeker(f)
	if err != nil {
		return nil, nil, err
	}
	if !slow {
		c.pre = startPrehash(f)
	}
	if m != nil && c.pre != nil {
		// After expect, which has read the first entry.
		defer m.prefetch()()
	}
	c.run(newTarStream(bs, slow))
	c.pre.end()
	if err := c.recheck(f); err != nil {
		return nil, nil, err
	}
	rep.Verified = rep.Kind == KindPlugin && rep.OK()
	return rep, c, nil
}

// quickLayout finds the layout of an archive as the writer lays it out
// without reading it all: the first two entries are the version directory
// and docker-dtr/, and the manifest is the last entry, before tar's two
// zero blocks. Searching back from the end, it reads only the manifest.
// It is a guess that the check must confirm: a damaged or hostile archive
// can mislead it, and the check then finds a different manifest.
func quickLayout(f *os.File) (layout, bool) {
	var l layout
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return l, false
	}
	size := st.Size()
	if size < 5*blockSize || size%blockSize != 0 {
		return l, false
	}
	// the first two entries
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return l, false
	}
	buf := make([]byte, 1<<20)
	n, _ := io.ReadFull(f, buf[:4*blockSize])
	var first, second tar.Header
	if n < 2*blockSize || !parseUSTAR(buf[:blockSize], &first) || first.Typeflag != tar.TypeDir {
		return l, false
	}
	if !parseUSTAR(buf[blockSize:2*blockSize], &second) || second.Name != PluginDir {
		return l, false
	}
	dir, v, ok := parseVersionDir(first.Name)
	if !ok {
		return l, false
	}
	// the end: two zero blocks
	end := size - 2*blockSize
	if _, err := f.ReadAt(buf[:2*blockSize], end); err != nil || !allZero(buf[:2*blockSize]) {
		return l, false
	}
	// the manifest's header, searching back
	var hdr tar.Header
	for top := end; top > 2*blockSize; {
		from := max(top-int64(len(buf)), 2*blockSize)
		chunk := buf[:top-from]
		if _, err := f.ReadAt(chunk, from); err != nil {
			return l, false
		}
		for i := len(chunk) - blockSize; i >= 0; i -= blockSize {
			b := chunk[i : i+blockSize]
			if string(b[:len(ManifestName)+1]) != ManifestName+"\x00" || !parseUSTAR(b, &hdr) {
				continue
			}
			at := from + int64(i) + blockSize
			if hdr.Typeflag == tar.TypeReg && hdr.Name == ManifestName && at+paddedSize(&hdr) == end {
				l.versionDir, l.version = dir, v
				l.hasPlugin, l.hasManifest = true, true
				l.manifestOff, l.manifestSize = at, hdr.Size
				l.entries = 2
				return l, true
			}
		}
		top = from
	}
	return l, false
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// open identifies the archive and reads its manifest header, if any.
func open(f *os.File) (*Report, layout, *manifestReader, error) {
	l := scan(f, false)
	rep, m, err := openLayout(f, l)
	return rep, l, m, err
}

// openLayout is open with the layout found.
func openLayout(f *os.File, l layout) (*Report, *manifestReader, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	return openLayoutOf(st.Size(), l, func() io.Reader { return io.NewSectionReader(f, l.manifestOff, l.manifestSize) })
}

// openLayoutOf is openLayout of an archive of size bytes, whose manifest's
// content manifest reads.
func openLayoutOf(size int64, l layout, manifest func() io.Reader) (*Report, *manifestReader, error) {
	rep := &Report{Size: size, Tables: []TableStats{}, Excluded: []Exclusion{}, Problems: []Problem{}}
	switch {
	case l.entries == 0 && l.err == nil:
		rep.addProblem("", "empty archive: no entries (is this a backup file?)")
		return rep, nil, nil
	case l.entries == 0:
		rep.addProblem("", "not a tar archive (%v)", l.err)
		return rep, nil, nil
	case l.versionDir == "":
		rep.addProblem("", "not a DTR metadata backup: the first entry is not a dtr-backup-v<version>/ directory")
		return rep, nil, nil
	}
	rep.VersionDir, rep.DTRVersion = l.versionDir, l.version
	if !l.hasPlugin {
		rep.Kind = KindOfficial
		if l.tooManyTables {
			rep.addProblem("", "documents of more than %d tables: not a DTR metadata backup", MaxTables)
		}
		return rep, nil, nil
	}
	rep.Kind = KindPlugin
	if !l.hasManifest {
		rep.addProblem(ManifestName, "manifest missing: the archive is truncated or was not finished")
		return rep, nil, nil
	}
	m, err := newManifestReader(manifest())
	if err != nil {
		rep.addProblem(ManifestName, "%v", err)
		return rep, nil, nil
	}
	if m.Header.DTRVersion != l.version {
		rep.addProblem(ManifestName, "manifest is for DTR %s but the archive directory is %s", m.Header.DTRVersion, l.versionDir)
	}
	return rep, m, nil
}

func (r *Report) fromOfficial(l layout) {
	r.Tables = l.official
	if r.Tables == nil {
		r.Tables = []TableStats{}
	}
	r.Rows, r.Bytes = 0, 0
	for _, t := range r.Tables {
		r.Rows += t.Rows
		r.Bytes += t.Bytes
	}
	r.Entries = l.entries
}

// key orders entries as the writer writes them, so that the archive and its
// manifest can be compared by merging two streams.
type key struct {
	group int   // 0 for the fixed entries, i+1 for the i-th table
	n     int64 // position within the group; -1 for a table's directory
}

func (k key) less(o key) bool {
	return k.group < o.group || (k.group == o.group && k.n < o.n)
}

type checker struct {
	rep      *Report
	versionD string
	tables   map[string]int // dir -> index into rep.Tables, as the manifest lists them
	counted  []TableStats
	manifest *manifestReader
	pending  *Entry // next manifest entry not yet matched: nil or &pend
	pend     Entry
	pre      *prehasher // nil: compute everything here
	rethinkD string     // versionD + rethinkDir
	// the table of the last document
	lastDir   string
	lastIndex int
	lastOK    bool
	pendKey   key
	mErr      bool
	buf       []byte // content too large for the stream's buffer
	// official archives: next expected document number per table directory
	nextDoc       map[string]int64
	tooManyTables bool
	sawDefs       bool
	sawManifest   bool
	// entries before the manifest, and how many the manifest header says
	entries, wantEntries int64
	// where the last entry named as the manifest holds its content
	manifestOff, manifestSize int64
	// primary keys: the definitions' by table directory, and the keys seen
	pks  map[string]string
	keys *keySet
	// plugin archives: next expected document number per table, as the manifest lists them
	next []int64
	// directories seen, to find one that appears twice (at most MaxTables+4 kept)
	dirs map[string]bool
	// the last entry's name, and where its content and padding end
	last string
	end  int64
}

func newChecker(rep *Report, l layout) *checker {
	return &checker{rep: rep, versionD: l.versionDir, rethinkD: l.versionDir + rethinkDir, tables: map[string]int{}, nextDoc: map[string]int64{}, manifestOff: -1,
		pks: map[string]string{}, keys: newKeySet(), dirs: map[string]bool{}}
}

func (c *checker) expect(m *Manifest, mr *manifestReader) {
	c.manifest = mr
	c.wantEntries = m.Entries
	c.counted = make([]TableStats, len(m.Tables))
	c.next = make([]int64, len(m.Tables))
	included := map[string]bool{}
	for i, t := range m.Tables {
		if _, dup := c.tables[t.Dir]; dup {
			c.rep.addProblem(ManifestName, "table directory %q listed twice", t.Dir)
		}
		c.tables[t.Dir] = i
		c.counted[i] = TableStats{DB: t.DB, Table: t.Table, Dir: t.Dir}
		included[t.FullName()] = true
	}
	for _, x := range m.Excluded {
		if name := x.DB + "." + x.Table; included[name] {
			c.rep.addProblem(ManifestName, "table %s is both excluded and included", name)
		}
	}
	c.advance()
}

// keyOf places a name in the writer's order.
func (c *checker) keyOf(name string) (key, bool) {
	dir, n, isDoc := documentPath(c.versionD, name)
	return c.keyOfDoc(name, dir, n, isDoc)
}

// keyOfDoc is keyOf of a name already split by documentPath.
func (c *checker) keyOfDoc(name, dir string, n int64, isDoc bool) (key, bool) {
	if isDoc {
		if i, ok := c.tableIndex(dir); ok {
			return key{i + 1, n}, true
		}
		return key{}, false
	}
	rd := c.rethinkD
	switch name {
	case c.versionD:
		return key{0, 0}, true
	case PluginDir:
		return key{0, 1}, true
	case DefinitionsName:
		return key{0, 2}, true
	case rd:
		return key{0, 3}, true
	}
	if rest, ok := strings.CutPrefix(name, rd); ok && strings.HasSuffix(rest, "/") && strings.Count(rest, "/") == 1 {
		if i, ok := c.tables[strings.TrimSuffix(rest, "/")]; ok {
			return key{i + 1, -1}, true
		}
		return key{}, false
	}
	return key{}, false
}

// tableIndex is c.tables[dir], remembering the last table: documents come
// table by table.
func (c *checker) tableIndex(dir string) (int, bool) {
	if c.lastOK && dir == c.lastDir {
		return c.lastIndex, true
	}
	i, ok := c.tables[dir]
	if ok {
		c.lastDir, c.lastIndex, c.lastOK = dir, i, true
	}
	return i, ok
}

func (c *checker) advance() {
	c.pending = nil
	if c.manifest == nil || c.mErr {
		return
	}
	for {
		e, err := c.manifest.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			c.rep.addProblem(ManifestName, "%v", err)
			c.mErr = true
			return
		}
		k, ok := c.keyOf(e.Name)
		if !ok {
			c.rep.addProblem(ManifestName, "lists %q, which is not part of a backup of the listed tables", e.Name)
			continue
		}
		c.pend = e
		c.pending, c.pendKey = &c.pend, k
		return
	}
}

// match compares an archive entry with the manifest.
func (c *checker) match(name string, k key, size int64, sum *[sha256.Size]byte) {
	for c.pending != nil && c.pendKey.less(k) {
		c.rep.addProblem(c.pending.Name, "missing: listed in the manifest but not in the archive")
		c.advance()
	}
	if c.pending == nil || k.less(c.pendKey) {
		if !c.mErr {
			c.rep.addProblem(name, "not in the manifest (a duplicate or added entry)")
		}
		return
	}
	if c.pending.Size != size {
		c.rep.addProblem(name, "size %d, manifest says %d", size, c.pending.Size)
	} else if !sameSum(c.pending.SHA256, sum) {
		c.rep.addProblem(name, "SHA-256 does not match the manifest: the content changed")
	}
	c.advance()
}

// run checks the entries of tr, each as it is read.
func (c *checker) run(tr *tarStream) {
	rc := &recorder{versionD: c.versionD, pre: c.pre, keys: c.keys, buf: &c.buf}
	for {
		r := rc.next(tr)
		if !c.apply(&r) {
			break
		}
	}
	c.finish()
}

// apply checks one step of the archive, as recorder.next found it; false
// at its end.
func (c *checker) apply(r *entryRec) bool {
	if r.end {
		// docker/dtr backup ends its archives as tar does, with two
		// zero blocks. Without a manifest they are what tells a whole
		// archive from one cut after any entry.
		if c.rep.Kind == KindOfficial && (r.posErr || r.pos < c.end+2*blockSize) {
			c.rep.addProblem(c.last, "the archive ends without tar's end-of-archive blocks: it was cut short after this entry")
		}
		return false
	}
	if r.err != nil {
		c.truncated(c.last, r.err)
		return false
	}
	c.last = r.name
	isManifest := r.name == ManifestName && r.typ == tar.TypeReg
	if !r.posErr {
		c.end = r.pos + paddedSizeOf(r.typ, r.size)
		if isManifest {
			c.manifestOff, c.manifestSize = r.pos, r.size // the last, as scan finds it
		}
	} else if isManifest {
		c.manifestOff = -1
	}
	if c.sawManifest {
		c.rep.addProblem(r.name, "entry after the manifest, which must be last")
	} else if r.name != ManifestName {
		c.entries++
	}
	if !c.entry(r) {
		c.truncated(r.name, io.ErrUnexpectedEOF)
		return false
	}
	return true
}

func (c *checker) truncated(after string, err error) {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		if after == "" {
			c.rep.addProblem("", "archive is truncated")
		} else {
			c.rep.addProblem(after, "archive is truncated in or after this entry")
		}
		return
	}
	c.rep.addProblem(after, "unreadable tar data after this entry: %v", err)
}

// entry checks one entry; false means its content could not be read.
func (c *checker) entry(r *entryRec) bool {
	name := r.name
	if err := checkName(name); err != nil {
		c.rep.addProblem(name, "unsafe name: %v", err)
		return true
	}
	if r.sparse {
		c.rep.addProblem(name, "sparse file: this format never holds one")
		return true
	}
	switch r.typ {
	case tar.TypeDir:
		if !strings.HasSuffix(name, "/") {
			name += "/"
		}
		c.dirEntry(name)
		return true
	case tar.TypeReg:
	default:
		c.rep.addProblem(name, "not a regular file or directory (type %q): links and devices are refused", r.typ)
		return true
	}
	if name == ManifestName {
		c.sawManifest = true
		return !r.unread // checked by its own reader
	}
	if limit := contentLimit(name); r.size > limit {
		if dir, n, ok := documentPath(c.versionD, name); ok {
			c.rep.addProblem(name, "document %d of table %s is %d bytes, over the %d byte (%s) document limit: RethinkDB's query size limit",
				n, c.tableName(dir), r.size, limit, human.Bytes(limit))
		} else {
			c.rep.addProblem(name, "size %d exceeds the %d byte limit", r.size, limit)
		}
		return true
	}
	if r.unread {
		return false
	}
	dir, n, isDoc := documentPath(c.versionD, name)
	if name == DefinitionsName && c.sawDefs {
		c.rep.addProblem(name, "the table definitions appear twice: a backup has one, and a restore would take the second")
	} else if name == DefinitionsName {
		c.definitions(r.defs)
	}
	if name != DefinitionsName {
		if !isDoc {
			c.rep.addProblem(name, "unexpected entry: not a document of a table")
			return true
		}
		c.document(name, dir, n, r.size, r.docErr, &r.key)
	}
	if c.manifest != nil {
		if k, ok := c.keyOfDoc(name, dir, n, isDoc); ok {
			c.match(name, k, r.size, &r.sum)
		}
	}
	return true
}

// contentLimit is the largest entry of this name a backup holds.
func contentLimit(name string) int64 {
	if strings.HasPrefix(name, PluginDir) {
		return MaxPluginEntrySize
	}
	return MaxDocumentSize
}

func (c *checker) dirEntry(name string) {
	rd := c.versionD + rethinkDir
	switch {
	case c.dirs[name]:
		// listed twice in the manifest, it is one problem: matched below
		c.rep.addProblem(name, "a duplicate entry: this directory appears twice")
	case name == c.versionD, name == rd:
	case name == PluginDir && c.rep.Kind == KindPlugin:
	case strings.HasPrefix(name, rd) && strings.Count(strings.TrimPrefix(name, rd), "/") == 1:
		dir := strings.TrimSuffix(strings.TrimPrefix(name, rd), "/")
		if err := c.checkDir(dir); err != nil {
			c.rep.addProblem(name, "%v", err)
			return
		}
		if c.manifest != nil {
			if _, ok := c.tables[dir]; !ok {
				c.rep.addProblem(name, "table directory not listed in the manifest")
				return
			}
		}
	default:
		c.rep.addProblem(name, "unexpected directory")
		return
	}
	if len(c.dirs) < MaxTables+4 {
		c.dirs[name] = true
	}
	if c.manifest != nil {
		k, _ := c.keyOf(name)
		c.match(name, k, 0, &emptySHA)
	}
}

var emptySHA = sha256.Sum256(nil)

// sameSum reports whether want is sum in lower-case hex, as the writer
// writes it.
func sameSum(want string, sum *[sha256.Size]byte) bool {
	var buf [2 * sha256.Size]byte
	hex.Encode(buf[:], sum[:])
	return want == string(buf[:])
}

// validDir reports whether dir is a table directory this format can name:
// "table", or "db.table" where two databases hold tables of one name.
func validDir(dir string) bool {
	db, table, dotted := strings.Cut(dir, ".")
	if dotted {
		return ValidName(db) && ValidName(table)
	}
	return ValidName(dir)
}

// checkDir refuses a table directory whose table a restore must not create.
// docker/dtr backup names directories by the table alone, and its restore
// takes the name as the table's: a dot or other character would reach
// table_create.
func (c *checker) checkDir(dir string) error {
	if c.rep.Kind == KindOfficial {
		t, _ := OfficialTable(dir)
		if err := CheckTable(t.DB, t.Name); err != nil {
			return fmt.Errorf("invalid table directory: %v", err)
		}
		return nil
	}
	if !validDir(dir) {
		return fmt.Errorf("invalid table directory name")
	}
	return nil
}

// tableName names a table directory's table for people.
func (c *checker) tableName(dir string) string {
	if i, ok := c.tables[dir]; ok {
		return c.rep.Tables[i].FullName()
	}
	if c.rep.Kind == KindOfficial && ValidName(dir) {
		t, _ := OfficialTable(dir)
		return t.FullName()
	}
	return fmt.Sprintf("directory %q", dir)
}

// document counts a document of size bytes, whose checkDocument is docErr
// and whose primary key is key.
func (c *checker) document(name, dir string, n, size int64, docErr error, key *keyRec) {
	if docErr != nil {
		c.rep.addProblem(name, "%v", docErr)
	}
	// A document's key is checked once its number is: a duplicate entry is
	// reported as one, not also as a duplicate key.
	checkKey := docErr == nil
	defer func() {
		if checkKey {
			c.checkKey(name, dir, n, key)
		}
	}()
	if c.manifest == nil {
		// Official archives: documents are numbered 0, 1, 2, … per table.
		if err := c.checkDir(dir); err != nil {
			c.rep.addProblem(name, "%v", err)
			checkKey = false
			return
		}
		want, seen := c.nextDoc[dir]
		if !seen && len(c.nextDoc) >= MaxTables {
			checkKey = false
			if !c.tooManyTables {
				c.tooManyTables = true
				c.rep.addProblem(name, "documents of more than %d tables: not a DTR metadata backup", MaxTables)
			}
			return
		}
		if !seen {
			dir = strings.Clone(dir) // not the whole name
		}
		if n != want {
			c.rep.addProblem(name, "document number %d out of sequence (expected %d): duplicate or missing documents", n, want)
			checkKey = checkKey && n > want
		}
		c.nextDoc[dir] = n + 1
		return
	}
	i, ok := c.tableIndex(dir)
	if !ok {
		c.rep.addProblem(name, "document of a table the manifest does not list")
		checkKey = false
		return
	}
	if n < c.next[i] {
		c.rep.addProblem(name, "a duplicate entry: document %d of table %s appears again, and a restore would insert it twice", n, c.tableName(dir))
		checkKey = false
	} else {
		c.next[i] = n + 1
	}
	c.counted[i].Rows++
	c.counted[i].Bytes += size
}

// checkDocument accepts exactly one JSON object that RethinkDB would take
// on insert (checkFields); its primary key is the checker's (checkKey).
func checkDocument(data []byte) error {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return errors.New("not a JSON object")
	}
	if !validJSON(data) {
		return errors.New("not valid JSON (exactly one document per entry)")
	}
	return checkFields(data)
}

func (c *checker) definitions(data []byte) {
	c.sawDefs = true
	d, err := parseDefinitions(data)
	if err != nil {
		c.rep.addProblem(DefinitionsName, "%v", err)
		return
	}
	c.rep.Definitions = d
	for _, t := range d.Tables {
		c.pks[t.Dir] = t.PrimaryKey
	}
	if c.manifest == nil {
		return
	}
	if len(d.Tables) != len(c.counted) {
		c.rep.addProblem(DefinitionsName, "defines %d tables, the manifest lists %d", len(d.Tables), len(c.counted))
		return
	}
	for i, t := range d.Tables {
		m := c.counted[i]
		if t.DB != m.DB || t.Name != m.Table || t.Dir != m.Dir {
			c.rep.addProblem(DefinitionsName, "table %d is %s, the manifest lists %s", i, t.FullName(), m.FullName())
		}
	}
}

func (c *checker) finish() {
	if c.rep.Kind == KindPlugin && !c.sawDefs {
		c.rep.addProblem(DefinitionsName, "table definitions missing")
	}
	if c.rep.Kind == KindOfficial {
		// DTR always has its configuration in dtr2.properties: without it the
		// archive is truncated or not a DTR backup.
		if _, ok := c.nextDoc["properties"]; !ok {
			c.rep.addProblem("", "no documents of the properties table: the archive is truncated or not a DTR metadata backup")
		}
	}
	if c.manifest == nil {
		return
	}
	for c.pending != nil {
		c.rep.addProblem(c.pending.Name, "missing: listed in the manifest but not in the archive")
		c.advance()
	}
	if c.entries != c.wantEntries {
		c.rep.addProblem(ManifestName, "the manifest counts %d entries, the archive holds %d before it", c.wantEntries, c.entries)
	}
	for i, want := range c.rep.Tables {
		got := c.counted[i]
		if got.Rows != want.Rows || got.Bytes != want.Bytes {
			c.rep.addProblem(TableDirName(c.rep.DTRVersion, want.Dir),
				"table %s has %d documents (%d bytes), the manifest says %d (%d bytes)",
				want.FullName(), got.Rows, got.Bytes, want.Rows, want.Bytes)
		}
	}
}

// parseDefinitions reads and validates the table definitions; the error
// is the problem verify reports.
func parseDefinitions(data []byte) (*Definitions, error) {
	if err := jsonl.MaxValues(data, maxDefinitionValues); err != nil {
		return nil, fmt.Errorf("invalid table definitions: %v", err)
	}
	var d Definitions
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("invalid table definitions: %v", err)
	}
	if err := d.validate(); err != nil {
		return nil, err
	}
	return &d, nil
}

const blockSize = 512

// paddedSize is how much of the archive an entry's content takes.
func paddedSize(hdr *tar.Header) int64 { return paddedSizeOf(hdr.Typeflag, hdr.Size) }

// paddedSizeOf is paddedSize of an entry of type typ and size bytes.
func paddedSizeOf(typ byte, size int64) int64 {
	switch typ {
	case tar.TypeLink, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeDir, tar.TypeFifo:
		return 0
	}
	if size > 1<<62 {
		return size
	}
	return (size + blockSize - 1) / blockSize * blockSize
}

// isSparse reports a sparse file, old GNU or PAX: its size says how much it
// expands to, not how much the archive holds, and no writer of these formats
// makes one.
func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}
