// Package version holds the plugin's version, set at build time:
// -ldflags "-X github.com/docker-dtr/docker-dtr/internal/version.Version=…".
package version

import "strings"

var (
	// Version is the release, or "dev" for a plain go build.
	Version = "dev"
	// Commit is the git commit the binary was built from.
	Commit = "unknown"
)

// Plugin is the version the plugin metadata gives the Docker CLI (`docker
// info`, `docker --help`), with the commit as semver build metadata
// ("v1.2.3+0a1b2c3"), unless the version names it already (git describe).
func Plugin() string {
	if Commit == "" || Commit == "unknown" || strings.Contains(Version, Commit) {
		return Version
	}
	return Version + "+" + Commit
}

// Tool names the writer of a backup, recorded in its manifest.
func Tool() string { return "docker-dtr " + Version }
