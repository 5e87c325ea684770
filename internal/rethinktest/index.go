package rethinktest

import (
	"encoding/json"
	"strings"

	p "gopkg.in/rethinkdb/rethinkdb-go.v6/ql2"
)

// Index and write-hook functions travel as opaque BINARY blobs. Ours are a
// prefix followed by canonical JSON of the FUNC term (and index flags), so
// index_create(name, blob) rebuilds an identical index and index_status
// reports byte-identical blobs.
const (
	indexBlobPrefix = "rethinktest:reql_index_function:v1:"
	hookBlobPrefix  = "rethinktest:reql_write_hook_function:v1:"
)

func funcTerm(fd *funcDef) any {
	params := make([]any, len(fd.params))
	for i, v := range fd.params {
		params[i] = v
	}
	return []any{float64(p.Term_FUNC), []any{[]any{float64(p.Term_MAKE_ARRAY), params}, fd.body}}
}

func indexBlob(ix *sindex) Binary {
	b := []byte(indexBlobPrefix)
	b = appendJSON(b, map[string]any{"function": funcTerm(ix.fn), "geo": ix.geo, "multi": ix.multi})
	return Binary(b)
}

func hookBlob(fd *funcDef) Binary {
	return Binary(appendJSON([]byte(hookBlobPrefix), funcTerm(fd)))
}

func parseFuncTerm(raw any) (*funcDef, error) {
	a, ok := raw.([]any)
	if !ok || len(a) < 2 {
		return nil, compileErr("Expected a FUNC term.")
	}
	typ, args, _, err := splitTerm(a)
	if err != nil || typ != p.Term_FUNC || len(args) != 2 {
		return nil, compileErr("Expected a FUNC term.")
	}
	params, body, err := parseFunc(args)
	if err != nil {
		return nil, err
	}
	if err := compileTerm(body); err != nil {
		return nil, err
	}
	return &funcDef{params: params, body: body}, nil
}

// nondeterministic terms may not appear in index functions or write hooks.
var nondeterministic = map[p.Term_TermType]bool{
	p.Term_DB: true, p.Term_TABLE: true, p.Term_GET: true, p.Term_GET_ALL: true,
	p.Term_RANDOM: true, p.Term_UUID: true, p.Term_JAVASCRIPT: true, p.Term_HTTP: true,
	p.Term_SAMPLE: true, p.Term_NOW: true,
}

func deterministic(t any, allowNow bool) bool {
	switch x := t.(type) {
	case []any:
		typ, args, opts, err := splitTerm(x)
		if err != nil || typ == p.Term_DATUM {
			return err == nil
		}
		if nondeterministic[typ] && !(allowNow && typ == p.Term_NOW) {
			if typ != p.Term_UUID || len(args) == 0 {
				return false
			}
		}
		for _, a := range args {
			if !deterministic(a, allowNow) {
				return false
			}
		}
		for _, a := range opts {
			if !deterministic(a, allowNow) {
				return false
			}
		}
	case map[string]any:
		for _, a := range x {
			if !deterministic(a, allowNow) {
				return false
			}
		}
	}
	return true
}

