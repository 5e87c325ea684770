// Package archive defines the metadata backup archive: a plain tar laid out
// like DTR's own backup, plus the plugin's table definitions and manifest
// outside the versioned directory. docs/archive-format.md specifies it.
package archive

import (
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/docker-dtr/docker-dtr/pkg/dtrversion"
)

const (
	// FormatName identifies a metadata archive in its definitions and manifest.
	FormatName = "docker-dtr-metadata"
	// FormatVersion is the version this package writes and the newest it reads.
	FormatVersion = 1

	// PluginDir holds everything the plugin adds; DTR's own restore skips it
	// because its name does not carry the DTR version.
	PluginDir = "docker-dtr/"
	// DefinitionsName is the table definitions entry, written before any document.
	DefinitionsName = PluginDir + "tables.json"
	// ManifestName is the manifest entry, always the last one.
	ManifestName = PluginDir + "manifest.jsonl"

	// MaxDocumentSize bounds one document: RethinkDB's documented limit of a
	// query's size (64 MiB), which a document must fit in to be inserted.
	MaxDocumentSize = 64 << 20
	// MaxPluginEntrySize bounds the definitions entry, read whole into memory.
	MaxPluginEntrySize = 64 << 20
	// MaxTables bounds the tables of an archive. RethinkDB has no hard limit,
	// but each table costs 8 MiB of memory on every server that holds it:
	// 4096 tables would need 32 GiB per server, and DTR has fewer than 30.
	MaxTables = 4096

	// SystemDB is RethinkDB's own database: never backed up, never restored.
	SystemDB = "rethinkdb"

	// DirMode and FileMode are the modes of every entry: backups hold private keys.
	DirMode  = 0o700
	FileMode = 0o600

	versionDirPrefix = "dtr-backup-v"
	rethinkDir       = "rethink/"
)

var (
	versionDirRe = regexp.MustCompile(`^dtr-backup-v([0-9]+\.[0-9]+\.[0-9]+[0-9A-Za-z.-]*)/$`)
	tableNameRe  = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

// ValidName reports whether s is a valid RethinkDB database or table name:
// RethinkDB accepts A-Z, a-z, 0-9, _ and - only. It documents no length
// limit; names longer than 127 bytes (its primary key limit) are refused
// here as well.
func ValidName(s string) bool { return len(s) <= 127 && tableNameRe.MatchString(s) }

// CheckTable refuses a table a restore must not create: a name RethinkDB
// would refuse, or a table of its system database.
func CheckTable(db, table string) error {
	switch {
	case !ValidName(db):
		return fmt.Errorf("invalid database name %q (RethinkDB accepts A-Z, a-z, 0-9, _ and - only, here at most 127 of them)", db)
	case !ValidName(table):
		return fmt.Errorf("invalid table name %q in database %s (RethinkDB accepts A-Z, a-z, 0-9, _ and - only, here at most 127 of them)", table, db)
	case db == SystemDB:
		return fmt.Errorf("table %s.%s is in RethinkDB's system database, which is never backed up or restored", db, table)
	}
	return nil
}

// VersionDir is the archive's top directory for a DTR version, with trailing slash.
func VersionDir(dtrVersion string) string { return versionDirPrefix + dtrVersion + "/" }

// RethinkDir is the directory holding one directory per table.
func RethinkDir(dtrVersion string) string { return VersionDir(dtrVersion) + rethinkDir }

// TableDirName is the entry name of a table's directory.
func TableDirName(dtrVersion, dir string) string { return RethinkDir(dtrVersion) + dir + "/" }

// DocumentName is the entry name of the n-th document of a table.
func DocumentName(dtrVersion, dir string, n int64) string {
	return RethinkDir(dtrVersion) + dir + "/" + strconv.FormatInt(n, 10)
}

// parseVersionDir returns the DTR version of a top directory entry name.
// DTR 2.9.4 writes "dtr-backup-v2.9.4-online/", so a suffix is kept as part of
// the directory but not of the version.
func parseVersionDir(name string) (dir, version string, ok bool) {
	if len(name) > len(versionDirPrefix)+dtrversion.MaxLen+1 {
		return "", "", false
	}
	m := versionDirRe.FindStringSubmatch(name)
	if m == nil {
		return "", "", false
	}
	v := m[1]
	if i := strings.Index(v, "-online"); i >= 0 {
		v = v[:i]
	}
	return name, v, true
}

// checkName refuses names that could escape an extraction directory or are
// otherwise not what a writer of this format produces.
func checkName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty name")
	case strings.HasPrefix(name, "/"):
		return fmt.Errorf("absolute path")
	case strings.Contains(name, "\\"):
		return fmt.Errorf("backslash in name")
	case strings.ContainsRune(name, 0):
		return fmt.Errorf("NUL in name")
	}
	trimmed := strings.TrimSuffix(name, "/")
	for rest := trimmed; ; {
		part, more, found := strings.Cut(rest, "/")
		switch part {
		case "..":
			return fmt.Errorf("parent directory (..) in name")
		case ".", "":
			return fmt.Errorf("empty or . path element")
		}
		if !found {
			break
		}
		rest = more
	}
	// What passes the checks above is clean; the check stays as it was.
	if !cleanRelative(trimmed) && path.Clean(trimmed) != trimmed {
		return fmt.Errorf("name is not clean")
	}
	return nil
}

// cleanRelative reports, without allocating, what path.Clean(name) == name
// says of a name that checkName has found to be relative with no empty, "."
// or ".." element: every such name is clean.
func cleanRelative(name string) bool {
	if name == "" || name[0] == '/' {
		return false
	}
	for rest := name; ; {
		part, more, found := strings.Cut(rest, "/")
		if part == "" || part == "." || part == ".." {
			return false
		}
		if !found {
			return true
		}
		rest = more
	}
}
