package rethinktest

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// state is everything a restart must bring back, as clients see it.
type state struct {
	server   string
	dbs      []any
	tables   map[string][]any
	configs  []any // rethinkdb.table_config, ids included
	dbConfig []any
	indexes  map[string][]any // index_status, function blobs included
	hooks    map[string]any
	docs     map[string][]any // every document in primary-key order
}

func readState(t *testing.T, sess *r.Session) state {
	t.Helper()
	info, err := sess.Server()
	assert.NilError(t, err)
	st := state{server: info.ID, tables: map[string][]any{}, indexes: map[string][]any{}, hooks: map[string]any{}, docs: map[string][]any{}}
	st.dbs = runAll(t, sess, r.DBList())
	st.configs = runAll(t, sess, r.DB("rethinkdb").Table("table_config").OrderBy("id"))
	st.dbConfig = runAll(t, sess, r.DB("rethinkdb").Table("db_config").OrderBy("id"))
	for _, d := range st.dbs {
		db := d.(string)
		if db == "rethinkdb" {
			continue
		}
		st.tables[db] = runAll(t, sess, r.DB(db).TableList())
		for _, tn := range st.tables[db] {
			tbl := r.DB(db).Table(tn.(string))
			name := db + "." + tn.(string)
			st.indexes[name] = runAll(t, sess, tbl.IndexStatus())
			st.hooks[name] = runRaw(t, sess, tbl.GetWriteHook())
			st.docs[name] = runAll(t, sess, tbl.OrderBy(r.OrderByOpts{Index: runAtom(t, sess, tbl.Config().Field("primary_key"))}))
		}
	}
	return st
}

func assertSameState(t *testing.T, got, want state) {
	t.Helper()
	assert.DeepEqual(t, got.server, want.server)
	assert.DeepEqual(t, got.dbs, want.dbs)
	assert.DeepEqual(t, got.tables, want.tables)
	assert.DeepEqual(t, got.configs, want.configs)
	assert.DeepEqual(t, got.dbConfig, want.dbConfig)
	assert.DeepEqual(t, got.indexes, want.indexes)
	assert.DeepEqual(t, got.hooks, want.hooks)
	assert.DeepEqual(t, got.docs, want.docs)
}

// restart closes s and starts a server on the same directory.
func restart(t *testing.T, s *Server, sess *r.Session) (*Server, *r.Session) {
	t.Helper()
	sess.Close()
	assert.NilError(t, s.Close())
	s = startServer(t, Options{Directory: s.opts.Directory})
	return s, connect(t, s.Addr(), r.ConnectOpts{})
}

func TestPersistRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "rethink") // created, as rethinkdb does
	s := startServer(t, Options{Directory: dir})
	sess := connect(t, s.Addr(), r.ConnectOpts{})

	mustRun(t, sess, r.DBCreate("app"))
	mustRun(t, sess, r.DBCreate("gone"))
	mustRun(t, sess, r.DB("gone").TableCreate("x"))
	mustRun(t, sess, r.DB("app").TableCreate("users", r.TableCreateOpts{PrimaryKey: "name"}))
	mustRun(t, sess, r.DB("app").TableCreate("events", r.TableCreateOpts{Durability: "soft"}))
	mustRun(t, sess, r.DB("app").TableCreate("dropped"))
	mustRun(t, sess, r.DB("test").TableCreate("t"))
	users, events := r.DB("app").Table("users"), r.DB("app").Table("events")

	mustRun(t, sess, users.IndexCreate("age"))
	mustRun(t, sess, users.IndexCreateFunc("double", func(row r.Term) r.Term { return row.Field("age").Add(row.Field("age")) }))
	mustRun(t, sess, users.IndexCreate("tags", r.IndexCreateOpts{Multi: true}))
	mustRun(t, sess, users.IndexCreate("old"))
	mustRun(t, sess, users.IndexRename("old", "renamed"))
	mustRun(t, sess, users.IndexCreate("temp"))
	mustRun(t, sess, users.IndexDrop("temp"))
	mustRun(t, sess, users.SetWriteHook(func(id, oldVal, newVal r.Term) r.Term { return newVal }))
	mustRun(t, sess, events.SetWriteHook(func(id, oldVal, newVal r.Term) r.Term { return newVal }))
	mustRun(t, sess, events.SetWriteHook(nil))

	when := time.Date(2021, 3, 4, 5, 6, 7, 123000000, time.UTC)
	mustRun(t, sess, users.Insert([]map[string]any{
		{"name": "ann", "age": 31, "tags": []string{"a", "b"}, "when": when, "blob": []byte{0, 1, 255}},
		{"name": "bob", "age": 40, "tags": []string{"b"}, "nested": map[string]any{"x": []any{1.5, nil, true}}},
		{"name": "cyd", "age": 22, "text": "Zoë — 日本語 🚀\n\"q\""},
		{"name": "dan", "age": 50},
	}))
	// update and replace (insert's conflict modes), hard and soft.
	mustRun(t, sess, users.Insert(map[string]any{"name": "bob", "nested": map[string]any{"y": 2}}, r.InsertOpts{Conflict: "update"}))
	mustRun(t, sess, users.Insert(map[string]any{"name": "cyd", "age": 23}, r.InsertOpts{Conflict: "replace", Durability: "soft"}))
	mustRun(t, sess, users.Get("dan").Delete())
	mustRun(t, sess, users.Filter(map[string]any{"age": 23}).Delete(r.DeleteOpts{Durability: "soft"}))
	for i := 0; i < 2500; i += 100 { // a snapshot splits these over several put records
		docs := make([]map[string]any, 100)
		for k := range docs {
			docs[k] = map[string]any{"id": i + k, "n": (i + k) * (i + k)}
		}
		mustRun(t, sess, events.Insert(docs, r.InsertOpts{Durability: []string{"hard", "soft"}[i/100%2]}))
	}
	_, err := events.Filter(func(row r.Term) r.Term { return row.Field("id").Ge(100).And(row.Field("id").Lt(200)) }).Delete().RunWrite(sess, r.RunOpts{Durability: "soft"})
	assert.NilError(t, err)
	mustRun(t, sess, events.Sync())
	mustRun(t, sess, r.DB("test").Table("t").Insert(map[string]any{"id": []any{"compound", 1}}))
	mustRun(t, sess, r.DB("app").Table("dropped").Insert(map[string]any{"id": 1}))
	mustRun(t, sess, r.DB("app").TableDrop("dropped"))
	mustRun(t, sess, r.DBDrop("gone"))

	want := readState(t, sess)
	assert.Equal(t, len(want.docs["app.users"]), 2)
	assert.Equal(t, len(want.docs["app.events"]), 2400)
	assert.DeepEqual(t, want.tables["app"], []any{"events", "users"})

	s, sess = restart(t, s, sess)
	assertSameState(t, readState(t, sess), want)

	// Indexes were rebuilt and hooks are back.
	assert.DeepEqual(t, runAll(t, sess, users.GetAllByIndex("age", 31).Field("name")), []any{"ann"})
	assert.DeepEqual(t, runAll(t, sess, users.GetAllByIndex("double", 80).Field("name")), []any{"bob"})
	assert.DeepEqual(t, runAll(t, sess, users.GetAllByIndex("tags", "b").OrderBy("name").Field("name")), []any{"ann", "bob"})
	assert.DeepEqual(t, runAll(t, sess, users.IndexList()), []any{"age", "double", "renamed", "tags"})
	assert.Assert(t, is.Contains(runAtom(t, sess, users.GetWriteHook()).(map[string]any)["query"].(string), "setWriteHook("))
	assert.DeepEqual(t, runAtom(t, sess, users.Get("ann").Field("when")), when)
	assert.DeepEqual(t, runAtom(t, sess, users.Get("ann").Field("blob")), []byte{0, 1, 255})

	// The restored server takes writes, and an index created from a blob.
	blob := runAll(t, sess, users.IndexStatus("double"))[0].(map[string]any)["function"]
	mustRun(t, sess, users.IndexCreateFunc("fromblob", blob))
	mustRun(t, sess, users.Insert(map[string]any{"name": "eve", "age": 40}))
	mustRun(t, sess, r.DB("test").TableDrop("t"))
	want = readState(t, sess)
	s, sess = restart(t, s, sess)
	assertSameState(t, readState(t, sess), want)
	assert.DeepEqual(t, runAll(t, sess, users.GetAllByIndex("fromblob", 80).OrderBy("name").Field("name")), []any{"bob", "eve"})

	// Dropping the test database is kept too: it is created only in a new directory.
	mustRun(t, sess, r.DBDrop("test"))
	_, sess = restart(t, s, sess)
	assert.DeepEqual(t, runAll(t, sess, r.DBList()), []any{"app", "rethinkdb"})
}

