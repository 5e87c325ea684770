package rethinktest

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// Persistence in Options.Directory, after RethinkDB's documented durability
// (docs/consistency, api/sync, the durability option of writes and run):
//
//   - hard durability (the default; per table, per run() or per write): a
//     write is acknowledged only once it is on disk (fsync);
//   - soft durability: acknowledged once applied in memory; flushed to disk
//     in the background (within softFlushInterval) or by table.sync();
//   - table.sync() returns once every earlier write is on disk;
//   - databases, tables, indexes and write hooks are on disk before their
//     change is acknowledged, like RethinkDB's metadata.
//
// The directory holds one file, an append-only journal of logical changes
// (journalFile). Each record is framed as
//
//	length  uint32 LE  payload length
//	hcrc    uint32 LE  CRC-32C of the 4 length bytes
//	pcrc    uint32 LE  CRC-32C of the payload
//	payload            one JSON object {"op": ...} (jrec; documents as ReQL JSON)
//
// so that recovery can tell a record torn by a crash mid-write, which can only
// be the last one (incomplete, or reaching end of file with a bad payload
// checksum) and is dropped, from damage before the end, which stops startup
// with an error: RethinkDB refuses a corrupt data file rather than silently
// lose data, and so do we.
//
// Concurrent hard writers share one write+fsync (group commit). The journal
// is rewritten as a snapshot (same format: the records that rebuild the
// current state) on a start that finds it new, torn or mostly overwritten
// documents, and while running whenever it has doubled since the last
// rewrite. A snapshot goes to journalFile+".tmp", is fsynced and renamed over
// the journal (then the directory is fsynced), so a crash at any point leaves
// one complete journal.

const (
	journalFile   = "rethinktest.journal"
	journalFormat = 1
	frameHeader   = 12
	maxRecord     = 1 << 30
	snapshotBatch = 1000 // documents per put record in a snapshot
)

