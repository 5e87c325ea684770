// Package iocount counts the bytes that go through a writer: the size of
// a backup written so far, of a dump sent, or whether a refused dump wrote
// anything at all.
package iocount

import "io"

// Writer writes to W and counts in N the bytes W took.
type Writer struct {
	W io.Writer
	N int64
}

func (c *Writer) Write(p []byte) (int, error) {
	n, err := c.W.Write(p)
	c.N += int64(n)
	return n, err
}