// TestPersistDurability checks when writes reach the disk: hard ones before
// they are acknowledged, soft ones by sync(), or on a clean shutdown.
func TestPersistDurability(t *testing.T) {
	t.Cleanup(func(d time.Duration) func() { return func() { softFlushInterval = d } }(softFlushInterval))
	softFlushInterval = time.Hour // no background flush during this test
	s := startServer(t, Options{Directory: t.TempDir()})
	sess := connect(t, s.Addr(), r.ConnectOpts{})
	setupTable(t, sess, "d", "hard")
	mustRun(t, sess, r.DB("d").TableCreate("soft", r.TableCreateOpts{Durability: "soft"}))
	hard, soft := r.DB("d").Table("hard"), r.DB("d").Table("soft")
	onDisk := func() bool {
		s.jnl.mu.Lock()
		defer s.jnl.mu.Unlock()
		return s.jnl.synced == s.jnl.appended
	}
	assert.Assert(t, onDisk(), "metadata changes are on disk")

	for _, c := range []struct {
		name    string
		q       r.Term
		run     r.RunOpts
		durable bool
	}{
		{"hard table", hard.Insert(map[string]any{"id": 1}), r.RunOpts{}, true},
		{"soft write", hard.Insert(map[string]any{"id": 2}, r.InsertOpts{Durability: "soft"}), r.RunOpts{}, false},
		{"soft run", hard.Insert(map[string]any{"id": 3}), r.RunOpts{Durability: "soft"}, false},
		{"soft table", soft.Insert(map[string]any{"id": 1}), r.RunOpts{}, false},
		{"hard write on soft table", soft.Insert(map[string]any{"id": 2}, r.InsertOpts{Durability: "hard"}), r.RunOpts{}, true},
		{"hard run on soft table", soft.Insert(map[string]any{"id": 3}), r.RunOpts{Durability: "hard"}, true},
		{"soft delete", hard.Get(1).Delete(r.DeleteOpts{Durability: "soft"}), r.RunOpts{}, false},
		{"hard delete", hard.Get(2).Delete(), r.RunOpts{}, true},
		{"soft filter delete", soft.Filter(map[string]any{"id": 1}).Delete(), r.RunOpts{}, false},
	} {
		_, err := c.q.RunWrite(sess, c.run)
		assert.NilError(t, err, c.name)
		assert.Equal(t, onDisk(), c.durable, c.name)
		if !c.durable {
			mustRun(t, sess, hard.Sync())
			assert.Assert(t, onDisk(), "%s: after sync", c.name)
		}
	}

	// A soft write not yet synced is written on a clean shutdown.
	mustRun(t, sess, soft.Insert(map[string]any{"id": "last"}))
	assert.Assert(t, !onDisk())
	_, sess = restart(t, s, sess)
	assert.DeepEqual(t, runAll(t, sess, soft.OrderBy(r.OrderByOpts{Index: "id"}).Field("id")), []any{2.0, 3.0, "last"})
	assert.DeepEqual(t, runAll(t, sess, hard.OrderBy(r.OrderByOpts{Index: "id"}).Field("id")), []any{3.0})
}

// journalOf starts a server on a new directory, runs fill, closes it and
// returns the directory.
func journalOf(t *testing.T, fill func(sess *r.Session)) string {
	t.Helper()
	dir := t.TempDir()
	s, err := Start(Options{Directory: dir})
	assert.NilError(t, err)
	sess := connect(t, s.Addr(), r.ConnectOpts{})
	fill(sess)
	sess.Close()
	assert.NilError(t, s.Close())
	return dir
}

func journalIDs(t *testing.T, dir string) []any {
	t.Helper()
	s := startServer(t, Options{Directory: dir})
	sess := connect(t, s.Addr(), r.ConnectOpts{})
	defer func() { sess.Close(); s.Close() }()
	return runAll(t, sess, r.DB("test").Table("t").OrderBy(r.OrderByOpts{Index: "id"}).Field("id"))
}

