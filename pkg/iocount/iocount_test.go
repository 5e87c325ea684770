package iocount

import (
	"errors"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
)

// short takes at most max bytes, then fails.
type short struct {
	max int
	got strings.Builder
}

func (s *short) Write(p []byte) (int, error) {
	if len(p) > s.max {
		s.got.Write(p[:s.max])
		n := s.max
		s.max = 0
		return n, errors.New("full")
	}
	s.max -= len(p)
	s.got.Write(p)
	return len(p), nil
}

func TestWriterCountsWhatWasTaken(t *testing.T) {
	s := &short{max: 5}
	w := &Writer{W: s}
	_, err := w.Write([]byte("abc"))
	assert.NilError(t, err)
	_, err = w.Write([]byte("defg"))
	assert.ErrorContains(t, err, "full")
	assert.Equal(t, w.N, int64(5))
	assert.Equal(t, s.got.String(), "abcde")
}
