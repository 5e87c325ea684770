package rethinktest

import (
	"strings"

	p "gopkg.in/rethinkdb/rethinkdb-go.v6/ql2"
)

// DefaultVersion is the RethinkDB version the server reports.
const DefaultVersion = "2.4.4"

// Terms RethinkDB 2.4 added: a 2.3 server does not know their numbers and
// answers "Unrecognized TermType" before running anything. Older DTR
// releases run RethinkDB 2.3.
var termsSince24 = map[p.Term_TermType]bool{
	p.Term_SET_WRITE_HOOK: true,
	p.Term_GET_WRITE_HOOK: true,
	p.Term_BIT_AND:        true, p.Term_BIT_OR: true, p.Term_BIT_XOR: true, p.Term_BIT_NOT: true,
	p.Term_BIT_SAL: true, p.Term_BIT_SAR: true,
}

func (s *Server) before24() bool { return strings.HasPrefix(s.opts.Version, "2.3.") }

// refuseNewerTerms rejects terms the emulated version does not know.
func refuseNewerTerms(t any) error {
	x, ok := t.([]any)
	if !ok {
		if m, ok := t.(map[string]any); ok {
			for _, v := range m {
				if err := refuseNewerTerms(v); err != nil {
					return err
				}
			}
		}
		return nil
	}
	typ, args, opts, err := splitTerm(x)
	if err != nil {
		return nil // compileTerm reports malformed terms
	}
	if termsSince24[typ] {
		return compileErr("Unrecognized TermType: %d.", int32(typ))
	}
	for _, a := range args {
		if err := refuseNewerTerms(a); err != nil {
			return err
		}
	}
	for _, v := range opts {
		if err := refuseNewerTerms(v); err != nil {
			return err
		}
	}
	return nil
}
