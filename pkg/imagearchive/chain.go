package imagearchive

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/docker-dtr/docker-dtr/pkg/crypt"
	"github.com/docker-dtr/docker-dtr/pkg/jsonl"
	"github.com/docker-dtr/docker-dtr/pkg/ustar"
)

// Base is an earlier image backup that an incremental one is written
// against, or restored with.
type Base struct {
	Dependency
	// Path is where it was read.
	Path string
	// Incremental says it depends on earlier backups itself: only the blobs
	// whose bytes it holds count.
	Incremental bool
	// ContentDir is its top directory.
	ContentDir string
	// FromIndex says it was read from its index (FILE.index), not from its
	// manifest: the index is trusted as its owner wrote it.
	FromIndex bool
	// held maps the digests of the blobs whose bytes it holds, and which
	// match their digest, to their sizes.
	held map[string]int64
}

// ChainDir is where the earlier backups of file, an incremental image
// backup, are looked for: from (--from), or file's own directory (the
// current one for standard input, "-").
func ChainDir(file, from string) string {
	switch {
	case from != "":
		return from
	case file == "-":
		return "."
	}
	return filepath.Dir(file)
}

// Blobs is the number of blobs whose bytes the backup holds.
func (b *Base) Blobs() int { return len(b.held) }

// HeldPaths names, as paths inside a registry's volume, the blobs whose
// bytes bases hold, with their sizes: what an incremental backup leaves
// out before it has seen the volume. A blob stored elsewhere in the
// volume is not named, and is read as a new one.
func HeldPaths(bases []*Base) map[string]int64 {
	n := 0
	for _, b := range bases {
		n += len(b.held)
	}
	paths := make(map[string]int64, n)
	for _, b := range bases {
		for d, size := range b.held {
			paths[blobDir+d[:2]+"/"+d+"/data"] = size
		}
	}
	return paths
}

// OpenBase reads an image backup's manifest (not its content) for the
// blobs whose bytes it holds. path names it in reports and in the
// dependency's file hint (its base name).
func OpenBase(f *os.File, path string) (*Base, error) {
	rep, mr, m := open(f)
	return baseOf(rep, mr, m, path)
}

// openBaseStream is OpenBase of an archive read once from open, as it
// comes (a decryption): its manifest, the last entry, is kept on the way.
func openBaseStream(open Source, path string) (*Base, error) {
	rep, s, err := scanStream(open)
	if err != nil {
		return nil, err
	}
	mr, m := s.open(rep)
	return baseOf(rep, mr, m, path)
}

// baseOf is the Base of a backup whose manifest rep, mr and m read.
func baseOf(rep *Report, mr *jsonl.Reader, m *Manifest, path string) (*Base, error) {
	if mr == nil {
		if len(rep.Problems) > 0 {
			return nil, fmt.Errorf("not a readable image backup: %s", rep.Problems[0])
		}
		return nil, errors.New("not a readable image backup")
	}
	b := &Base{
		Dependency: Dependency{
			ManifestSHA256: rep.ManifestSHA256, File: filepath.Base(path), Created: m.Started,
			ReplicaID: m.ReplicaID, Volume: m.Volume,
		},
		Path: path, Incremental: len(m.DependsOn) > 0, ContentDir: m.ContentDir, held: map[string]int64{},
	}
	corrupt := map[string]bool{}
	for _, name := range m.CorruptBlobs {
		corrupt[name] = true
	}
	for {
		line, err := mr.NextLine()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading its manifest: %w", err)
		}
		// Only a blob's data file counts: the other lines (three in four
		// of a registry's, two thirds of a large base's read in decoding
		// them all) are not decoded. A line this skips that would have
		// been a blob (a name JSON-escaped, which no writer of ours does)
		// only makes the new backup read that blob again.
		if !bytes.Contains(line, []byte(`/data"`)) {
			continue
		}
		var e Entry
		if err := decodeEntry(line, &e); err != nil {
			return nil, fmt.Errorf("reading its manifest: %w", err)
		}
		if e.Type != TypeFile || e.In != "" || corrupt[e.Name] {
			continue
		}
		if d, ok := BlobDigest(e.Name); ok && d == e.SHA256 {
			b.held[d] = e.Size
		}
	}
	return b, nil
}

