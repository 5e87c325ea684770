package rethink

import (
	"testing"

	"gotest.tools/v3/assert"
)

func TestAppendTermWrapsArraysOnly(t *testing.T) {
	cases := map[string]string{
		`{"a":1}`:                         `{"a":1}`,
		`{"a":[1,[2,"x"]],"b":[]}`:        `{"a":[2,[1,[2,[2,"x"]]]],"b":[2,[]]}`,
		`{"s":"[not an array] \"[\" \\"}`: `{"s":"[not an array] \"[\" \\"}`,
		`{"s":"\\","t":["]"]}`:            `{"s":"\\","t":[2,["]"]]}`,
		`{"t":{"$reql_type$":"TIME","epoch_time":1,"timezone":"+00:00"}}`: `{"t":{"$reql_type$":"TIME","epoch_time":1,"timezone":"+00:00"}}`,
		`{"u":"日本語 [🐳]"}`:                                                 `{"u":"日本語 [🐳]"}`,
	}
	for in, want := range cases {
		assert.Equal(t, string(AppendTerm(nil, []byte(in))), want, in)
	}
}
