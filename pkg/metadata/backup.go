// Package metadata moves DTR's metadata between RethinkDB and a backup
// archive: Backup streams every table into an archive, Restore loads a
// verified archive back.
package metadata

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"github.com/docker-dtr/docker-dtr/pkg/human"
	"github.com/docker-dtr/docker-dtr/pkg/rethink"
)

// Progress hears about long work; the CLI prints it on stderr.
type Progress interface {
	Step(format string, args ...any)
}

type noProgress struct{}

func (noProgress) Step(string, ...any) {}

// BackupOptions choose what goes into a backup.
type BackupOptions struct {
	Info archive.Info
	// Exclude leaves tables out, each with the reason recorded in the manifest.
	Exclude []archive.Exclusion
	// Only, when not nil, keeps just these tables (a restore's safety
	// backup holds what the restore replaces).
	Only     []rethink.TableRef
	Progress Progress
	// Parallel is how many tables are read at once (1 when 0), each on a
	// connection of its own: the session's pool needs that many.
	Parallel int
	// QueueBytes bounds each table's documents read ahead of the writer
	// (DefaultQueueBytes when 0).
	QueueBytes int
	// AllowOutdated reads the tables that are not ready for reads (their
	// majority is lost) from the server's own replica, with RethinkDB's
	// read_mode "outdated", and records them in the manifest; without it
	// such tables fail the backup with a *NotReadyError.
	AllowOutdated bool
	// DocStream writes the document stream (archive.StreamWriter) instead
	// of the archive: a dump next to the database, which the plugin
	// replays into the archive (archive.Replay). Backup's manifest is
	// then nil.
	DocStream bool
}

// tableWriter is what a dump writes into: an archive, or a document
// stream.
type tableWriter interface {
	BeginTable(archive.Table) error
	WriteDocument([]byte) error
	Finish([]archive.Exclusion, time.Time) (*archive.Manifest, error)
	Abort()
}

// NotReadyError is a backup refused because tables cannot be read
// up to date: the server cannot reach a majority of their replicas.
type NotReadyError struct {
	Server string
	// Tables are the tables not ready for reads, as db.table, and
	// Unreachable the servers of their replicas the server cannot reach.
	Tables      []string
	Unreachable []string
	// NoReplica are the tables this server cannot read even outdated:
	// it holds no replica of them that it can read.
	NoReplica []string
	// Allowed says --allow-outdated was given (NoReplica is the cause).
	Allowed bool
}

func (e *NotReadyError) Error() string {
	if e.Allowed {
		return fmt.Sprintf("%s cannot be read even outdated on RethinkDB server %s: it holds no readable replica of %s; back up from another replica (--replica-id)",
			human.List(e.NoReplica, 4), e.Server, map[bool]string{true: "it", false: "them"}[len(e.NoReplica) == 1])
	}
	why := "a majority of their replicas is not connected"
	if len(e.Unreachable) > 0 {
		why += " (" + strings.Join(e.Unreachable, ", ") + " unreachable)"
	}
	return fmt.Sprintf("%s %s not ready for reads on RethinkDB server %s (%s): %s; --allow-outdated backs up what this server holds (read_mode outdated: the last writes the lost replicas took may be missing), and docker dtr repair reverts the cluster to it",
		human.Plural(len(e.Tables), "table"), map[bool]string{true: "is", false: "are"}[len(e.Tables) == 1], e.Server, human.List(e.Tables, 4), why)
}

// readModes checks that every table of refs can be read, and says which
// are read outdated (opts.AllowOutdated): those not ready for up-to-date
// reads. Tables are read up to date wherever they can be.
func readModes(ctx context.Context, s *rethink.Session, refs []rethink.TableRef, opts BackupOptions) (map[rethink.TableRef]string, *archive.Outdated, error) {
	ready, err := s.Readiness(ctx)
	if err != nil {
		return nil, nil, err
	}
	nr := &NotReadyError{Allowed: opts.AllowOutdated}
	modes := map[rethink.TableRef]string{}
	for _, ref := range refs {
		rd, ok := ready[ref]
		if !ok || rd.ForReads {
			continue
		}
		nr.Tables = append(nr.Tables, ref.String())
		for _, srv := range rd.Unreachable {
			if !slices.Contains(nr.Unreachable, srv) {
				nr.Unreachable = append(nr.Unreachable, srv)
			}
		}
		if !rd.ForOutdatedReads {
			nr.NoReplica = append(nr.NoReplica, ref.String())
		}
		modes[ref] = rethink.ReadOutdated
	}
	if len(nr.Tables) == 0 {
		return modes, nil, nil
	}
	if nr.Server, err = s.ServerName(); err != nil {
		return nil, nil, err
	}
	sort.Strings(nr.Unreachable)
	if !opts.AllowOutdated || len(nr.NoReplica) > 0 {
		return nil, nil, nr
	}
	return modes, &archive.Outdated{Server: nr.Server, Tables: nr.Tables}, nil
}

