package agent

import (
	"io/fs"
	"strings"
	"unsafe"
)

// keptList holds the listing's entries for the send, in the listing's
// order, so that the send need not walk the volume again. An entry is
// its stat's few fields the tar header reads and its name in an arena,
// tied to its directory by index: 56 bytes and the name, about 100 in
// all for a registry's entry, against 374 for the walk's own entry and
// path (BenchmarkKeptMemory). Kept whole, a 4 GB registry's 220,000
// entries were too many to keep, and the volume was walked twice.
type keptList struct {
	entries []keptEntry
	names   []byte
	// links are the symlinks' targets; other holds an entry whose stat is
	// neither a statInfo nor a bucket's object (package os's, off Linux).
	links map[int32]string
	other map[int32]fs.FileInfo
	// open is the listing's directories that later entries can still lie
	// in, as the send's walk order leaves them: deepest last.
	open []keptDir
}

// keptEntry is one entry: its directory's index (-1 for the root), its
// name's place in the arena, and what the tar header reads of its stat.
type keptEntry struct {
	parent  int32
	nameOff uint32
	nameLen uint32
	kind    uint8 // keptStat, keptObject or keptOther
	mode    uint32
	uid     uint32
	gid     uint32
	size    int64
	mtime   int64 // Unix seconds: the header keeps whole seconds
	rdev    uint64
}

const (
	keptStat   = iota // a statInfo (Linux); mode is st_mode
	keptObject        // a bucket's objectInfo; mode is 1 for a directory
	keptOther         // in keptList.other
)

// keptDir is a directory of the listing: its path and its index.
type keptDir struct {
	rel   string
	index int32
}

// keptEntrySize is an entry's size beside its name, for the budget.
const keptEntrySize = int(unsafe.Sizeof(keptEntry{}))

// maxKeptBytes bounds what the list holds, its slices' spare room
// included (a var for the tests): a volume past it is walked again for
// the send. 64 MiB holds some 500,000 entries of a registry (about 100
// bytes each, BenchmarkKeptMemory), where the walk's entries kept whole
// held 200,000 in 75 MB.
var maxKeptBytes = 64 << 20

// add keeps an entry; false once the budget is spent (the list is then
// emptied).
func (k *keptList) add(w walked) bool {
	if cap(k.entries)*keptEntrySize+cap(k.names) > maxKeptBytes || len(k.entries) >= 1<<31-1 {
		*k = keptList{}
		return false
	}
	i := int32(len(k.entries))
	rel := strings.TrimSuffix(w.rel, "/")
	dir, name := "", rel
	if j := strings.LastIndexByte(rel, '/'); j >= 0 {
		dir, name = rel[:j+1], rel[j+1:]
	}
	e := keptEntry{parent: -1, nameOff: uint32(len(k.names)), nameLen: uint32(len(name))}
	if w.rel != "" {
		for len(k.open) > 0 && k.open[len(k.open)-1].rel != dir {
			k.open = k.open[:len(k.open)-1]
		}
		if len(k.open) == 0 {
			// Not under the last directories listed: not a walk's order.
			*k = keptList{}
			return false
		}
		e.parent = k.open[len(k.open)-1].index
	}
	k.names = append(k.names, name...)
	switch info := w.info.(type) {
	case objectInfo:
		e.kind, e.size, e.mtime = keptObject, info.size, info.mtime
		if info.dir {
			e.mode = 1
		}
	default:
		if keepStat(info, &e) {
			break
		}
		e.kind = keptOther
		if k.other == nil {
			k.other = map[int32]fs.FileInfo{}
		}
		k.other[i] = w.info
	}
	if w.link != "" {
		if k.links == nil {
			k.links = map[int32]string{}
		}
		k.links[i] = w.link
	}
	k.entries = append(k.entries, e)
	if w.info.IsDir() {
		k.open = append(k.open, keptDir{rel: w.rel, index: i})
	}
	return true
}

// each calls fn for every entry kept, in order, as the walk gave it.
func (k *keptList) each(done <-chan struct{}, fn walkFunc) error {
	var open []keptDir
	for i := range k.entries {
		select {
		case <-done:
			return errGone
		default:
		}
		e := &k.entries[i]
		name := string(k.names[e.nameOff : e.nameOff+e.nameLen])
		for len(open) > 0 && open[len(open)-1].index != e.parent {
			open = open[:len(open)-1]
		}
		rel := ""
		if len(open) > 0 {
			rel = open[len(open)-1].rel + name
		}
		info := k.info(int32(i), name)
		if info.IsDir() {
			if rel != "" {
				rel += "/"
			}
			open = append(open, keptDir{rel: rel, index: int32(i)})
		}
		if err := fn(rel, info, k.links[int32(i)]); err != nil {
			return err
		}
	}
	return nil
}

// info is entry i's stat again, as the walk gave it.
func (k *keptList) info(i int32, name string) fs.FileInfo {
	e := &k.entries[i]
	switch e.kind {
	case keptStat:
		return keptStatInfo(e, name)
	case keptObject:
		return objectInfo{name: name, size: e.size, mtime: e.mtime, dir: e.mode == 1}
	}
	return k.other[i]
}
