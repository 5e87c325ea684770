package imagearchive

import (
	"regexp"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
)

// blobPathRE is the rule BlobDigest implements, as the regular expression
// it replaced: the reference its tests compare with.
var blobPathRE = regexp.MustCompile(`(?:^|/)docker/registry/v2/blobs/sha256/([0-9a-f]{2})/([0-9a-f]{64})/data$`)

func blobDigestRE(name string) (string, bool) {
	m := blobPathRE.FindStringSubmatch(name)
	if m == nil || m[2][:2] != m[1] {
		return "", false
	}
	return m[2], true
}

func TestBlobDigest(t *testing.T) {
	d := "ab" + strings.Repeat("0123456789abcdef", 4)[2:]
	blob := "docker/registry/v2/blobs/sha256/ab/" + d + "/data"
	for _, tc := range []struct {
		name string
		want bool
	}{
		{blob, true},
		{"storage/" + blob, true},
		{"/" + blob, true},
		{"a/b/docker/registry/v2/blobs/sha256/x/" + blob, true},
		{"x" + blob, false}, // not after a slash
		{blob + "/", false},
		{strings.TrimSuffix(blob, "/data") + "/link", false},
		{strings.Replace(blob, "/ab/", "/cd/", 1), false}, // xx is not the digest's start
		{strings.Replace(blob, "/ab/", "/AB/", 1), false},
		{strings.Replace(blob, d, strings.ToUpper(d), 1), false},
		{strings.Replace(blob, d, d[:63]+"g", 1), false},
		{strings.Replace(blob, d, d[:63], 1), false}, // 63 digits
		{strings.Replace(blob, d, d+"0", 1), false},  // 65 digits
		{strings.Replace(blob, "sha256", "sha512", 1), false},
		{strings.Replace(blob, "/ab/", "/ab//", 1), false},
		{"docker/registry/v2/repositories/r/_layers/sha256/" + d + "/link", false},
		{"data", false},
		{"", false},
	} {
		got, ok := BlobDigest(tc.name)
		assert.Check(t, ok == tc.want, "%q: %v", tc.name, ok)
		if tc.want {
			assert.Check(t, got == d, "%q: %q", tc.name, got)
		}
		wantD, wantOK := blobDigestRE(tc.name)
		assert.Check(t, got == wantD && ok == wantOK, "%q: the regular expression says %q %v", tc.name, wantD, wantOK)
	}
}

// FuzzBlobDigest holds BlobDigest to the regular expression's answer.
func FuzzBlobDigest(f *testing.F) {
	d := "ab" + strings.Repeat("0123456789abcdef", 4)[2:]
	f.Add("docker/registry/v2/blobs/sha256/ab/" + d + "/data")
	f.Add("storage/docker/registry/v2/blobs/sha256/ab/" + d + "/data")
	f.Add("xdocker/registry/v2/blobs/sha256/ab/" + d + "/data")
	f.Fuzz(func(t *testing.T, name string) {
		got, ok := BlobDigest(name)
		want, wantOK := blobDigestRE(name)
		if got != want || ok != wantOK {
			t.Fatalf("%q: %q %v, the regular expression %q %v", name, got, ok, want, wantOK)
		}
	})
}

// validHash is the rule of the regular expression it replaced.
func TestValidHash(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{64}$`)
	d := strings.Repeat("0123456789abcdef", 4)
	for _, h := range []string{
		d, d[:63], d + "0", strings.ToUpper(d), d[:63] + "g", d[:63] + "\n", d + "\n", "", " " + d[1:],
	} {
		assert.Check(t, validHash(h) == re.MatchString(h), "%q", h)
	}
}