// Backup writes an archive of every table except the excluded ones to w.
// Memory is bounded by Parallel × QueueBytes plus a server batch per
// reader, whatever the size of the tables.
func Backup(ctx context.Context, s *rethink.Session, w io.Writer, opts BackupOptions) (*archive.Manifest, error) {
	prog := opts.Progress
	if prog == nil {
		prog = noProgress{}
	}
	if opts.Info.Started.IsZero() {
		opts.Info.Started = time.Now()
	}
	refs, err := s.Tables(ctx)
	if err != nil {
		return nil, err
	}
	selected := opts.selected(refs)
	modes, outdated, err := readModes(ctx, s, selected, opts)
	if err != nil {
		return nil, err
	}
	opts.Info.Outdated = outdated
	if outdated != nil {
		prog.Step("reading %s outdated from RethinkDB server %s (read_mode outdated: their majority is lost): %s", human.Plural(len(outdated.Tables), "table"), outdated.Server, human.List(outdated.Tables, 4))
	}
	var tables []archive.Table
	var kept []rethink.TableRef
	for _, ref := range selected {
		info, err := s.Describe(ctx, ref)
		if err != nil {
			return nil, err
		}
		t := archive.Table{DB: ref.DB, Name: ref.Table, PrimaryKey: info.PrimaryKey, WriteHook: info.WriteHook, Indexes: []archive.Index{}}
		if info.Shards > 0 && info.Replicas > 0 {
			t.Settings = &archive.TableSettings{Shards: info.Shards, Replicas: info.Replicas, WriteAcks: info.WriteAcks, Durability: info.Durability}
		}
		for _, ix := range info.Indexes {
			t.Indexes = append(t.Indexes, archive.Index{Name: ix.Index, Function: ix.Function, Multi: ix.Multi, Geo: ix.Geo, Query: ix.Query})
		}
		tables = append(tables, t)
		kept = append(kept, ref)
	}
	archive.AssignDirs(tables)
	var aw tableWriter
	if opts.DocStream {
		aw, err = archive.NewStreamWriter(w, opts.Info, archive.Definitions{Tables: tables})
	} else {
		aw, err = archive.NewWriter(w, opts.Info, archive.Definitions{Tables: tables})
	}
	if err != nil {
		return nil, err
	}
	defer aw.Abort()
	if err := dump(ctx, s, aw, tables, kept, modes, opts, prog); err != nil {
		return nil, err
	}
	return aw.Finish(append(opts.Exclude, notDTR(refs, opts)...), time.Now())
}

// NotDTRReason is why a table of another database than DTR's is left out.
const NotDTRReason = "not in one of DTR's databases"

// notDTR lists the tables outside DTR's databases, which a backup leaves
// out: a restore never creates a database that is not DTR's.
func notDTR(refs []rethink.TableRef, opts BackupOptions) []archive.Exclusion {
	var out []archive.Exclusion
	for _, ref := range refs {
		excluded := slices.ContainsFunc(opts.Exclude, func(x archive.Exclusion) bool { return x.DB == ref.DB && x.Table == ref.Table })
		if !archive.IsDTRDatabase(ref.DB) && !excluded && (opts.Only == nil || slices.Contains(opts.Only, ref)) {
			out = append(out, archive.Exclusion{DB: ref.DB, Table: ref.Table, Reason: NotDTRReason})
		}
	}
	return out
}

// selected are the tables of refs that a backup with these options holds.
func (opts BackupOptions) selected(refs []rethink.TableRef) []rethink.TableRef {
	excluded := map[rethink.TableRef]bool{}
	for _, x := range opts.Exclude {
		excluded[rethink.TableRef{DB: x.DB, Table: x.Table}] = true
	}
	var only map[rethink.TableRef]bool
	if opts.Only != nil {
		only = map[rethink.TableRef]bool{}
		for _, ref := range opts.Only {
			only[ref] = true
		}
	}
	var out []rethink.TableRef
	for _, ref := range refs {
		if !excluded[ref] && (only == nil || only[ref]) && archive.IsDTRDatabase(ref.DB) {
			out = append(out, ref)
		}
	}
	return out
}

// EstimateRows is the number of rows of the tables Backup would dump with
// these options, as RethinkDB estimates them, so that a progress phase has
// a total and an ETA. Estimates, not count(): count() scans every table,
// which on millions of rows would cost the backup a second read before it
// starts. The total is only for a meter: on an error it is unknown (0),
// and the backup itself reports what is wrong.
func EstimateRows(ctx context.Context, s *rethink.Session, opts BackupOptions) int64 {
	if s == nil {
		return 0
	}
	refs, err := s.Tables(ctx)
	if err != nil {
		return 0
	}
	var total int64
	for _, ref := range opts.selected(refs) {
		n, err := s.Estimate(ctx, ref)
		if err != nil {
			return 0
		}
		total += n
	}
	return total
}

// Counter hears how many documents and bytes went by; a Progress that also
// implements it is told after every batch (a progress bar's rate and ETA).
type Counter interface {
	Add(rows, bytes int64)
}

