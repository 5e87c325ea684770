package rethinktest

import (
	p "gopkg.in/rethinkdb/rethinkdb-go.v6/ql2"
)

// writeResult accumulates the counters every RethinkDB write returns.
type writeResult struct {
	deleted, errors, inserted, replaced, skipped, unchanged int
	firstError                                              string
	generated                                               []any
}

func (w *writeResult) fail(msg string) {
	if w.errors == 0 {
		w.firstError = msg
	}
	w.errors++
}

func (w *writeResult) datum() map[string]any {
	out := map[string]any{
		"deleted":   float64(w.deleted),
		"errors":    float64(w.errors),
		"inserted":  float64(w.inserted),
		"replaced":  float64(w.replaced),
		"skipped":   float64(w.skipped),
		"unchanged": float64(w.unchanged),
	}
	if w.errors > 0 {
		out["first_error"] = w.firstError
	}
	if len(w.generated) > 0 {
		out["generated_keys"] = w.generated
	}
	return out
}

// writeOpts checks a write's options and returns its durability: the write's
// own option, else run()'s, else "" for the table's.
func (e *env) writeOpts(opts map[string]any) (string, error) {
	dur, err := e.durabilityOpt(opts, "")
	if err != nil {
		return "", err
	}
	if dur == "" && e.q != nil {
		dur = e.q.durability
	}
	return dur, e.checkWriteOpts(opts)
}

func (e *env) checkWriteOpts(opts map[string]any) error {
	if raw, ok := opts["return_changes"]; ok {
		d, err := e.evalDatum(raw)
		if err != nil {
			return err
		}
		if d != false {
			return logicErr("rethinktest: return_changes is not supported.")
		}
	}
	if raw, ok := opts["ignore_write_hook"]; ok {
		if _, err := e.evalBool(raw); err != nil {
			return err
		}
	}
	return nil
}

// hard tells whether a write with durability dur (from writeOpts) is
// acknowledged only once on disk.
func (t *table) hard(dur string) bool {
	if dur == "" {
		dur = t.durability
	}
	return dur != "soft"
}

func (e *env) journal() *journal {
	if e.q == nil {
		return nil
	}
	return e.q.srv.jnl
}

