package version

import "testing"

func TestPlugin(t *testing.T) {
	defer func(v, c string) { Version, Commit = v, c }(Version, Commit)
	for _, tc := range []struct{ version, commit, want string }{
		{"v1.2.3", "0a1b2c3", "v1.2.3+0a1b2c3"},
		{"dev", "unknown", "dev"},
		{"v1.2.3-4-g0a1b2c3", "0a1b2c3", "v1.2.3-4-g0a1b2c3"}, // git describe names it
		{"0a1b2c3-dirty", "0a1b2c3", "0a1b2c3-dirty"},
	} {
		Version, Commit = tc.version, tc.commit
		if got := Plugin(); got != tc.want {
			t.Errorf("Plugin() with %q, %q = %q, want %q", tc.version, tc.commit, got, tc.want)
		}
	}
}