// holder returns the first base that holds the blob's bytes.
func holder(bases []*Base, digest string, size int64) *Base {
	for _, b := range bases {
		if s, ok := b.held[digest]; ok && s == size {
			return b
		}
	}
	return nil
}

// ChainLink is what VerifyChain found of one earlier backup.
type ChainLink struct {
	Dependency
	// Path is where it was found; empty when it was not.
	Path string `json:"path,omitempty"`
	// Blobs and Bytes are what the incremental backup needs from it.
	Blobs int64 `json:"blobs"`
	Bytes int64 `json:"bytes"`
}

// Decrypter opens an encrypted earlier backup: a Source whose every pass
// decrypts the file anew (no plaintext file), and what to close once the
// chain is done with it. It is nil when no secret was given: encrypted
// backups are then not searched.
type Decrypter func(path string) (Source, func(), error)

// VerifyChain looks in dir for the earlier backups an incremental one
// depends on, by manifest hash (the file named in the dependency first,
// then every file of dir), and checks that each lists, with its bytes, every
// blob the incremental backup says it holds, of the same size and SHA-256.
// rep is Verify's report of the incremental backup; what is missing or
// differs is a problem in it. The bases' contents are not read: verify
// each to check its bytes. The bases found are returned, in DependsOn
// order, with their files open; the caller closes them.
func VerifyChain(rep *Report, dir string) ([]*Base, []*os.File, error) {
	bases, found, err := verifyChainWith(rep, dir, nil)
	files := make([]*os.File, len(found))
	for i, o := range found {
		files[i] = o.file // without a Decrypter, every base is a plain file
	}
	return bases, files, err
}

// verifyChainWith is VerifyChain, decrypting encrypted earlier backups with
// decrypt (when not nil). An encrypted file is decrypted only when it may
// be the one looked for: its index names that manifest hash, or it has no
// index and is the file the dependency names.
func verifyChainWith(rep *Report, dir string, decrypt Decrypter) ([]*Base, []*opened, error) {
	if !rep.Incremental() {
		return nil, nil, nil
	}
	if rep.Omitted == nil && !rep.FullRead {
		return nil, nil, errors.New("VerifyChain needs Verify's report")
	}
	var bases []*Base
	var found []*opened
	index := map[string]string(nil) // manifest hash -> path, once needed
	skipped := 0
	for _, d := range rep.DependsOn {
		link := ChainLink{Dependency: d}
		for _, e := range rep.Omitted[d.ManifestSHA256] {
			link.Blobs++
			link.Bytes += e.Size
		}
		path := ""
		var o *opened
		if d.File != "" {
			if o = openIf(filepath.Join(dir, d.File), d.ManifestSHA256, decrypt); o != nil {
				path = filepath.Join(dir, d.File)
			}
		}
		if path == "" {
			if index == nil {
				index, skipped = indexDir(dir, decrypt != nil)
			}
			if p := index[d.ManifestSHA256]; p != "" {
				if o = openIf(p, d.ManifestSHA256, decrypt); o != nil {
					path = p
				}
			}
		}
		if path == "" {
			note := ""
			if skipped > 0 {
				note = fmt.Sprintf(" (%d files there were not readable image backups, encrypted ones among them perhaps: those are searched only with their secret and an index)", skipped)
			}
			rep.addProblem(d.File, "the earlier backup this one depends on (manifest sha256:%s, created %s, %d blobs) is not in %s%s",
				d.ManifestSHA256, d.Created.UTC().Format("2006-01-02T15:04:05Z"), link.Blobs, dir, note)
			rep.Chain = append(rep.Chain, link)
			continue
		}
		link.Path = path
		rep.Chain = append(rep.Chain, link)
		b, err := o.base(path)
		if err != nil {
			o.close()
			rep.addProblem(path, "%v", err)
			continue
		}
		if b.ManifestSHA256 != d.ManifestSHA256 {
			o.close()
			rep.addProblem(path, "changed while it was read")
			continue
		}
		names := make([]string, 0, len(rep.Omitted[d.ManifestSHA256]))
		for digest := range rep.Omitted[d.ManifestSHA256] {
			names = append(names, digest)
		}
		sort.Strings(names)
		for _, digest := range names {
			e := rep.Omitted[d.ManifestSHA256][digest]
			size, ok := b.held[digest]
			switch {
			case !ok:
				rep.addProblem(rep.ContentDir+e.Name, "held by %s, says the manifest, but %s does not hold its bytes", filepath.Base(path), filepath.Base(path))
			case size != e.Size:
				rep.addProblem(rep.ContentDir+e.Name, "%d bytes, but %s holds %d bytes for it", e.Size, filepath.Base(path), size)
			}
		}
		bases = append(bases, b)
		found = append(found, o)
	}
	rep.Verified = rep.OK()
	return bases, found, nil
}

