package restore

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
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
