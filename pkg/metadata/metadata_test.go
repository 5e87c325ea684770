package metadata

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/backuptest"
	"github.com/docker-dtr/docker-dtr/internal/dtrtest"
	"github.com/docker-dtr/docker-dtr/internal/rethinkserver"
	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"github.com/docker-dtr/docker-dtr/pkg/rethink"
	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

type server struct {
	opts   rethink.Options
	driver *r.Session // for seeding and snapshots
}

// startTLS starts a real RethinkDB 2.4 that requires mutual TLS, like DTR's.
// Each test has a server of its own, and most run in parallel: the real
// server spends most of a table_create (about 0.3 s, a dozen per seed)
// waiting, not computing. Those that look at the whole process (its heap,
// its goroutines, its CPU affinity) do not.
func startTLS(t *testing.T) server {
	t.Helper()
	srv := rethinkserver.Start(t, rethinkserver.Options{TLS: true})
	return server{
		opts: rethink.Options{Addr: srv.Addr, CAFile: srv.Certs.CA, CertFile: srv.Certs.ClientCert, KeyFile: srv.Certs.ClientKey,
			ServerName: rethinkserver.ServerName, Connections: 5},
		driver: srv.Connect(t),
	}
}

// seedBulk adds dtr2.bulk: rows documents of about 1 KiB. The real server
// sends a cursor's documents in batches of about 1 MB (a Scan asks for no
// more), so a few thousand rows make a table whose dump continues its
// cursor several times.
func seedBulk(t *testing.T, driver *r.Session, rows int) {
	t.Helper()
	_, err := r.DB("dtr2").TableCreate("bulk").RunWrite(driver)
	assert.NilError(t, err)
	pad := strings.Repeat("b", 1000)
	for start := 0; start < rows; start += 2000 {
		batch := make([]any, 0, 2000)
		for i := start; i < min(start+2000, rows); i++ {
			batch = append(batch, map[string]any{"id": fmt.Sprintf("bulk-%06d", i), "n": i, "pad": pad})
		}
		res, err := r.DB("dtr2").Table("bulk").Insert(batch).RunWrite(driver)
		assert.NilError(t, err)
		assert.Equal(t, res.Inserted, len(batch))
	}
}

func connect(t *testing.T, o rethink.Options) *rethink.Session {
	t.Helper()
	s, err := rethink.Connect(context.Background(), o)
	assert.NilError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func backupToFile(t *testing.T, s *rethink.Session, exclude ...archive.Exclusion) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "backup-metadata.tar")
	f, err := os.Create(p)
	assert.NilError(t, err)
	defer f.Close()
	_, err = Backup(context.Background(), s, f, BackupOptions{
		Info:    archive.Info{Tool: "test", DTRVersion: "2.9.4", ReplicaID: "0123456789ab"},
		Exclude: exclude,
	})
	assert.NilError(t, err)
	return p
}

func verifyFile(t *testing.T, p string) (*os.File, *archive.Report) {
	t.Helper()
	f, err := os.Open(p)
	assert.NilError(t, err)
	t.Cleanup(func() { f.Close() })
	rep, err := archive.Verify(f)
	assert.NilError(t, err)
	assert.Assert(t, rep.OK(), "%v", rep.Problems)
	return f, rep
}

func restore(t *testing.T, s *rethink.Session, f *os.File, rep *archive.Report, force bool) ([]TableResult, *Plan, error) {
	t.Helper()
	plan, err := MakePlan(context.Background(), s, rep)
	assert.NilError(t, err)
	res, err := Restore(context.Background(), s, f, rep, plan, RestoreOptions{Force: force, Writers: 3, BatchRows: 7})
	return res, plan, err
}

func TestRoundTripKeepsDocumentsTypesIndexesAndHooks(t *testing.T) {
	t.Parallel()
	srv := startTLS(t)
	dtrtest.Seed(t, srv.driver)
	before := dtrtest.Snapshot(t, srv.driver)
	assert.Equal(t, len(before), len(dtrtest.Tables))

	s := connect(t, srv.opts)
	p := backupToFile(t, s)
	f, rep := verifyFile(t, p)
	assert.Assert(t, rep.Verified)
	assert.Equal(t, len(rep.Tables), len(dtrtest.Tables))

	dtrtest.DropAll(t, srv.driver)
	res, plan, err := restore(t, s, f, rep, false)
	assert.NilError(t, err)
	assert.Equal(t, len(plan.Existing()), 0)
	assert.DeepEqual(t, plan.CreateDBs, []string{"dtr2", "jobrunner", "notaryserver", "notarysigner"})
	assert.Equal(t, len(res), len(dtrtest.Tables))

	after := dtrtest.Snapshot(t, srv.driver)
	assert.DeepEqual(t, after, before)

	// Types came back as types, not strings.
	var tag struct {
		CreatedAt time.Time `rethinkdb:"created_at"`
		Signature []byte    `rethinkdb:"signature"`
	}
	assert.NilError(t, r.DB("dtr2").Table("tags").Get("repo-03:v1").ReadOne(&tag, srv.driver))
	assert.Equal(t, tag.CreatedAt.Year(), 2024)
	assert.DeepEqual(t, tag.Signature, []byte{0, 1, 2, 0xfe, 0xff, 3, 1})

	// The indexes answer queries.
	var byDigest []map[string]any
	assert.NilError(t, r.DB("dtr2").Table("tags").GetAllByIndex("digests", "sha256:"+zeros(61)+"3e9").ReadAll(&byDigest, srv.driver))
	assert.Equal(t, len(byDigest), 20, "multi index: every repository's v1 shares this digest")
	var byName []map[string]any
	assert.NilError(t, r.DB("dtr2").Table("repositories").GetAllByIndex("namespace_name", []any{"ops", "app1"}).ReadAll(&byName, srv.driver))
	assert.Equal(t, len(byName), 1, "compound index")
}

