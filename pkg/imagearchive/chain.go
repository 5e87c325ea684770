package imagearchive

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
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

// OpenBase reads an image backup's manifest (not its content) for the
// blobs whose bytes it holds. path names it in reports and in the
// dependency's file hint (its base name).
func OpenBase(f *os.File, path string) (*Base, error) {
	rep, mr, m := open(f)
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
		var e Entry
		err := mr.Next(&e)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
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

// VerifyChain looks in dir for the earlier backups an incremental one
// depends on, by manifest hash (the file named in the dependency first,
// then every file of dir), and checks that each lists, with its bytes, every
// blob the incremental backup says it holds, of the same size and SHA-256.
// rep is Verify's report of the incremental backup; what is missing or
// differs is a problem in it. The bases' contents are not read: verify
// each to check its bytes. The bases found are returned, in DependsOn
// order, with their files open; the caller closes them.
func VerifyChain(rep *Report, dir string) ([]*Base, []*os.File, error) {
	if !rep.Incremental() {
		return nil, nil, nil
	}
	if rep.Omitted == nil && !rep.FullRead {
		return nil, nil, errors.New("VerifyChain needs Verify's report")
	}
	var bases []*Base
	var files []*os.File
	index := map[string]string(nil) // manifest hash -> path, once needed
	skipped := 0
	for _, d := range rep.DependsOn {
		link := ChainLink{Dependency: d}
		for _, e := range rep.Omitted[d.ManifestSHA256] {
			link.Blobs++
			link.Bytes += e.Size
		}
		path := ""
		if d.File != "" {
			if h, err := hashOf(filepath.Join(dir, d.File)); err == nil && h == d.ManifestSHA256 {
				path = filepath.Join(dir, d.File)
			}
		}
		if path == "" {
			if index == nil {
				index, skipped = indexDir(dir)
			}
			path = index[d.ManifestSHA256]
		}
		if path == "" {
			note := ""
			if skipped > 0 {
				note = fmt.Sprintf(" (%d files there were not readable image backups, encrypted ones among them perhaps: those are not searched)", skipped)
			}
			rep.addProblem(d.File, "the earlier backup this one depends on (manifest sha256:%s, created %s, %d blobs) is not in %s%s",
				d.ManifestSHA256, d.Created.UTC().Format("2006-01-02T15:04:05Z"), link.Blobs, dir, note)
			rep.Chain = append(rep.Chain, link)
			continue
		}
		link.Path = path
		rep.Chain = append(rep.Chain, link)
		f, err := os.Open(path)
		if err != nil {
			rep.addProblem(path, "%v", err)
			continue
		}
		b, err := OpenBase(f, path)
		if err != nil {
			f.Close()
			rep.addProblem(path, "%v", err)
			continue
		}
		if b.ManifestSHA256 != d.ManifestSHA256 {
			f.Close()
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
		files = append(files, f)
	}
	rep.Verified = rep.OK()
	return bases, files, nil
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

// indexDir hashes the manifest of every image backup in dir; skipped
// counts the other files (encrypted backups among them).
func indexDir(dir string) (map[string]string, int) {
	index := map[string]string{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return index, 0
	}
	skipped := 0
	for _, e := range ents {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		h, err := hashOf(p)
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
	tw := tar.NewWriter(w)
	links, err := content(f, rep.ContentDir, tw)
	if err != nil {
		return err
	}
	if len(bases) != len(files) {
		return errors.New("ChainContent: bases and files differ")
	}
	c := &Chain{Bases: bases, files: files}
	if _, err := c.blobs(rep, links, tw); err != nil {
		return err
	}
	return tw.Close()
}

// blobs writes to tw the bytes of every blob the incremental backup of
// rep lists but does not hold, read from the base that holds them (each
// read once, in order), and returns how many it wrote.
func (c *Chain) blobs(rep *Report, links linkSet, tw *tar.Writer) (int, error) {
	found := 0
	for i, b := range c.Bases {
		want := rep.Omitted[b.ManifestSHA256]
		if len(want) == 0 {
			continue
		}
		n, err := blobsFrom(c.source(i), b, want, links, tw)
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

// source reads the i-th base: its Source when it has one (an encrypted
// base's decryption), else its file.
func (c *Chain) source(i int) Source {
	if i < len(c.Sources) && c.Sources[i] != nil {
		return c.Sources[i]
	}
	return FileSource(c.files[i])
}

// blobsFrom copies the wanted blobs out of one base, under the names the
// incremental backup gives them, and returns how many it copied. Each is
// checked against its digest as it is copied.
func blobsFrom(open Source, b *Base, want map[string]Entry, links linkSet, tw *tar.Writer) (int, error) {
	p, err := startPass(open, false)
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
	// Sources, when set, read the bases (by index) instead of their
	// files: the decryption of an encrypted one.
	Sources []Source
	files   []*os.File
}

// OpenChain is VerifyChain keeping the bases open, for Content; Close it
// in every case.
func OpenChain(rep *Report, dir string) (*Chain, error) {
	bases, files, err := VerifyChain(rep, dir)
	return &Chain{Bases: bases, files: files}, err
}

// CheckChain is VerifyChain for a caller that needs only its verdict,
// which is in rep.
func CheckChain(rep *Report, dir string) error {
	c, err := OpenChain(rep, dir)
	c.Close()
	return err
}

// Content is ChainContent of f, an incremental backup, with these bases.
func (c *Chain) Content(f *os.File, rep *Report, w io.Writer) error {
	return ChainContent(f, rep, c.Bases, c.files, w)
}

// Close closes the bases' files; a nil Chain has none.
func (c *Chain) Close() {
	if c == nil {
		return
	}
	for _, f := range c.files {
		f.Close()
	}
	c.files = nil
}
