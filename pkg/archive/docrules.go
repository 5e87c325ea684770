package archive

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// What RethinkDB 2.4 refuses on insert, checked by verify so that a backup
// that verifies also loads: pseudo-types it cannot read, a field named twice,
// and primary keys it refuses. The rules are the server's as it answers (docs/archive-format.md
// lists them); where it accepts more than the rule says, the rule follows it.

// checkFields checks every pseudo-type of data, valid JSON, and that no
// object names a field twice: RethinkDB refuses both on insert.
func checkFields(data []byte) error {
	_, err := walkValue(data, skipSpace(data, 0), true)
	return err
}

var errNotJSON = errors.New("not valid JSON")

// walkValue returns the end of the JSON value at data[i], which validJSON
// has accepted. With check, it checks every object that is a pseudo-type,
// and that no object names a field twice.
func walkValue(data []byte, i int, check bool) (int, error) {
	if i >= len(data) {
		return -1, errNotJSON
	}
	switch data[i] {
	case '{':
		start := i
		i = skipSpace(data, i+1)
		if i < len(data) && data[i] == '}' {
			return i + 1, nil
		}
		isPseudo := false
		// the first members, for checkPseudoFast
		var fields [maxPseudoFields]member
		nf := 0
		var names fieldNames
		for {
			k := skipString(data, i)
			if k < 0 {
				return -1, errNotJSON
			}
			key := data[i:k]
			if check {
				if !isPseudo && isReqlTypeKey(key) {
					isPseudo = true
				}
				if err := names.add(key); err != nil {
					return -1, err
				}
			}
			i = skipSpace(data, k)
			if i >= len(data) || data[i] != ':' {
				return -1, errNotJSON
			}
			v := skipSpace(data, i+1)
			var err error
			if i, err = walkValue(data, v, check); err != nil {
				return -1, err
			}
			if check && nf < len(fields) {
				fields[nf] = member{key, data[v:i]}
			}
			nf++
			i = skipSpace(data, i)
			if i < len(data) && data[i] == ',' {
				i = skipSpace(data, i+1)
				continue
			}
			if i >= len(data) || data[i] != '}' {
				return -1, errNotJSON
			}
			i++
			break
		}
		if isPseudo && (nf > len(fields) || !checkPseudoFast(fields[:nf])) {
			if err := checkPseudo(data[start:i]); err != nil {
				return -1, err
			}
		}
		return i, nil
	case '[':
		i = skipSpace(data, i+1)
		if i < len(data) && data[i] == ']' {
			return i + 1, nil
		}
		for {
			var err error
			if i, err = walkValue(data, i, check); err != nil {
				return -1, err
			}
			i = skipSpace(data, i)
			if i < len(data) && data[i] == ',' {
				i = skipSpace(data, i+1)
				continue
			}
			if i >= len(data) || data[i] != ']' {
				return -1, errNotJSON
			}
			return i + 1, nil
		}
	case '"':
		if i = skipString(data, i); i < 0 {
			return -1, errNotJSON
		}
		return i, nil
	case 't', 'n':
		return i + 4, nil
	case 'f':
		return i + 5, nil
	default:
		if i = skipNumber(data, i); i < 0 {
			return -1, errNotJSON
		}
		return i, nil
	}
}

const reqlTypeField = "$reql_type$"

// fieldNames are the names of an object's fields so far: the first few in
// an array, compared one by one, the rest in a map.
type fieldNames struct {
	few  [8][]byte
	n    int
	many map[string]bool
}

// add adds a quoted name, or says it is there already.
func (f *fieldNames) add(quoted []byte) error {
	name := quoted[1 : len(quoted)-1]
	if bytes.IndexByte(name, '\\') >= 0 {
		var s string
		if json.Unmarshal(quoted, &s) != nil {
			return errNotJSON
		}
		name = []byte(s)
	}
	for _, n := range f.few[:min(f.n, len(f.few))] {
		if bytes.Equal(n, name) {
			return fmt.Errorf("field %q appears twice in one object, which RethinkDB refuses", shorten(string(name)))
		}
	}
	if f.n < len(f.few) {
		f.few[f.n] = name
		f.n++
		return nil
	}
	if f.many == nil {
		f.many = map[string]bool{}
	}
	if f.many[string(name)] {
		return fmt.Errorf("field %q appears twice in one object, which RethinkDB refuses", shorten(string(name)))
	}
	f.many[string(name)] = true
	return nil
}