func zeros(n int) string { return string(bytes.Repeat([]byte("0"), n)) }

func TestRestoreRefusesExistingTablesWithoutForce(t *testing.T) {
	t.Parallel()
	srv := startTLS(t)
	dtrtest.Seed(t, srv.driver)
	s := connect(t, srv.opts)
	f, rep := verifyFile(t, backupToFile(t, s))
	before := dtrtest.Snapshot(t, srv.driver)

	// change a row, then refuse without --force: nothing may change
	_, err := r.DB("dtr2").Table("properties").Insert(map[string]any{"id": "ha.json", "value": "changed"}, r.InsertOpts{Conflict: "replace"}).RunWrite(srv.driver)
	assert.NilError(t, err)
	changed := dtrtest.Snapshot(t, srv.driver)
	_, plan, err := restore(t, s, f, rep, false)
	assert.ErrorContains(t, err, "refusing to replace 12 existing tables")
	assert.ErrorContains(t, err, "--force")
	assert.Equal(t, plan.Tables[0].ExistingRows, plan.Tables[0].Rows)
	assert.DeepEqual(t, dtrtest.Snapshot(t, srv.driver), changed)

	_, _, err = restore(t, s, f, rep, true)
	assert.NilError(t, err)
	assert.DeepEqual(t, dtrtest.Snapshot(t, srv.driver), before)
}

func TestExcludedTablesAreRecordedAndLeftAlone(t *testing.T) {
	t.Parallel()
	srv := startTLS(t)
	dtrtest.Seed(t, srv.driver)
	s := connect(t, srv.opts)
	p := backupToFile(t, s, archive.Exclusion{DB: "dtr2", Table: "events", Reason: "--skip-events"})
	f, rep := verifyFile(t, p)
	assert.DeepEqual(t, rep.Excluded, []archive.Exclusion{{DB: "dtr2", Table: "events", Reason: "--skip-events"}})
	for _, tb := range rep.Tables {
		assert.Assert(t, tb.FullName() != "dtr2.events")
	}
	dtrtest.DropAll(t, srv.driver)
	_, _, err := restore(t, s, f, rep, false)
	assert.NilError(t, err)
	after := dtrtest.Snapshot(t, srv.driver)
	_, has := after["dtr2.events"]
	assert.Assert(t, !has)
	assert.Equal(t, len(after), len(dtrtest.Tables)-1)
}

func TestRestoreOfficialBackup(t *testing.T) {
	t.Parallel()
	srv := startTLS(t)
	p := backuptest.OfficialArchive(t, map[string][]string{
		"properties":    {`{"id":"ha.json","value":"{}"}`},
		"private_keys":  {`{"key_id":"k1","created_at":"2020-01-01T00:00:00Z"}`},
		"custom_things": {`{"id":"x","list":[1,[2,3]]}`},
	})
	f, rep := verifyFile(t, p)
	assert.Equal(t, rep.Kind, archive.KindOfficial)
	s := connect(t, srv.opts)
	_, plan, err := restore(t, s, f, rep, false)
	assert.NilError(t, err)
	assert.Assert(t, is.Contains(plan.Warnings[1], `"custom_things" is not a known DTR table: restoring it into dtr2`))
	snap := dtrtest.Snapshot(t, srv.driver)
	assert.Equal(t, snap["notarysigner.private_keys"].PrimaryKey, "key_id")
	assert.DeepEqual(t, snap["dtr2.custom_things"].Docs["x"], map[string]any{"id": "x", "list": []any{1.0, []any{2.0, 3.0}}})
	assert.Equal(t, len(snap["dtr2.properties"].Docs), 1)
}

