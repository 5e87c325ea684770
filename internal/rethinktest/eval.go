package rethinktest

import (
	"math"

	p "gopkg.in/rethinkdb/rethinkdb-go.v6/ql2"
)

// queryCtx carries what one START query needs besides its term.
type queryCtx struct {
	srv        *Server
	defaultDB  string
	arrayLimit int
	now        Time
	durability string // run()'s durability option; "" when not given
}

// scope is a linked list of bound variables; implicit marks the argument of a
// one-argument function, which IMPLICIT_VAR (r.row) refers to.
type scope struct {
	id       float64
	v        any
	implicit bool
	up       *scope
}

// env is the evaluation environment. q is nil for index functions, which must
// not touch tables anyway.
type env struct {
	q  *queryCtx
	sc *scope
}

// Non-datum values produced during evaluation.
type (
	dbVal    struct{ db *database }
	tableVal struct{ t *table }
	// singleSel is a document selected by GET: a datum that can also be deleted.
	singleSel struct {
		t   *table
		key string
		doc any // nil when missing
	}
	streamVal struct {
		it  iterator
		tbl *table // set when the stream is a selection (deletable)
	}
	funcVal struct {
		params []float64
		body   any
		sc     *scope
	}
)

type termSpec struct {
	min, max int // max < 0: unlimited
	opts     []string
	fn       func(e *env, args []any, opts map[string]any) (any, error)
}

var terms map[p.Term_TermType]*termSpec

func reg(t p.Term_TermType, min, max int, opts []string, fn func(*env, []any, map[string]any) (any, error)) {
	terms[t] = &termSpec{min: min, max: max, opts: opts, fn: fn}
}

func init() {
	terms = map[p.Term_TermType]*termSpec{}
	registerCoreTerms()
	registerSeqTerms()
	registerAdminTerms()
	registerWriteTerms()
	registerTimeTerms()
}

// splitTerm destructures [type, args, optargs].
func splitTerm(x []any) (p.Term_TermType, []any, map[string]any, error) {
	if len(x) == 0 || len(x) > 3 {
		return 0, nil, nil, clientErr("Expected a term of the form [type, args, optargs] but found an array of length %d.", len(x))
	}
	tf, ok := x[0].(float64)
	if !ok || tf != math.Trunc(tf) {
		return 0, nil, nil, clientErr("Expected a TermType as the first element of a term.")
	}
	typ := p.Term_TermType(int32(tf))
	var args []any
	var opts map[string]any
	if len(x) > 1 && x[1] != nil {
		if args, ok = x[1].([]any); !ok {
			return 0, nil, nil, clientErr("Expected the arguments of a term to be an array.")
		}
	}
	if len(x) > 2 && x[2] != nil {
		if opts, ok = x[2].(map[string]any); !ok {
			return 0, nil, nil, clientErr("Expected the optional arguments of a term to be an object.")
		}
	}
	return typ, args, opts, nil
}