// opened is an earlier backup openIf found: how to read it, what to
// close, and, for an encrypted one, the base its one decryption so far
// made of its manifest.
type opened struct {
	src   Source
	close func()
	file  *os.File // a plain one
	made  *Base    // an encrypted one
}

// base is the opened backup's Base: from a plain file's manifest, read
// again now, or the one made when it was decrypted.
func (o *opened) base(path string) (*Base, error) {
	if o.file != nil {
		return OpenBase(o.file, path)
	}
	o.made.Path, o.made.File = path, filepath.Base(path)
	return o.made, nil
}

// openIf opens the image backup at path, decrypted when it is encrypted
// and decrypt is given, if its manifest hash is want; nil otherwise. An
// encrypted one is read whole, as it is decrypted, for its manifest: no
// plaintext file.
func openIf(path, want string, decrypt Decrypter) *opened {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil
	}
	enc, err := encrypted(f)
	if err != nil || !enc {
		if h, herr := hashOfFile(f); err != nil || herr != nil || h != want {
			f.Close()
			return nil
		}
		return &opened{src: FileSource(f), close: func() { f.Close() }, file: f}
	}
	f.Close()
	if decrypt == nil {
		return nil
	}
	// Its index, when it has one, says whether it is worth decrypting.
	if ix, err := ReadIndex(IndexPath(path)); err == nil && ix.ManifestSHA256 != want {
		return nil
	}
	src, closer, err := decrypt(path)
	if err != nil {
		return nil
	}
	b, err := openBaseStream(src, path)
	if err != nil || b.ManifestSHA256 != want {
		closer()
		return nil
	}
	return &opened{src: src, close: closer, made: b}
}

// encrypted says whether f starts as an OpenPGP message does
// (backupfile.Encrypted's test).
func encrypted(f *os.File) (bool, error) {
	head := make([]byte, 512)
	n, err := f.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	return crypt.IsEncrypted(head[:n]), nil
}

// hashOf is the manifest hash of the image backup at path.
func hashOf(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return "", errors.New("not a file")
	}
	return hashOfFile(f)
}

// hashOfFile is the manifest hash of the image backup f.
func hashOfFile(f *os.File) (string, error) {
	if ok, _ := IsImageArchive(f); !ok {
		return "", errors.New("not an image backup")
	}
	rep := &Report{}
	off, size, ok := locate(f, rep)
	if !ok {
		return "", errors.New("not an image backup")
	}
	_, sum, err := hashCopy(nil, io.NewSectionReader(f, off, size), nil)
	if err != nil {
		return "", err
	}
	return sum, nil
}

// indexDir hashes the manifest of every image backup in dir, and, with
// indexed, takes the manifest hash of every encrypted one from its index
// (to be checked once decrypted); skipped counts the other files.
func indexDir(dir string, indexed bool) (map[string]string, int) {
	index := map[string]string{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return index, 0
	}
	skipped := 0
	for _, e := range ents {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") || IsIndexName(e.Name()) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		h, err := hashOf(p)
		if err != nil && indexed {
			if ix, ierr := ReadIndex(IndexPath(p)); ierr == nil {
				h, err = ix.ManifestSHA256, nil
			}
		}
		if err != nil {
			skipped++
			continue
		}
		if _, dup := index[h]; !dup {
			index[h] = p
		}
	}
	return index, skipped
}