func registerIndexTerms() {
	reg(p.Term_INDEX_CREATE, 2, 3, []string{"multi", "geo"}, evalIndexCreate)
	reg(p.Term_INDEX_DROP, 2, 2, nil, func(e *env, args []any, _ map[string]any) (any, error) {
		t, name, err := e.tableAndName(args)
		if err != nil {
			return nil, err
		}
		return e.logged(true, func(j *journal) (any, uint64, error) {
			t.mu.Lock()
			defer t.mu.Unlock()
			if t.indexes[name] == nil {
				return nil, 0, opFailed("Index `%s` does not exist on table `%s`.", name, t.displayName())
			}
			delete(t.indexes, name)
			return map[string]any{"dropped": 1.0}, j.log(recJSON(nil, jrec{Op: "index_drop", Table: t.id, Name: name})), nil
		})
	})
	reg(p.Term_INDEX_LIST, 1, 1, nil, func(e *env, args []any, _ map[string]any) (any, error) {
		t, err := e.evalTable(args[0])
		if err != nil {
			return nil, err
		}
		t.mu.RLock()
		defer t.mu.RUnlock()
		return stringsDatum(sortedIndexNames(t)), nil
	})
	status := func(e *env, args []any, _ map[string]any) (any, error) {
		t, err := e.evalTable(args[0])
		if err != nil {
			return nil, err
		}
		want := map[string]bool{}
		for _, a := range args[1:] {
			s, err := e.evalString(a)
			if err != nil {
				return nil, err
			}
			want[s] = true
		}
		t.mu.RLock()
		defer t.mu.RUnlock()
		for n := range want {
			if t.indexes[n] == nil {
				return nil, opFailed("Index `%s` was not found on table `%s`.", n, t.displayName())
			}
		}
		out := []any{}
		for _, n := range sortedIndexNames(t) {
			if len(want) == 0 || want[n] {
				out = append(out, indexStatus(t.indexes[n]))
			}
		}
		return out, nil
	}
	// Indexes are built synchronously, so index_wait is index_status.
	reg(p.Term_INDEX_STATUS, 1, -1, nil, status)
	reg(p.Term_INDEX_WAIT, 1, -1, nil, status)
	reg(p.Term_INDEX_RENAME, 3, 3, []string{"overwrite"}, func(e *env, args []any, opts map[string]any) (any, error) {
		t, oldName, err := e.tableAndName(args[:2])
		if err != nil {
			return nil, err
		}
		newName, err := e.evalString(args[2])
		if err != nil {
			return nil, err
		}
		overwrite := false
		if raw, ok := opts["overwrite"]; ok {
			if overwrite, err = e.evalBool(raw); err != nil {
				return nil, err
			}
		}
		for _, n := range []string{oldName, newName} {
			if n == t.pk {
				return nil, logicErr("Index name conflict: `%s` is the name of the primary key.", n)
			}
		}
		return e.logged(true, func(j *journal) (any, uint64, error) {
			t.mu.Lock()
			defer t.mu.Unlock()
			ix := t.indexes[oldName]
			if ix == nil {
				return nil, 0, opFailed("Index `%s` does not exist on table `%s`.", oldName, t.displayName())
			}
			if oldName == newName {
				return map[string]any{"renamed": 0.0}, 0, nil
			}
			if t.indexes[newName] != nil && !overwrite {
				return nil, 0, opFailed("Index `%s` already exists on table `%s`.", newName, t.displayName())
			}
			delete(t.indexes, oldName)
			ix.name = newName
			t.indexes[newName] = ix
			return map[string]any{"renamed": 1.0}, j.log(recJSON(nil, jrec{Op: "index_rename", Table: t.id, Name: oldName, NewName: newName})), nil
		})
	})
}

func (e *env) tableAndName(args []any) (*table, string, error) {
	t, err := e.evalTable(args[0])
	if err != nil {
		return nil, "", err
	}
	name, err := e.evalString(args[1])
	return t, name, err
}

func indexStatus(ix *sindex) map[string]any {
	q := "indexCreate('" + ix.name + "', " + jsFunc(ix.fn)
	var flags []string
	if ix.multi {
		flags = append(flags, "multi: true")
	}
	if ix.geo {
		flags = append(flags, "geo: true")
	}
	if len(flags) > 0 {
		q += ", {" + strings.Join(flags, ", ") + "}"
	}
	q += ")"
	return map[string]any{
		"function": indexBlob(ix),
		"geo":      ix.geo,
		"index":    ix.name,
		"multi":    ix.multi,
		"outdated": false,
		"query":    q,
		"ready":    true,
	}
}

func evalIndexCreate(e *env, args []any, opts map[string]any) (any, error) {
	t, name, err := e.tableAndName(args)
	if err != nil {
		return nil, err
	}
	if t.isSystem() {
		return nil, opFailed("Database `rethinkdb` is special; you can't create secondary indexes on the tables in it.")
	}
	if name == t.pk {
		return nil, logicErr("Index name conflict: `%s` is the name of the primary key.", name)
	}
	ix := &sindex{name: name, entries: map[string]map[string]struct{}{}}
	if len(args) == 3 {
		v, err := e.eval(args[2])
		if err != nil {
			return nil, err
		}
		switch x := v.(type) {
		case Binary:
			if err := parseIndexBlob(x, ix); err != nil {
				return nil, err
			}
		case *funcVal:
			if len(x.params) != 1 {
				return nil, logicErr("Expected function with 1 argument but found function with %d argument%s.", len(x.params), plural(len(x.params)))
			}
			ix.fn = &funcDef{params: x.params, body: x.body}
		default:
			return nil, expectType(v, "FUNCTION")
		}
	} else {
		// Like RethinkDB: no function means the field of the same name.
		ix.fn = &funcDef{params: []float64{1}, body: []any{float64(p.Term_BRACKET), []any{[]any{float64(p.Term_VAR), []any{1.0}}, name}}}
	}
	if !deterministic(ix.fn.body, false) {
		return nil, logicErr("Index functions must be deterministic.")
	}
	if raw, ok := opts["multi"]; ok {
		if ix.multi, err = e.evalBool(raw); err != nil {
			return nil, err
		}
	}
	if raw, ok := opts["geo"]; ok {
		if ix.geo, err = e.evalBool(raw); err != nil {
			return nil, err
		}
	}
	return e.logged(true, func(j *journal) (any, uint64, error) {
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.indexes[name] != nil {
			return nil, 0, opFailed("Index `%s` already exists on table `%s`.", name, t.displayName())
		}
		if !ix.geo { // geo indexes are recorded but not built (no geometry support)
			for k, d := range t.docs {
				ix.add(k, d)
			}
		}
		t.indexes[name] = ix
		return map[string]any{"created": 1.0}, j.log(recIndexCreate(nil, t, ix)), nil
	})
}