// TestPersistTornTail: whatever a crash leaves after the last complete record
// is dropped, and the server starts.
func TestPersistTornTail(t *testing.T) {
	dir := journalOf(t, func(sess *r.Session) {
		mustRun(t, sess, r.DB("test").TableCreate("t"))
		mustRun(t, sess, r.DB("test").Table("t").Insert([]map[string]any{{"id": 1}, {"id": 2}}))
	})
	path := filepath.Join(dir, journalFile)
	base, err := os.ReadFile(path)
	assert.NilError(t, err)
	// One more record, logged after the start's snapshot.
	s := startServer(t, Options{Directory: dir})
	sess := connect(t, s.Addr(), r.ConnectOpts{})
	mustRun(t, sess, r.DB("test").Table("t").Insert(map[string]any{"id": 3, "pad": "some bytes to cut into"}))
	sess.Close()
	assert.NilError(t, s.Close())
	full, err := os.ReadFile(path)
	assert.NilError(t, err)
	assert.Assert(t, len(full) > len(base)+frameHeader)
	assert.DeepEqual(t, full[:len(base)], base)

	for _, c := range []struct {
		name string
		data []byte
		want []any
	}{
		{"complete", full, []any{1.0, 2.0, 3.0}},
		{"half a header", full[:len(base)+5], []any{1.0, 2.0}},
		{"header only", full[:len(base)+frameHeader], []any{1.0, 2.0}},
		{"half the payload", full[:len(full)-10], []any{1.0, 2.0}},
		{"last byte wrong", append(append([]byte{}, full[:len(full)-1]...), full[len(full)-1]^0xff), []any{1.0, 2.0}},
		{"zeros after", append(append([]byte{}, full...), make([]byte, 4096)...), []any{1.0, 2.0, 3.0}},
		{"zeroed last record", append(append([]byte{}, base...), make([]byte, len(full)-len(base))...), []any{1.0, 2.0}},
	} {
		assert.NilError(t, os.WriteFile(path, c.data, 0o644))
		assert.Check(t, is.DeepEqual(journalIDs(t, dir), c.want), c.name)
		// The start rewrote the journal without the torn tail.
		rewritten, err := os.ReadFile(path)
		assert.NilError(t, err)
		end, err := readFrames(rewritten, func(int, []byte) error { return nil })
		assert.NilError(t, err, c.name)
		assert.Equal(t, end, len(rewritten), c.name)
	}

	// A directory whose first record was torn is a new one.
	assert.NilError(t, os.WriteFile(path, full[:7], 0o644))
	s = startServer(t, Options{Directory: dir})
	sess = connect(t, s.Addr(), r.ConnectOpts{})
	assert.DeepEqual(t, runAll(t, sess, r.DBList()), []any{"rethinkdb", "test"})
}

// TestPersistCorrupt: damage before the last record stops startup.
func TestPersistCorrupt(t *testing.T) {
	dir := journalOf(t, func(sess *r.Session) {
		mustRun(t, sess, r.DB("test").TableCreate("t"))
		mustRun(t, sess, r.DB("test").Table("t").Insert([]map[string]any{{"id": 1, "v": "abcdef"}, {"id": 2}}))
		mustRun(t, sess, r.DB("test").Table("t").IndexCreate("v"))
	})
	path := filepath.Join(dir, journalFile)
	good, err := os.ReadFile(path)
	assert.NilError(t, err)
	// Records: init, db_create test, table_create t, put, index_create.
	var offs []int
	_, err = readFrames(good, func(off int, _ []byte) error {
		offs = append(offs, off)
		return nil
	})
	assert.NilError(t, err)
	assert.Equal(t, len(offs), 5)
	put := offs[3]

	for _, c := range []struct {
		name string
		at   int
		want string
	}{
		{"payload byte", put + frameHeader + 20, "record 3 at byte " + fmt.Sprint(put) + " fails its checksum"},
		{"length", put + 1, "record 3 at byte " + fmt.Sprint(put) + " has a bad header"},
	} {
		bad := append([]byte{}, good...)
		bad[c.at] ^= 0x40
		assert.NilError(t, os.WriteFile(path, bad, 0o644))
		_, err := Start(Options{Directory: dir})
		assert.ErrorContains(t, err, "journal "+journalFile+" is corrupt: "+c.want, c.name)
		// Nothing was rewritten.
		after, err := os.ReadFile(path)
		assert.NilError(t, err)
		assert.Check(t, is.DeepEqual(after, bad), c.name)
	}

	// A file that is not a journal.
	assert.NilError(t, os.WriteFile(path, recJSON(nil, jrec{Op: "db_create", ID: "x", Name: "x"}), 0o644))
	_, err = Start(Options{Directory: dir})
	assert.ErrorContains(t, err, "not a rethinktest journal")

	assert.NilError(t, os.WriteFile(path, good, 0o644))
	assert.DeepEqual(t, journalIDs(t, dir), []any{1.0, 2.0})
}