// ChainContent writes, as Content does, the content of an incremental
// backup f, and after it the bytes of every blob it lists but does not
// hold, read from the base that holds them (each read once, in order).
// rep is Verify's report of f, bases and files what VerifyChain returned.
// Every blob read from a base is checked against its digest on the way.
func ChainContent(f *os.File, rep *Report, bases []*Base, files []*os.File, w io.Writer) error {
	if len(bases) != len(files) {
		return errors.New("ChainContent: bases and files differ")
	}
	c := &Chain{Bases: bases}
	for _, f := range files {
		c.Sources = append(c.Sources, FileSource(f))
	}
	return c.Content(f, rep, w)
}

// blobs writes to tw the bytes of every blob the incremental backup of
// rep lists but does not hold, read from the base that holds them (each
// read once, in order), and returns how many it wrote.
func (c *Chain) blobs(rep *Report, links linkSet, tw *ustar.Writer) (int, error) {
	found := 0
	for i, b := range c.Bases {
		want := rep.Omitted[b.ManifestSHA256]
		if len(want) == 0 {
			continue
		}
		n, err := blobsFrom(c.Sources[i], b, want, links, tw)
		if err != nil {
			return found, fmt.Errorf("%s: %w", b.Path, err)
		}
		found += n
	}
	total := 0
	for _, m := range rep.Omitted {
		total += len(m)
	}
	if found != total {
		return found, fmt.Errorf("%d of the %d blobs held by earlier backups were not found in them", total-found, total)
	}
	return found, nil
}

