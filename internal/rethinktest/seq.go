package rethinktest

import (
	"sort"

	p "gopkg.in/rethinkdb/rethinkdb-go.v6/ql2"
)

// iterator yields datums one at a time so cursors never copy a whole table.
type iterator interface {
	next() (any, bool, error)
}

// tableScan walks a snapshot of primary keys, fetching each document when it
// is reached; documents deleted meanwhile are skipped.
type tableScan struct {
	t    *table
	keys []string
	i    int
	desc bool
}

func (s *tableScan) next() (any, bool, error) {
	for s.i < len(s.keys) {
		k := s.keys[s.i]
		if s.desc {
			k = s.keys[len(s.keys)-1-s.i]
		}
		s.i++
		if d, ok := s.t.get(k); ok {
			return d, true, nil
		}
	}
	return nil, false, nil
}

type sliceIter struct {
	items []any
	i     int
}

func (s *sliceIter) next() (any, bool, error) {
	if s.i >= len(s.items) {
		return nil, false, nil
	}
	s.i++
	return s.items[s.i-1], true, nil
}

// mapIter transforms rows; fn may drop a row by returning keep=false.
type mapIter struct {
	src iterator
	fn  func(any) (any, bool, error)
}

func (m *mapIter) next() (any, bool, error) {
	for {
		d, ok, err := m.src.next()
		if err != nil || !ok {
			return nil, ok, err
		}
		v, keep, err := m.fn(d)
		if err != nil {
			return nil, false, err
		}
		if keep {
			return v, true, nil
		}
	}
}

type limitIter struct {
	src iterator
	n   int
}

func (l *limitIter) next() (any, bool, error) {
	if l.n <= 0 {
		return nil, false, nil
	}
	l.n--
	return l.src.next()
}

func (e *env) toIter(v any) (iterator, error) {
	switch x := v.(type) {
	case *tableVal:
		return &tableScan{t: x.t, keys: x.t.snapshotKeys()}, nil
	case *streamVal:
		return x.it, nil
	case *singleSel:
		return nil, logicErr("Cannot convert %s to SEQUENCE", typeName(x.doc))
	case []any:
		return &sliceIter{items: x}, nil
	case *funcVal, *dbVal:
		return nil, expectType(v, "SEQUENCE")
	}
	return nil, logicErr("Cannot convert %s to SEQUENCE", typeName(v))
}

func (e *env) evalIter(t any) (iterator, *table, error) {
	v, err := e.eval(t)
	if err != nil {
		return nil, nil, err
	}
	var tbl *table
	switch x := v.(type) {
	case *tableVal:
		tbl = x.t
	case *streamVal:
		tbl = x.tbl
	}
	it, err := e.toIter(v)
	return it, tbl, err
}

func (e *env) evalIndexInt(t any, what string) (int, error) {
	f, err := e.evalNumber(t)
	if err != nil {
		return 0, err
	}
	if f != float64(int(f)) {
		return 0, logicErr("Number not an integer: %s", string(appendNum(nil, f)))
	}
	if f < 0 {
		return 0, logicErr("%s must be a non-negative integer but found %d.", what, int(f))
	}
	return int(f), nil
}

