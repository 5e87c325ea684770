//go:build unix

package anonfile

import "testing"

func testCreateThenRemove(t *testing.T) {
	dir := t.TempDir()
	f, err := createThenRemove(dir, "x-*")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("x"); err != nil {
		t.Fatal(err)
	}
	assertEmpty(t, dir)
}