// blobsFrom copies the wanted blobs out of one base, under the names the
// incremental backup gives them, and returns how many it copied. Each is
// checked against its digest as it is copied.
func blobsFrom(open Source, b *Base, want map[string]Entry, links linkSet, tw *ustar.Writer) (int, error) {
	p, err := startPass(open)
	if err != nil {
		return 0, err
	}
	defer p.close()
	tr := p.tr
	buf := make([]byte, streamBufferSize)
	done := map[string]bool{}
	for len(done) < len(want) {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, p.errOr(err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		rel, ok := strings.CutPrefix(hdr.Name, b.ContentDir)
		if !ok {
			continue
		}
		digest, ok := BlobDigest(rel)
		if !ok || done[digest] {
			continue
		}
		e, ok := want[digest]
		if !ok || hdr.Size != e.Size {
			continue
		}
		if err := SafeName(e.Name); err != nil {
			return 0, fmt.Errorf("%s: %v: refusing to restore it", e.Name, err)
		}
		if err := links.check(e.Name); err != nil {
			return 0, fmt.Errorf("%s: %v: refusing to restore it", e.Name, err)
		}
		if err := tw.WriteHeader(copyHeader(hdr, e.Name)); err != nil {
			return 0, err
		}
		_, sum, err := hashCopy(tw, tr, buf)
		if err != nil {
			return 0, p.errOr(err)
		}
		if sum != digest {
			return 0, fmt.Errorf("%s: the bytes it holds for blob sha256:%s do not match the digest", hdr.Name, digest)
		}
		done[digest] = true
	}
	if len(done) < len(want) {
		return len(done), fmt.Errorf("holds %d of the %d blobs it should", len(done), len(want))
	}
	return len(done), nil
}

// HeldDigests lists the digests of the blobs whose bytes the backup holds.
func (b *Base) HeldDigests() []string {
	out := make([]string, 0, len(b.held))
	for d := range b.held {
		out = append(out, d)
	}
	return out
}

// Chain is the earlier backups an incremental one depends on, found by
// VerifyChain and open for reading their blobs.
type Chain struct {
	Bases []*Base
	// Sources read the bases, by index: a plain one's file, an encrypted
	// one's decryption, made anew on every pass.
	Sources []Source
	closers []func()
}

// OpenChain is VerifyChain keeping the bases open, for Content; Close it
// in every case. decrypt, when not nil, opens encrypted earlier backups.
func OpenChain(rep *Report, dir string, decrypt Decrypter) (*Chain, error) {
	bases, found, err := verifyChainWith(rep, dir, decrypt)
	c := &Chain{Bases: bases}
	for _, o := range found {
		c.Sources = append(c.Sources, o.src)
		c.closers = append(c.closers, o.close)
	}
	return c, err
}

// CheckChain is OpenChain for a caller that needs only its verdict,
// which is in rep.
func CheckChain(rep *Report, dir string, decrypt Decrypter) error {
	c, err := OpenChain(rep, dir, decrypt)
	c.Close()
	return err
}

// Content is ChainContent of f, an incremental backup, with these bases.
func (c *Chain) Content(f *os.File, rep *Report, w io.Writer) error {
	tw := ustar.NewWriter(w)
	links, err := content(f, rep.ContentDir, tw)
	if err != nil {
		return err
	}
	if _, err := c.blobs(rep, links, tw); err != nil {
		return err
	}
	return tw.Close()
}

// Close closes the bases' files; a nil Chain has none.
func (c *Chain) Close() {
	if c == nil {
		return
	}
	for _, close := range c.closers {
		close()
	}
	c.closers = nil
}

// OpenBaseFromEnd is OpenBase for --since, which trusts the base as its
// owner wrote it: the manifest is looked for back from the file's end
// first (manifestFromEnd), not by stepping over every entry, a third of
// a large base's read; OpenBase reads it where that finds nothing.
func OpenBaseFromEnd(f *os.File, path string) (*Base, error) {
	rep, mr, m := openWith(f, func(f *os.File, rep *Report) (int64, int64, bool) {
		if off, size, ok := manifestFromEnd(f, rep.Size); ok {
			return off, size, true
		}
		return locate(f, rep)
	})
	return baseOf(rep, mr, m, path)
}

// maxFromEnd bounds how far back manifestFromEnd looks: a manifest of
// millions of entries, more than 1 GiB of lines, is found by OpenBase.
const maxFromEnd = 1 << 30

// manifestFromEnd finds the manifest of an archive as this plugin writes
// it: the manifest's header block, its content to the end of a 512-byte
// block, then the two zero blocks of the end. It reads back from the
// end a block at a time for a header of the manifest's name with the
// ustar magic (its content is JSON lines, which hold no NUL, so no block
// of it has that magic) whose size reaches the end exactly, checked as a
// tar header. Anything else (an entry after the manifest, a record padded
// past the end, another writer's header) finds nothing.
func manifestFromEnd(f *os.File, fileSize int64) (off, size int64, ok bool) {
	const block = 512
	if fileSize < 3*block || fileSize%block != 0 {
		return 0, 0, false
	}
	end := fileSize - 2*block
	var tail [2 * block]byte
	if _, err := f.ReadAt(tail[:], end); err != nil || tail != [2 * block]byte{} {
		return 0, 0, false
	}
	buf := make([]byte, 1<<20)
	for top := end; top > 0 && end-top < maxFromEnd; {
		n := min(int64(len(buf)), top)
		chunk := buf[:n]
		if _, err := f.ReadAt(chunk, top-n); err != nil {
			return 0, 0, false
		}
		for i := n - block; i >= 0; i -= block {
			b := chunk[i : i+block]
			if string(b[257:262]) != "ustar" || !bytes.HasPrefix(b, []byte(ManifestName+"\x00")) {
				continue
			}
			at := top - n + i
			tr := tar.NewReader(io.NewSectionReader(f, at, fileSize-at))
			hdr, err := tr.Next()
			if err != nil || hdr.Name != ManifestName || hdr.Typeflag != tar.TypeReg ||
				at+block+(hdr.Size+block-1)/block*block != end {
				return 0, 0, false
			}
			return at + block, hdr.Size, true
		}
		top -= n
	}
	return 0, 0, false
}
