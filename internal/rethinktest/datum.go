package rethinktest

import (
	"encoding/base64"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Datums are plain Go values: nil, bool, float64, string, []any, map[string]any,
// plus the two pseudo-types below. Stored documents are never mutated in place;
// writes replace the whole map, so cursors can hand out stored values safely.

// Time is RethinkDB's TIME pseudo-type.
type Time struct {
	Epoch float64
	TZ    string // "+HH:MM" / "-HH:MM"
}

// Binary is RethinkDB's BINARY pseudo-type.
type Binary []byte

var tzRe = regexp.MustCompile(`^[+-]([01][0-9]|2[0-3]):[0-5][0-9]$`)

// normTZ validates a timezone the way pseudo_time does and canonicalises the
// UTC spellings to "+00:00".
func normTZ(tz string) (string, error) {
	switch tz {
	case "Z", "-00:00", "+00:00", "-00", "+00":
		return "+00:00", nil
	}
	if len(tz) == 3 && (tz[0] == '+' || tz[0] == '-') {
		tz += ":00"
	} else if len(tz) == 5 && (tz[0] == '+' || tz[0] == '-') && !strings.Contains(tz, ":") {
		tz = tz[:3] + ":" + tz[3:]
	}
	if !tzRe.MatchString(tz) {
		return "", logicErr("Timezone `%s` does not match the regular expression `^([+-](0\\d|1[0-4]):?[0-5]\\d)|Z$`.", tz)
	}
	return tz, nil
}

// roundMillis mirrors RethinkDB keeping times at millisecond precision.
func roundMillis(f float64) float64 { return math.Round(f*1000) / 1000 }

// datumFromJSON converts a decoded JSON literal (from a DATUM term or a stored
// value) into a datum, turning $reql_type$ objects into real pseudo-types.
func datumFromJSON(v any) (any, error) {
	switch x := v.(type) {
	case nil, bool, string:
		return x, nil
	case float64:
		return x, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			d, err := datumFromJSON(e)
			if err != nil {
				return nil, err
			}
			out[i] = d
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			d, err := datumFromJSON(e)
			if err != nil {
				return nil, err
			}
			out[k] = d
		}
		return sanitizePtype(out)
	}
	return v, nil
}

// sanitizePtype validates an object carrying $reql_type$ and converts it.
func sanitizePtype(obj map[string]any) (any, error) {
	rt, ok := obj["$reql_type$"]
	if !ok {
		return obj, nil
	}
	s, ok := rt.(string)
	if !ok {
		return nil, logicErr("Expected type STRING but found %s.", typeName(rt))
	}
	switch s {
	case "TIME":
		for k := range obj {
			if k != "$reql_type$" && k != "epoch_time" && k != "timezone" {
				return nil, logicErr("Unrecognized field `%s` in TIME pseudotype:\n%s", k, pretty(obj))
			}
		}
		e, ok := obj["epoch_time"]
		if !ok {
			return nil, logicErr("Invalid time object constructed (no field `epoch_time`):\n%s", pretty(obj))
		}
		tzv, ok := obj["timezone"]
		if !ok {
			return nil, logicErr("Invalid time object constructed (no field `timezone`):\n%s", pretty(obj))
		}
		ef, ok := e.(float64)
		if !ok {
			return nil, logicErr("Expected type NUMBER but found %s.", typeName(e))
		}
		tzs, ok := tzv.(string)
		if !ok {
			return nil, logicErr("Expected type STRING but found %s.", typeName(tzv))
		}
		tz, err := normTZ(tzs)
		if err != nil {
			return nil, err
		}
		return Time{Epoch: roundMillis(ef), TZ: tz}, nil
	case "BINARY":
		for k := range obj {
			if k != "$reql_type$" && k != "data" {
				return nil, logicErr("Invalid binary pseudotype: illegal `%s` field.", k)
			}
		}
		d, ok := obj["data"]
		if !ok {
			return nil, logicErr("Invalid binary pseudotype: lacking `data` key.")
		}
		ds, ok := d.(string)
		if !ok {
			return nil, logicErr("Expected type STRING but found %s.", typeName(d))
		}
		b, err := decodeBase64(ds)
		if err != nil {
			return nil, err
		}
		return Binary(b), nil
	case "GEOMETRY":
		return nil, logicErr("rethinktest: GEOMETRY pseudotype is not supported.")
	}
	return nil, logicErr("Unknown $reql_type$ `%s`.", s)
}

func decodeBase64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		if r == ' ' || r == '\n' || r == '\r' || r == '\t' {
			return -1
		}
		return r
	}, s)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		if b2, err2 := base64.RawStdEncoding.DecodeString(s); err2 == nil {
			return b2, nil
		}
		return nil, logicErr("Invalid base64 format, data found after padding character '='.")
	}
	return b, nil
}

// typeName is the name RethinkDB uses in type errors.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "NULL"
	case bool:
		return "BOOL"
	case float64:
		return "NUMBER"
	case string:
		return "STRING"
	case []any:
		return "ARRAY"
	case map[string]any:
		return "OBJECT"
	case Time:
		return "PTYPE<TIME>"
	case Binary:
		return "PTYPE<BINARY>"
	case *dbVal:
		return "DATABASE"
	case *tableVal:
		return "TABLE"
	case *singleSel:
		return "SELECTION<OBJECT>"
	case *streamVal:
		if v.(*streamVal).tbl != nil {
			return "SELECTION<STREAM>"
		}
		return "STREAM"
	case *funcVal:
		return "FUNCTION"
	}
	return "DATUM"
}

