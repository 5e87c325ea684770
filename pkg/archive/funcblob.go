package archive

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
)

// An index function or write hook is kept as the BINARY that RethinkDB's
// index_status() and get_write_hook() return, and index_create and
// set_write_hook take it back only if it deserializes. Its layout, as
// RethinkDB 2.4 writes it (rdb_protocol/terms/sindex.cc, write_hook.cc,
// func.cc):
//
//	prefix                 "$reql_index_function$" or "$reql_write_hook_function$"
//	versions               4 bytes, index functions only (cluster and ReQL versions)
//	wire_func_t:
//	  type                 1 byte, 0 for a ReQL function (a JS one is not deterministic)
//	  captured scope       varint count of variables, then 4 bytes of implicit depth
//	  argument names       varint count, then that many 8-byte variable ids
//	  body                 4-byte length, then the term as JSON (checkTerm), NUL-terminated
//	  backtrace            4 bytes
//
// checkFunctionBlob checks it that far: what index_create or set_write_hook
// would fail to read is a verify problem, not a failed restore.
const (
	indexBlobPrefix = "$reql_index_function$"
	hookBlobPrefix  = "$reql_write_hook_function$"
)

// checkFunctionBlob checks raw, a BINARY pseudo-type, as an index function
// (index) or a write hook.
func checkFunctionBlob(raw json.RawMessage, index bool) error {
	var v struct {
		Type string `json:"$reql_type$"`
		Data string `json:"data"`
	}
	if json.Unmarshal(raw, &v) != nil || v.Type != "BINARY" {
		return errors.New("not a BINARY pseudo-type")
	}
	b, err := base64.StdEncoding.DecodeString(v.Data)
	if err != nil {
		return errors.New("its data is not valid base64")
	}
	prefix, what := hookBlobPrefix, "get_write_hook()"
	if index {
		prefix, what = indexBlobPrefix, "index_status()"
	}
	rest, ok := cutPrefix(b, prefix)
	if !ok {
		return fmt.Errorf("it does not start with %q, as the function %s returns does", prefix, what)
	}
	if index {
		if len(rest) < 4 {
			return errors.New("cut short in its version header")
		}
		rest = rest[4:]
	}
	if err := checkWireFunc(rest); err != nil {
		return fmt.Errorf("it is not a ReQL function RethinkDB can read: %v", err)
	}
	return nil
}

func cutPrefix(b []byte, p string) ([]byte, bool) {
	if len(b) < len(p) || string(b[:len(p)]) != p {
		return nil, false
	}
	return b[len(p):], true
}

// maxFuncArgs bounds a function's arguments: a write hook has three, an
// index function one.
const maxFuncArgs = 16

func checkWireFunc(b []byte) error {
	if len(b) < 1 || b[0] != 0 {
		return errors.New("not a ReQL function")
	}
	b = b[1:]
	scope, n := binary.Uvarint(b)
	if n <= 0 {
		return errors.New("cut short in its scope")
	}
	if scope != 0 {
		// A captured variable is a serialized datum, which is not followed
		// further here: a top-level function from a driver captures none.
		return nil
	}
	b = b[n:]
	if len(b) < 4 {
		return errors.New("cut short in its scope")
	}
	b = b[4:]
	args, n := binary.Uvarint(b)
	if n <= 0 || args > maxFuncArgs || uint64(len(b)-n) < args*8 {
		return errors.New("invalid argument list")
	}
	b = b[n+int(args)*8:]
	if len(b) < 4 {
		return errors.New("cut short before its body")
	}
	size := binary.LittleEndian.Uint32(b)
	b = b[4:]
	if size == 0 || uint64(size) > uint64(len(b)) || b[size-1] != 0 {
		return errors.New("its body's length does not match")
	}
	if err := checkTermJSON(b[:size-1]); err != nil {
		return fmt.Errorf("its body is not a ReQL term: %v", err)
	}
	if len(b)-int(size) < 4 {
		return errors.New("cut short in its backtrace")
	}
	return nil
}

// checkTermJSON checks a term as RethinkDB stores it: [type, args,
// backtrace] or [type, args, optargs, backtrace], where type and backtrace
// are integers, a DATUM's (type 1) args is its value, a MAKE_OBJ's (3) an
// object of terms, any other's an array of terms, and optargs an object of
// terms.
func checkTermJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return errors.New("not JSON")
	}
	return checkTerm(v)
}

const (
	termDatum   = 1
	termMakeObj = 3
)

func checkTerm(v any) error {
	t, ok := v.([]any)
	if !ok || len(t) < 3 || len(t) > 4 {
		return errors.New("a term is [type, args, backtrace] or [type, args, optargs, backtrace]")
	}
	typ, ok := t[0].(float64)
	if !ok || typ != float64(int64(typ)) || typ < 1 {
		return errors.New("a term's type is a positive integer")
	}
	if bt, ok := t[len(t)-1].(float64); !ok || bt != float64(int64(bt)) {
		return errors.New("a term's backtrace is an integer")
	}
	if typ == termDatum {
		if len(t) != 3 {
			return errors.New("a datum term is [1, value, backtrace]")
		}
		return nil
	}
	switch args := t[1].(type) {
	case []any:
		for _, a := range args {
			if err := checkTerm(a); err != nil {
				return err
			}
		}
	case map[string]any: // MAKE_OBJ's fields
		if typ != termMakeObj {
			return errors.New("a term's arguments are an array")
		}
		for _, a := range args {
			if err := checkTerm(a); err != nil {
				return err
			}
		}
	default:
		return errors.New("a term's arguments are an array")
	}
	if len(t) == 4 {
		opts, ok := t[2].(map[string]any)
		if !ok {
			return errors.New("a term's options are an object")
		}
		for _, o := range opts {
			if err := checkTerm(o); err != nil {
				return err
			}
		}
	}
	return nil
}
