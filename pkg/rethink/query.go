package rethink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
)

// rawOpts keep TIME and BINARY as pseudo-types in results.
func rawOpts(ctx context.Context) r.RunOpts {
	return r.RunOpts{TimeFormat: "raw", BinaryFormat: "raw", Context: ctx}
}

// all runs a term and returns every result as raw JSON.
func (s *Session) all(ctx context.Context, t r.Term) ([]json.RawMessage, error) {
	return s.allWith(rawOpts(ctx), t)
}

func (s *Session) allWith(opts r.RunOpts, t r.Term) ([]json.RawMessage, error) {
	cur, err := t.Run(s.s, opts)
	if err != nil {
		return nil, queryError(err)
	}
	defer cur.Close()
	var out []json.RawMessage
	for {
		b, ok := cur.NextResponse()
		if !ok {
			break
		}
		out = append(out, append(json.RawMessage(nil), b...))
	}
	if err := cur.Err(); err != nil {
		return nil, queryError(err)
	}
	return out, nil
}

// one runs a term that returns a single value and decodes it into v.
func (s *Session) one(ctx context.Context, t r.Term, v any) error {
	return s.oneWith(rawOpts(ctx), t, v)
}

func (s *Session) oneWith(opts r.RunOpts, t r.Term, v any) error {
	res, err := s.allWith(opts, t)
	if err != nil {
		return err
	}
	if len(res) != 1 {
		return fmt.Errorf("expected one result, got %d", len(res))
	}
	return json.Unmarshal(res[0], v)
}

// maxArrayLimit lifts RethinkDB's default limit of 100,000 array elements
// for restores: a stored document may hold a larger array, written with a
// raised limit, and must come back as it was.
const maxArrayLimit = 1 << 27

// exec runs a term built from raw JSON (see AppendTerm) for its side effect.
func (s *Session) exec(ctx context.Context, term []byte, v any) error {
	opts := rawOpts(ctx)
	opts.ArrayLimit = maxArrayLimit
	return s.oneWith(opts, r.RawQuery(term), v)
}

// QueryError is a driver error cut to its first line; the driver appends
// the whole query it ran.
type QueryError struct {
	msg string
	err error
}

func (e *QueryError) Error() string { return "rethinkdb: " + e.msg }
func (e *QueryError) Unwrap() error { return e.err }

func queryError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "rethinkdb: ")
	msg = strings.TrimPrefix(msg, "gorethink: ")
	msg, _, _ = strings.Cut(msg, " in:\n")
	return &QueryError{msg: msg, err: err}
}

// unknownTerm reports a server too old for a term (RethinkDB 2.3 has no
// write hooks, and older DTR releases run it).
func unknownTerm(err error) bool {
	var ce r.RQLCompileError
	return errors.As(err, &ce) && strings.Contains(err.Error(), "Unrecognized TermType")
}

// TableRef names a table.
type TableRef struct{ DB, Table string }

func (t TableRef) String() string { return t.DB + "." + t.Table }

// SystemDB is RethinkDB's own database, never backed up or restored.
const SystemDB = "rethinkdb"

// Tables lists every table of every database except the system one, sorted.
func (s *Session) Tables(ctx context.Context) ([]TableRef, error) {
	var dbs []string
	if err := s.one(ctx, r.DBList(), &dbs); err != nil {
		return nil, fmt.Errorf("listing databases: %w", err)
	}
	sort.Strings(dbs)
	var out []TableRef
	for _, db := range dbs {
		if db == SystemDB {
			continue
		}
		tables, err := s.TableList(ctx, db)
		if err != nil {
			return nil, err
		}
		for _, t := range tables {
			out = append(out, TableRef{DB: db, Table: t})
		}
	}
	return out, nil
}

// DBList lists the databases, the system one included.
func (s *Session) DBList(ctx context.Context) ([]string, error) {
	var dbs []string
	if err := s.one(ctx, r.DBList(), &dbs); err != nil {
		return nil, fmt.Errorf("listing databases: %w", err)
	}
	return dbs, nil
}

// TableList lists the tables of a database, sorted.
func (s *Session) TableList(ctx context.Context, db string) ([]string, error) {
	var tables []string
	if err := s.one(ctx, r.DB(db).TableList(), &tables); err != nil {
		return nil, fmt.Errorf("listing tables of %s: %w", db, err)
	}
	sort.Strings(tables)
	return tables, nil
}

// IndexStatus is one entry of index_status(), function kept raw.
type IndexStatus struct {
	Index    string          `json:"index"`
	Function json.RawMessage `json:"function"`
	Multi    bool            `json:"multi"`
	Geo      bool            `json:"geo"`
	Outdated bool            `json:"outdated"`
	Ready    bool            `json:"ready"`
	Query    string          `json:"query"`
}

// TableSettings are a table's replication and write settings
// (table_config): Replicas per shard (the largest, should shards differ),
// WriteAcks "majority" or "single", Durability "hard" or "soft".
type TableSettings struct {
	Shards, Replicas      int
	WriteAcks, Durability string
}

// TableInfo is what recreating a table needs.
type TableInfo struct {
	PrimaryKey string
	TableSettings
	Indexes []IndexStatus
	// WriteHook is get_write_hook() as returned: null or {function, query}.
	WriteHook json.RawMessage
}