// member is an object's field: its quoted name and raw value.
type member struct{ key, val []byte }

// maxPseudoFields is the most fields a pseudo-type has: GEOMETRY's three.
const maxPseudoFields = 3

// checkPseudoFast accepts the fields of a well-formed TIME or BINARY
// pseudo-type written plainly, as RethinkDB writes them, without decoding
// them; false means checkPseudo decides.
func checkPseudoFast(fields []member) bool {
	var typ, epoch, tz, data []byte
	for _, f := range fields {
		var dst *[]byte
		switch string(f.key) {
		case `"` + reqlTypeField + `"`:
			dst = &typ
		case `"epoch_time"`:
			dst = &epoch
		case `"timezone"`:
			dst = &tz
		case `"data"`:
			dst = &data
		default:
			return false
		}
		if *dst != nil {
			return false // a field twice
		}
		*dst = f.val
	}
	switch string(typ) {
	case `"TIME"`:
		return len(fields) == 3 && epoch != nil && tz != nil && (epoch[0] == '-' || '0' <= epoch[0] && epoch[0] <= '9') &&
			unescaped(tz) && validTimezone(tz[1:len(tz)-1])
	case `"BINARY"`:
		return len(fields) == 2 && data != nil && unescaped(data) && lenientBase64(data[1:len(data)-1])
	}
	return false
}

// unescaped reports whether raw is a JSON string without escapes.
func unescaped(raw []byte) bool {
	return len(raw) >= 2 && raw[0] == '"' && bytes.IndexByte(raw, '\\') < 0
}

// isReqlTypeKey reports whether a quoted key is "$reql_type$", escaped or not.
func isReqlTypeKey(quoted []byte) bool {
	if string(quoted) == `"`+reqlTypeField+`"` {
		return true
	}
	if bytes.IndexByte(quoted, '\\') < 0 {
		return false
	}
	var s string
	return json.Unmarshal(quoted, &s) == nil && s == reqlTypeField
}

