package rethinktest

import (
	"regexp"
	"sort"

	p "gopkg.in/rethinkdb/rethinkdb-go.v6/ql2"
)

const (
	systemDB   = "rethinkdb"
	serverName = "rethinktest"
)

// systemTables are the tables RethinkDB 2.4 lists in the `rethinkdb` database.
var systemTables = []string{
	"cluster_config", "current_issues", "db_config", "jobs", "logs", "permissions",
	"server_config", "server_status", "stats", "table_config", "table_status", "users",
}

var nameRe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// sysDatabase stands for the read-only `rethinkdb` database.
var sysDatabase = &database{id: "00000000-0000-0000-0000-000000000000", name: systemDB}

func (e *env) catalog() (*catalog, error) {
	if e.q == nil {
		return nil, logicErr("Index functions must be deterministic.")
	}
	return e.q.srv.cat, nil
}

func (e *env) lookupDB(name string) (*database, error) {
	if !nameRe.MatchString(name) {
		return nil, logicErr("Database name `%s` invalid (Use A-Z, a-z, 0-9, _ and - only).", name)
	}
	if name == systemDB {
		return sysDatabase, nil
	}
	cat, err := e.catalog()
	if err != nil {
		return nil, err
	}
	cat.mu.RLock()
	db := cat.dbs[name]
	cat.mu.RUnlock()
	if db == nil {
		return nil, nonExistence("Database `%s` does not exist.", name)
	}
	return db, nil
}

// dbArg resolves the optional leading DB argument of table terms.
func (e *env) dbArg(args []any, n int) (*database, []any, error) {
	if len(args) > n {
		v, err := e.eval(args[0])
		if err != nil {
			return nil, nil, err
		}
		dv, ok := v.(*dbVal)
		if !ok {
			return nil, nil, expectType(v, "DATABASE")
		}
		return dv.db, args[1:], nil
	}
	name := "test"
	if e.q != nil && e.q.defaultDB != "" {
		name = e.q.defaultDB
	}
	db, err := e.lookupDB(name)
	return db, args, err
}

func (e *env) lookupTable(db *database, name string) (*table, error) {
	if !nameRe.MatchString(name) {
		return nil, logicErr("Table name `%s` invalid (Use A-Z, a-z, 0-9, _ and - only).", name)
	}
	if db == sysDatabase {
		return e.systemTable(name)
	}
	cat, _ := e.catalog()
	cat.mu.RLock()
	t := db.tables[name]
	cat.mu.RUnlock()
	if t == nil {
		return nil, nonExistence("Table `%s.%s` does not exist.", db.name, name)
	}
	return t, nil
}

// systemTable builds a throw-away read-only table for db_config/table_config;
// the other system tables exist but read as empty.
func (e *env) systemTable(name string) (*table, error) {
	if !contains(systemTables, name) {
		return nil, nonExistence("Table `%s.%s` does not exist.", systemDB, name)
	}
	t := &table{id: name, name: name, db: sysDatabase, pk: "id", docs: map[string]map[string]any{}, indexes: map[string]*sindex{}}
	cat := e.q.srv.cat
	cat.mu.RLock()
	defer cat.mu.RUnlock()
	for _, db := range cat.dbs {
		switch name {
		case "db_config":
			t.docs[mustKey(db.id)] = map[string]any{"id": db.id, "name": db.name}
		case "table_config":
			for _, tb := range db.tables {
				tb.mu.RLock()
				t.docs[mustKey(tb.id)] = tb.configLocked()
				tb.mu.RUnlock()
			}
		}
	}
	return t, nil
}

func mustKey(v any) string { k, _ := keyString(v); return k }

func (t *table) isSystem() bool { return t.db == sysDatabase }

func (t *table) checkWritable() error {
	if t.isSystem() {
		return opFailed("rethinktest: writing to system table `%s` is not supported.", t.displayName())
	}
	return nil
}

func (t *table) configLocked() map[string]any {
	names := make([]any, 0, len(t.indexes))
	for _, n := range sortedIndexNames(t) {
		names = append(names, n)
	}
	var hook any
	if t.hook != nil {
		hook = hookDatum(t.hook)
	}
	return map[string]any{
		"db":          t.db.name,
		"durability":  t.durability,
		"id":          t.id,
		"indexes":     names,
		"name":        t.name,
		"primary_key": t.pk,
		"shards": []any{map[string]any{
			"nonvoting_replicas": []any{},
			"primary_replica":    serverName,
			"replicas":           []any{serverName},
		}},
		"write_acks": "majority",
		"write_hook": hook,
	}
}

