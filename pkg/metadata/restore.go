package metadata

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"github.com/docker-dtr/docker-dtr/pkg/human"
	"github.com/docker-dtr/docker-dtr/pkg/rethink"
)

// TablePlan is what restore does to one table.
type TablePlan struct {
	archive.Table
	Rows int64 `json:"rows"` // rows in the archive
	// Create are the settings the table is created with: the backup's,
	// adapted to the target's servers; nil for the server's defaults
	// (an archive without settings).
	Create *archive.TableSettings `json:"create,omitempty"`
	// Exists is true when the table is already there; ExistingRows counts its rows.
	Exists       bool  `json:"exists"`
	ExistingRows int64 `json:"existingRows"`
}

// Plan is everything a restore would change, worked out before any change.
type Plan struct {
	CreateDBs []string    `json:"createDatabases"`
	Tables    []TablePlan `json:"tables"`
	Warnings  []string    `json:"warnings"`
}

// Existing lists the tables a restore would replace.
func (p *Plan) Existing() []string {
	var names []string
	for _, t := range p.Tables {
		if t.Exists {
			names = append(names, t.FullName())
		}
	}
	return names
}

// Replaced are the tables that exist and that the restore drops.
func (p *Plan) Replaced() []rethink.TableRef {
	var refs []rethink.TableRef
	for _, t := range p.Tables {
		if t.Exists {
			refs = append(refs, rethink.TableRef{DB: t.DB, Table: t.Name})
		}
	}
	return refs
}

// Created are the tables the restore makes that were not there before.
func (p *Plan) Created() []string {
	var names []string
	for _, t := range p.Tables {
		if !t.Exists {
			names = append(names, t.FullName())
		}
	}
	return names
}

// Undo drops what a failed restore made that was not there before: the
// tables it created and the databases it created. What it replaced comes
// back from the safety backup.
func (p *Plan) Undo(ctx context.Context, s *rethink.Session) error {
	newDB := map[string]bool{}
	for _, db := range p.CreateDBs {
		newDB[db] = true
	}
	for _, db := range p.CreateDBs {
		if err := ignoreMissing(s.DBDrop(ctx, db)); err != nil {
			return err
		}
	}
	for _, t := range p.Tables {
		if t.Exists || newDB[t.DB] {
			continue
		}
		if err := ignoreMissing(s.TableDrop(ctx, rethink.TableRef{DB: t.DB, Table: t.Name})); err != nil {
			return err
		}
	}
	return nil
}

// ignoreMissing: a table or database the failed restore never got to is
// already as it was.
func ignoreMissing(err error) error {
	if err != nil && strings.Contains(err.Error(), "does not exist") {
		return nil
	}
	return err
}

// MakePlan compares a verified archive with the server.
func MakePlan(ctx context.Context, s *rethink.Session, rep *archive.Report) (*Plan, error) {
	if err := checkArchive(rep); err != nil {
		return nil, err
	}
	plan := &Plan{CreateDBs: []string{}, Tables: []TablePlan{}, Warnings: []string{}}
	if rep.Kind == archive.KindOfficial {
		plan.Warnings = append(plan.Warnings,
			"this is a docker/dtr backup: it holds no secondary indexes or write hooks, and its times and binaries are strings")
	}
	dbs, err := s.DBList(ctx)
	if err != nil {
		return nil, err
	}
	servers, err := s.Servers(ctx)
	if err != nil {
		return nil, err
	}
	haveDB := map[string]bool{}
	for _, db := range dbs {
		haveDB[db] = true
	}
	existing := map[rethink.TableRef]bool{}
	wantDB := map[string]bool{}
	for _, st := range rep.Tables {
		t, known := rep.Table(st.Dir)
		if !known {
			plan.Warnings = append(plan.Warnings, fmt.Sprintf("table %q is not a known DTR table: restoring it into %s as DTR does", st.Dir, t.DB))
		}
		if t.DB == rethink.SystemDB {
			return nil, fmt.Errorf("the archive holds table %s of RethinkDB's system database, which cannot be restored", t.FullName())
		}
		if !haveDB[t.DB] && !wantDB[t.DB] {
			wantDB[t.DB] = true
			plan.CreateDBs = append(plan.CreateDBs, t.DB)
		}
		tp := TablePlan{Table: t, Rows: st.Rows}
		if t.Settings != nil {
			var note string
			tp.Create, note = adapt(*t.Settings, servers)
			if note != "" {
				plan.Warnings = append(plan.Warnings, fmt.Sprintf("table %s: %s", t.FullName(), note))
			}
		}
		ref := rethink.TableRef{DB: t.DB, Table: t.Name}
		if haveDB[t.DB] {
			if _, listed := existing[ref]; !listed {
				names, err := s.TableList(ctx, t.DB)
				if err != nil {
					return nil, err
				}
				for _, n := range names {
					existing[rethink.TableRef{DB: t.DB, Table: n}] = true
				}
			}
		}
		if existing[ref] {
			tp.Exists = true
			if tp.ExistingRows, err = s.Count(ctx, ref); err != nil {
				return nil, err
			}
		}
		plan.Tables = append(plan.Tables, tp)
	}
	sort.Strings(plan.CreateDBs)
	return plan, nil
}