func registerSeqTerms() {
	reg(p.Term_COUNT, 1, 2, nil, func(e *env, args []any, _ map[string]any) (any, error) {
		v, err := e.eval(args[0])
		if err != nil {
			return nil, err
		}
		if tv, ok := v.(*tableVal); ok && len(args) == 1 {
			tv.t.mu.RLock()
			n := len(tv.t.docs)
			tv.t.mu.RUnlock()
			return float64(n), nil
		}
		switch d := v.(type) {
		case string:
			if len(args) == 1 {
				return float64(len([]rune(d))), nil
			}
		case map[string]any:
			if len(args) == 1 {
				return float64(len(d)), nil
			}
		case Binary:
			if len(args) == 1 {
				return float64(len(d)), nil
			}
		}
		it, err := e.toIter(v)
		if err != nil {
			return nil, err
		}
		var pred func(any) (bool, error)
		if len(args) == 2 {
			f, err := e.eval(args[1])
			if err != nil {
				return nil, err
			}
			if fn, ok := f.(*funcVal); ok {
				pred = func(row any) (bool, error) {
					r, err := e.callDatum(fn, row)
					return truthy(r), err
				}
			} else {
				want, err := e.toDatum(f)
				if err != nil {
					return nil, err
				}
				pred = func(row any) (bool, error) { return equalDatum(row, want), nil }
			}
		}
		n := 0
		for {
			d, ok, err := it.next()
			if err != nil {
				return nil, err
			}
			if !ok {
				return float64(n), nil
			}
			if pred != nil {
				if match, err := pred(d); err != nil {
					return nil, err
				} else if !match {
					continue
				}
			}
			n++
		}
	})
	reg(p.Term_FILTER, 2, 2, []string{"default"}, func(e *env, args []any, opts map[string]any) (any, error) {
		src, tbl, err := e.evalIter(args[0])
		if err != nil {
			return nil, err
		}
		pred, err := e.predicate(args[1])
		if err != nil {
			return nil, err
		}
		return &streamVal{tbl: tbl, it: &mapIter{src: src, fn: func(row any) (any, bool, error) {
			ok, err := pred(row)
			if err != nil {
				if re, isR := err.(*rqlError); isR && re.etype == p.Response_NON_EXISTENCE {
					return nil, false, nil // missing fields count as false (default: false)
				}
				return nil, false, err
			}
			return row, ok, nil
		}}}, nil
	})
	reg(p.Term_MAP, 2, 2, nil, func(e *env, args []any, _ map[string]any) (any, error) {
		src, _, err := e.evalIter(args[0])
		if err != nil {
			return nil, err
		}
		f, err := e.evalFunc(args[1])
		if err != nil {
			return nil, err
		}
		return &streamVal{it: &mapIter{src: src, fn: func(row any) (any, bool, error) {
			d, err := e.callDatum(f, row)
			return d, err == nil, err
		}}}, nil
	})
	reg(p.Term_LIMIT, 2, 2, nil, func(e *env, args []any, _ map[string]any) (any, error) {
		src, tbl, err := e.evalIter(args[0])
		if err != nil {
			return nil, err
		}
		n, err := e.evalIndexInt(args[1], "LIMIT")
		if err != nil {
			return nil, err
		}
		return &streamVal{tbl: tbl, it: &limitIter{src: src, n: n}}, nil
	})
	reg(p.Term_SKIP, 2, 2, nil, func(e *env, args []any, _ map[string]any) (any, error) {
		src, tbl, err := e.evalIter(args[0])
		if err != nil {
			return nil, err
		}
		n, err := e.evalIndexInt(args[1], "SKIP")
		if err != nil {
			return nil, err
		}
		return &streamVal{tbl: tbl, it: &mapIter{src: src, fn: func(row any) (any, bool, error) {
			if n > 0 {
				n--
				return nil, false, nil
			}
			return row, true, nil
		}}}, nil
	})
	reg(p.Term_GET, 2, 2, nil, func(e *env, args []any, _ map[string]any) (any, error) {
		t, err := e.evalTable(args[0])
		if err != nil {
			return nil, err
		}
		k, err := e.evalDatum(args[1])
		if err != nil {
			return nil, err
		}
		key, err := pkeyString(k)
		if err != nil {
			return nil, err
		}
		sel := &singleSel{t: t, key: key}
		if d, ok := t.get(key); ok {
			sel.doc = d
		}
		return sel, nil
	})
	reg(p.Term_GET_ALL, 1, -1, []string{"index"}, evalGetAll)
	reg(p.Term_ORDER_BY, 1, -1, []string{"index"}, evalOrderBy)
	reg(p.Term_ASC, 1, 1, nil, func(e *env, args []any, _ map[string]any) (any, error) {
		return nil, logicErr("ASC may only be used as an argument to ORDER_BY.")
	})
	reg(p.Term_DESC, 1, 1, nil, func(e *env, args []any, _ map[string]any) (any, error) {
		return nil, logicErr("DESC may only be used as an argument to ORDER_BY.")
	})
}

// pkeyString validates a primary key value the way RethinkDB does.
func pkeyString(k any) (string, error) {
	key, ok := keyString(k)
	if !ok {
		return "", logicErr("Primary keys must be either a number, string, bool, pseudotype or array (got type %s):\n%s", typeName(k), pretty(k))
	}
	if s, isStr := k.(string); isStr && len(s) > 127 {
		return "", logicErr("Primary key too long (max 127 characters): %s", pretty(k))
	}
	return key, nil
}

func evalGetAll(e *env, args []any, opts map[string]any) (any, error) {
	t, err := e.evalTable(args[0])
	if err != nil {
		return nil, err
	}
	index := t.pk
	if raw, ok := opts["index"]; ok {
		if index, err = e.evalString(raw); err != nil {
			return nil, err
		}
	}
	keys := make([]any, 0, len(args)-1)
	for _, a := range args[1:] {
		d, err := e.evalDatum(a)
		if err != nil {
			return nil, err
		}
		keys = append(keys, d)
	}
	var out []any
	t.mu.RLock()
	defer t.mu.RUnlock()
	if index == t.pk {
		for _, k := range keys {
			ks, err := pkeyString(k)
			if err != nil {
				return nil, err
			}
			if d, ok := t.docs[ks]; ok {
				out = append(out, d)
			}
		}
	} else {
		ix, ok := t.indexes[index]
		if !ok {
			return nil, opFailed("Index `%s` was not found on table `%s`.", index, t.displayName())
		}
		for _, k := range keys {
			ks, ok := keyString(k)
			if !ok {
				return nil, logicErr("Cannot use `%s` as an index key:\n%s", typeName(k), pretty(k))
			}
			for _, pk := range ix.lookupLocked(ks) {
				out = append(out, t.docs[pk])
			}
		}
	}
	return &streamVal{it: &sliceIter{items: out}, tbl: t}, nil
}

