// Package version holds the plugin's version, set at build time:
// -ldflags "-X github.com/docker-dtr/docker-dtr/internal/version.Version=…".
package version

var (
	// Version is the release, or "dev" for a plain go build.
	Version = "dev"
	// Commit is the git commit the binary was built from.
	Commit = "unknown"
)

// Tool names the writer of a backup, recorded in its manifest.
func Tool() string { return "docker-dtr " + Version }