func parseIndexBlob(b Binary, ix *sindex) error {
	s := string(b)
	if !strings.HasPrefix(s, indexBlobPrefix) {
		return logicErr("Cannot create an sindex except from a reql_index_function returned from `index_status` in the field `function`.")
	}
	var blob struct {
		Function any  `json:"function"`
		Multi    bool `json:"multi"`
		Geo      bool `json:"geo"`
	}
	if err := json.Unmarshal([]byte(s[len(indexBlobPrefix):]), &blob); err != nil {
		return logicErr("Binary blob passed to index create could not be interpreted as a reql_index_function (%s).", err.Error())
	}
	fd, err := parseFuncTerm(blob.Function)
	if err != nil {
		return logicErr("Binary blob passed to index create could not be interpreted as a reql_index_function (%s).", err.Error())
	}
	ix.fn, ix.multi, ix.geo = fd, blob.Multi, blob.Geo
	return nil
}

func hookDatum(fd *funcDef) map[string]any {
	return map[string]any{"function": hookBlob(fd), "query": "setWriteHook(" + jsFunc(fd) + ")"}
}

func registerHookTerms() {
	// Write hooks are stored and reported but never run on writes.
	reg(p.Term_SET_WRITE_HOOK, 2, 2, nil, func(e *env, args []any, _ map[string]any) (any, error) {
		t, err := e.evalTable(args[0])
		if err != nil {
			return nil, err
		}
		if err := t.checkWritable(); err != nil {
			return nil, err
		}
		v, err := e.eval(args[1])
		if err != nil {
			return nil, err
		}
		var fd *funcDef
		switch x := v.(type) {
		case nil:
		case Binary:
			s := string(x)
			if !strings.HasPrefix(s, hookBlobPrefix) {
				return nil, logicErr("Cannot create a write hook except from a reql_write_hook_function returned from `get_write_hook`.")
			}
			var raw any
			if err := json.Unmarshal([]byte(s[len(hookBlobPrefix):]), &raw); err != nil {
				return nil, logicErr("Binary blob passed to set_write_hook could not be interpreted as a reql_write_hook_function (%s).", err.Error())
			}
			if fd, err = parseFuncTerm(raw); err != nil {
				return nil, logicErr("Binary blob passed to set_write_hook could not be interpreted as a reql_write_hook_function (%s).", err.Error())
			}
		case *funcVal:
			fd = &funcDef{params: x.params, body: x.body}
		default:
			return nil, expectType(v, "FUNCTION")
		}
		if fd != nil {
			if !deterministic(fd.body, true) {
				return nil, logicErr("Write hook functions must be deterministic.")
			}
			if len(fd.params) != 3 {
				return nil, logicErr("Write hook functions must expect 3 arguments.")
			}
		}
		return e.logged(true, func(j *journal) (any, uint64, error) {
			t.mu.Lock()
			defer t.mu.Unlock()
			msg := "deleted"
			if fd != nil {
				msg = "created"
				if t.hook != nil {
					msg = "replaced"
				}
			}
			t.hook = fd
			return map[string]any{msg: 1.0}, j.log(recHook(nil, t)), nil
		})
	})
	reg(p.Term_GET_WRITE_HOOK, 1, 1, nil, func(e *env, args []any, _ map[string]any) (any, error) {
		t, err := e.evalTable(args[0])
		if err != nil {
			return nil, err
		}
		t.mu.RLock()
		defer t.mu.RUnlock()
		if t.hook == nil {
			return nil, nil
		}
		return hookDatum(t.hook), nil
	})
}
