package agent

import (
	"bytes"
	"encoding/json"
	"strconv"

	"github.com/docker-dtr/docker-dtr/pkg/jsonl"
)

// A listing line is a ListEntry as encoding/json writes it. A registry's
// listing is hundreds of thousands of lines, which encoding/json's
// reflection made the plugin's largest cost while it listed; the usual
// line (a plain name, no storage) is written and read by hand below, byte
// for byte as encoding/json would, and any other goes through it.

// AppendListEntry appends e's line, its newline included.
func AppendListEntry(b []byte, e ListEntry) []byte {
	if e.Storage != nil || !jsonl.Plain(e.Name) || !jsonl.Plain(e.Type) {
		line, err := json.Marshal(e)
		if err != nil {
			panic(err) // a ListEntry always encodes
		}
		return append(append(b, line...), '\n')
	}
	b = append(b, `{"name":"`...)
	b = append(b, e.Name...)
	b = append(b, `","type":"`...)
	b = append(b, e.Type...)
	b = append(b, '"')
	for _, f := range []struct {
		key string
		n   int64
	}{{`,"size":`, e.Size}, {`,"mtime":`, e.MTime}, {`,"mode":`, e.Mode}} {
		if f.n != 0 {
			b = strconv.AppendInt(append(b, f.key...), f.n, 10)
		}
	}
	return append(b, "}\n"...)
}

// ParseListEntry reads a line of the listing, its newline included or
// not, as json.Unmarshal reads it into a ListEntry.
func ParseListEntry(line []byte) (ListEntry, error) {
	if e, ok := parsePlain(line); ok {
		return e, nil
	}
	var e ListEntry
	err := json.Unmarshal(line, &e)
	return e, err
}

// parsePlain reads a line that AppendListEntry wrote by hand; false for
// any other, which json.Unmarshal then reads.
func parsePlain(line []byte) (ListEntry, bool) {
	var e ListEntry
	rest, ok := bytes.CutPrefix(bytes.TrimSuffix(line, []byte("\n")), []byte(`{"name":"`))
	if !ok {
		return e, false
	}
	name, rest, ok := jsonl.CutString(rest)
	if !ok {
		return e, false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"type":"`)); !ok {
		return e, false
	}
	typ, rest, ok := jsonl.CutString(rest)
	if !ok {
		return e, false
	}
	for _, f := range []struct {
		key string
		n   *int64
	}{{`,"size":`, &e.Size}, {`,"mtime":`, &e.MTime}, {`,"mode":`, &e.Mode}} {
		if after, found := bytes.CutPrefix(rest, []byte(f.key)); found {
			if *f.n, rest, ok = jsonl.CutInt(after); !ok || *f.n == 0 {
				return e, false // a 0 is never written: not this writer's line
			}
		}
	}
	if string(rest) != "}" {
		return e, false
	}
	e.Name, e.Type = string(name), string(typ)
	return e, true
}
