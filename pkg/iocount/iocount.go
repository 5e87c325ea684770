// Package iocount counts the bytes that go through a writer or a reader:
// the size of a backup written so far, of a dump sent or received, or
// whether a refused dump wrote anything at all.
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

// Reader reads from R and counts in N the bytes read.
type Reader struct {
	R io.Reader
	N int64
}

func (c *Reader) Read(p []byte) (int, error) {
	n, err := c.R.Read(p)
	c.N += int64(n)
	return n, err
}
