// Package metadata moves DTR's metadata between RethinkDB and a backup
// archive: Backup streams every table into an archive, Restore loads a
// verified archive back.
package metadata

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/archive"
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
}

// Backup writes an archive of every table except the excluded ones to w.
// Nothing is buffered beyond one server batch and one document.
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
	excluded := map[rethink.TableRef]bool{}
	for _, x := range opts.Exclude {
		excluded[rethink.TableRef{DB: x.DB, Table: x.Table}] = true
	}
	if opts.Only != nil {
		only := map[rethink.TableRef]bool{}
		for _, ref := range opts.Only {
			only[ref] = true
		}
		for _, ref := range refs {
			if !only[ref] {
				excluded[ref] = true
			}
		}
	}
	var tables []archive.Table
	var kept []rethink.TableRef
	for _, ref := range refs {
		if excluded[ref] {
			continue
		}
		info, err := s.Describe(ctx, ref)
		if err != nil {
			return nil, err
		}
		t := archive.Table{DB: ref.DB, Name: ref.Table, PrimaryKey: info.PrimaryKey, WriteHook: info.WriteHook, Indexes: []archive.Index{}}
		for _, ix := range info.Indexes {
			t.Indexes = append(t.Indexes, archive.Index{Name: ix.Index, Function: ix.Function, Multi: ix.Multi, Geo: ix.Geo, Query: ix.Query})
		}
		tables = append(tables, t)
		kept = append(kept, ref)
	}
	archive.AssignDirs(tables)
	aw, err := archive.NewWriter(w, opts.Info, archive.Definitions{Tables: tables})
	if err != nil {
		return nil, err
	}
	defer aw.Abort()
	for i, ref := range kept {
		if err := aw.BeginTable(tables[i]); err != nil {
			return nil, err
		}
		var rows int64
		err := s.Scan(ctx, ref, func(doc []byte) error {
			rows++
			return aw.WriteDocument(doc)
		})
		if err != nil {
			return nil, err
		}
		prog.Step("dumped %s: %d rows", ref, rows)
	}
	return aw.Finish(opts.Exclude, time.Now())
}

// ParseExclusion parses "db.table" as given to --exclude.
func ParseExclusion(s, reason string) (archive.Exclusion, error) {
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