// logged runs a change: fn applies it in memory and logs its record (returning
// the record's sequence number) under the lock that orders it; the change is
// acknowledged once that record is on disk when hard.
func (e *env) logged(hard bool, fn func(j *journal) (any, uint64, error)) (any, error) {
	j := e.journal()
	res, seq, err := func() (any, uint64, error) {
		j.enter()
		defer j.leave()
		return fn(j)
	}()
	if err != nil {
		return nil, err
	}
	if hard {
		if err := j.durable(seq); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func registerWriteTerms() {
	writeOpts := []string{"durability", "return_changes", "ignore_write_hook"}
	reg(p.Term_INSERT, 2, 2, append([]string{"conflict"}, writeOpts...), evalInsert)
	reg(p.Term_DELETE, 1, 1, writeOpts, evalDelete)
}

// mergeObjects is update's deep merge of objects.
func mergeObjects(old, upd map[string]any) map[string]any {
	out := make(map[string]any, len(old)+len(upd))
	for k, v := range old {
		out[k] = v
	}
	for k, v := range upd {
		if o, ok := out[k].(map[string]any); ok {
			if n, ok := v.(map[string]any); ok {
				out[k] = mergeObjects(o, n)
				continue
			}
		}
		out[k] = v
	}
	return out
}

func evalInsert(e *env, args []any, opts map[string]any) (any, error) {
	t, err := e.evalTable(args[0])
	if err != nil {
		return nil, err
	}
	if err := t.checkWritable(); err != nil {
		return nil, err
	}
	dur, err := e.writeOpts(opts)
	if err != nil {
		return nil, err
	}
	conflict := "error"
	if raw, ok := opts["conflict"]; ok {
		v, err := e.eval(raw)
		if err != nil {
			return nil, err
		}
		s, ok := v.(string)
		if !ok {
			if _, isFunc := v.(*funcVal); isFunc {
				return nil, logicErr("rethinktest: a conflict resolution function is not supported.")
			}
			return nil, expectType(v, "STRING")
		}
		if s != "error" && s != "replace" && s != "update" {
			return nil, logicErr("Conflict option `%s` unrecognized (options are \"error\", \"replace\" and \"update\").", s)
		}
		conflict = s
	}
	d, err := e.evalDatum(args[1])
	if err != nil {
		return nil, err
	}
	docs, isArr := d.([]any)
	if !isArr {
		docs = []any{d}
	}
	return e.logged(t.hard(dur), func(j *journal) (any, uint64, error) {
		t.mu.Lock()
		defer t.mu.Unlock()
		res, written := insertLocked(t, docs, conflict, j != nil)
		return res.datum(), j.logPut(t, written), nil
	})
}

// insertLocked inserts docs; with keep it returns the documents stored.
func insertLocked(t *table, docs []any, conflict string, keep bool) (res writeResult, written []map[string]any) {
	for _, raw := range docs {
		doc, ok := raw.(map[string]any)
		if !ok {
			res.fail(expectType(raw, "OBJECT").Error())
			continue
		}
		pk, has := doc[t.pk]
		if !has {
			id := newUUID()
			doc = mergeObjects(doc, map[string]any{t.pk: id})
			pk = id
			res.generated = append(res.generated, id)
		}
		key, err := pkeyString(pk)
		if err != nil {
			res.fail(err.(*rqlError).msg)
			continue
		}
		old, exists := t.docs[key]
		if !exists {
			t.putLocked(key, doc)
			res.inserted++
			if keep {
				written = append(written, doc)
			}
			continue
		}
		switch conflict {
		case "error":
			res.fail("Duplicate primary key `" + t.pk + "`:\n" + pretty(old) + "\n" + pretty(doc))
			continue
		case "update":
			doc = mergeObjects(old, doc)
		}
		if equalDatum(old, doc) {
			res.unchanged++
			continue
		}
		t.putLocked(key, doc)
		res.replaced++
		if keep {
			written = append(written, doc)
		}
	}
	return res, written
}

func evalDelete(e *env, args []any, opts map[string]any) (any, error) {
	v, err := e.eval(args[0])
	if err != nil {
		return nil, err
	}
	dur, err := e.writeOpts(opts)
	if err != nil {
		return nil, err
	}
	var res writeResult
	var last uint64 // the last record logged
	// deleteKey deletes and logs one document.
	deleteKey := func(t *table, key string) {
		e.logged(false, func(j *journal) (any, uint64, error) {
			t.mu.Lock()
			defer t.mu.Unlock()
			old, ok := t.docs[key]
			if !ok {
				res.skipped++
				return nil, 0, nil
			}
			t.deleteLocked(key)
			res.deleted++
			if j != nil {
				last = j.log(recDel(nil, t, []any{old[t.pk]}))
			}
			return nil, 0, nil
		})
	}
	// done acknowledges the deletes once they are durable.
	done := func(t *table) (any, error) {
		if t.hard(dur) {
			if err := e.journal().durable(last); err != nil {
				return nil, err
			}
		}
		return res.datum(), nil
	}
	switch x := v.(type) {
	case *singleSel:
		if err := x.t.checkWritable(); err != nil {
			return nil, err
		}
		deleteKey(x.t, x.key)
		return done(x.t)
	case *tableVal, *streamVal:
		var t *table
		if tv, ok := x.(*tableVal); ok {
			t = tv.t
		} else {
			t = x.(*streamVal).tbl
		}
		if t == nil {
			return nil, expectType(v, "SELECTION")
		}
		if err := t.checkWritable(); err != nil {
			return nil, err
		}
		it, err := e.toIter(v)
		if err != nil {
			return nil, err
		}
		for {
			row, ok, err := it.next()
			if err != nil {
				return nil, err
			}
			if !ok {
				break
			}
			obj, _ := row.(map[string]any)
			key, kerr := pkeyString(obj[t.pk])
			if kerr != nil {
				res.fail(kerr.(*rqlError).msg)
				continue
			}
			deleteKey(t, key)
		}
		return done(t)
	}
	return nil, expectType(v, "SELECTION")
}