func evalOrderBy(e *env, args []any, opts map[string]any) (any, error) {
	rawIndex, hasIndex := opts["index"]
	if !hasIndex {
		return e.orderByFields(args)
	}
	t, err := e.evalTable(args[0])
	if err != nil {
		return nil, err
	}
	if len(args) > 1 {
		return nil, logicErr("rethinktest: order_by with both an index and fields is not supported.")
	}
	desc := false
	if a, ok := rawIndex.([]any); ok && len(a) >= 2 {
		if tf, _ := a[0].(float64); p.Term_TermType(tf) == p.Term_DESC || p.Term_TermType(tf) == p.Term_ASC {
			desc = p.Term_TermType(tf) == p.Term_DESC
			inner, _ := a[1].([]any)
			if len(inner) != 1 {
				return nil, compileErr("Expected 1 argument but found %d.", len(inner))
			}
			rawIndex = inner[0]
		}
	}
	index, err := e.evalString(rawIndex)
	if err != nil {
		return nil, err
	}
	if index == t.pk {
		return &streamVal{tbl: t, it: &tableScan{t: t, keys: t.snapshotKeys(), desc: desc}}, nil
	}
	t.mu.RLock()
	ix, ok := t.indexes[index]
	if !ok {
		t.mu.RUnlock()
		return nil, opFailed("Index `%s` was not found on table `%s`.", index, t.displayName())
	}
	type pair struct{ ik, pk string }
	var pairs []pair
	for ik, set := range ix.entries {
		for pk := range set {
			pairs = append(pairs, pair{ik, pk})
		}
	}
	t.mu.RUnlock()
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].ik != pairs[j].ik {
			return pairs[i].ik < pairs[j].ik
		}
		return pairs[i].pk < pairs[j].pk
	})
	keys := make([]string, len(pairs))
	for i, pr := range pairs {
		keys[i] = pr.pk
	}
	return &streamVal{tbl: t, it: &tableScan{t: t, keys: keys, desc: desc}}, nil
}

// orderByFields sorts a sequence in memory by fields or functions; like
// RethinkDB this produces an array bounded by array_limit.
func (e *env) orderByFields(args []any) (any, error) {
	src, _, err := e.evalIter(args[0])
	if err != nil {
		return nil, err
	}
	rows, err := e.drain(src)
	if err != nil {
		return nil, err
	}
	type keyFn struct {
		desc bool
		fn   func(any) (any, error)
	}
	var keyFns []keyFn
	for _, raw := range args[1:] {
		desc := false
		if a, ok := raw.([]any); ok && len(a) >= 2 {
			if tf, _ := a[0].(float64); p.Term_TermType(tf) == p.Term_DESC || p.Term_TermType(tf) == p.Term_ASC {
				desc = p.Term_TermType(tf) == p.Term_DESC
				inner, _ := a[1].([]any)
				if len(inner) != 1 {
					return nil, compileErr("Expected 1 argument but found %d.", len(inner))
				}
				raw = inner[0]
			}
		}
		v, err := e.eval(raw)
		if err != nil {
			return nil, err
		}
		if f, ok := v.(*funcVal); ok {
			keyFns = append(keyFns, keyFn{desc, func(row any) (any, error) { return e.callDatum(f, row) }})
			continue
		}
		field, ok := v.(string)
		if !ok {
			return nil, expectType(v, "STRING")
		}
		keyFns = append(keyFns, keyFn{desc, func(row any) (any, error) { return getField(row, field) }})
	}
	keys := make([][]any, len(rows))
	for i, row := range rows {
		keys[i] = make([]any, len(keyFns))
		for j, kf := range keyFns {
			k, err := kf.fn(row)
			if err != nil {
				return nil, err
			}
			keys[i][j] = k
		}
	}
	idx := make([]int, len(rows))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		for j, kf := range keyFns {
			c := compareDatum(keys[idx[a]][j], keys[idx[b]][j])
			if kf.desc {
				c = -c
			}
			if c != 0 {
				return c < 0
			}
		}
		return false
	})
	out := make([]any, len(rows))
	for i, k := range idx {
		out[i] = rows[k]
	}
	return out, nil
}
