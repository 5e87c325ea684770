package dtrgen

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/docker-dtr/docker-dtr/internal/dtrtest"
	"github.com/docker-dtr/docker-dtr/internal/rethinkserver"
	"gotest.tools/v3/assert"
)

func digestAll(t *testing.T, opts Options) (string, map[string]int, map[string]int) {
	t.Helper()
	h := sha256.New()
	rows, bytes := map[string]int{}, map[string]int{}
	keys := map[string]bool{}
	err := Documents(opts, func(tb Table, doc []byte) error {
		var m map[string]any
		if err := json.Unmarshal(doc, &m); err != nil {
			return fmt.Errorf("%s: %v: %s", tb.Name, err, doc)
		}
		pk, ok := m[tb.PrimaryKey].(string)
		if !ok || pk == "" {
			return fmt.Errorf("%s: no primary key %s in %s", tb.Name, tb.PrimaryKey, doc)
		}
		k := tb.DB + "." + tb.Name + "/" + pk
		if keys[k] {
			return fmt.Errorf("%s: duplicate key %q", tb.Name, pk)
		}
		keys[k] = true
		fmt.Fprintf(h, "%s.%s\n%s\n", tb.DB, tb.Name, doc)
		rows[tb.Name]++
		bytes[tb.Name] += len(doc)
		return nil
	})
	assert.NilError(t, err)
	return fmt.Sprintf("%x", h.Sum(nil)), rows, bytes
}

func TestDocumentsDeterministic(t *testing.T) {
	a, rows, bytes := digestAll(t, Options{Rows: 5000, Seed: 1})
	b, _, _ := digestAll(t, Options{Rows: 5000, Seed: 1})
	c, _, _ := digestAll(t, Options{Rows: 5000, Seed: 2})
	assert.Equal(t, a, b, "same seed, different documents")
	assert.Assert(t, a != c, "different seeds, same documents")

	total := 0
	for _, n := range rows {
		total += n
	}
	assert.Equal(t, total, 5000)
	// The shape of a real DTR: events and the scanning tables hold most of
	// the rows, scan results are large, configuration is small.
	assert.Assert(t, rows["events"] > rows["tags"] && rows["events"] > rows["scanned_layers"], "%v", rows)
	assert.Assert(t, rows["scanned_layers"]+rows["scanned_images"] > rows["tags"], "%v", rows)
	for _, small := range []string{"properties", "crons", "changefeed", "tuf_files", "private_keys"} {
		assert.Assert(t, rows[small] < rows["repositories"], "%s: %v", small, rows)
	}
	for _, scan := range []string{"scanned_layers", "scanned_images"} {
		avg := bytes[scan] / rows[scan]
		assert.Assert(t, avg > 1500 && avg < 16<<10, "%s: %d bytes a document", scan, avg)
		assert.Assert(t, avg > 3*bytes["events"]/rows["events"], "%s: %d bytes a document", scan, avg)
	}
	t.Logf("rows %v", rows)
	t.Logf("bytes %v", bytes)
}

func TestPlan(t *testing.T) {
	for _, n := range []int{1, 100, 1000, 12345, DefaultRows} {
		sum := 0
		for _, tb := range Plan(n) {
			assert.Assert(t, tb.Rows >= 1, "%d rows: %s has %d", n, tb.Name, tb.Rows)
			sum += tb.Rows
		}
		if n >= 100 {
			assert.Equal(t, sum, n)
		}
	}
}

func TestGenerate(t *testing.T) {
	srv := rethinkserver.Start(t, rethinkserver.Options{})
	co := srv.ConnectOpts()
	co.MaxOpen = 5
	s := dtrtest.Connect(t, co)
	opts := Options{Rows: 3000, Seed: 7, BatchRows: 100}
	st, err := Generate(context.Background(), s, opts)
	assert.NilError(t, err)
	assert.Equal(t, st.Rows, int64(3000))

	snap := dtrtest.Snapshot(t, s)
	assert.Equal(t, len(snap), len(dtrtest.Tables))
	for _, tb := range dtrtest.Tables {
		ts, ok := snap[tb.DB+"."+tb.Table]
		assert.Assert(t, ok, "missing %s.%s", tb.DB, tb.Table)
		assert.Equal(t, ts.PrimaryKey, tb.PrimaryKey)
	}
	for _, tb := range st.Tables {
		assert.Equal(t, len(snap[tb.DB+"."+tb.Name].Docs), tb.Rows, tb.Name)
	}
	indexes := func(name string) int { return len(snap[name].Indexes) }
	assert.Equal(t, indexes("dtr2.tags"), 2)
	assert.Equal(t, indexes("dtr2.repositories"), 1)
	assert.Equal(t, indexes("dtr2.events"), 1)
	assert.Equal(t, indexes("notaryserver.tuf_files"), 1)
	assert.Assert(t, snap["dtr2.tags"].WriteHook != nil)

	// What the server holds is what Documents makes: TIME and BINARY
	// pseudo-types stored as such.
	want := map[string]any{}
	assert.NilError(t, Documents(opts, func(tb Table, doc []byte) error {
		if tb.Name != "tuf_files" && tb.Name != "events" {
			return nil
		}
		var m map[string]any
		if err := json.Unmarshal(doc, &m); err != nil {
			return err
		}
		want[tb.DB+"."+tb.Name+"/"+m[tb.PrimaryKey].(string)] = m
		return nil
	}))
	for k, w := range want {
		var table, pk string
		for i := range k {
			if k[i] == '/' {
				table, pk = k[:i], k[i+1:]
				break
			}
		}
		got := unwrapBinary(snap[table].Docs[pk])
		gb, _ := json.Marshal(got)
		wb, _ := json.Marshal(w)
		assert.Equal(t, string(gb), string(wb), k)
	}
}

// unwrapBinary removes the line breaks the real server puts in the base64
// of every BINARY it returns (MIME style, every 76 characters): the same
// bytes as the unbroken base64 Documents writes.
func unwrapBinary(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = unwrapBinary(e)
		}
		if out["$reql_type$"] == "BINARY" {
			if data, ok := out["data"].(string); ok {
				out["data"] = strings.ReplaceAll(data, "\r\n", "")
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = unwrapBinary(e)
		}
		return out
	}
	return v
}
