package rethink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	p "gopkg.in/rethinkdb/rethinkdb-go.v6/ql2"
)

// Writes that must carry values exactly as saved (pseudo-types, function
// binaries) are built as raw JSON terms: the driver would otherwise decode
// and re-encode them.

func quote(s string) []byte { b, _ := json.Marshal(s); return b }

func tableTerm(t TableRef) []byte {
	return fmt.Appendf(nil, "[%d,[[%d,[%s]],%s]]", p.Term_TABLE, p.Term_DB, quote(t.DB), quote(t.Table))
}

// DBCreate creates a database.
func (s *Session) DBCreate(ctx context.Context, db string) error {
	var res map[string]any
	if err := s.one(ctx, r.DBCreate(db), &res); err != nil {
		return fmt.Errorf("creating database %s: %w", db, err)
	}
	return nil
}

// DBDrop drops a database and its tables.
func (s *Session) DBDrop(ctx context.Context, db string) error {
	var res map[string]any
	if err := s.one(ctx, r.DBDrop(db), &res); err != nil {
		return fmt.Errorf("dropping database %s: %w", db, err)
	}
	return nil
}

// dbVisibleWithin is how long TableCreate waits for a database to be seen.
const dbVisibleWithin = 10 * time.Second

// TableCreate creates a table with its primary key. RethinkDB serves each
// connection from one of its threads, and each thread learns of a new
// database from its own copy of the cluster's metadata, a moment after
// db_create has returned on another connection: "Database `x` does not
// exist" then means not yet. It is asked again until dbVisibleWithin has
// passed, so a missing database still fails, only later.
func (s *Session) TableCreate(ctx context.Context, t TableRef, primaryKey string, settings *TableSettings) error {
	opts := r.TableCreateOpts{PrimaryKey: primaryKey}
	if settings != nil {
		opts.Shards, opts.Replicas, opts.Durability = settings.Shards, settings.Replicas, settings.Durability
	}
	deadline := time.Now().Add(dbVisibleWithin)
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, 500*time.Millisecond) {
		var res map[string]any
		err := s.one(ctx, r.DB(t.DB).TableCreate(t.Table, opts), &res)
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "Database `"+t.DB+"` does not exist") || time.Now().After(deadline) {
			return fmt.Errorf("creating table %s: %w", t, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("creating table %s: %w", t, errors.Join(err, ctx.Err()))
		case <-time.After(wait):
		}
	}
	if settings == nil {
		return nil
	}
	// write_acks is not an option of table_create: it is set in the
	// table's configuration, before any row is written.
	tbl := r.DB(t.DB).Table(t.Table)
	if settings.WriteAcks != "" && settings.WriteAcks != "majority" {
		var res map[string]any
		if err := s.one(ctx, tbl.Config().Update(map[string]any{"write_acks": settings.WriteAcks}), &res); err != nil {
			return fmt.Errorf("setting the write acks of %s: %w", t, err)
		}
	}
	// Replicas on other servers come up a little after the create: the
	// load waits until the table takes writes.
	var res map[string]any
	if err := s.one(ctx, tbl.Wait(r.WaitOpts{WaitFor: "ready_for_writes"}), &res); err != nil {
		return fmt.Errorf("waiting for %s to take writes: %w", t, err)
	}
	return nil
}

// TableDrop drops a table.
func (s *Session) TableDrop(ctx context.Context, t TableRef) error {
	var res map[string]any
	if err := s.one(ctx, r.DB(t.DB).TableDrop(t.Table), &res); err != nil {
		return fmt.Errorf("dropping table %s: %w", t, err)
	}
	return nil
}

// WriteResult is the part of a write's result a restore checks.
type WriteResult struct {
	Inserted   int64  `json:"inserted"`
	Errors     int64  `json:"errors"`
	FirstError string `json:"first_error"`
}

