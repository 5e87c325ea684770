package rethinktest

import (
	"sort"
	"sync"
)

// catalog holds every database. Its mutex guards the db/table maps; each table
// has its own lock for documents and indexes.
type catalog struct {
	mu  sync.RWMutex
	dbs map[string]*database
}

type database struct {
	id     string
	name   string
	tables map[string]*table
}

type table struct {
	mu         sync.RWMutex
	id         string
	name       string
	db         *database
	pk         string
	durability string
	docs       map[string]map[string]any // keyString(pk) -> document
	sorted     []string                  // cached sorted keys; nil when stale; never mutated once built
	indexes    map[string]*sindex
	hook       *funcDef // write hook: stored and reported, never executed
}

// funcDef is a stored ReQL function (index or write hook): the raw FUNC term.
type funcDef struct {
	term   any
	params []float64
	body   any
}

type sindex struct {
	name    string
	fn      *funcDef
	multi   bool
	geo     bool
	entries map[string]map[string]struct{} // keyString(index value) -> set of pk keys
}

func newCatalog() *catalog {
	c := &catalog{dbs: map[string]*database{}}
	c.dbs["test"] = &database{id: newUUID(), name: "test", tables: map[string]*table{}}
	return c
}

func (t *table) displayName() string { return t.db.name + "." + t.name }

// sortedKeysLocked returns a snapshot of the primary keys in key order.
// Callers hold t.mu (read or write).
func (t *table) sortedKeysLocked() []string {
	if t.sorted != nil {
		return t.sorted
	}
	keys := make([]string, 0, len(t.docs))
	for k := range t.docs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	t.sorted = keys
	return keys
}

// snapshotKeys takes the key snapshot a cursor iterates over.
func (t *table) snapshotKeys() []string {
	t.mu.RLock()
	if t.sorted != nil {
		k := t.sorted
		t.mu.RUnlock()
		return k
	}
	t.mu.RUnlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sortedKeysLocked()
}

func (t *table) get(key string) (map[string]any, bool) {
	t.mu.RLock()
	d, ok := t.docs[key]
	t.mu.RUnlock()
	return d, ok
}

// putLocked stores doc under key, keeping secondary indexes current.
func (t *table) putLocked(key string, doc map[string]any) {
	old, existed := t.docs[key]
	if existed {
		for _, ix := range t.indexes {
			ix.remove(key, old)
		}
	} else {
		t.sorted = nil
	}
	t.docs[key] = doc
	for _, ix := range t.indexes {
		ix.add(key, doc)
	}
}

func (t *table) deleteLocked(key string) bool {
	old, ok := t.docs[key]
	if !ok {
		return false
	}
	for _, ix := range t.indexes {
		ix.remove(key, old)
	}
	delete(t.docs, key)
	t.sorted = nil
	return true
}

// indexKeys evaluates the index function on a document. Documents on which
// the function fails or yields null/objects are simply not indexed, as in RethinkDB.
func (ix *sindex) indexKeys(doc map[string]any) []string {
	v, err := callFuncDef(ix.fn, doc)
	if err != nil {
		return nil
	}
	if arr, ok := v.([]any); ok && ix.multi {
		var out []string
		seen := map[string]bool{}
		for _, e := range arr {
			if k, ok := keyString(e); ok && !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
		return out
	}
	if k, ok := keyString(v); ok {
		return []string{k}
	}
	return nil
}

func (ix *sindex) add(pk string, doc map[string]any) {
	for _, k := range ix.indexKeys(doc) {
		set := ix.entries[k]
		if set == nil {
			set = map[string]struct{}{}
			ix.entries[k] = set
		}
		set[pk] = struct{}{}
	}
}

func (ix *sindex) remove(pk string, doc map[string]any) {
	for _, k := range ix.indexKeys(doc) {
		if set := ix.entries[k]; set != nil {
			delete(set, pk)
			if len(set) == 0 {
				delete(ix.entries, k)
			}
		}
	}
}

// lookupLocked returns the sorted primary keys stored under one index key.
func (ix *sindex) lookupLocked(k string) []string {
	set := ix.entries[k]
	out := make([]string, 0, len(set))
	for pk := range set {
		out = append(out, pk)
	}
	sort.Strings(out)
	return out
}
