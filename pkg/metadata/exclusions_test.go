package metadata

import (
	"testing"

	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"gotest.tools/v3/assert"
)

func TestExclusions(t *testing.T) {
	got, err := Exclusions([]string{"dtr2.events", "dtr2.tags", "dtr2.tags"}, true, true)
	assert.NilError(t, err)
	assert.DeepEqual(t, got, []archive.Exclusion{
		{DB: "dtr2", Table: "events", Reason: "--exclude"},
		{DB: "dtr2", Table: "tags", Reason: "--exclude"},
		{DB: "dtr2", Table: "scanned_images", Reason: "--skip-scan-data"},
		{DB: "dtr2", Table: "scanned_layers", Reason: "--skip-scan-data"},
	})
	got, err = Exclusions(nil, false, false)
	assert.NilError(t, err)
	assert.Equal(t, len(got), 0)
	for _, bad := range []string{"events", "dtr2.", ".events", "dtr2.ev ents"} {
		_, err = Exclusions([]string{bad}, false, false)
		assert.Error(t, err, `--exclude "`+bad+`": expected db.table, such as dtr2.events`)
	}
}