// Variables for tests.
var (
	minCompactSize    int64 = 64 << 20 // never rewrite a smaller journal while running
	softFlushInterval       = 100 * time.Millisecond
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// journal is the on-disk side of a Server with a data directory. A nil
// *journal (in-memory server) accepts every call and does nothing.
type journal struct {
	path     string
	cat      *catalog
	serverID string

	// gate orders changes against snapshots: every change holds it for
	// reading while it applies itself in memory and logs its record (under
	// the catalog or table lock that orders it against other changes); a
	// running snapshot holds it for writing while it encodes the state.
	gate sync.RWMutex

	mu         sync.Mutex
	cond       *sync.Cond
	f          *os.File
	buf        []byte // framed records logged but not yet written
	spare      []byte // the previous buf, reused
	appended   uint64 // records logged
	synced     uint64 // records on disk
	syncing    bool   // a group commit is writing outside mu
	err        error  // sticky: the first failed write or fsync
	size       int64  // bytes in the journal file
	compactAt  int64
	tail       []byte // non-nil during a runtime snapshot: records logged since it started
	compacting bool
	compacted  int // runtime snapshots installed
	closed     bool

	minCompact int64         // minCompactSize when opened
	flushEvery time.Duration // softFlushInterval when opened

	done chan struct{}
	wg   sync.WaitGroup
}

// jrec is a journal record. Tables and databases are named by id, so a record
// for a table dropped meanwhile (a write racing table_drop) is ignored.
type jrec struct {
	Op         string          `json:"op"`
	Format     int             `json:"format,omitempty"`
	Server     string          `json:"server,omitempty"`
	ID         string          `json:"id,omitempty"`
	DB         string          `json:"db,omitempty"`
	Name       string          `json:"name,omitempty"`
	NewName    string          `json:"new_name,omitempty"`
	PK         string          `json:"pk,omitempty"`
	Durability string          `json:"durability,omitempty"`
	Table      string          `json:"t,omitempty"`
	Index      json.RawMessage `json:"index,omitempty"` // as in index_status's function blob
	Hook       json.RawMessage `json:"hook,omitempty"`  // the FUNC term, or null
	Docs       []any           `json:"docs,omitempty"`
	Keys       []any           `json:"keys,omitempty"`

	plain bool // no pseudo-types in Docs and Keys
}

// openJournal recovers the state kept in dir (creating dir, as rethinkdb does
// on first start) and opens the journal for appending, rewritten if need be.
func openJournal(dir string) (*journal, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	j := &journal{path: filepath.Join(dir, journalFile), done: make(chan struct{}), minCompact: minCompactSize, flushEvery: softFlushInterval}
	j.cond = sync.NewCond(&j.mu)
	if err := os.Remove(j.path + ".tmp"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	st := &replay{cat: &catalog{dbs: map[string]*database{}}, dbs: map[string]*database{}, tables: map[string]*table{}}
	data, err := os.ReadFile(j.path)
	end := 0
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		if end, err = readFrames(data, st.apply); err != nil {
			return nil, fmt.Errorf("rethinktest: data directory %s: %w", dir, err)
		}
	}
	if st.serverID == "" { // new directory (or only a torn first record)
		j.cat, j.serverID = newCatalog(), newUUID()
	} else {
		j.cat, j.serverID = st.cat, st.serverID
	}
	live := 0
	for _, t := range st.tables {
		live += len(t.docs)
	}
	// Keep appending to an intact journal that is mostly live documents;
	// rewrite a new, torn or mostly dead one.
	if st.serverID != "" && end == len(data) && st.logged <= 2*live+10000 {
		f, err := os.OpenFile(j.path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return nil, err
		}
		j.start(f, int64(len(data)))
		return j, nil
	}
	snap := encodeSnapshot(nil, j.cat, j.serverID)
	f, err := j.createTemp(snap)
	if err == nil {
		if _, err = j.install(f); err != nil {
			f.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("rethinktest: data directory %s: %w", dir, err)
	}
	j.start(f, int64(len(snap)))
	return j, nil
}

func (j *journal) start(f *os.File, size int64) {
	j.f, j.size = f, size
	j.compactAt = max(j.minCompact, 2*j.size)
	j.wg.Add(1)
	go j.flusher()
}

// readFrames calls apply on each record (its offset and payload) and stops
// quietly at a torn last record. It returns where the complete records end.
func readFrames(data []byte, apply func(off int, payload []byte) error) (int, error) {
	off := 0
	for n := 0; off < len(data); n++ {
		rest := data[off:]
		if len(rest) < frameHeader {
			return off, nil // torn header
		}
		size := binary.LittleEndian.Uint32(rest[0:4])
		if crc32.Checksum(rest[0:4], crcTable) != binary.LittleEndian.Uint32(rest[4:8]) || size > maxRecord {
			if allZero(rest) {
				return off, nil // a file extended but never written
			}
			return off, fmt.Errorf("journal %s is corrupt: record %d at byte %d has a bad header", journalFile, n, off)
		}
		end := frameHeader + int(size)
		if end > len(rest) {
			return off, nil // torn payload
		}
		payload := rest[frameHeader:end]
		if crc32.Checksum(payload, crcTable) != binary.LittleEndian.Uint32(rest[8:12]) {
			if end == len(rest) {
				return off, nil // the last record, partly written
			}
			return off, fmt.Errorf("journal %s is corrupt: record %d at byte %d fails its checksum", journalFile, n, off)
		}
		if err := apply(off, payload); err != nil {
			return off, fmt.Errorf("journal %s: record %d at byte %d: %w", journalFile, n, off, err)
		}
		off += end
	}
	return off, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// replay rebuilds a catalog from journal records.
type replay struct {
	cat      *catalog
	serverID string
	dbs      map[string]*database // by id
	tables   map[string]*table    // by id
	logged   int                  // documents put or deleted
}

func (st *replay) apply(_ int, payload []byte) error {
	var r jrec
	if err := json.Unmarshal(payload, &r); err != nil {
		return err
	}
	// Plain JSON is already a datum; only pseudo-types need converting.
	r.plain = !bytes.Contains(payload, []byte(`"$reql_type$"`))
	if st.serverID == "" && r.Op != "init" {
		return errors.New("not a rethinktest journal (no init record)")
	}
	switch r.Op {
	case "init":
		if r.Format != journalFormat {
			return fmt.Errorf("journal format %d, want %d", r.Format, journalFormat)
		}
		if st.serverID != "" || r.Server == "" {
			return errors.New("misplaced init record")
		}
		st.serverID = r.Server
	case "db_create":
		db := &database{id: r.ID, name: r.Name, tables: map[string]*table{}}
		st.dbs[r.ID], st.cat.dbs[r.Name] = db, db
	case "db_drop":
		db := st.dbs[r.ID]
		if db == nil {
			return fmt.Errorf("db_drop of unknown database %s", r.ID)
		}
		delete(st.dbs, r.ID)
		delete(st.cat.dbs, db.name)
		for _, t := range db.tables {
			delete(st.tables, t.id)
		}
	case "table_create":
		db := st.dbs[r.DB]
		if db == nil {
			return fmt.Errorf("table_create in unknown database %s", r.DB)
		}
		t := &table{id: r.ID, name: r.Name, db: db, pk: r.PK, durability: r.Durability,
			docs: map[string]map[string]any{}, indexes: map[string]*sindex{}}
		st.tables[r.ID], db.tables[r.Name] = t, t
	case "table_drop":
		if t := st.tables[r.ID]; t != nil {
			delete(st.tables, r.ID)
			delete(t.db.tables, t.name)
		}
	default:
		t := st.tables[r.Table]
		if t == nil {
			// A change that raced the drop of its table (or database):
			// RethinkDB would have dropped it with the table too.
			if r.Op == "put" || r.Op == "del" || r.Op == "index_create" || r.Op == "index_drop" || r.Op == "index_rename" || r.Op == "hook" {
				return nil
			}
			return fmt.Errorf("unknown op %q", r.Op)
		}
		return st.applyTable(t, &r)
	}
	return nil
}

func (st *replay) applyTable(t *table, r *jrec) error {
	switch r.Op {
	case "put":
		st.logged += len(r.Docs)
		for _, d := range r.Docs {
			if !r.plain {
				var err error
				if d, err = datumFromJSON(d); err != nil {
					return err
				}
			}
			doc, ok := d.(map[string]any)
			if !ok {
				return fmt.Errorf("put of a %s", typeName(d))
			}
			key, err := pkeyString(doc[t.pk])
			if err != nil {
				return err
			}
			t.putLocked(key, doc)
		}
	case "del":
		st.logged += len(r.Keys)
		for _, d := range r.Keys {
			if !r.plain {
				var err error
				if d, err = datumFromJSON(d); err != nil {
					return err
				}
			}
			key, err := pkeyString(d)
			if err != nil {
				return err
			}
			t.deleteLocked(key)
		}
	case "index_create":
		ix := &sindex{name: r.Name, entries: map[string]map[string]struct{}{}}
		if err := parseIndexBlob(Binary(indexBlobPrefix+string(r.Index)), ix); err != nil {
			return err
		}
		if !ix.geo {
			for k, d := range t.docs {
				ix.add(k, d)
			}
		}
		t.indexes[r.Name] = ix
	case "index_drop":
		delete(t.indexes, r.Name)
	case "index_rename":
		if ix := t.indexes[r.Name]; ix != nil {
			delete(t.indexes, r.Name)
			ix.name = r.NewName
			t.indexes[r.NewName] = ix
		}
	case "hook":
		t.hook = nil
		if len(r.Hook) > 0 && string(r.Hook) != "null" {
			var term any
			if err := json.Unmarshal(r.Hook, &term); err != nil {
				return err
			}
			fd, err := parseFuncTerm(term)
			if err != nil {
				return err
			}
			t.hook = fd
		}
	default:
		return fmt.Errorf("unknown op %q", r.Op)
	}
	return nil
}

// Records. Each rec* function appends one framed record to dst.

func beginFrame(dst []byte) ([]byte, int) {
	start := len(dst)
	return append(dst, make([]byte, frameHeader)...), start
}

func endFrame(dst []byte, start int) []byte {
	h, payload := dst[start:start+frameHeader], dst[start+frameHeader:]
	binary.LittleEndian.PutUint32(h[0:4], uint32(len(payload)))
	binary.LittleEndian.PutUint32(h[4:8], crc32.Checksum(h[0:4], crcTable))
	binary.LittleEndian.PutUint32(h[8:12], crc32.Checksum(payload, crcTable))
	return dst
}

func recJSON(dst []byte, r jrec) []byte {
	b, err := json.Marshal(r)
	if err != nil {
		panic(err) // jrec always marshals
	}
	dst, start := beginFrame(dst)
	return endFrame(append(dst, b...), start)
}

func recDBCreate(dst []byte, db *database) []byte {
	return recJSON(dst, jrec{Op: "db_create", ID: db.id, Name: db.name})
}

func recTableCreate(dst []byte, t *table) []byte {
	return recJSON(dst, jrec{Op: "table_create", ID: t.id, DB: t.db.id, Name: t.name, PK: t.pk, Durability: t.durability})
}

func recIndexCreate(dst []byte, t *table, ix *sindex) []byte {
	blob := string(indexBlob(ix))[len(indexBlobPrefix):]
	return recJSON(dst, jrec{Op: "index_create", Table: t.id, Name: ix.name, Index: json.RawMessage(blob)})
}

func recHook(dst []byte, t *table) []byte {
	hook := json.RawMessage("null")
	if t.hook != nil {
		hook = appendJSON(nil, funcTerm(t.hook))
	}
	return recJSON(dst, jrec{Op: "hook", Table: t.id, Hook: hook})
}

// recPut and recDel are written by hand: they carry the documents, and
// appendJSON (ReQL's JSON, pseudo-types as $reql_type$) is what datumFromJSON
// reads back exactly.
func recPut(dst []byte, t *table, docs []map[string]any) []byte {
	dst, start := beginFrame(dst)
	dst = append(dst, `{"op":"put","t":`...)
	dst = appendString(dst, t.id)
	dst = append(dst, `,"docs":[`...)
	for i, d := range docs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSON(dst, d)
	}
	return endFrame(append(dst, "]}"...), start)
}

func recDel(dst []byte, t *table, keys []any) []byte {
	dst, start := beginFrame(dst)
	dst = append(dst, `{"op":"del","t":`...)
	dst = appendString(dst, t.id)
	dst = append(dst, `,"keys":`...)
	dst = appendJSON(dst, keys)
	return endFrame(append(dst, '}'), start)
}

// encodeSnapshot appends the records that rebuild cat, in a stable order:
// documents in key order, before indexes, so replay builds each index once.
func encodeSnapshot(dst []byte, cat *catalog, serverID string) []byte {
	dst = recJSON(dst, jrec{Op: "init", Format: journalFormat, Server: serverID})
	cat.mu.RLock()
	defer cat.mu.RUnlock()
	dbNames := make([]string, 0, len(cat.dbs))
	for n := range cat.dbs {
		dbNames = append(dbNames, n)
	}
	sort.Strings(dbNames)
	for _, dn := range dbNames {
		db := cat.dbs[dn]
		dst = recDBCreate(dst, db)
		names := make([]string, 0, len(db.tables))
		for n := range db.tables {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			t := db.tables[n]
			t.mu.RLock()
			dst = recTableCreate(dst, t)
			batch := make([]map[string]any, 0, snapshotBatch)
			keys := t.sorted // set only under t.mu.Lock
			if keys == nil {
				keys = make([]string, 0, len(t.docs))
				for k := range t.docs {
					keys = append(keys, k)
				}
				sort.Strings(keys)
			}
			for _, k := range keys {
				if batch = append(batch, t.docs[k]); len(batch) == snapshotBatch {
					dst, batch = recPut(dst, t, batch), batch[:0]
				}
			}
			if len(batch) > 0 {
				dst = recPut(dst, t, batch)
			}
			for _, in := range sortedIndexNames(t) {
				dst = recIndexCreate(dst, t, t.indexes[in])
			}
			if t.hook != nil {
				dst = recHook(dst, t)
			}
			t.mu.RUnlock()
		}
	}
	return dst
}

// createTemp writes data to the snapshot file, fsynced, open for appending.
func (j *journal) createTemp(data []byte) (*os.File, error) {
	f, err := os.OpenFile(j.path+".tmp", os.O_CREATE|os.O_TRUNC|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	if _, err = f.Write(data); err == nil {
		err = f.Sync()
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return f, nil
}

// install renames the snapshot file over the journal and makes the rename
// durable. Once renamed is true, f is the journal.
func (j *journal) install(f *os.File) (renamed bool, err error) {
	if err := os.Rename(f.Name(), j.path); err != nil {
		f.Close()
		os.Remove(f.Name())
		return false, err
	}
	d, err := os.Open(filepath.Dir(j.path))
	if err != nil {
		return true, err
	}
	defer d.Close()
	return true, d.Sync()
}

// Changes. A change runs inside enter/leave, applies itself in memory and logs
// its record under the lock that orders it against other changes, then (hard
// durability, or metadata) waits for the record with durable.

func (j *journal) enter() {
	if j != nil {
		j.gate.RLock()
	}
}

func (j *journal) leave() {
	if j != nil {
		j.gate.RUnlock()
	}
}

// frameBufs recycles the buffers changes encode their records in.
var frameBufs = sync.Pool{New: func() any { return new([]byte) }}

// logPut logs the documents an insert stored.
func (j *journal) logPut(t *table, docs []map[string]any) uint64 {
	if j == nil || len(docs) == 0 {
		return 0
	}
	bp := frameBufs.Get().(*[]byte)
	*bp = recPut((*bp)[:0], t, docs)
	seq := j.log(*bp)
	if cap(*bp) <= 4<<20 {
		frameBufs.Put(bp)
	}
	return seq
}

// log queues one framed record and returns its sequence number.
func (j *journal) log(frame []byte) uint64 {
	if j == nil {
		return 0
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.buf = append(j.buf, frame...)
	if j.tail != nil {
		j.tail = append(j.tail, frame...)
	}
	j.appended++
	return j.appended
}

// durable returns once record seq and every earlier one are on disk.
func (j *journal) durable(seq uint64) error {
	if j == nil {
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.syncLocked(seq); err != nil {
		return opFailed("rethinktest: cannot write to the data directory: %v", err)
	}
	return nil
}

// syncAll is table.sync(): every write logged so far reaches the disk.
func (j *journal) syncAll() error {
	if j == nil {
		return nil
	}
	j.mu.Lock()
	seq := j.appended
	j.mu.Unlock()
	return j.durable(seq)
}

// syncLocked is group commit: one caller writes and fsyncs everything queued
// while the others wait for it; j.mu is held on entry and on return.
func (j *journal) syncLocked(seq uint64) error {
	for j.synced < seq && j.err == nil {
		if j.syncing {
			j.cond.Wait()
			continue
		}
		j.syncing = true
		buf, target, f := j.buf, j.appended, j.f
		j.buf, j.spare = j.spare[:0], nil
		j.mu.Unlock()
		_, err := f.Write(buf)
		if err == nil {
			err = f.Sync()
		}
		j.mu.Lock()
		j.syncing = false
		if err != nil {
			j.err = err
		} else {
			j.synced = target
			j.size += int64(len(buf))
			if cap(buf) <= 16<<20 {
				j.spare = buf
			}
		}
		j.cond.Broadcast()
		if j.size >= j.compactAt && !j.compacting && !j.closed && j.err == nil {
			j.compacting = true
			j.wg.Add(1)
			go j.compact()
		}
	}
	return j.err
}

// flusher writes soft-durability records in the background, as RethinkDB
// flushes soft writes soon after acknowledging them.
func (j *journal) flusher() {
	defer j.wg.Done()
	tick := time.NewTicker(j.flushEvery)
	defer tick.Stop()
	for {
		select {
		case <-j.done:
			return
		case <-tick.C:
			j.mu.Lock()
			if j.synced < j.appended && !j.syncing {
				j.syncLocked(j.appended)
			}
			j.mu.Unlock()
		}
	}
}

// compact rewrites a grown journal as a snapshot while the server runs. The
// state is encoded with changes held off (gate); records logged after that are
// also kept in tail and appended to the snapshot before it replaces the journal.
func (j *journal) compact() {
	defer j.wg.Done()
	err := j.compactOnce()
	j.mu.Lock()
	defer j.mu.Unlock()
	j.compacting, j.tail = false, nil
	if err != nil {
		j.compactAt = 2 * j.size // try again later, not after every write
	}
}

func (j *journal) compactOnce() error {
	j.gate.Lock()
	j.mu.Lock()
	j.tail = []byte{}
	j.mu.Unlock()
	snap := encodeSnapshot(nil, j.cat, j.serverID)
	j.gate.Unlock()
	f, err := j.createTemp(snap)
	if err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	for j.syncing {
		j.cond.Wait()
	}
	if _, err = f.Write(j.tail); err == nil {
		err = f.Sync()
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	renamed, err := j.install(f)
	if !renamed {
		return err
	}
	old := j.f
	j.f, j.size = f, int64(len(snap)+len(j.tail))
	j.buf, j.synced = j.buf[:0], j.appended
	j.compactAt = max(j.minCompact, 2*j.size)
	j.compacted++
	if err != nil {
		j.err = err // the journal may not survive a crash: fail writes from now on
	}
	j.cond.Broadcast()
	old.Close()
	return err
}

// close flushes every logged record (soft ones too, as on a clean shutdown)
// and closes the journal.
func (j *journal) close() error {
	if j == nil {
		return nil
	}
	j.mu.Lock()
	j.closed = true
	j.mu.Unlock()
	close(j.done)
	j.wg.Wait()
	j.mu.Lock()
	defer j.mu.Unlock()
	err := j.syncLocked(j.appended)
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	return err
}
