package rethink

import (
	"context"
	"fmt"

	p "gopkg.in/rethinkdb/rethinkdb-go.v6/ql2"
)

// CountKeys returns how many of keys, primary keys as raw JSON, the table
// holds: count(getAll(keys…)). Keys must be distinct and not empty.
func (s *Session) CountKeys(ctx context.Context, t TableRef, keys [][]byte) (int64, error) {
	size := 64
	for _, k := range keys {
		size += len(k) + 1
	}
	term := make([]byte, 0, size)
	term = fmt.Appendf(term, "[%d,[[%d,[%s", p.Term_COUNT, p.Term_GET_ALL, tableTerm(t))
	for _, k := range keys {
		term = append(term, ',')
		term = AppendTerm(term, k)
	}
	term = append(term, "]]]]"...)
	var n int64
	if err := s.exec(ctx, term, &n); err != nil {
		return 0, fmt.Errorf("looking up the primary keys of %s: %w", t, err)
	}
	return n, nil
}
