package archive

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/docker-dtr/docker-dtr/internal/tartest"
	"github.com/docker-dtr/docker-dtr/pkg/jsonl"
)

// FuzzValidJSON holds validJSON to json.Valid, which it replaces in verify.
func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{
		`{}`, ` {"a":1} `, `{"a":[1,2,{"b":null}],"c":"\u00e9\n"}`, `[]`, `[1,]`, `{"a":}`, `{"a" 1}`,
		`"\x"`, `"\u12"`, `-0.5e+10`, `01`, `1.`, `1e`, `-`, `true`, `tru`, `nul`, `{"a":1}{}`,
		"\"\xff\xfe\"", "\"a\x01\"", `{"id":"1","payload":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx","n":[1,2,3]}`,
		strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
		strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
		`"abcdefgh\"ijklmnop"`, `"abcdefghijklmnop\\"`, "{\"k\":\"v\"}\t\r\n", "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if got, want := validJSON(data), json.Valid(data); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid says %v", data, got, want)
		}
	})
}

// FuzzEntryLine holds the manifest's fast entry decoder to the strict one:
// wherever it decodes a line, jsonl.StrictUnmarshal decodes the same entry.
func FuzzEntryLine(f *testing.F) {
	for _, s := range []string{
		`{"name":"dtr-backup-v2.9.4/rethink/tags/0","size":381,"sha256":"` + strings.Repeat("ab", 32) + `"}` + "\n",
		`{"name":"dtr-backup-v2.9.4/","size":0,"sha256":"` + strings.Repeat("0", 64) + `"}` + "\n",
		`{"name":"a","size":01,"sha256":"x"}` + "\n",
		`{"name":"a","size":1,"sha256":"x"} ` + "\n",
		`{"name":"a\"b","size":1,"sha256":"x"}` + "\n",
		`{"name":"a","size":-1,"sha256":"x"}` + "\n",
		`{"name":"a","size":999999999999999999,"sha256":"x"}` + "\n",
		`{"name":"a","size":1,"sha256":"x","extra":1}` + "\n",
		`{"name":"a","size":1,"sha256":"x"}{}` + "\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		fast, ok := parseEntryLine(line)
		if !ok {
			return
		}
		var strict Entry
		if err := jsonl.StrictUnmarshal(line, &strict); err != nil {
			t.Fatalf("fast decoder took %q, the strict one refuses it: %v", line, err)
		}
		if fast != strict {
			t.Fatalf("%q: fast %+v, strict %+v", line, fast, strict)
		}
		// Next takes what the fast decoder decodes without further checks.
		if !isHexSHA256(strict.SHA256) || strict.Size < 0 {
			t.Fatalf("fast decoder took %q, which Next refuses", line)
		}
	})
}

// FuzzTarHeader holds the fast ustar header parser to archive/tar: wherever
// it parses a block, archive/tar reads the same name, type and size.
func FuzzTarHeader(f *testing.F) {
	for _, h := range []tar.Header{
		{Name: "dtr-backup-v2.9.4/", Typeflag: tar.TypeDir, Mode: 0o700},
		{Name: "dtr-backup-v2.9.4/rethink/tags/12", Typeflag: tar.TypeReg, Mode: 0o600, Size: 381},
		{Name: strings.Repeat("d/", 60) + "x", Typeflag: tar.TypeReg, Mode: 0o600, Size: 1},
		{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "x"},
	} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		if err := tw.WriteHeader(&h); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes()[:blockSize])
	}
	f.Fuzz(func(t *testing.T, blk []byte) {
		if len(blk) != blockSize {
			if len(blk) > blockSize {
				blk = blk[:blockSize]
			} else {
				blk = append(blk, make([]byte, blockSize-len(blk))...)
			}
		}
		var fast tar.Header
		if fixed := tartest.FixChecksums(blk); fixed != nil {
			blk = fixed
		}
		if !parseUSTAR(blk, &fast) {
			return
		}
		// the header and the end (Next reads no content)
		data := append(bytes.Clone(blk), make([]byte, 2*blockSize)...)
		hdr, err := tar.NewReader(bytes.NewReader(data)).Next()
		if err != nil && err != tar.ErrInsecurePath {
			t.Fatalf("fast parser took a header archive/tar refuses: %v", err)
		}
		if hdr.Name != fast.Name || hdr.Typeflag != fast.Typeflag || hdr.Size != fast.Size || len(hdr.PAXRecords) != 0 {
			t.Fatalf("fast %q %c %d, archive/tar %q %c %d", fast.Name, fast.Typeflag, fast.Size, hdr.Name, hdr.Typeflag, hdr.Size)
		}
	})
}

// FuzzVerifyFast holds Verify to itself without what makes it fast: the
// quick layout, the fast tar header parser, the prehasher and the
// manifest's prefetch. Without them it reads archives as it did with
// archive/tar alone, two passes, one goroutine. Both reports must be equal.
func FuzzVerifyFast(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	p := filepath.Join(f.TempDir(), "backup.tar")
	f.Fuzz(func(t *testing.T, data []byte) {
		compareVerify(t, p, data)
		if fixed := tartest.FixChecksums(data); fixed != nil {
			compareVerify(t, p, fixed)
		}
	})
}

