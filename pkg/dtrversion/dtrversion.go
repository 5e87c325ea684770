// Package dtrversion holds DTR's version rules: what a DTR version looks
// like, and that a backup restores into the same major.minor version.
package dtrversion

import (
	"regexp"
	"strings"
)

// MaxLen bounds a DTR version, and so the metadata archive's top
// directory, part of every entry's name.
const MaxLen = 64

var versionRe = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$`)

// Valid reports whether v looks like a DTR version (2.9.4, 2.9.4-rc1).
func Valid(v string) bool { return len(v) <= MaxLen && versionRe.MatchString(v) }

// MajorMinor returns "2.9" for "2.9.4".
func MajorMinor(v string) string {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return v
	}
	return parts[0] + "." + parts[1]
}

// SameMajorMinor says that a backup of DTR a restores into DTR b without
// --allow-version-mismatch: their major.minor versions are the same.
func SameMajorMinor(a, b string) bool { return MajorMinor(a) == MajorMinor(b) }