func (t *table) statusDatum() map[string]any {
	return map[string]any{
		"db":          t.db.name,
		"id":          t.id,
		"name":        t.name,
		"raft_leader": serverName,
		"shards": []any{map[string]any{
			"primary_replicas": []any{serverName},
			"replicas":         []any{map[string]any{"server": serverName, "state": "ready"}},
		}},
		"status": map[string]any{
			"all_replicas_ready":       true,
			"ready_for_outdated_reads": true,
			"ready_for_reads":          true,
			"ready_for_writes":         true,
		},
	}
}

func sortedIndexNames(t *table) []string {
	names := make([]string, 0, len(t.indexes))
	for n := range t.indexes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func dbConfig(db *database) map[string]any { return map[string]any{"id": db.id, "name": db.name} }

func registerAdminTerms() {
	reg(p.Term_DB, 1, 1, nil, func(e *env, args []any, _ map[string]any) (any, error) {
		name, err := e.evalString(args[0])
		if err != nil {
			return nil, err
		}
		db, err := e.lookupDB(name)
		if err != nil {
			return nil, err
		}
		return &dbVal{db: db}, nil
	})
	reg(p.Term_TABLE, 1, 2, []string{"read_mode", "identifier_format"}, func(e *env, args []any, opts map[string]any) (any, error) {
		db, rest, err := e.dbArg(args, 1)
		if err != nil {
			return nil, err
		}
		name, err := e.evalString(rest[0])
		if err != nil {
			return nil, err
		}
		if raw, ok := opts["read_mode"]; ok {
			if err := e.checkReadMode(raw); err != nil {
				return nil, err
			}
		}
		t, err := e.lookupTable(db, name)
		if err != nil {
			return nil, err
		}
		return &tableVal{t: t}, nil
	})
	// info, as RethinkDB 2.x answers it: a table's doc_count_estimates is
	// one number per shard, kept by the server without a scan (count() is
	// a scan); this server has one shard and knows the count exactly.
	reg(p.Term_INFO, 1, 1, nil, func(e *env, args []any, _ map[string]any) (any, error) {
		v, err := e.eval(args[0])
		if err != nil {
			return nil, err
		}
		switch x := v.(type) {
		case *dbVal:
			return map[string]any{"id": x.db.id, "name": x.db.name, "type": "DB"}, nil
		case *tableVal:
			t := x.t
			t.mu.RLock()
			defer t.mu.RUnlock()
			return map[string]any{
				"db":                  map[string]any{"id": t.db.id, "name": t.db.name, "type": "DB"},
				"doc_count_estimates": []any{float64(len(t.docs))},
				"id":                  t.id,
				"indexes":             stringsDatum(sortedIndexNames(t)),
				"name":                t.name,
				"primary_key":         t.pk,
				"type":                "TABLE",
			}, nil
		case *singleSel, *streamVal, *funcVal:
			return nil, logicErr("info of a %s is not implemented by the test server", typeName(v))
		}
		return map[string]any{"type": typeName(v), "value": string(appendJSON(nil, v))}, nil
	})
	reg(p.Term_DB_LIST, 0, 0, nil, func(e *env, _ []any, _ map[string]any) (any, error) {
		cat, err := e.catalog()
		if err != nil {
			return nil, err
		}
		cat.mu.RLock()
		names := []string{systemDB}
		for n := range cat.dbs {
			names = append(names, n)
		}
		cat.mu.RUnlock()
		sort.Strings(names)
		return stringsDatum(names), nil
	})
	reg(p.Term_DB_CREATE, 1, 1, nil, func(e *env, args []any, _ map[string]any) (any, error) {
		name, err := e.evalString(args[0])
		if err != nil {
			return nil, err
		}
		if !nameRe.MatchString(name) {
			return nil, logicErr("Database name `%s` invalid (Use A-Z, a-z, 0-9, _ and - only).", name)
		}
		cat, err := e.catalog()
		if err != nil {
			return nil, err
		}
		return e.logged(true, func(j *journal) (any, uint64, error) {
			cat.mu.Lock()
			defer cat.mu.Unlock()
			if name == systemDB || cat.dbs[name] != nil {
				return nil, 0, opFailed("Database `%s` already exists.", name)
			}
			db := &database{id: newUUID(), name: name, tables: map[string]*table{}}
			cat.dbs[name] = db
			return map[string]any{
				"config_changes": []any{map[string]any{"new_val": dbConfig(db), "old_val": nil}},
				"dbs_created":    1.0,
			}, j.log(recDBCreate(nil, db)), nil
		})
	})
	reg(p.Term_DB_DROP, 1, 1, nil, func(e *env, args []any, _ map[string]any) (any, error) {
		name, err := e.evalString(args[0])
		if err != nil {
			return nil, err
		}
		if name == systemDB {
			return nil, opFailed("Database `rethinkdb` is special; you can't delete it.")
		}
		if !nameRe.MatchString(name) {
			return nil, logicErr("Database name `%s` invalid (Use A-Z, a-z, 0-9, _ and - only).", name)
		}
		cat, err := e.catalog()
		if err != nil {
			return nil, err
		}
		return e.logged(true, func(j *journal) (any, uint64, error) {
			cat.mu.Lock()
			defer cat.mu.Unlock()
			db := cat.dbs[name]
			if db == nil {
				return nil, 0, nonExistence("Database `%s` does not exist.", name)
			}
			delete(cat.dbs, name)
			return map[string]any{
				"config_changes": []any{map[string]any{"new_val": nil, "old_val": dbConfig(db)}},
				"dbs_dropped":    1.0,
				"tables_dropped": float64(len(db.tables)),
			}, j.log(recJSON(nil, jrec{Op: "db_drop", ID: db.id})), nil
		})
	})
	reg(p.Term_TABLE_LIST, 0, 1, nil, func(e *env, args []any, _ map[string]any) (any, error) {
		db, _, err := e.dbArg(args, 0)
		if err != nil {
			return nil, err
		}
		if db == sysDatabase {
			return stringsDatum(systemTables), nil
		}
		cat, _ := e.catalog()
		cat.mu.RLock()
		names := make([]string, 0, len(db.tables))
		for n := range db.tables {
			names = append(names, n)
		}
		cat.mu.RUnlock()
		sort.Strings(names)
		return stringsDatum(names), nil
	})
	reg(p.Term_TABLE_CREATE, 1, 2, []string{"primary_key", "durability", "shards", "replicas", "primary_replica_tag", "nonvoting_replica_tags"}, evalTableCreate)
	reg(p.Term_TABLE_DROP, 1, 2, nil, func(e *env, args []any, _ map[string]any) (any, error) {
		db, rest, err := e.dbArg(args, 1)
		if err != nil {
			return nil, err
		}
		name, err := e.evalString(rest[0])
		if err != nil {
			return nil, err
		}
		if db == sysDatabase {
			return nil, opFailed("Database `rethinkdb` is special; you can't drop tables in it.")
		}
		if !nameRe.MatchString(name) {
			return nil, logicErr("Table name `%s` invalid (Use A-Z, a-z, 0-9, _ and - only).", name)
		}
		cat, _ := e.catalog()
		return e.logged(true, func(j *journal) (any, uint64, error) {
			cat.mu.Lock()
			defer cat.mu.Unlock()
			t := db.tables[name]
			if t == nil {
				return nil, 0, nonExistence("Table `%s.%s` does not exist.", db.name, name)
			}
			delete(db.tables, name)
			t.mu.RLock()
			cfg := t.configLocked()
			t.mu.RUnlock()
			return map[string]any{
				"config_changes": []any{map[string]any{"new_val": nil, "old_val": cfg}},
				"tables_dropped": 1.0,
			}, j.log(recJSON(nil, jrec{Op: "table_drop", ID: t.id})), nil
		})
	})
	reg(p.Term_CONFIG, 1, 1, nil, func(e *env, args []any, _ map[string]any) (any, error) {
		v, err := e.eval(args[0])
		if err != nil {
			return nil, err
		}
		switch x := v.(type) {
		case *dbVal:
			return dbConfig(x.db), nil
		case *tableVal:
			x.t.mu.RLock()
			defer x.t.mu.RUnlock()
			return x.t.configLocked(), nil
		}
		return nil, expectType(v, "TABLE")
	})
	reg(p.Term_STATUS, 1, 1, nil, func(e *env, args []any, _ map[string]any) (any, error) {
		t, err := e.evalTable(args[0])
		if err != nil {
			return nil, err
		}
		return t.statusDatum(), nil
	})
	reg(p.Term_WAIT, 1, 1, []string{"wait_for", "timeout"}, func(e *env, args []any, _ map[string]any) (any, error) {
		v, err := e.eval(args[0])
		if err != nil {
			return nil, err
		}
		var tables []*table
		switch x := v.(type) {
		case *tableVal:
			tables = append(tables, x.t)
		case *dbVal:
			cat, _ := e.catalog()
			cat.mu.RLock()
			for _, t := range x.db.tables {
				tables = append(tables, t)
			}
			cat.mu.RUnlock()
		default:
			return nil, expectType(v, "TABLE")
		}
		changes := []any{}
		for _, t := range tables {
			st := t.statusDatum()
			changes = append(changes, map[string]any{"new_val": st, "old_val": st})
		}
		return map[string]any{"ready": float64(len(tables)), "status_changes": changes}, nil
	})
	reg(p.Term_SYNC, 1, 1, nil, func(e *env, args []any, _ map[string]any) (any, error) {
		t, err := e.evalTable(args[0])
		if err != nil {
			return nil, err
		}
		if err := t.checkWritable(); err != nil {
			return nil, err
		}
		// Every earlier write, to any table, reaches the disk: more than
		// RethinkDB promises, never less.
		if err := e.journal().syncAll(); err != nil {
			return nil, err
		}
		return map[string]any{"synced": 1.0}, nil
	})
	registerIndexTerms()
	registerHookTerms()
}

func stringsDatum(names []string) []any {
	out := make([]any, len(names))
	for i, n := range names {
		out[i] = n
	}
	return out
}

func (e *env) checkReadMode(raw any) error {
	s, err := e.evalString(raw)
	if err != nil {
		return err
	}
	switch s {
	case "single", "majority", "outdated", "_debug_direct":
		return nil
	}
	return logicErr("Read mode `%s` unrecognized (options are \"majority\", \"single\", and \"outdated\").", s)
}

func (e *env) durabilityOpt(opts map[string]any, def string) (string, error) {
	raw, ok := opts["durability"]
	if !ok {
		return def, nil
	}
	s, err := e.evalString(raw)
	if err != nil {
		return "", err
	}
	if s != "hard" && s != "soft" {
		return "", logicErr("Durability option `%s` unrecognized (options are \"hard\" and \"soft\").", s)
	}
	return s, nil
}

func evalTableCreate(e *env, args []any, opts map[string]any) (any, error) {
	db, rest, err := e.dbArg(args, 1)
	if err != nil {
		return nil, err
	}
	name, err := e.evalString(rest[0])
	if err != nil {
		return nil, err
	}
	if db == sysDatabase {
		return nil, opFailed("Database `rethinkdb` is special; you can't create new tables in it.")
	}
	if !nameRe.MatchString(name) {
		return nil, logicErr("Table name `%s` invalid (Use A-Z, a-z, 0-9, _ and - only).", name)
	}
	pk := "id"
	if raw, ok := opts["primary_key"]; ok {
		if pk, err = e.evalString(raw); err != nil {
			return nil, err
		}
	}
	dur, err := e.durabilityOpt(opts, "hard")
	if err != nil {
		return nil, err
	}
	for _, k := range []string{"shards", "replicas"} {
		if raw, ok := opts[k]; ok {
			n, err := e.evalDatum(raw)
			if err != nil {
				return nil, err
			}
			if f, isNum := n.(float64); !isNum || f != 1 {
				return nil, opFailed("rethinktest: only one shard and one replica are supported (got %s `%s`).", k, pretty(n))
			}
		}
	}
	cat, _ := e.catalog()
	return e.logged(true, func(j *journal) (any, uint64, error) {
		cat.mu.Lock()
		defer cat.mu.Unlock()
		if cat.dbs[db.name] != db {
			return nil, 0, nonExistence("Database `%s` does not exist.", db.name)
		}
		if db.tables[name] != nil {
			return nil, 0, opFailed("Table `%s.%s` already exists.", db.name, name)
		}
		t := &table{
			id: newUUID(), name: name, db: db, pk: pk, durability: dur,
			docs: map[string]map[string]any{}, indexes: map[string]*sindex{},
		}
		db.tables[name] = t
		return map[string]any{
			"config_changes": []any{map[string]any{"new_val": t.configLocked(), "old_val": nil}},
			"tables_created": 1.0,
		}, j.log(recTableCreate(nil, t)), nil
	})
}
