package restore

import (
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