// checkPseudo checks one object that has a $reql_type$ field, as RethinkDB
// reads it on insert.
func checkPseudo(obj []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(obj, &m); err != nil {
		return errNotJSON
	}
	var typ string
	if json.Unmarshal(m[reqlTypeField], &typ) != nil {
		return fmt.Errorf("a pseudo-type's %s is not a string: RethinkDB refuses it", reqlTypeField)
	}
	only := func(fields ...string) error {
		for k := range m {
			if k != reqlTypeField && !contains(fields, k) {
				return fmt.Errorf("malformed %s pseudo-type: unrecognized field %q, which RethinkDB refuses", typ, k)
			}
		}
		for _, f := range fields {
			if _, ok := m[f]; !ok {
				return fmt.Errorf("malformed %s pseudo-type: no field %q, which RethinkDB requires", typ, f)
			}
		}
		return nil
	}
	switch typ {
	case "TIME":
		if err := only("epoch_time", "timezone"); err != nil {
			return err
		}
		var epoch float64
		if e := bytes.TrimSpace(m["epoch_time"]); len(e) == 0 || e[0] != '-' && (e[0] < '0' || e[0] > '9') || json.Unmarshal(e, &epoch) != nil {
			return fmt.Errorf("malformed TIME pseudo-type: epoch_time %s is not a number", shortJSON(m["epoch_time"]))
		}
		var tz string
		if json.Unmarshal(m["timezone"], &tz) != nil || !validTimezone(tz) {
			return fmt.Errorf("malformed TIME pseudo-type: timezone %s is not one RethinkDB reads (such as \"+00:00\")", shortJSON(m["timezone"]))
		}
	case "BINARY":
		if err := only("data"); err != nil {
			return err
		}
		var data string
		if json.Unmarshal(m["data"], &data) != nil || !lenientBase64(data) {
			return errors.New("malformed BINARY pseudo-type: its data is not a base64 string")
		}
	case "GEOMETRY":
		if err := only("type", "coordinates"); err != nil {
			return err
		}
		var gt string
		if json.Unmarshal(m["type"], &gt) != nil {
			return errors.New("malformed GEOMETRY pseudo-type: its type is not a string")
		}
		var coords []json.RawMessage
		if json.Unmarshal(m["coordinates"], &coords) != nil {
			return errors.New("malformed GEOMETRY pseudo-type: its coordinates are not an array")
		}
	default:
		return fmt.Errorf("unknown pseudo-type %s %q: RethinkDB reads TIME, BINARY and GEOMETRY", reqlTypeField, shorten(typ))
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func shortJSON(raw json.RawMessage) string {
	if raw == nil {
		return "(none)"
	}
	s := string(raw)
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return s
}

// validTimezone is what RethinkDB 2.4 takes as a TIME's timezone: "Z", or
// ±HH, ±HHMM or ±HH:MM with hours up to 24 and minutes below 60, and not a
// negative zero.
func validTimezone[T string | []byte](tz T) bool {
	if len(tz) == 1 && tz[0] == 'Z' {
		return true
	}
	if len(tz) < 3 || (tz[0] != '+' && tz[0] != '-') {
		return false
	}
	var d [4]byte
	n := 0
	switch len(tz) {
	case 3, 5:
		for i := 1; i < len(tz); i++ {
			d[n] = tz[i]
			n++
		}
	case 6:
		if tz[3] != ':' {
			return false
		}
		d, n = [4]byte{tz[1], tz[2], tz[4], tz[5]}, 4
	default:
		return false
	}
	zero := true
	for _, c := range d[:n] {
		if c < '0' || c > '9' {
			return false
		}
		zero = zero && c == '0'
	}
	if d[0] > '2' || d[0] == '2' && d[1] > '4' || n == 4 && d[2] >= '6' {
		return false
	}
	return tz[0] == '+' || !zero
}

// lenientBase64 is what RethinkDB's decoder takes: the base64 alphabet,
// white space anywhere, padding optional.
func lenientBase64[T string | []byte](s T) bool {
	end := len(s)
	for end > 0 && (s[end-1] == ' ' || s[end-1] == '\t' || s[end-1] == '\r' || s[end-1] == '\n') {
		end--
	}
	for end > 0 && s[end-1] == '=' {
		end--
	}
	for i := 0; i < end; i++ {
		if base64Class[s[i]] == 0 {
			return false
		}
	}
	return true
}

// base64Class marks the base64 alphabet and white space.
var base64Class = func() (t [256]uint8) {
	for _, c := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/ \t\r\n" {
		t[c] = 1
	}
	return t
}()

// topField returns the raw value of the top-level field name of the JSON
// object data, which validJSON has accepted: the first, where the name
// appears more than once.
func topField(data []byte, name string) ([]byte, bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil, false
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return nil, false
	}
	for {
		k := skipString(data, i)
		if k < 0 {
			return nil, false
		}
		match := keyIs(data[i:k], name)
		i = skipSpace(data, k)
		if i >= len(data) || data[i] != ':' {
			return nil, false
		}
		v := skipSpace(data, i+1)
		end, err := walkValue(data, v, false)
		if err != nil {
			return nil, false
		}
		if match {
			return data[v:end], true
		}
		i = skipSpace(data, end)
		if i >= len(data) || data[i] != ',' {
			return nil, false
		}
		i = skipSpace(data, i+1)
	}
}

// keyIs reports whether a quoted key is name.
func keyIs(quoted []byte, name string) bool {
	if len(quoted) == len(name)+2 && string(quoted[1:len(quoted)-1]) == name {
		return true
	}
	if bytes.IndexByte(quoted, '\\') < 0 {
		return false
	}
	var s string
	return json.Unmarshal(quoted, &s) == nil && s == name
}

// maxKeyBytes is RethinkDB's limit of a string primary key.
const maxKeyBytes = 127