// Batches of documents handed from a table's reader to the archive writer.
const (
	batchDocs  = 512
	batchBytes = 256 << 10
)

// DefaultParallel reads as many tables at once as there are CPUs, up to 4:
// past that the single archive writer is the limit.
func DefaultParallel() int {
	return min(runtime.NumCPU(), 4)
}

// DefaultQueueBytes bounds the documents read ahead for each table.
const DefaultQueueBytes = 4 << 20

type docBatch struct {
	docs  [][]byte
	bytes int64
}

// dump reads up to opts.Parallel tables at once, each on its own connection
// of the session's pool, while one writer takes them in the order of the
// definitions (the archive's order, which verify checks). A table read ahead
// waits in a bounded queue, so memory stays at Parallel × QueueBytes
// whatever the table sizes; reading overlaps with hashing and writing even
// with Parallel 1.
func dump(ctx context.Context, s *rethink.Session, aw tableWriter, tables []archive.Table, kept []rethink.TableRef, modes map[rethink.TableRef]string, opts BackupOptions, prog Progress) error {
	parallel := max(opts.Parallel, 1)
	queueBytes := opts.QueueBytes
	if queueBytes <= 0 {
		queueBytes = DefaultQueueBytes
	}
	depth := max(queueBytes/batchBytes, 2)
	counter, _ := prog.(Counter)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	feeds := make([]chan docBatch, len(kept))
	errs := make([]error, len(kept))
	for i := range feeds {
		feeds[i] = make(chan docBatch, depth)
	}
	// slots holds one token per table being read or waiting to be written.
	slots := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	defer func() {
		// No reader outlives Backup, which may close the session next.
		cancel()
		wg.Wait()
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range kept {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer close(feeds[i])
				errs[i] = readTable(ctx, s, kept[i], modes[kept[i]], feeds[i])
			}()
		}
	}()

	for i, ref := range kept {
		if err := aw.BeginTable(tables[i]); err != nil {
			return err
		}
		var rows int64
		for done := false; !done; {
			select {
			case b, ok := <-feeds[i]:
				if !ok {
					done = true
					break
				}
				for _, doc := range b.docs {
					if err := aw.WriteDocument(doc); err != nil {
						return err
					}
				}
				rows += int64(len(b.docs))
				if counter != nil {
					counter.Add(int64(len(b.docs)), b.bytes)
				}
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		// The feed is closed: its reader has stored its error.
		if errs[i] != nil {
			return errs[i]
		}
		<-slots
		prog.Step("dumped %s: %d rows", ref, rows)
	}
	return nil
}

// readTable scans one table into feed, in batches.
func readTable(ctx context.Context, s *rethink.Session, ref rethink.TableRef, mode string, feed chan<- docBatch) error {
	var b docBatch
	send := func() error {
		select {
		case feed <- b:
			b = docBatch{docs: make([][]byte, 0, batchDocs)}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	b.docs = make([][]byte, 0, batchDocs)
	err := s.ScanMode(ctx, ref, mode, func(doc []byte) error {
		// The driver decodes each server batch into fresh slices: doc
		// stays valid after the next call, so it is kept without a copy.
		b.docs = append(b.docs, doc)
		b.bytes += int64(len(doc))
		if len(b.docs) >= batchDocs || b.bytes >= batchBytes {
			return send()
		}
		return nil
	})
	if err == nil && len(b.docs) > 0 {
		err = send()
	}
	return err
}

// The large tables in the field, which operators leave out of frequent
// backups (--skip-scan-data, --skip-events).
var (
	ScanTables  = []string{"dtr2.scanned_images", "dtr2.scanned_layers"}
	EventTables = []string{"dtr2.events"}
)

// Exclusions are the tables a backup leaves out, each once with the first
// reason given: those named (--exclude, as db.table), then ScanTables when
// skipScanData, then EventTables when skipEvents.
func Exclusions(names []string, skipScanData, skipEvents bool) ([]archive.Exclusion, error) {
	var out []archive.Exclusion
	seen := map[string]bool{}
	add := func(name, reason string) error {
		if seen[name] {
			return nil
		}
		seen[name] = true
		x, err := parseExclusion(name, reason)
		if err != nil {
			return err
		}
		out = append(out, x)
		return nil
	}
	for _, name := range names {
		if err := add(name, "--exclude"); err != nil {
			return nil, err
		}
	}
	for _, name := range ScanTables {
		if skipScanData {
			_ = add(name, "--skip-scan-data")
		}
	}
	for _, name := range EventTables {
		if skipEvents {
			_ = add(name, "--skip-events")
		}
	}
	return out, nil
}

// parseExclusion parses "db.table" as given to --exclude.
func parseExclusion(s, reason string) (archive.Exclusion, error) {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			db, table := s[:i], s[i+1:]
			if archive.ValidName(db) && archive.ValidName(table) {
				return archive.Exclusion{DB: db, Table: table, Reason: reason}, nil
			}
			break
		}
	}
	return archive.Exclusion{}, fmt.Errorf("--exclude %q: expected db.table, such as dtr2.events", s)
}