// appendJSON writes a datum as JSON; pseudo-types become $reql_type$ objects and
// object keys are sorted, as RethinkDB emits them.
func appendJSON(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...)
	case bool:
		if x {
			return append(b, "true"...)
		}
		return append(b, "false"...)
	case float64:
		return appendNum(b, x)
	case string:
		return appendString(b, x)
	case []any:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSON(b, e)
		}
		return append(b, ']')
	case map[string]any:
		keys := sortedKeys(x)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendJSON(b, x[k])
		}
		return append(b, '}')
	case Time:
		b = append(b, `{"$reql_type$":"TIME","epoch_time":`...)
		b = appendNum(b, x.Epoch)
		b = append(b, `,"timezone":`...)
		b = appendString(b, x.TZ)
		return append(b, '}')
	case Binary:
		b = append(b, `{"$reql_type$":"BINARY","data":"`...)
		b = base64.StdEncoding.AppendEncode(b, x)
		return append(b, `"}`...)
	}
	return append(b, "null"...)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func appendNum(b []byte, f float64) []byte {
	if a := math.Abs(f); a < 1e21 && (a >= 1e-6 || a == 0) {
		return strconv.AppendFloat(b, f, 'f', -1, 64)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}

const hexDigits = "0123456789abcdef"

func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// pretty prints a datum the way RethinkDB embeds datums in error messages
// (cJSON style: tab indentation, "key":<TAB>value).
func pretty(v any) string { return string(appendPretty(nil, v, 0)) }

func appendPretty(b []byte, v any, depth int) []byte {
	switch x := v.(type) {
	case []any:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = appendPretty(b, e, depth)
		}
		return append(b, ']')
	case map[string]any:
		b = append(b, "{\n"...)
		keys := sortedKeys(x)
		for i, k := range keys {
			b = append(b, strings.Repeat("\t", depth+1)...)
			b = appendString(b, k)
			b = append(b, ":\t"...)
			b = appendPretty(b, x[k], depth+1)
			if i < len(keys)-1 {
				b = append(b, ',')
			}
			b = append(b, '\n')
		}
		b = append(b, strings.Repeat("\t", depth)...)
		return append(b, '}')
	case Time:
		return appendPretty(b, map[string]any{"$reql_type$": "TIME", "epoch_time": x.Epoch, "timezone": x.TZ}, depth)
	case Binary:
		return appendPretty(b, map[string]any{"$reql_type$": "BINARY", "data": base64.StdEncoding.EncodeToString(x)}, depth)
	}
	return appendJSON(b, v)
}

// typeRank is ReQL's ordering between types: arrays, booleans, null, numbers,
// objects, binary, times, strings.
func typeRank(v any) int {
	switch v.(type) {
	case []any:
		return 0
	case bool:
		return 1
	case nil:
		return 2
	case float64:
		return 3
	case map[string]any:
		return 4
	case Binary:
		return 5
	case Time:
		return 7
	case string:
		return 8
	}
	return 9
}

// compareDatum orders two datums as ReQL does (strings by UTF-8 bytes).
func compareDatum(a, b any) int {
	ra, rb := typeRank(a), typeRank(b)
	if ra != rb {
		return cmpInt(ra, rb)
	}
	switch x := a.(type) {
	case []any:
		y := b.([]any)
		for i := 0; i < len(x) && i < len(y); i++ {
			if c := compareDatum(x[i], y[i]); c != 0 {
				return c
			}
		}
		return cmpInt(len(x), len(y))
	case bool:
		y := b.(bool)
		if x == y {
			return 0
		}
		if !x {
			return -1
		}
		return 1
	case float64:
		y := b.(float64)
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	case string:
		return strings.Compare(x, b.(string))
	case Binary:
		return strings.Compare(string(x), string(b.(Binary)))
	case Time:
		y := b.(Time)
		switch {
		case x.Epoch < y.Epoch:
			return -1
		case x.Epoch > y.Epoch:
			return 1
		}
		return 0
	case map[string]any:
		y := b.(map[string]any)
		ka, kb := sortedKeys(x), sortedKeys(y)
		for i := 0; i < len(ka) && i < len(kb); i++ {
			if c := strings.Compare(ka[i], kb[i]); c != 0 {
				return c
			}
			if c := compareDatum(x[ka[i]], y[kb[i]]); c != 0 {
				return c
			}
		}
		return cmpInt(len(ka), len(kb))
	}
	return 0
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func equalDatum(a, b any) bool {
	return typeRank(a) == typeRank(b) && compareDatum(a, b) == 0
}

// keyString encodes an index or primary key so that byte order matches ReQL
// order for the types RethinkDB accepts as keys. ok is false for null and
// objects, which cannot be keys.
func keyString(v any) (string, bool) {
	b, ok := appendKey(nil, v)
	return string(b), ok
}

func appendKey(b []byte, v any) ([]byte, bool) {
	switch x := v.(type) {
	case []any:
		b = append(b, 'A')
		for _, e := range x {
			var ok bool
			if b, ok = appendKey(b, e); !ok {
				return nil, false
			}
			b = append(b, 0)
		}
		return b, true
	case bool:
		if x {
			return append(b, 'B', 1), true
		}
		return append(b, 'B', 0), true
	case float64:
		return appendOrderedFloat(append(b, 'N'), x), true
	case Binary:
		return append(append(b, 'P', 'B'), x...), true
	case Time:
		return appendOrderedFloat(append(b, 'P', 'T'), x.Epoch), true
	case string:
		return append(append(b, 'S'), x...), true
	}
	return nil, false
}

func appendOrderedFloat(b []byte, f float64) []byte {
	if f == 0 {
		f = 0 // fold -0 into +0
	}
	bits := math.Float64bits(f)
	if bits>>63 == 1 {
		bits = ^bits
	} else {
		bits |= 1 << 63
	}
	for i := 7; i >= 0; i-- {
		b = append(b, byte(bits>>(8*uint(i))))
	}
	return b
}