// adapt fits a table's settings to a cluster of servers servers: no more
// replicas per shard than servers. The note says what changed.
func adapt(s archive.TableSettings, servers int) (*archive.TableSettings, string) {
	if servers > 0 && s.Replicas > servers {
		note := fmt.Sprintf("%d replicas per shard in the backup, %d here: the cluster has %s", s.Replicas, servers, human.Plural(servers, "server"))
		s.Replicas = servers
		return &s, note
	}
	return &s, ""
}

// Print writes the plan for people.
func (p *Plan) Print(w io.Writer) {
	for _, warn := range p.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	for _, db := range p.CreateDBs {
		fmt.Fprintf(w, "create database %s\n", db)
	}
	for _, t := range p.Tables {
		action, now := "create", "not there now"
		if t.Exists {
			action, now = "drop and create", fmt.Sprintf("%d rows now", t.ExistingRows)
		}
		extra := ""
		if len(t.Indexes) > 0 {
			names := make([]string, len(t.Indexes))
			for i, ix := range t.Indexes {
				names[i] = ix.Name
			}
			extra += ", indexes " + strings.Join(names, " ")
		}
		if t.HasWriteHook() {
			extra += ", write hook"
		}
		if c := t.Create; c != nil {
			// What differs from a table_create without options.
			if c.Shards != 1 {
				extra += ", " + human.Plural(c.Shards, "shard")
			}
			if c.Replicas != 1 {
				extra += ", " + human.Plural(c.Replicas, "replica")
			}
			if c.WriteAcks != "majority" {
				extra += ", write acks " + c.WriteAcks
			}
			if c.Durability != "hard" {
				extra += ", durability " + c.Durability
			}
		}
		fmt.Fprintf(w, "%s table %s: %s, %d rows after (primary key %s%s)\n", action, t.FullName(), now, t.Rows, t.PrimaryKey, extra)
	}
}

// RestoreOptions tune a restore.
type RestoreOptions struct {
	// Force drops tables that exist; without it such tables stop the restore.
	Force      bool
	Writers    int
	BatchRows  int
	BatchBytes int
	Progress   Progress
}

// TableResult is a restored table's row count, checked against the archive.
type TableResult struct {
	Table string `json:"table"`
	Rows  int64  `json:"rows"`
}

// PartialError is a restore that failed after it began changing the target.
type PartialError struct{ Err error }

func (e *PartialError) Error() string {
	return e.Err.Error() + " (the target is partly restored: fix the cause and run the restore again with --force)"
}

func (e *PartialError) Unwrap() error { return e.Err }

