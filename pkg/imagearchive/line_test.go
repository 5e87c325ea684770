package imagearchive

import (
	"encoding/json"
	"math/rand/v2"
	"testing"

	"gotest.tools/v3/assert"
)

// An entry's line is json.Marshal's, byte for byte, whatever it holds.
func TestEntryLineIsJSONs(t *testing.T) {
	names := []string{"", "docker/registry/v2/blobs/sha256/ab/" + hex64 + "/data", "docker/", "a b", `q"uote`,
		`back\slash`, "<tag>&", "tab\t", "naïve", "\x7f", "\u2028", "ok-_.~/:@"}
	types := []string{TypeFile, TypeDir, TypeSymlink, ""}
	nums := []int64{0, 1, -1, 0o100644, 1 << 40, -1 << 62}
	hexes := []string{"", hex64, "<x>"}
	r := rand.New(rand.NewPCG(3, 4))
	pick := func(s []string) string { return s[r.IntN(len(s))] }
	for range 5000 {
		e := Entry{Name: pick(names), Type: pick(types), Mode: nums[r.IntN(len(nums))], Size: nums[r.IntN(len(nums))],
			SHA256: pick(hexes), Link: pick(names), In: pick(hexes)}
		want, err := json.Marshal(&e)
		assert.NilError(t, err)
		assert.Equal(t, string(e.appendLine(nil)), string(want))
	}
}

const hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