func compareVerify(t *testing.T, p string, data []byte) {
	file := tartest.Open(t, p, data)
	fast, err := Verify(file)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	slow, err := verifyAll(file, true)
	if err != nil {
		t.Fatalf("Verify, slowly: %v", err)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("reports differ:\nfast %+v\nslow %+v", fast, slow)
	}
	compareStream(t, file, data, fast)
}

// compareStream checks that a stream of data, read front to back in
// uneven pieces, verifies and inspects as the file does.
func compareStream(t *testing.T, file *os.File, data []byte, want *Report) {
	t.Helper()
	stream, err := VerifyStream(streamOf(data))
	if err != nil {
		t.Fatalf("VerifyStream: %v", err)
	}
	if !reflect.DeepEqual(want, stream) {
		t.Fatalf("reports differ:\nfile   %+v\nstream %+v", want, stream)
	}
	inFile, err := Inspect(file)
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	inStream, err := InspectStream(streamOf(data))
	if err != nil {
		t.Fatalf("InspectStream: %v", err)
	}
	if !reflect.DeepEqual(inFile, inStream) {
		t.Fatalf("inspect reports differ:\nfile   %+v\nstream %+v", inFile, inStream)
	}
}

// streamOf reads data in pieces of sizes that cut across tar blocks.
func streamOf(data []byte) Source {
	return func() (io.ReadCloser, error) {
		return io.NopCloser(&piecewise{data: data}), nil
	}
}

type piecewise struct {
	data []byte
	i    int
}

func (p *piecewise) Read(b []byte) (int, error) {
	if len(p.data) == 0 {
		return 0, io.EOF
	}
	p.i++
	n := min(len(b), len(p.data), []int{1, 511, 7777, 65536, 3 << 20}[p.i%5])
	copy(b, p.data[:n])
	p.data = p.data[n:]
	return n, nil
}

// TestVerifyFastHostile compares the two ways on the hostile archives.
func TestVerifyFastHostile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "backup.tar")
	for _, s := range fuzzSeeds(t) {
		compareVerify(t, p, s)
	}
}

// FuzzDocumentRules holds verify's scanner for what restore needs to
// encoding/json: checkDocument finds a malformed pseudo-type wherever the
// decoder finds one, escaped keys and nesting included, and a field name
// given twice in an object; topField finds the primary key the decoder
// finds.
func FuzzDocumentRules(f *testing.F) {
	for _, s := range []string{
		`{"id":"a","t":{"$reql_type$":"TIME","epoch_time":1,"timezone":"+00:00"}}`,
		`{"id":"a","t":{"$reql_type$":"TIME","epoch_time":1}}`,
		`{"t":[{"x":{"\u0024reql_type$":"BINARY","data":"!"}}],"id":1}`,
		`{"a":{"$reql_type$":"GEOMETRY","type":"Point","coordinates":[1,2]},"id":[1,"x"]}`,
		`{"a":{"$reql_type$":"FOO"}}`, `{"a":{"$reql_type$":1}}`, `{"id" : "x" , "id":"y"}`,
		`{"\u0069d":{"$reql_type$":"TIME","epoch_time":-1.5e3,"timezone":"-05:30"}}`, `{}`, `{"id":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v any
		if json.Unmarshal(data, &v) != nil {
			return
		}
		obj, ok := v.(map[string]any)
		if !ok || !validJSON(data) || !utf8.Valid(data) {
			return // encoding/json replaces invalid UTF-8, in names too
		}
		if repeatsAName(data) {
			if err := checkDocument(data); err == nil {
				t.Fatalf("checkDocument(%q) accepts a name given twice", data)
			}
			return // encoding/json keeps one of its values
		}
		got, want := checkDocument(data), refPseudo(v)
		if (got == nil) != (want == nil) {
			t.Fatalf("checkDocument(%q) = %v, encoding/json's walk finds %v", data, got, want)
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(data, &raw); err != nil {
			t.Fatal(err)
		}
		val, found := topField(data, "id")
		if _, has := obj["id"]; has != found {
			t.Fatalf("topField(%q) found %v, encoding/json %v", data, found, has)
		}
		if found {
			var a, b any
			if json.Unmarshal(val, &a) != nil || json.Unmarshal(raw["id"], &b) != nil || !reflect.DeepEqual(a, b) {
				t.Fatalf("topField(%q) = %s, encoding/json %s", data, val, raw["id"])
			}
		}
	})
}

// repeatsAName reports whether an object of data, valid JSON, has a field
// name twice.
func repeatsAName(data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	type level struct {
		names  map[string]bool
		object bool
		key    bool // the next string is a name
	}
	var stack []*level
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		var top *level
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				if top != nil && top.object {
					top.key = true
				}
				stack = append(stack, &level{names: map[string]bool{}, object: true, key: true})
				continue
			case '[':
				if top != nil && top.object {
					top.key = true
				}
				stack = append(stack, &level{})
				continue
			default:
				stack = stack[:len(stack)-1]
				continue
			}
		case string:
			if top != nil && top.object && top.key {
				if top.names[t] {
					return true
				}
				top.names[t] = true
				top.key = false
				continue
			}
		}
		if top != nil && top.object {
			top.key = true
		}
	}
}