// Restore carries out a plan: it creates databases and tables, loads the
// rows with several writers, syncs, recreates secondary indexes from their
// saved functions and waits for them, restores write hooks and checks the
// row counts. f must be the archive the plan was made from, already verified.
func Restore(ctx context.Context, s *rethink.Session, f *os.File, rep *archive.Report, plan *Plan, opts RestoreOptions) ([]TableResult, error) {
	return RestoreFrom(ctx, s, func() (io.ReadCloser, error) {
		return io.NopCloser(io.NewSectionReader(f, 0, 1<<62)), nil
	}, rep, plan, opts)
}

// RestoreFrom is Restore of the archive that open reads, twice (the load,
// then the check of every primary key), each pass from its start: an
// encrypted backup decrypted anew each time, with no plaintext file. Each
// pass is read to its end, where a stream's own checks come (a
// decryption's integrity check, backupfile's check that a pass read what
// the verified one did), before the restore goes on: an error there fails
// the restore as any other, after it began changing the target.
func RestoreFrom(ctx context.Context, s *rethink.Session, open archive.Source, rep *archive.Report, plan *Plan, opts RestoreOptions) ([]TableResult, error) {
	if err := checkPlan(rep, plan); err != nil {
		return nil, err
	}
	if existing := plan.Existing(); len(existing) > 0 && !opts.Force {
		return nil, fmt.Errorf("refusing to replace %d existing tables (%s): pass --force to drop and restore them",
			len(existing), strings.Join(existing, ", "))
	}
	res, err := restoreTables(ctx, s, open, rep, plan, opts)
	if err != nil {
		// Past this point tables were dropped or created: say so.
		return nil, &PartialError{Err: err}
	}
	return res, nil
}

func restoreTables(ctx context.Context, s *rethink.Session, open archive.Source, rep *archive.Report, plan *Plan, opts RestoreOptions) ([]TableResult, error) {
	prog := opts.Progress
	if prog == nil {
		prog = noProgress{}
	}
	for _, db := range plan.CreateDBs {
		if err := s.DBCreate(ctx, db); err != nil {
			return nil, err
		}
	}
	byDir := map[string]*TablePlan{}
	for i := range plan.Tables {
		t := &plan.Tables[i]
		ref := rethink.TableRef{DB: t.DB, Table: t.Name}
		if t.Exists {
			if err := s.TableDrop(ctx, ref); err != nil {
				return nil, err
			}
		}
		var settings *rethink.TableSettings
		if c := t.Create; c != nil {
			settings = &rethink.TableSettings{Shards: c.Shards, Replicas: c.Replicas, WriteAcks: c.WriteAcks, Durability: c.Durability}
		}
		if err := s.TableCreate(ctx, ref, t.PrimaryKey, settings); err != nil {
			return nil, err
		}
		byDir[t.Dir] = t
	}
	err := inPass(open, func(r io.Reader) error {
		return load(ctx, s, archive.NewReader(r, rep.VersionDir), byDir, opts, prog)
	})
	if err != nil {
		return nil, err
	}
	var results []TableResult
	for _, t := range plan.Tables {
		ref := rethink.TableRef{DB: t.DB, Table: t.Name}
		if err := s.Sync(ctx, ref); err != nil {
			return nil, err
		}
		for _, ix := range t.Indexes {
			if err := s.IndexCreate(ctx, ref, ix.Name, ix.Function); err != nil {
				return nil, err
			}
		}
	}
	// RethinkDB builds indexes in the background: every table's build is
	// under way before the first wait.
	for _, t := range plan.Tables {
		ref := rethink.TableRef{DB: t.DB, Table: t.Name}
		if len(t.Indexes) > 0 {
			if _, err := s.IndexWait(ctx, ref); err != nil {
				return nil, err
			}
		}
		if t.HasWriteHook() {
			fn, err := hookFunction(t.WriteHook)
			if err != nil {
				return nil, fmt.Errorf("write hook of %s: %w", ref, err)
			}
			if err := s.SetWriteHook(ctx, ref, fn); err != nil {
				return nil, err
			}
		}
		if err := checkBuilt(ctx, s, ref, &t); err != nil {
			return nil, err
		}
		n, err := s.Count(ctx, ref)
		if err != nil {
			return nil, err
		}
		if n != t.Rows {
			return nil, fmt.Errorf("restored %s holds %d rows, the archive %d", ref, n, t.Rows)
		}
		results = append(results, TableResult{Table: ref.String(), Rows: n})
	}
	// Counts can match where rows differ: every key of the archive must be
	// there too, before anything is called restored.
	if err := checkKeys(ctx, s, open, rep, byDir, opts); err != nil {
		return nil, err
	}
	for _, r := range results {
		prog.Step("restored %s: %d rows, every primary key present", r.Table, r.Rows)
	}
	return results, nil
}

