package rethinktest

import (
	"strconv"
	"strings"

	p "gopkg.in/rethinkdb/rethinkdb-go.v6/ql2"
)

// jsFunc renders a stored function as JavaScript ReQL for the `query` fields
// of index_status and get_write_hook. It is informative only; the BINARY blob
// is what recreates the function.
func jsFunc(fd *funcDef) string {
	names := make([]string, len(fd.params))
	for i, id := range fd.params {
		names[i] = jsVar(id)
	}
	return "function(" + strings.Join(names, ", ") + ") { return " + jsTerm(fd.body) + "; }"
}

func jsVar(id float64) string { return "var" + strconv.FormatFloat(id, 'f', -1, 64) }

func jsTerm(t any) string {
	switch x := t.(type) {
	case []any:
		typ, args, opts, err := splitTerm(x)
		if err != nil {
			return "?"
		}
		switch typ {
		case p.Term_DATUM:
			if len(args) == 1 {
				return string(appendJSON(nil, args[0]))
			}
		case p.Term_VAR:
			if len(args) == 1 {
				if id, ok := args[0].(float64); ok {
					return jsVar(id)
				}
			}
		case p.Term_IMPLICIT_VAR:
			return "r.row"
		case p.Term_MAKE_ARRAY:
			return "[" + jsList(args) + "]"
		case p.Term_GET_FIELD, p.Term_BRACKET:
			if len(args) == 2 {
				return jsTerm(args[0]) + "(" + jsTerm(args[1]) + ")"
			}
		case p.Term_FUNC:
			if params, body, err := parseFunc(args); err == nil {
				return jsFunc(&funcDef{params: params, body: body})
			}
		}
		name := strings.ToLower(typ.String())
		s := "r." + jsCamel(name) + "(" + jsList(args)
		if len(opts) > 0 {
			if len(args) > 0 {
				s += ", "
			}
			s += jsTerm(opts)
		}
		return s + ")"
	case map[string]any:
		keys := sortedKeys(x)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = string(appendString(nil, k)) + ": " + jsTerm(x[k])
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return string(appendJSON(nil, t))
}

func jsList(args []any) string {
	parts := make([]string, len(args))
	for i, a := range args {
		parts[i] = jsTerm(a)
	}
	return strings.Join(parts, ", ")
}

func jsCamel(s string) string {
	parts := strings.Split(s, "_")
	for i := 1; i < len(parts); i++ {
		if parts[i] != "" {
			parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
		}
	}
	return strings.Join(parts, "")
}
