package imagebackup

import (
	"github.com/docker-dtr/docker-dtr/pkg/agent"
	"github.com/docker-dtr/docker-dtr/pkg/imagearchive"
)

// Selection is what an incremental backup reads of a listed volume: every
// file but the blobs that its earlier backups hold (by digest and size)
// and the unfinished uploads, which no backup keeps.
type Selection struct {
	// Omit are the blobs the agent leaves out: name inside the volume, size.
	Omit map[string]int64
	// LeftOut are the same blobs in the listing's order, with their modes:
	// the archive's manifest lists them from this (imagearchive.Info.LeftOut).
	LeftOut []imagearchive.LeftOut
	// Read counts the files sent with their data, and their bytes.
	ReadFiles, ReadBytes int64
	// Omitted counts the blobs left out; Uploads the uploads' files.
	OmittedFiles, OmittedBytes int64
	UploadFiles, UploadBytes   int64
	// Stream estimates the tar the agent sends, for the progress's total.
	Stream int64
	// Entries counts the listing's entries.
	Entries int
	bases   []*imagearchive.Base
	// known says the bases are given; until then the blobs listed wait
	// in undecided, in the listing's order.
	known     bool
	undecided []agent.ListEntry
}

// NewSelection starts a selection against bases; Add each listed entry,
// then Finish.
func NewSelection(bases []*imagearchive.Base) *Selection {
	return &Selection{Omit: map[string]int64{}, bases: bases, known: true}
}

// NewPendingSelection starts a selection whose bases are still being
// read: the listing goes on meanwhile, and the blobs it lists wait, in
// order, for Decide (at most a line each of the volume's blobs). Held
// at the listing's first entry instead, a large volume's listing stalled
// on the agent's full pipe for as long as its bases took to read.
func NewPendingSelection() *Selection { return &Selection{Omit: map[string]int64{}} }

// Decide gives a pending selection its bases, and chooses for the blobs
// that waited for them.
func (s *Selection) Decide(bases []*imagearchive.Base) {
	s.bases, s.known = bases, true
	for _, e := range s.undecided {
		s.file(e)
	}
	s.undecided = nil
}

// Select chooses, from the agent's listing, what an incremental backup
// against bases reads. Only a blob (docker/registry/v2/blobs/sha256/xx/
// DIGEST/data) a base holds with the same size is left out: the repositories'
// links, _manifests and anything that is not a blob are always read, and a
// blob read is checked against its digest while it streams.
func Select(list []agent.ListEntry, bases []*imagearchive.Base) Selection {
	s := NewSelection(bases)
	for _, e := range list {
		s.Add(e)
	}
	s.Finish()
	return *s
}

// Add takes one entry of the listing, as it comes: the listing of a large
// volume is never held whole.
func (s *Selection) Add(e agent.ListEntry) {
	s.Entries++
	s.Stream += tarBlock
	if e.Type != "file" {
		return
	}
	if !s.known && !imagearchive.IsUpload(e.Name) {
		if _, blob := imagearchive.BlobDigest(e.Name); blob {
			s.undecided = append(s.undecided, e)
			return
		}
	}
	s.file(e)
}

// file chooses for a listed file.
func (s *Selection) file(e agent.ListEntry) {
	switch {
	case imagearchive.IsUpload(e.Name):
		s.UploadFiles++
		s.UploadBytes += e.Size
		s.Stream += tarBlock // the record of its size
	case imagearchive.Held(s.bases, e.Name, e.Size):
		s.Omit[e.Name] = e.Size
		s.LeftOut = append(s.LeftOut, imagearchive.LeftOut{Name: e.Name, Size: e.Size, Mode: e.Mode})
		s.OmittedFiles++
		s.OmittedBytes += e.Size
		s.Stream -= tarBlock // not sent at all
	default:
		s.ReadFiles++
		s.ReadBytes += e.Size
		s.Stream += (e.Size + tarBlock - 1) / tarBlock * tarBlock
	}
}

// Finish adds the end of the tar to Stream.
func (s *Selection) Finish() { s.Stream += 2 * tarBlock }

const tarBlock = 512