// checkBuilt reads back what the restore made of a table's definition:
// every secondary index there and ready, no other, and the write hook the
// backup holds (its function, byte for byte), or none.
func checkBuilt(ctx context.Context, s *rethink.Session, ref rethink.TableRef, t *TablePlan) error {
	info, err := s.Describe(ctx, ref)
	if err != nil {
		return err
	}
	ready := map[string]bool{}
	for _, ix := range info.Indexes {
		ready[ix.Index] = ix.Ready
	}
	for _, ix := range t.Indexes {
		r, ok := ready[ix.Name]
		switch {
		case !ok:
			return fmt.Errorf("restored %s has no index %q after its creation", ref, ix.Name)
		case !r:
			return fmt.Errorf("restored %s: index %q is not ready after the wait", ref, ix.Name)
		}
		delete(ready, ix.Name)
	}
	for name := range ready {
		return fmt.Errorf("restored %s has an index %q the backup does not hold", ref, name)
	}
	got := info.WriteHook
	if !t.HasWriteHook() {
		if len(got) > 0 && string(got) != "null" {
			return fmt.Errorf("restored %s has a write hook the backup does not hold", ref)
		}
		return nil
	}
	want, err := hookFunction(t.WriteHook)
	if err != nil {
		return fmt.Errorf("write hook of %s: %w", ref, err)
	}
	have, err := hookFunction(got)
	wantBytes, wok := archive.BinaryBytes(want)
	haveBytes, hok := archive.BinaryBytes(have)
	if err != nil || !wok || !hok || !bytes.Equal(haveBytes, wantBytes) {
		return fmt.Errorf("restored %s: its write hook is not the backup's", ref)
	}
	return nil
}

// keyBatch is how many primary keys one getAll asks for: a few hundred
// KiB of query at most, as keys are at most 127 bytes.
const keyBatch = 1000

// checkKeys reads the archive again and asks the server for every
// document's primary key, keyBatch keys to a query, on several
// connections: a restore that lost or replaced a row fails. Memory holds a
// batch of keys per connection, whatever the size of the tables.
func checkKeys(ctx context.Context, s *rethink.Session, open archive.Source, rep *archive.Report, tables map[string]*TablePlan, opts RestoreOptions) error {
	key := func(t *TablePlan, doc []byte) ([]byte, error) {
		k, ok := archive.PrimaryKeyJSON(doc, t.PrimaryKey)
		if !ok {
			return nil, fmt.Errorf("a document of %s.%s has no primary key %q", t.DB, t.Name, t.PrimaryKey)
		}
		return bytes.Clone(k), nil
	}
	full := func(b *loadBatch, _ []byte) bool { return len(b.docs) >= keyBatch }
	return inPass(open, func(r io.Reader) error {
		return inBatches(ctx, archive.NewReader(r, rep.VersionDir), tables, opts.Writers, key, full, func(ctx context.Context, b loadBatch) error {
			return checkBatch(ctx, s, b.ref, b.docs)
		})
	})
}

// inPass reads one pass of open with read, then the rest of it (past the
// tar's end), for the checks a stream makes at its end: read's error
// first, else the stream's.
func inPass(open archive.Source, read func(io.Reader) error) error {
	rc, err := open()
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := read(rc); err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, rc)
	return err
}