// Insert writes raw JSON documents (pseudo-types and all) with soft
// durability; a duplicate key is an error, never a silent replace.
func (s *Session) Insert(ctx context.Context, t TableRef, docs [][]byte) (int64, error) {
	size := 64
	for _, d := range docs {
		size += len(d) + len(d)/8 + 8
	}
	term := make([]byte, 0, size)
	term = fmt.Appendf(term, "[%d,[%s,[%d,[", p.Term_INSERT, tableTerm(t), p.Term_MAKE_ARRAY)
	for i, d := range docs {
		if i > 0 {
			term = append(term, ',')
		}
		term = AppendTerm(term, d)
	}
	term = append(term, `]]],{"durability":"soft","conflict":"error"}]`...)
	var res WriteResult
	if err := s.exec(ctx, term, &res); err != nil {
		return 0, fmt.Errorf("inserting into %s: %w", t, err)
	}
	if res.Errors > 0 {
		return res.Inserted, fmt.Errorf("inserting into %s: %d documents refused: %s", t, res.Errors, oneLine(res.FirstError))
	}
	return res.Inserted, nil
}

// Sync flushes a table's soft-durability writes to disk.
func (s *Session) Sync(ctx context.Context, t TableRef) error {
	var res map[string]any
	if err := s.one(ctx, r.DB(t.DB).Table(t.Table).Sync(), &res); err != nil {
		return fmt.Errorf("syncing %s: %w", t, err)
	}
	return nil
}

// IndexCreate recreates a secondary index from the function binary that
// index_status() returned; the binary carries the multi and geo flags.
func (s *Session) IndexCreate(ctx context.Context, t TableRef, name string, function json.RawMessage) error {
	term := fmt.Appendf(nil, "[%d,[%s,%s,%s]]", p.Term_INDEX_CREATE, tableTerm(t), quote(name), function)
	var res map[string]any
	if err := s.exec(ctx, term, &res); err != nil {
		return fmt.Errorf("creating index %s on %s: %w", name, t, err)
	}
	return nil
}

// IndexWait waits until every secondary index of a table is ready.
func (s *Session) IndexWait(ctx context.Context, t TableRef) ([]IndexStatus, error) {
	var st []IndexStatus
	if err := s.one(ctx, r.DB(t.DB).Table(t.Table).IndexWait(), &st); err != nil {
		return nil, fmt.Errorf("waiting for the indexes of %s: %w", t, err)
	}
	return st, nil
}

// SetWriteHook restores a write hook from get_write_hook()'s function binary.
func (s *Session) SetWriteHook(ctx context.Context, t TableRef, function json.RawMessage) error {
	term := fmt.Appendf(nil, "[%d,[%s,%s]]", p.Term_SET_WRITE_HOOK, tableTerm(t), function)
	var res map[string]any
	if err := s.exec(ctx, term, &res); err != nil {
		if unknownTerm(err) {
			return fmt.Errorf("setting the write hook of %s: the server predates write hooks (RethinkDB 2.4): %w", t, err)
		}
		return fmt.Errorf("setting the write hook of %s: %w", t, err)
	}
	return nil
}

// AppendTerm appends a JSON document as a ReQL term: in the JSON protocol a
// bare array is a term, so every array value becomes MAKE_ARRAY [2,[…]].
// Objects, strings, numbers and pseudo-types pass through unchanged. doc
// must be valid JSON (restore verifies the archive first).
func AppendTerm(dst, doc []byte) []byte {
	open := "[" + strconv.Itoa(int(p.Term_MAKE_ARRAY)) + ",["
	inString, escaped := false, false
	start := 0
	for i, c := range doc {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '[':
			dst = append(dst, doc[start:i]...)
			dst = append(dst, open...)
			start = i + 1
		case ']':
			dst = append(dst, doc[start:i]...)
			dst = append(dst, "]]"...)
			start = i + 1
		}
	}
	return append(dst, doc[start:]...)
}

// oneLine folds the server's pretty-printed documents in an error onto one
// line: errors are one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
