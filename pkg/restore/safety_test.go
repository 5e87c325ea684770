package restore

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/docker-dtr/docker-dtr/pkg/atomicfile"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
)

func TestSafetyPathNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	first := SafetyPath(dir, "-", "metadata", "0123456789ab")
	if !regexp.MustCompile(`/safety-metadata-0123456789ab-\d{8}T\d{6}Z\.tar$`).MatchString(first) {
		t.Fatal(first)
	}
	if err := os.WriteFile(first, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if second := SafetyPath(dir, "-", "metadata", "0123456789ab"); second == first || filepath.Dir(second) != dir {
		t.Fatal(second)
	}

	// Beside the input by default; the current directory for stdin.
	beside := SafetyPath("", "/backups/b.tar", "images", "")
	if filepath.Dir(beside) != "/backups" || !regexp.MustCompile(`safety-images-direct-`).MatchString(beside) {
		t.Fatal(beside)
	}
	if got := filepath.Dir(SafetyPath("", "-", "images", "x")); got != "." {
		t.Fatal(got)
	}
}

func TestCheckVersion(t *testing.T) {
	var warned []string
	warn := func(format string, args ...any) { warned = append(warned, fmt.Sprintf(format, args...)) }
	if err := CheckVersion("b.tar", "2.9.4", "2.9.1", false, warn); err != nil || len(warned) != 0 {
		t.Fatal(err, warned)
	}
	if err := CheckVersion("b.tar", "2.9.4", "", false, warn); err != nil {
		t.Fatal("an unknown target version is not checked:", err)
	}
	err := CheckVersion("b.tar", "2.8.4", "2.9.1", false, warn)
	if want := "b.tar is a backup of DTR 2.8.4, the target is DTR 2.9.1: restore into the same major.minor version, or pass --allow-version-mismatch"; err == nil || err.Error() != want {
		t.Fatalf("%v, want %q", err, want)
	}
	if err := CheckVersion("b.tar", "2.8.4", "2.9.1", true, warn); err != nil || len(warned) != 1 || warned[0] != "restoring a backup of DTR 2.8.4 into DTR 2.9.1 (--allow-version-mismatch)" {
		t.Fatal(err, warned)
	}
}

// Saving a safety backup removes the temporary file of a killed run beside
// it, and says so, but not a running one's.
func TestSaveSafetySweepsAKilledRunsTemporaryFile(t *testing.T) {
	dir := t.TempDir()
	killed := filepath.Join(dir, ".safety-metadata-direct-20261205T010000Z.tar.tmp-42")
	if err := os.WriteFile(killed, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	running, err := atomicfile.Create(filepath.Join(dir, "running.tar"))
	if err != nil {
		t.Fatal(err)
	}
	defer running.Abort()
	var log bytes.Buffer
	path := filepath.Join(dir, "safety.tar")
	err = saveSafety(progress.NewMode(&log, progress.Plain), path,
		func(w io.Writer) error { _, err := io.WriteString(w, "saved"); return err },
		func(err error) error { return err },
		func(*os.File) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "removed "+killed+", the temporary file of a run that was killed") {
		t.Fatalf("log: %s", log.String())
	}
	for _, p := range []string{path, running.Name()} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
	if _, err := os.Stat(killed); !os.IsNotExist(err) {
		t.Fatalf("%s is left: %v", killed, err)
	}
}