// checkBatch fails unless the table holds every key; it then names one
// that is missing.
func checkBatch(ctx context.Context, s *rethink.Session, ref rethink.TableRef, keys [][]byte) error {
	n, err := s.CountKeys(ctx, ref, keys)
	if err != nil || n == int64(len(keys)) {
		return err
	}
	for _, k := range keys {
		if one, err := s.CountKeys(ctx, ref, [][]byte{k}); err != nil || one == 0 {
			if err != nil {
				return err
			}
			return fmt.Errorf("restored %s lacks the document with primary key %s that the archive holds: the table's rows are not the archive's", ref, shortKey(k))
		}
	}
	return fmt.Errorf("restored %s holds %d of %d primary keys of a batch of the archive: the table's rows are not the archive's", ref, n, len(keys))
}

func shortKey(k []byte) string {
	if len(k) > 80 {
		return string(k[:80]) + "…"
	}
	return string(k)
}

// load streams the archive's documents into the tables, in batches spread
// over several writers.
func load(ctx context.Context, s *rethink.Session, rd *archive.Reader, tables map[string]*TablePlan, opts RestoreOptions, prog Progress) error {
	batchRows := opts.BatchRows
	if batchRows <= 0 {
		batchRows = 500
	}
	batchBytes := int64(opts.BatchBytes)
	if batchBytes <= 0 {
		batchBytes = 4 << 20
	}
	counter, _ := prog.(Counter)
	doc := func(_ *TablePlan, doc []byte) ([]byte, error) { return doc, nil }
	full := func(b *loadBatch, next []byte) bool {
		return len(b.docs) >= batchRows || b.bytes+int64(len(next)) > batchBytes
	}
	return inBatches(ctx, rd, tables, opts.Writers, doc, full, func(ctx context.Context, b loadBatch) error {
		if _, err := s.Insert(ctx, b.ref, b.docs); err != nil {
			return err
		}
		if counter != nil {
			counter.Add(int64(len(b.docs)), b.bytes)
		}
		return nil
	})
}

// loadBatch is one table's documents (or their keys) that one query writes (or looks up).
type loadBatch struct {
	ref   rethink.TableRef
	docs  [][]byte
	bytes int64
}

// inBatches reads the archive's documents in order, takes item of each, and
// cuts them into batches of one table each (full says whether a batch that
// holds something is full before next), which workers goroutines hand to
// do. The first error stops the reading and the others; memory holds a few
// batches, whatever the size of the tables.
func inBatches(ctx context.Context, rd *archive.Reader, tables map[string]*TablePlan, workers int,
	item func(t *TablePlan, doc []byte) ([]byte, error), full func(b *loadBatch, next []byte) bool,
	do func(ctx context.Context, b loadBatch) error) error {
	workers = max(workers, 1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan loadBatch, workers)
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	fail := func(err error) { once.Do(func() { firstErr = err; cancel() }) }
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				if ctx.Err() != nil {
					continue
				}
				if err := do(ctx, b); err != nil {
					fail(err)
				}
			}
		}()
	}
	send := func(b loadBatch) bool {
		select {
		case work <- b:
			return true
		case <-ctx.Done():
			return false
		}
	}
	var cur loadBatch
	for ctx.Err() == nil {
		dir, doc, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fail(err)
			break
		}
		t, ok := tables[dir]
		if !ok {
			fail(fmt.Errorf("archive holds documents of %q, which the plan does not know", dir))
			break
		}
		it, err := item(t, doc)
		if err != nil {
			fail(err)
			break
		}
		ref := rethink.TableRef{DB: t.DB, Table: t.Name}
		if len(cur.docs) > 0 && (ref != cur.ref || full(&cur, it)) {
			if !send(cur) {
				break
			}
			cur = loadBatch{}
		}
		cur.ref = ref
		cur.docs = append(cur.docs, it)
		cur.bytes += int64(len(it))
	}
	if len(cur.docs) > 0 && ctx.Err() == nil {
		send(cur)
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}
