package archive

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

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
}

// TestVerifyFastHostile compares the two ways on the hostile archives.
func TestVerifyFastHostile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "backup.tar")
	for _, s := range fuzzSeeds(t) {
		compareVerify(t, p, s)
	}
}
