package imagearchive

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"

	"github.com/docker-dtr/docker-dtr/pkg/jsonl"
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

// TestEntryLineReadAsJSON: a manifest line decodes by hand as
// jsonl.StrictUnmarshal decodes it, and one that is not exactly
// appendLine's form (spacing, order, escapes, repeated or unknown keys,
// numbers written otherwise, cut or changed bytes) decodes, or is refused,
// as StrictUnmarshal does it.
func TestEntryLineReadAsJSON(t *testing.T) {
	names := []string{"", "docker/registry/v2/blobs/sha256/ab/" + hex64 + "/data", "docker/", `q"uote`, `back\slash`, "<tag>&", "naïve", "a b"}
	nums := []int64{0, 1, -1, 0o100644, 1 << 40}
	r := rand.New(rand.NewPCG(5, 6))
	pick := func(s []string) string { return s[r.IntN(len(s))] }
	edits := []func([]byte) []byte{
		func(b []byte) []byte { return b },
		func(b []byte) []byte { // a space somewhere
			i := r.IntN(len(b) + 1)
			return append(b[:i:i], append([]byte(" "), b[i:]...)...)
		},
		func(b []byte) []byte { // a byte changed
			c := append([]byte{}, b...)
			c[r.IntN(len(c))] = "{}[]\":,0123456789-+.eE\\ax\x00\xff"[r.IntN(26)]
			return c
		},
		func(b []byte) []byte { return b[:r.IntN(len(b))] }, // cut
		func(b []byte) []byte { return bytes.Replace(b, []byte(`"mode":`), []byte(`"mode":0`), 1) },
		func(b []byte) []byte { return bytes.Replace(b, []byte(`,"mode":`), []byte(`,"size":0,"mode":`), 1) },
		func(b []byte) []byte { return bytes.Replace(b, []byte(`}`), []byte(`,"name":"x"}`), 1) },
		func(b []byte) []byte { return bytes.Replace(b, []byte(`}`), []byte(`,"other":1}`), 1) },
		func(b []byte) []byte { return bytes.Replace(b, []byte(`}`), []byte(`}{}`), 1) },
		func(b []byte) []byte { return bytes.Replace(b, []byte(`"type"`), []byte(`"typ\u0065"`), 1) },
		func(b []byte) []byte { return bytes.Replace(b, []byte(`/`), []byte(`\/`), 1) },
		func(b []byte) []byte { return bytes.Replace(b, []byte(`,"size":`), []byte(`,"size":1e3,"x":`), 1) },
	}
	fast := 0
	for i := range 20000 {
		e := Entry{Name: pick(names), Type: pick([]string{TypeFile, TypeDir, "x"}), Mode: nums[r.IntN(len(nums))], Size: nums[r.IntN(len(nums))],
			SHA256: pick([]string{"", hex64}), Link: pick(names), In: pick([]string{"", hex64})}
		line := edits[r.IntN(len(edits))](e.appendLine(nil))
		line = append(line, '\n')
		var got, want Entry
		gotErr := decodeEntry(line, &got)
		wantErr := jsonl.StrictUnmarshal(line, &want)
		assert.Equal(t, gotErr == nil, wantErr == nil, "line %d: %q: %v / %v", i, line, gotErr, wantErr)
		if wantErr == nil {
			assert.DeepEqual(t, got, want)
		}
		var scratch Entry
		if scratch.parseLine(bytes.TrimSuffix(line, []byte("\n"))) {
			fast++
		}
	}
	assert.Assert(t, fast > 1000, "only %d of the lines were decoded by hand", fast)
}