// TestPersistCompactWhileWriting rewrites the journal while writers keep going.
func TestPersistCompactWhileWriting(t *testing.T) {
	t.Cleanup(func(n int64) func() { return func() { minCompactSize = n } }(minCompactSize))
	minCompactSize = 32 << 10
	dir := t.TempDir()
	s := startServer(t, Options{Directory: dir})
	sess := connect(t, s.Addr(), r.ConnectOpts{})
	setupTable(t, sess, "d", "t")
	tbl := r.DB("d").Table("t")
	mustRun(t, sess, tbl.IndexCreate("v"))

	const writers, rounds, keys = 4, 150, 20
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ws, err := r.Connect(r.ConnectOpts{Address: s.Addr()})
			if !assert.Check(t, err) {
				return
			}
			defer ws.Close()
			for i := 0; i < rounds; i++ {
				docs := make([]map[string]any, keys)
				for k := range docs {
					docs[k] = map[string]any{"id": fmt.Sprintf("w%d-%d", w, k), "v": i, "pad": fmt.Sprintf("%0100d", i)}
				}
				_, err := tbl.Insert(docs, r.InsertOpts{Conflict: "replace", Durability: []string{"hard", "soft"}[i%2]}).RunWrite(ws)
				if !assert.Check(t, err) {
					return
				}
				if i%10 == 9 {
					_, err := tbl.Get(fmt.Sprintf("w%d-%d", w, i%keys)).Delete().RunWrite(ws)
					assert.Check(t, err)
				}
			}
		}()
	}
	wg.Wait()
	want := readState(t, sess)
	s.jnl.mu.Lock()
	compacted, size := s.jnl.compacted, s.jnl.size
	s.jnl.mu.Unlock()
	assert.Assert(t, compacted > 0, "journal of %d bytes never rewritten", size)
	_, sess = restart(t, s, sess)
	assertSameState(t, readState(t, sess), want)
	assert.Equal(t, len(want.docs["d.t"]), writers*(keys-1)) // each writer's last round deletes its key 9
}

