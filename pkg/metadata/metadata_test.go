package metadata

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/dtrtest"
	"github.com/docker-dtr/docker-dtr/internal/rethinktest"
	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"github.com/docker-dtr/docker-dtr/pkg/rethink"
	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestMain(m *testing.M) {
	rethinktest.ServeIfChild()
	os.Exit(m.Run())
}

type server struct {
	opts   rethink.Options
	driver *r.Session // for seeding and snapshots
}

// startTLS starts a test server that requires mutual TLS, like DTR's.
func startTLS(t *testing.T) server {
	t.Helper()
	certs, err := rethinktest.NewCerts(t.TempDir(), "dtr-rethinkdb-0123456789ab.dtr-ol")
	assert.NilError(t, err)
	stls, err := certs.ServerTLS()
	assert.NilError(t, err)
	srv, err := rethinktest.Start(rethinktest.Options{TLS: stls, MaxBatchRows: 50})
	assert.NilError(t, err)
	t.Cleanup(func() { srv.Close() })
	ctls, err := certs.ClientTLS("dtr-rethinkdb-0123456789ab.dtr-ol")
	assert.NilError(t, err)
	return server{
		opts: rethink.Options{Addr: srv.Addr(), CAFile: certs.CA, CertFile: certs.ClientCert, KeyFile: certs.ClientKey,
			ServerName: "dtr-rethinkdb-0123456789ab.dtr-ol", Connections: 5},
		driver: dtrtest.Connect(t, r.ConnectOpts{Address: srv.Addr(), TLSConfig: ctls}),
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

func officialArchive(t *testing.T, docs map[string][]string) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, body string) {
		typ := byte(tar.TypeReg)
		if body == "" {
			typ = tar.TypeDir
		}
		assert.NilError(t, tw.WriteHeader(&tar.Header{Name: name, Typeflag: typ, Mode: 0o600, Size: int64(len(body))}))
		_, err := tw.Write([]byte(body))
		assert.NilError(t, err)
	}
	v := "dtr-backup-v2.9.4-online/"
	add(v, "")
	add(v+"rethink/", "")
	tables := make([]string, 0, len(docs))
	for table := range docs {
		tables = append(tables, table)
	}
	sort.Strings(tables)
	for _, table := range tables {
		add(v+"rethink/"+table+"/", "")
		for i, d := range docs[table] {
			add(fmt.Sprintf("%srethink/%s/%d", v, table, i), d)
		}
	}
	assert.NilError(t, tw.Close())
	p := filepath.Join(t.TempDir(), "official.tar")
	assert.NilError(t, os.WriteFile(p, buf.Bytes(), 0o600))
	return p
}

func TestRestoreOfficialBackup(t *testing.T) {
	srv := startTLS(t)
	p := officialArchive(t, map[string][]string{
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
// backup records none instead of failing.
func TestRoundTripOnRethinkDB23(t *testing.T) {
	srv, err := rethinktest.Start(rethinktest.Options{Version: "2.3.7"})
	assert.NilError(t, err)
	defer srv.Close()
	driver := dtrtest.Connect(t, r.ConnectOpts{Address: srv.Addr()})
	_, err = r.DB("dtr2").Table("x").GetWriteHook().Run(driver)
	assert.ErrorContains(t, err, "Unrecognized TermType")

	_, err = r.DBCreate("dtr2").RunWrite(driver)
	assert.NilError(t, err)
	_, err = r.DB("dtr2").TableCreate("properties").RunWrite(driver)
	assert.NilError(t, err)
	_, err = r.DB("dtr2").Table("properties").Insert(map[string]any{"id": "ha.json", "at": time.Unix(1700000000, 0)}).RunWrite(driver)
	assert.NilError(t, err)

	s := connect(t, rethink.Options{Addr: srv.Addr()})
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
}

func TestFailedLoadSaysTheTargetIsPartlyRestored(t *testing.T) {
	srv := startTLS(t)
	// verify cannot know primary keys are unique; the server refuses the second
	p := officialArchive(t, map[string][]string{
		"properties": {`{"id":"ha.json"}`, `{"id":"ha.json"}`},
	})
	f, rep := verifyFile(t, p)
	s := connect(t, srv.opts)
	_, _, err := restore(t, s, f, rep, false)
	assert.ErrorContains(t, err, "Duplicate primary key `id`")
	assert.ErrorContains(t, err, "the target is partly restored: fix the cause and run the restore again with --force")
}

// RethinkDB refuses arrays over 100,000 elements in a query unless
// array_limit is raised; a document stored with a raised limit must restore.
func TestRoundTripLargeArray(t *testing.T) {
	srv := startTLS(t)
	big := make([]any, 150_000)
	for i := range big {
		big[i] = i
	}
	_, err := r.DBCreate("dtr2").RunWrite(srv.driver)
	assert.NilError(t, err)
	_, err = r.DB("dtr2").TableCreate("properties").RunWrite(srv.driver)
	assert.NilError(t, err)
	_, err = r.DB("dtr2").Table("properties").Insert(map[string]any{"id": "big", "list": big}).RunWrite(srv.driver, r.RunOpts{ArrayLimit: 200_000})
	assert.NilError(t, err)
	before := dtrtest.Snapshot(t, srv.driver)

	s := connect(t, srv.opts)
	f, rep := verifyFile(t, backupToFile(t, s))
	dtrtest.DropAll(t, srv.driver)
	_, _, err = restore(t, s, f, rep, false)
	assert.NilError(t, err)
	assert.DeepEqual(t, dtrtest.Snapshot(t, srv.driver), before)
}