// compileTerm does what RethinkDB checks before running anything: known term
// types, argument counts and optional argument names (COMPILE_ERROR).
func compileTerm(t any) error {
	switch x := t.(type) {
	case []any:
		typ, args, opts, err := splitTerm(x)
		if err != nil {
			return err
		}
		if typ == p.Term_DATUM {
			if len(args) != 1 {
				return compileErr("Expected 1 argument but found %d.", len(args))
			}
			return nil
		}
		if _, known := p.Term_TermType_name[int32(typ)]; !known {
			return compileErr("Unrecognized TermType: %d.", int32(typ))
		}
		if spec := terms[typ]; spec != nil {
			if err := checkArity(spec, len(args)); err != nil {
				return err
			}
			for k := range opts {
				if !contains(spec.opts, k) {
					return compileErr("Unrecognized optional argument `%s`.", k)
				}
			}
		}
		for _, a := range args {
			if err := compileTerm(a); err != nil {
				return err
			}
		}
		for _, a := range opts {
			if err := compileTerm(a); err != nil {
				return err
			}
		}
	case map[string]any:
		for _, v := range x {
			if err := compileTerm(v); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkArity(spec *termSpec, n int) error {
	switch {
	case spec.min == spec.max && n != spec.min:
		return compileErr("Expected %d argument%s but found %d.", spec.min, plural(spec.min), n)
	case spec.max < 0 && n < spec.min:
		return compileErr("Expected %d or more arguments but found %d.", spec.min, n)
	case spec.max >= 0 && (n < spec.min || n > spec.max):
		return compileErr("Expected between %d and %d arguments but found %d.", spec.min, spec.max, n)
	}
	return nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (e *env) eval(t any) (any, error) {
	switch x := t.(type) {
	case []any:
		typ, args, opts, err := splitTerm(x)
		if err != nil {
			return nil, err
		}
		if typ == p.Term_DATUM {
			if len(args) != 1 {
				return nil, compileErr("Expected 1 argument but found %d.", len(args))
			}
			return datumFromJSON(args[0])
		}
		spec := terms[typ]
		if spec == nil {
			return nil, logicErr("rethinktest: term `%s` is not supported.", typ.String())
		}
		return spec.fn(e, args, opts)
	case map[string]any:
		obj := make(map[string]any, len(x))
		for k, v := range x {
			d, err := e.evalDatum(v)
			if err != nil {
				return nil, err
			}
			obj[k] = d
		}
		return sanitizePtype(obj)
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return nil, logicErr("Non-finite number: %v", x)
		}
		return x, nil
	}
	return t, nil
}

func (e *env) arrayLimit() int {
	if e.q == nil {
		return 100000
	}
	return e.q.arrayLimit
}

// toDatum turns an evaluated value into a datum, materialising streams.
func (e *env) toDatum(v any) (any, error) {
	switch x := v.(type) {
	case *singleSel:
		return x.doc, nil
	case *tableVal, *streamVal:
		it, err := e.toIter(v)
		if err != nil {
			return nil, err
		}
		return e.drain(it)
	case *dbVal:
		return nil, logicErr("Expected type DATUM but found DATABASE:\ndb(\"%s\")", x.db.name)
	case *funcVal:
		return nil, logicErr("Expected type DATUM but found FUNCTION.")
	}
	return v, nil
}

func (e *env) drain(it iterator) ([]any, error) {
	out := []any{}
	for {
		d, ok, err := it.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			return out, nil
		}
		if len(out) >= e.arrayLimit() {
			return nil, runtimeErr(p.Response_RESOURCE_LIMIT, "Array over size limit `%d`.", e.arrayLimit())
		}
		out = append(out, d)
	}
}

func (e *env) evalDatum(t any) (any, error) {
	v, err := e.eval(t)
	if err != nil {
		return nil, err
	}
	return e.toDatum(v)
}

func expectType(v any, want string) error {
	return logicErr("Expected type %s but found %s.", want, typeName(v))
}

func (e *env) evalString(t any) (string, error) {
	d, err := e.evalDatum(t)
	if err != nil {
		return "", err
	}
	s, ok := d.(string)
	if !ok {
		return "", expectType(d, "STRING")
	}
	return s, nil
}

func (e *env) evalNumber(t any) (float64, error) {
	d, err := e.evalDatum(t)
	if err != nil {
		return 0, err
	}
	f, ok := d.(float64)
	if !ok {
		return 0, expectType(d, "NUMBER")
	}
	return f, nil
}

func (e *env) evalBool(t any) (bool, error) {
	d, err := e.evalDatum(t)
	if err != nil {
		return false, err
	}
	b, ok := d.(bool)
	if !ok {
		return false, expectType(d, "BOOL")
	}
	return b, nil
}

func (e *env) evalTable(t any) (*table, error) {
	v, err := e.eval(t)
	if err != nil {
		return nil, err
	}
	tv, ok := v.(*tableVal)
	if !ok {
		return nil, expectType(v, "TABLE")
	}
	return tv.t, nil
}

func (e *env) evalFunc(t any) (*funcVal, error) {
	v, err := e.eval(t)
	if err != nil {
		return nil, err
	}
	f, ok := v.(*funcVal)
	if !ok {
		return nil, expectType(v, "FUNCTION")
	}
	return f, nil
}

// truthy is ReQL truthiness: everything but false and null.
func truthy(d any) bool {
	switch x := d.(type) {
	case nil:
		return false
	case bool:
		return x
	}
	return true
}

// call applies a function to already evaluated arguments.
func (e *env) call(f *funcVal, args ...any) (any, error) {
	if len(f.params) != len(args) {
		return nil, logicErr("Expected function with %d argument%s but found function with %d argument%s.",
			len(args), plural(len(args)), len(f.params), plural(len(f.params)))
	}
	sc := f.sc
	for i, id := range f.params {
		sc = &scope{id: id, v: args[i], implicit: len(args) == 1, up: sc}
	}
	inner := &env{q: e.q, sc: sc}
	return inner.eval(f.body)
}

// callDatum calls f and returns a datum.
func (e *env) callDatum(f *funcVal, args ...any) (any, error) {
	v, err := e.call(f, args...)
	if err != nil {
		return nil, err
	}
	return e.toDatum(v)
}

// parseFunc reads the parameter list of a FUNC term.
func parseFunc(args []any) ([]float64, any, error) {
	raw := args[0]
	if a, ok := raw.([]any); ok && len(a) >= 2 {
		if tf, ok := a[0].(float64); ok && (p.Term_TermType(tf) == p.Term_MAKE_ARRAY || p.Term_TermType(tf) == p.Term_DATUM) {
			if ids, ok := a[1].([]any); ok {
				if p.Term_TermType(tf) == p.Term_DATUM {
					ids, _ = ids[0].([]any)
				}
				out := make([]float64, 0, len(ids))
				for _, id := range ids {
					n, ok := id.(float64)
					if !ok {
						return nil, nil, compileErr("Expected a number as a function parameter.")
					}
					out = append(out, n)
				}
				return out, args[1], nil
			}
		}
	}
	return nil, nil, compileErr("Expected the first argument of FUNC to be an array of variable numbers.")
}

// callFuncDef evaluates a stored (index) function on one argument.
func callFuncDef(fd *funcDef, arg any) (any, error) {
	e := &env{}
	v, err := e.call(&funcVal{params: fd.params, body: fd.body}, arg)
	if err != nil {
		return nil, err
	}
	return e.toDatum(v)
}

// asPredicate turns a FILTER/DEFAULT style argument into a function: a FUNC
// is called; any other datum is compared against the row like RethinkDB does.
func (e *env) predicate(t any) (func(any) (bool, error), error) {
	v, err := e.eval(t)
	if err != nil {
		return nil, err
	}
	if f, ok := v.(*funcVal); ok {
		return func(row any) (bool, error) {
			d, err := e.callDatum(f, row)
			if err != nil {
				return false, err
			}
			return truthy(d), nil
		}, nil
	}
	d, err := e.toDatum(v)
	if err != nil {
		return nil, err
	}
	if obj, ok := d.(map[string]any); ok {
		return func(row any) (bool, error) { return matchesObject(row, obj), nil }, nil
	}
	return func(any) (bool, error) { return truthy(d), nil }, nil
}

func matchesObject(row any, pattern map[string]any) bool {
	r, ok := row.(map[string]any)
	if !ok {
		return false
	}
	for k, pv := range pattern {
		rv, ok := r[k]
		if !ok {
			return false
		}
		if po, ok := pv.(map[string]any); ok {
			if !matchesObject(rv, po) {
				return false
			}
		} else if !equalDatum(rv, pv) {
			return false
		}
	}
	return true
}

func registerCoreTerms() {
	reg(p.Term_MAKE_ARRAY, 0, -1, nil, func(e *env, args []any, _ map[string]any) (any, error) {
		out := make([]any, len(args))
		for i, a := range args {
			d, err := e.evalDatum(a)
			if err != nil {
				return nil, err
			}
			out[i] = d
		}
		return out, nil
	})
	reg(p.Term_MAKE_OBJ, 0, 0, nil, func(e *env, _ []any, opts map[string]any) (any, error) {
		return e.eval(opts)
	})
	reg(p.Term_VAR, 1, 1, nil, func(e *env, args []any, _ map[string]any) (any, error) {
		id, ok := args[0].(float64)
		if !ok {
			return nil, compileErr("Expected a variable number.")
		}
		for s := e.sc; s != nil; s = s.up {
			if s.id == id {
				return s.v, nil
			}
		}
		return nil, compileErr("Variable name not found.")
	})
	reg(p.Term_IMPLICIT_VAR, 0, 0, nil, func(e *env, _ []any, _ map[string]any) (any, error) {
		for s := e.sc; s != nil; s = s.up {
			if s.implicit {
				return s.v, nil
			}
		}
		return nil, compileErr("r.row is not defined in this context.")
	})
	reg(p.Term_FUNC, 2, 2, nil, func(e *env, args []any, _ map[string]any) (any, error) {
		params, body, err := parseFunc(args)
		if err != nil {
			return nil, err
		}
		return &funcVal{params: params, body: body, sc: e.sc}, nil
	})
	reg(p.Term_FUNCALL, 1, -1, nil, func(e *env, args []any, _ map[string]any) (any, error) {
		f, err := e.evalFunc(args[0])
		if err != nil {
			return nil, err
		}
		vals := make([]any, 0, len(args)-1)
		for _, a := range args[1:] {
			v, err := e.eval(a)
			if err != nil {
				return nil, err
			}
			vals = append(vals, v)
		}
		return e.call(f, vals...)
	})
	reg(p.Term_BRANCH, 3, -1, nil, func(e *env, args []any, _ map[string]any) (any, error) {
		if len(args)%2 == 0 {
			return nil, logicErr("Cannot call `branch` term with an even number of arguments.")
		}
		for i := 0; i+1 < len(args); i += 2 {
			c, err := e.evalDatum(args[i])
			if err != nil {
				return nil, err
			}
			if truthy(c) {
				return e.eval(args[i+1])
			}
		}
		return e.eval(args[len(args)-1])
	})
	reg(p.Term_AND, 0, -1, nil, func(e *env, args []any, _ map[string]any) (any, error) {
		var last any = true
		for _, a := range args {
			d, err := e.evalDatum(a)
			if err != nil {
				return nil, err
			}
			if !truthy(d) {
				return d, nil
			}
			last = d
		}
		return last, nil
	})
	reg(p.Term_OR, 0, -1, nil, func(e *env, args []any, _ map[string]any) (any, error) {
		var last any = false
		for _, a := range args {
			d, err := e.evalDatum(a)
			if err != nil {
				return nil, err
			}
			if truthy(d) {
				return d, nil
			}
			last = d
		}
		return last, nil
	})
	reg(p.Term_NOT, 1, 1, nil, func(e *env, args []any, _ map[string]any) (any, error) {
		d, err := e.evalDatum(args[0])
		if err != nil {
			return nil, err
		}
		return !truthy(d), nil
	})
	cmp := func(ok func(int) bool) func(*env, []any, map[string]any) (any, error) {
		return func(e *env, args []any, _ map[string]any) (any, error) {
			prev, err := e.evalDatum(args[0])
			if err != nil {
				return nil, err
			}
			res := true
			for _, a := range args[1:] {
				d, err := e.evalDatum(a)
				if err != nil {
					return nil, err
				}
				if res && !ok(compareDatum(prev, d)) {
					res = false
				}
				prev = d
			}
			return res, nil
		}
	}
	reg(p.Term_EQ, 1, -1, nil, cmp(func(c int) bool { return c == 0 }))
	reg(p.Term_NE, 1, -1, nil, cmp(func(c int) bool { return c != 0 }))
	reg(p.Term_LT, 1, -1, nil, cmp(func(c int) bool { return c < 0 }))
	reg(p.Term_LE, 1, -1, nil, cmp(func(c int) bool { return c <= 0 }))
	reg(p.Term_GT, 1, -1, nil, cmp(func(c int) bool { return c > 0 }))
	reg(p.Term_GE, 1, -1, nil, cmp(func(c int) bool { return c >= 0 }))
	reg(p.Term_ADD, 1, -1, nil, evalAdd)
	reg(p.Term_GET_FIELD, 2, 2, nil, evalGetField)
	reg(p.Term_BRACKET, 2, 2, nil, evalBracket)
	reg(p.Term_TYPE_OF, 1, 1, nil, func(e *env, args []any, _ map[string]any) (any, error) {
		v, err := e.eval(args[0])
		if err != nil {
			return nil, err
		}
		return typeName(v), nil
	})
	reg(p.Term_UUID, 0, 1, nil, func(e *env, args []any, _ map[string]any) (any, error) {
		if len(args) == 1 {
			return nil, logicErr("rethinktest: r.uuid with a name argument is not supported.")
		}
		return newUUID(), nil
	})
	reg(p.Term_ERROR, 0, 1, nil, func(e *env, args []any, _ map[string]any) (any, error) {
		if len(args) == 0 {
			return nil, runtimeErr(p.Response_USER, "Empty ERROR term outside a default block.")
		}
		s, err := e.evalString(args[0])
		if err != nil {
			return nil, err
		}
		return nil, runtimeErr(p.Response_USER, "%s", s)
	})
}

func evalAdd(e *env, args []any, _ map[string]any) (any, error) {
	acc, err := e.evalDatum(args[0])
	if err != nil {
		return nil, err
	}
	for _, a := range args[1:] {
		d, err := e.evalDatum(a)
		if err != nil {
			return nil, err
		}
		switch x := acc.(type) {
		case float64:
			y, ok := d.(float64)
			if !ok {
				return nil, expectType(d, "NUMBER")
			}
			acc = x + y
		case string:
			y, ok := d.(string)
			if !ok {
				return nil, expectType(d, "STRING")
			}
			acc = x + y
		case []any:
			y, ok := d.([]any)
			if !ok {
				return nil, expectType(d, "ARRAY")
			}
			acc = append(append([]any{}, x...), y...)
		case Time:
			y, ok := d.(float64)
			if !ok {
				return nil, expectType(d, "NUMBER")
			}
			acc = Time{Epoch: roundMillis(x.Epoch + y), TZ: x.TZ}
		default:
			return nil, logicErr("Expected type NUMBER but found %s.", typeName(acc))
		}
	}
	return acc, nil
}

func getField(d any, field string) (any, error) {
	obj, ok := d.(map[string]any)
	if !ok {
		return nil, logicErr("Cannot perform get_field on a non-object non-sequence `%s`.", typeName(d))
	}
	v, ok := obj[field]
	if !ok {
		return nil, nonExistence("No attribute `%s` in object:\n%s", field, pretty(obj))
	}
	return v, nil
}

func evalGetField(e *env, args []any, _ map[string]any) (any, error) {
	v, err := e.eval(args[0])
	if err != nil {
		return nil, err
	}
	field, err := e.evalString(args[1])
	if err != nil {
		return nil, err
	}
	return e.fieldOf(v, field)
}

// fieldOf maps get_field over sequences (pluck-like), as ReQL does.
func (e *env) fieldOf(v any, field string) (any, error) {
	switch v.(type) {
	case *tableVal, *streamVal:
		it, err := e.toIter(v)
		if err != nil {
			return nil, err
		}
		return &streamVal{it: &mapIter{src: it, fn: func(row any) (any, bool, error) {
			obj, ok := row.(map[string]any)
			if !ok {
				return nil, false, nil
			}
			x, ok := obj[field]
			return x, ok, nil
		}}}, nil
	}
	d, err := e.toDatum(v)
	if err != nil {
		return nil, err
	}
	if arr, ok := d.([]any); ok {
		out := []any{}
		for _, row := range arr {
			if obj, ok := row.(map[string]any); ok {
				if x, ok := obj[field]; ok {
					out = append(out, x)
				}
			}
		}
		return out, nil
	}
	return getField(d, field)
}

func evalBracket(e *env, args []any, _ map[string]any) (any, error) {
	v, err := e.eval(args[0])
	if err != nil {
		return nil, err
	}
	key, err := e.evalDatum(args[1])
	if err != nil {
		return nil, err
	}
	switch k := key.(type) {
	case string:
		return e.fieldOf(v, k)
	case float64:
		d, err := e.toDatum(v)
		if err != nil {
			return nil, err
		}
		arr, ok := d.([]any)
		if !ok {
			return nil, logicErr("Cannot use an integer index on a non-sequence `%s`.", typeName(d))
		}
		if k != math.Trunc(k) {
			return nil, logicErr("Number not an integer: %s", string(appendNum(nil, k)))
		}
		i := int(k)
		if i < 0 {
			i += len(arr)
		}
		if i < 0 || i >= len(arr) {
			return nil, nonExistence("Index out of bounds: %d", int(k))
		}
		return arr[i], nil
	}
	return nil, logicErr("Expected NUMBER or STRING as second argument to `bracket` but found %s.", typeName(key))
}