// primaryKeyBytes returns raw, a primary key's JSON value, in a form
// where two keys RethinkDB takes as one are equal, appended to buf; or why
// RethinkDB refuses it as a primary key.
func primaryKeyBytes(buf, raw []byte) ([]byte, error) {
	if len(raw) == 0 {
		return nil, errNotJSON
	}
	switch c := raw[0]; {
	case c == '"':
		s := raw[1 : len(raw)-1]
		if bytes.IndexByte(s, '\\') >= 0 {
			var str string
			if json.Unmarshal(raw, &str) != nil {
				return nil, errNotJSON
			}
			s = []byte(str)
		}
		if len(s) > maxKeyBytes {
			return nil, fmt.Errorf("is %d bytes, over RethinkDB's primary key limit of %d", len(s), maxKeyBytes)
		}
		if bytes.IndexByte(s, 0) >= 0 {
			return nil, errors.New("holds a NUL byte, which RethinkDB refuses in a primary key")
		}
		return append(append(buf, 'S'), s...), nil
	case c == 't':
		return append(buf, 'B', 1), nil
	case c == 'f':
		return append(buf, 'B', 0), nil
	case c == 'n':
		return nil, errors.New("is null, which RethinkDB refuses as a primary key")
	case c == '[', c == '{':
		var v any
		if json.Unmarshal(raw, &v) != nil {
			return nil, errNotJSON
		}
		if m, ok := v.(map[string]any); ok {
			if _, pseudo := m[reqlTypeField]; !pseudo {
				return nil, errors.New("is an object, which RethinkDB refuses as a primary key")
			}
		}
		if n, known := keyLength(v); known && n > maxKeyBytes+1 {
			return nil, fmt.Errorf("is an array RethinkDB stores as a key of %d bytes, over its primary key limit of %d", n, maxKeyBytes+1)
		}
		canon, err := json.Marshal(canonicalKey(v))
		if err != nil {
			return nil, err
		}
		return append(append(buf, 'A'), canon...), nil
	default:
		f, err := strconv.ParseFloat(string(raw), 64)
		if err != nil || math.IsInf(f, 0) {
			return nil, errors.New("is a number out of range")
		}
		if f == 0 {
			f = 0 // -0 is 0
		}
		return binary.BigEndian.AppendUint64(append(buf, 'N'), math.Float64bits(f)), nil
	}
}

// keyLength is the length of the key RethinkDB makes of an array of
// strings and arrays of strings: "S" and a string's bytes, "A" and each
// element's key followed by a NUL (found against the real server). Of
// other elements it does not know the length.
func keyLength(v any) (int, bool) {
	switch t := v.(type) {
	case string:
		return 1 + len(t), true
	case []any:
		n := 1
		for _, e := range t {
			l, ok := keyLength(e)
			if !ok {
				return 0, false
			}
			n += l + 1
		}
		return n, true
	}
	return 0, false
}

// canonicalKey makes values RethinkDB compares as equal equal: a TIME is
// its instant, whatever its timezone; numbers are float64 already.
func canonicalKey(v any) any {
	switch t := v.(type) {
	case []any:
		for i := range t {
			t[i] = canonicalKey(t[i])
		}
	case map[string]any:
		if t[reqlTypeField] == "TIME" {
			return map[string]any{reqlTypeField: "TIME", "epoch_time": t["epoch_time"]}
		}
		if t[reqlTypeField] == "BINARY" {
			if s, ok := t["data"].(string); ok {
				if b, err := base64.StdEncoding.DecodeString(strings.TrimRight(s, "=") + strings.Repeat("=", (4-len(strings.TrimRight(s, "="))%4)%4)); err == nil {
					return map[string]any{reqlTypeField: "BINARY", "bytes": b}
				}
			}
		}
		for k := range t {
			t[k] = canonicalKey(t[k])
		}
	}
	return v
}

// PrimaryKeyJSON returns the raw JSON value of the field pk of doc, a
// document Verify has accepted.
func PrimaryKeyJSON(doc []byte, pk string) ([]byte, bool) { return topField(doc, pk) }