// Older DTR releases run RethinkDB 2.3, which has no write hooks: the
// backup records none instead of failing. The 2.3 server is the real 2.4
// behind rethinkserver.Proxy23, which refuses the terms 2.3 lacks with
// 2.3's own error (see proxy23.go for why).
func TestRoundTripOnRethinkDB23(t *testing.T) {
	t.Parallel()
	real := rethinkserver.Start(t, rethinkserver.Options{})
	srv := rethinkserver.StartProxy23(t, real)
	driver := dtrtest.Connect(t, r.ConnectOpts{Address: srv.Addr})
	_, err := r.DB("dtr2").Table("x").GetWriteHook().Run(driver)
	assert.ErrorContains(t, err, "Unrecognized TermType")

	_, err = r.DBCreate("dtr2").RunWrite(driver)
	assert.NilError(t, err)
	_, err = r.DB("dtr2").TableCreate("properties").RunWrite(driver)
	assert.NilError(t, err)
	_, err = r.DB("dtr2").Table("properties").Insert(map[string]any{"id": "ha.json", "at": time.Unix(1700000000, 0)}).RunWrite(driver)
	assert.NilError(t, err)

	s := connect(t, rethink.Options{Addr: srv.Addr})
	f, rep := verifyFile(t, backupToFile(t, s))
	assert.Assert(t, !rep.Definitions.Tables[0].HasWriteHook())
	dtrtest.DropAll(t, driver)
	_, _, err = restore(t, s, f, rep, false)
	assert.NilError(t, err)
	var doc struct {
		At time.Time `rethinkdb:"at"`
	}
	assert.NilError(t, r.DB("dtr2").Table("properties").Get("ha.json").ReadOne(&doc, driver))
	assert.Equal(t, doc.At.Unix(), int64(1700000000))

	// A backup of 2.4 with a write hook cannot go back to 2.3 whole: the
	// restore says why.
	direct := real.Connect(t)
	dtrtest.DropAll(t, direct)
	dtrtest.Seed(t, direct)
	f, rep = verifyFile(t, backupToFile(t, connect(t, rethink.Options{Addr: real.Addr})))
	dtrtest.DropAll(t, direct)
	_, _, err = restore(t, s, f, rep, false)
	assert.ErrorContains(t, err, "setting the write hook of dtr2.tags: the server predates write hooks (RethinkDB 2.4)")
}

// A table larger than a server batch round-trips whole: its cursor is
// continued batch after batch.
func TestRoundTripAcrossServerBatches(t *testing.T) {
	t.Parallel()
	srv := startTLS(t)
	_, err := r.DBCreate("dtr2").RunWrite(srv.driver)
	assert.NilError(t, err)
	seedBulk(t, srv.driver, 5000) // 5 MB: five batches or more
	before := dtrtest.Snapshot(t, srv.driver)

	s := connect(t, srv.opts)
	f, rep := verifyFile(t, backupToFile(t, s))
	assert.Equal(t, rep.Rows, int64(5000))
	dtrtest.DropAll(t, srv.driver)
	_, _, err = restore(t, s, f, rep, false)
	assert.NilError(t, err)
	assert.DeepEqual(t, dtrtest.Snapshot(t, srv.driver), before)
}

func TestFailedLoadSaysTheTargetIsPartlyRestored(t *testing.T) {
	t.Parallel()
	srv := startTLS(t)
	// verify does not work out how long RethinkDB finds an array key that
	// holds a number; the server refuses this one
	p := backuptest.OfficialArchive(t, map[string][]string{
		"properties": {`{"id":"ha.json"}`, `{"id":[1,"` + strings.Repeat("k", 110) + `"]}`},
	})
	f, rep := verifyFile(t, p)
	s := connect(t, srv.opts)
	_, _, err := restore(t, s, f, rep, false)
	assert.ErrorContains(t, err, "Primary key too long")
	assert.ErrorContains(t, err, "the target is partly restored: fix the cause and run the restore again with --force")
}

// RethinkDB refuses arrays over 100,000 elements in a query unless
// array_limit is raised, and never stores one over 100,000 ("Array too
// large for disk writes", whatever the limit): a document holding the
// largest array it stores must restore.
func TestRoundTripLargeArray(t *testing.T) {
	t.Parallel()
	srv := startTLS(t)
	big := make([]any, 100_001)
	for i := range big {
		big[i] = i
	}
	_, err := r.DBCreate("dtr2").RunWrite(srv.driver)
	assert.NilError(t, err)
	_, err = r.DB("dtr2").TableCreate("properties").RunWrite(srv.driver)
	assert.NilError(t, err)
	_, err = r.DB("dtr2").Table("properties").Insert(map[string]any{"id": "over", "list": big}).RunWrite(srv.driver, r.RunOpts{ArrayLimit: 200_000})
	assert.ErrorContains(t, err, "Array too large for disk writes")
	_, err = r.DB("dtr2").Table("properties").Insert(map[string]any{"id": "big", "list": big[:100_000]}).RunWrite(srv.driver)
	assert.NilError(t, err)
	before := dtrtest.Snapshot(t, srv.driver)

	s := connect(t, srv.opts)
	f, rep := verifyFile(t, backupToFile(t, s))
	dtrtest.DropAll(t, srv.driver)
	_, _, err = restore(t, s, f, rep, false)
	assert.NilError(t, err)
	assert.DeepEqual(t, dtrtest.Snapshot(t, srv.driver), before)
}
