package archive

import (
	"fmt"
	"slices"
)

// DTRDatabases are the databases DTR keeps its metadata in. A backup holds
// tables of these only: a restore never creates another database.
var DTRDatabases = []string{"dtr2", "jobrunner", "notaryserver", "notarysigner"}

// IsDTRDatabase reports whether db is one of DTRDatabases.
func IsDTRDatabase(db string) bool { return slices.Contains(DTRDatabases, db) }

// CheckDTRDatabase refuses a table outside DTR's databases.
func CheckDTRDatabase(db, table string) error {
	if !IsDTRDatabase(db) {
		return fmt.Errorf("table %s.%s is in database %q, which is not one of DTR's (dtr2, jobrunner, notaryserver, notarysigner): a restore would create it", db, table, db)
	}
	return nil
}

// DTR's own restore finds a table's database by its name and assumes dtr2 for
// names it does not know; official backups carry neither databases nor keys.
var officialTables = map[string]string{
	"crons":                   "jobrunner",
	"jobs":                    "jobrunner",
	"tuf_files":               "notaryserver",
	"changefeed":              "notaryserver",
	"private_keys":            "notarysigner",
	"blob_links":              "dtr2",
	"blobs":                   "dtr2",
	"client_tokens":           "dtr2",
	"content_caches":          "dtr2",
	"events":                  "dtr2",
	"helm_charts":             "dtr2",
	"layer_vuln_overrides":    "dtr2",
	"manifests":               "dtr2",
	"metrics":                 "dtr2",
	"namespace_team_access":   "dtr2",
	"poll_mirroring_policies": "dtr2",
	"promotion_policies":      "dtr2",
	"properties":              "dtr2",
	"pruning_policies":        "dtr2",
	"push_mirroring_policies": "dtr2",
	"repositories":            "dtr2",
	"repository_team_access":  "dtr2",
	"scanned_images":          "dtr2",
	"scanned_layers":          "dtr2",
	"tags":                    "dtr2",
	"user_settings":           "dtr2",
	"webhooks":                "dtr2",
}

var officialPrimaryKeys = map[string]string{
	"tuf_files":    "gun_role_version",
	"private_keys": "key_id",
}

// OfficialTable maps a table directory of an official DTR backup to its
// database and primary key, and says whether the name was known.
func OfficialTable(name string) (t Table, known bool) {
	db, known := officialTables[name]
	if !known {
		db = "dtr2"
	}
	pk := officialPrimaryKeys[name]
	if pk == "" {
		pk = "id"
	}
	return Table{DB: db, Name: name, Dir: name, PrimaryKey: pk, WriteHook: []byte("null")}, known
}
