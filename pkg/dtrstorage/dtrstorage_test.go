package dtrstorage

import (
	"encoding/json"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func prop(id string, value any) Property {
	v, err := json.Marshal(value)
	if err != nil {
		panic(err)
	}
	return Property{ID: id, Value: v}
}

const secret = "wJalrXUtnFEMI-SECRET"

func TestFromProperties(t *testing.T) {
	ha := prop("ha.json", `{"replicaCount":3}`)
	// What dtrgen writes: a "storage" that is no section.
	gen := prop("settings.json", map[string]any{"storage": "filesystem", "rootdirectory": "/storage"})
	s3 := map[string]any{"storage": map[string]any{
		"s3":       map[string]any{"bucket": "dtr-images", "region": "us-east-1", "regionendpoint": "https://minio:" + secret + "@s3.example.com:9000", "rootdirectory": "/dtr", "accesskey": "AKIA", "secretkey": secret},
		"redirect": map[string]any{"disable": true},
		"delete":   map[string]any{"enabled": true},
	}}
	for _, tc := range []struct {
		name  string
		props []Property
		want  Backend
		str   string
	}{
		{"an object", []Property{ha, gen, prop("registry.json", s3)},
			Backend{Driver: "s3", Bucket: "dtr-images", Region: "us-east-1", RegionEndpoint: "https://s3.example.com:9000", RootDirectory: "/dtr", Setting: "registry.json"},
			"s3 bucket dtr-images (region us-east-1, endpoint https://s3.example.com:9000, root /dtr)"},
		{"JSON text", []Property{ha, prop("storage.json", mustJSON(s3))},
			Backend{Driver: "s3", Bucket: "dtr-images", Region: "us-east-1", RegionEndpoint: "https://s3.example.com:9000", RootDirectory: "/dtr", Setting: "storage.json"}, ""},
		{"YAML text, as storage.yml in DTR 2.0", []Property{prop("storage.yml", "version: 0.1\nstorage:\n  azure:\n    accountname: acct\n    accountkey: "+secret+"\n    container: images\n  cache:\n    blobdescriptor: inmemory\n")},
			Backend{Driver: "azure", Container: "images", Setting: "storage.yml"}, "azure container images"},
		{"filesystem", []Property{prop("registry.json", map[string]any{"storage": map[string]any{"filesystem": map[string]any{"rootdirectory": "/storage"}}})},
			Backend{Driver: "filesystem", RootDirectory: "/storage", Setting: "registry.json"}, "filesystem (root /storage)"},
		{"none", []Property{ha, gen},
			Backend{Unknown: "none of the 2 settings in dtr2.properties holds a registry storage configuration"}, ""},
		{"two that disagree", []Property{prop("a.json", s3), prop("b.json", map[string]any{"storage": map[string]any{"filesystem": map[string]any{}}})},
			Backend{Unknown: "settings a.json, b.json hold different registry storage configurations"}, ""},
		{"two that agree", []Property{prop("a.json", s3), prop("b.json", s3)},
			Backend{Driver: "s3", Bucket: "dtr-images", Region: "us-east-1", RegionEndpoint: "https://s3.example.com:9000", RootDirectory: "/dtr", Setting: "a.json"}, ""},
		{"two drivers in one section", []Property{prop("a.json", map[string]any{"storage": map[string]any{"s3": map[string]any{}, "gcs": map[string]any{}}})},
			Backend{Unknown: "none of the 1 settings in dtr2.properties holds a registry storage configuration"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := FromProperties(tc.props)
			assert.DeepEqual(t, got, tc.want)
			if tc.str != "" {
				assert.Equal(t, got.String(), tc.str)
			}
			out, err := json.Marshal(got)
			assert.NilError(t, err)
			assert.Assert(t, !strings.Contains(string(out)+got.String(), secret), "no credential: %s", out)
			assert.Assert(t, !strings.Contains(string(out), "AKIA"))
		})
	}
	assert.Check(t, Backend{Driver: "s3"}.External())
	assert.Check(t, !Backend{Driver: "filesystem"}.External())
	assert.Check(t, !Backend{}.External() && !Backend{}.Known())
	assert.Check(t, is.Equal(Backend{Unknown: "why"}.String(), "unknown (why)"))
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
