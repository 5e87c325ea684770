package anonfile

import (
	"io"
	"os"
	"testing"
)

// The file works as a temporary file and leaves no name in its directory,
// while open or after.
func TestCreateLeavesNoName(t *testing.T) {
	dir := t.TempDir()
	f, err := Create(dir, "docker-dtr-test-*.tar")
	if err != nil {
		t.Fatal(err)
	}
	if st, err := f.Stat(); err != nil {
		t.Fatal(err)
	} else if st.Mode().Perm()&0o077 != 0 {
		t.Errorf("mode %v: readable by others", st.Mode().Perm())
	}
	assertEmpty(t, dir)
	if _, err := f.WriteString("secret"); err != nil {
		t.Fatal(err)
	}
	assertEmpty(t, dir)
	b := make([]byte, 6)
	if _, err := f.ReadAt(b, 0); err != nil || string(b) != "secret" {
		t.Fatalf("ReadAt: %q, %v", b, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if all, err := io.ReadAll(f); err != nil || string(all) != "secret" {
		t.Fatalf("read back %q, %v", all, err)
	}
	if st, err := f.Stat(); err != nil || st.Size() != 6 || !st.Mode().IsRegular() {
		t.Fatalf("Stat: %v, %v", st, err)
	}
	f.Close()
	assertEmpty(t, dir)
}

// An empty dir is the system's temporary directory.
func TestCreateInTempDir(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	f, err := Create("", "docker-dtr-test-*")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	assertEmpty(t, dir)
}

func TestCreateMissingDir(t *testing.T) {
	if _, err := Create(t.TempDir()+"/missing", "x-*"); err == nil {
		t.Fatal("no error for a missing directory")
	}
}

// The fallback that other Unix systems use.
func TestCreateThenRemove(t *testing.T) {
	testCreateThenRemove(t)
}

func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("%s left in %s", e.Name(), dir)
	}
}