// TestPersistCrash kills a server process (SIGKILL) in the middle of a stream
// of writes, several times over: every acknowledged hard write is there after
// each restart.
func TestPersistCrash(t *testing.T) {
	dir := t.TempDir()
	acked := map[string]bool{}
	var mu sync.Mutex
	for round := 0; round < 3; round++ {
		proc := StartProcess(t, ProcessOptions{Directory: dir})
		sess := connect(t, proc.Addr(), r.ConnectOpts{})
		if round == 0 {
			mustRun(t, sess, r.DB("test").TableCreate("t"))
			mustRun(t, sess, r.DB("test").Table("t").IndexCreate("w"))
		}
		// Everything acknowledged before is there.
		got := map[string]bool{}
		for _, id := range runAll(t, sess, r.DB("test").Table("t").Field("id")) {
			got[id.(string)] = true
		}
		mu.Lock()
		for id := range acked {
			assert.Assert(t, got[id], "round %d: acknowledged write %s lost", round, id)
		}
		mu.Unlock()
		sess.Close()

		var wg sync.WaitGroup
		stop := make(chan struct{})
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ws, err := r.Connect(r.ConnectOpts{Address: proc.Addr()})
				if err != nil {
					return
				}
				defer ws.Close()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					n := 1 + i%50 // single documents and batches
					docs := make([]map[string]any, n)
					for k := range docs {
						docs[k] = map[string]any{"id": fmt.Sprintf("r%d-w%d-%d-%d", round, w, i, k), "w": w}
					}
					soft := i%5 == 4
					opts := r.InsertOpts{}
					if soft {
						opts.Durability = "soft"
					}
					if _, err := r.DB("test").Table("t").Insert(docs, opts).RunWrite(ws); err != nil {
						return // killed
					}
					if !soft {
						mu.Lock()
						for _, d := range docs {
							acked[d["id"].(string)] = true
						}
						mu.Unlock()
					}
				}
			}()
		}
		time.Sleep(300 * time.Millisecond)
		proc.Kill()
		close(stop)
		wg.Wait()
	}
	mu.Lock()
	n := len(acked)
	mu.Unlock()
	assert.Assert(t, n > 100, "only %d acknowledged writes", n)

	s := startServer(t, Options{Directory: dir})
	sess := connect(t, s.Addr(), r.ConnectOpts{})
	got := map[string]bool{}
	for _, id := range runAll(t, sess, r.DB("test").Table("t").Field("id")) {
		got[id.(string)] = true
	}
	for id := range acked {
		assert.Assert(t, got[id], "acknowledged write %s lost", id)
	}
	// The index was rebuilt over all of them.
	assert.Equal(t, runAtom(t, sess, r.DB("test").Table("t").GetAllByIndex("w", 0, 1, 2, 3).Count()), float64(len(got)))
	t.Logf("%d acknowledged hard writes, %d documents after 3 kills", n, len(got))
}

// BenchmarkInsert100k loads 100,000 documents in batches of 500 from 4
// writers: in memory; persisted with hard durability; persisted with soft
// durability and a sync() at the end (what a restore does). "restart" times a
// start that reads the persisted documents back:
//
//	go test -run '^$' -bench Insert100k -benchtime 3x ./internal/rethinktest
func BenchmarkInsert100k(b *testing.B) {
	const rows, batch = 100000, 500
	when := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	batches := make([][]map[string]any, 0, rows/batch)
	for i := 0; i < rows; i += batch {
		docs := make([]map[string]any, batch)
		for k := range docs {
			n := i + k
			docs[k] = map[string]any{
				"id": fmt.Sprintf("%08x-0000-4000-8000-%012x", n, n), "namespace": "org", "repository": fmt.Sprintf("repo-%d", n%100),
				"tag": fmt.Sprintf("v1.%d", n), "digest": fmt.Sprintf("sha256:%064x", n), "size": n * 1024,
				"createdAt": when, "labels": []any{"a", "b"}, "scanned": n%2 == 0,
			}
		}
		batches = append(batches, docs)
	}
	for _, mode := range []string{"memory", "hard", "soft"} {
		b.Run(mode, func(b *testing.B) {
			for b.Loop() {
				dir := ""
				if mode != "memory" {
					dir = b.TempDir()
				}
				loadBatches(b, dir, batches, mode == "soft")
			}
			b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
	b.Run("restart", func(b *testing.B) {
		dir := b.TempDir()
		loadBatches(b, dir, batches, false)
		for b.Loop() {
			s, err := Start(Options{Directory: dir})
			if err != nil {
				b.Fatal(err)
			}
			s.Close()
		}
	})
}

// loadBatches starts a server (persisted in dir if not empty), inserts the
// batches from 4 writers into a new table, syncs it and closes the server.
func loadBatches(b *testing.B, dir string, batches [][]map[string]any, soft bool) {
	const writers = 4
	s, err := Start(Options{Directory: dir})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	sess, err := r.Connect(r.ConnectOpts{Address: s.Addr(), MaxOpen: writers})
	if err != nil {
		b.Fatal(err)
	}
	defer sess.Close()
	tbl := r.DB("test").Table("tags")
	if _, err := r.DB("test").TableCreate("tags").RunWrite(sess); err != nil {
		b.Fatal(err)
	}
	opts := r.InsertOpts{}
	if soft {
		opts.Durability = "soft"
	}
	next := make(chan []map[string]any, len(batches))
	for _, docs := range batches {
		next <- docs
	}
	close(next)
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for docs := range next {
				if _, err := tbl.Insert(docs, opts).RunWrite(sess); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if _, err := tbl.Sync().RunWrite(sess); err != nil {
		b.Fatal(err)
	}
}