// Describe reads a table's primary key, secondary indexes and write hook.
func (s *Session) Describe(ctx context.Context, t TableRef) (TableInfo, error) {
	tbl := r.DB(t.DB).Table(t.Table)
	var cfg struct {
		PrimaryKey string `json:"primary_key"`
		Shards     []struct {
			Replicas []string `json:"replicas"`
		} `json:"shards"`
		WriteAcks  json.RawMessage `json:"write_acks"`
		Durability string          `json:"durability"`
	}
	if err := s.one(ctx, tbl.Config(), &cfg); err != nil {
		return TableInfo{}, fmt.Errorf("reading the configuration of %s: %w", t, err)
	}
	info := TableInfo{PrimaryKey: cfg.PrimaryKey, TableSettings: TableSettings{Shards: len(cfg.Shards), Durability: cfg.Durability}}
	for _, sh := range cfg.Shards {
		info.Replicas = max(info.Replicas, len(sh.Replicas))
	}
	// write_acks is a string ("majority", "single"); anything else is
	// kept as the default.
	if err := json.Unmarshal(cfg.WriteAcks, &info.WriteAcks); err != nil || (info.WriteAcks != "single" && info.WriteAcks != "majority") {
		info.WriteAcks = "majority"
	}
	if err := s.one(ctx, tbl.IndexStatus(), &info.Indexes); err != nil {
		return TableInfo{}, fmt.Errorf("reading the indexes of %s: %w", t, err)
	}
	sort.Slice(info.Indexes, func(i, j int) bool { return info.Indexes[i].Index < info.Indexes[j].Index })
	hook, err := s.all(ctx, tbl.GetWriteHook())
	if err != nil && !unknownTerm(err) {
		return TableInfo{}, fmt.Errorf("reading the write hook of %s: %w", t, err)
	}
	info.WriteHook = json.RawMessage("null")
	if err == nil && len(hook) == 1 {
		info.WriteHook = hook[0]
	}
	return info, nil
}

// Scan streams every document of a table, as raw JSON, to fn. fn may keep
// the slice: the driver decodes each server batch into fresh memory.
// Batches come as the server sends them, so memory holds one batch, never
// the table.
func (s *Session) Scan(ctx context.Context, t TableRef, fn func(doc []byte) error) error {
	return s.ScanMode(ctx, t, "", fn)
}

// ReadOutdated is the read mode that reads a table from the replica the
// server holds, where the table's majority is lost: what it holds may
// miss the last writes the others took.
const ReadOutdated = "outdated"

// ScanMode is Scan with RethinkDB's read_mode (mode; "" for its default,
// "single").
func (s *Session) ScanMode(ctx context.Context, t TableRef, mode string, fn func(doc []byte) error) error {
	opts := rawOpts(ctx)
	if mode != "" {
		opts.ReadMode = mode
	}
	// The driver asks for the next batch only once it has handed out the
	// last one, so each batch costs a round trip (through the tunnel, two
	// hops): large batches from the start make those few.
	opts.MaxBatchBytes = ScanBatchBytes
	opts.MaxBatchRows = ScanBatchRows
	opts.FirstBatchScaledownFactor = 1
	cur, err := r.DB(t.DB).Table(t.Table).Run(s.s, opts)
	if err != nil {
		return fmt.Errorf("reading %s: %w", t, queryError(err))
	}
	defer cur.Close()
	for {
		doc, ok := cur.NextResponse()
		if !ok {
			break
		}
		if err := fn(doc); err != nil {
			return err
		}
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("reading %s: %w", t, queryError(err))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return nil
}

// Batch limits of a Scan: RethinkDB's default of 1 MB, but no smaller first
// batch (the default quarters it). Larger batches measured no faster and
// cost their size twice in memory (the response, then its documents).
const (
	ScanBatchBytes = 1 << 20
	ScanBatchRows  = 100_000
)

// Estimate returns the number of documents in a table as the servers
// estimate it (the sum of table.info()'s doc_count_estimates, one per
// shard): immediate where Count scans the table.
func (s *Session) Estimate(ctx context.Context, t TableRef) (int64, error) {
	var info struct {
		Estimates []int64 `json:"doc_count_estimates"`
	}
	if err := s.one(ctx, r.DB(t.DB).Table(t.Table).Info(), &info); err != nil {
		return 0, fmt.Errorf("estimating the size of %s: %w", t, err)
	}
	var n int64
	for _, e := range info.Estimates {
		n += e
	}
	return n, nil
}

// Count returns the number of documents in a table.
func (s *Session) Count(ctx context.Context, t TableRef) (int64, error) {
	var n int64
	if err := s.one(ctx, r.DB(t.DB).Table(t.Table).Count(), &n); err != nil {
		return 0, fmt.Errorf("counting %s: %w", t, err)
	}
	return n, nil
}

// System reads every document of one of RethinkDB's system tables
// (rethinkdb.server_status, table_status, current_issues…) into v, a
// pointer to a slice. They answer on any server, with its own view of the
// cluster, even where the cluster has lost its majority.
func (s *Session) System(ctx context.Context, table string, v any) error {
	docs, err := s.all(ctx, r.DB(SystemDB).Table(table))
	if err != nil {
		return fmt.Errorf("reading rethinkdb.%s: %w", table, err)
	}
	list := make([]byte, 0, 2)
	list = append(list, '[')
	for i, d := range docs {
		if i > 0 {
			list = append(list, ',')
		}
		list = append(list, d...)
	}
	list = append(list, ']')
	if err := json.Unmarshal(list, v); err != nil {
		return fmt.Errorf("reading rethinkdb.%s: %w", table, err)
	}
	return nil
}

// ServerName is the name of the server the session is connected to.
func (s *Session) ServerName() (string, error) {
	res, err := s.s.Server()
	if err != nil {
		return "", fmt.Errorf("asking the server its name: %w", err)
	}
	return res.Name, nil
}

// Servers counts the servers of the cluster that this one sees connected.
func (s *Session) Servers(ctx context.Context) (int, error) {
	var n int
	if err := s.one(ctx, r.DB(SystemDB).Table("server_status").Count(), &n); err != nil {
		return 0, fmt.Errorf("counting the servers: %w", err)
	}
	return n, nil
}
