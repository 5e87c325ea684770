// Package dtr finds a DTR's replicas through the Docker API and judges their
// health: which containers run, which version, on which node, where the image
// content lives, and which replica a backup should use.
package dtr

import (
	"regexp"
	"strings"
)

// Network is the overlay every replica's containers join; RethinkDB answers
// only there.
const Network = "dtr-ol"

// RethinkPort is RethinkDB's driver port.
const RethinkPort = 28015

// containerName matches DTR's container names, with the "node/" prefix that
// UCP adds and the leading slash the engine adds: dtr-<component>-<id>.
var containerName = regexp.MustCompile(`^/?(?:([^/]+)/)?dtr-([a-z][a-z0-9-]*?)-([0-9a-f]{12})$`)

// parsedName is a container name taken apart.
type parsedName struct {
	Node, Component, ReplicaID, Name string
}

// parseName takes a container name (as ContainerList returns it) apart; ok
// is false for names that are not DTR's.
func parseName(s string) (parsedName, bool) {
	m := containerName.FindStringSubmatch(s)
	if m == nil {
		return parsedName{}, false
	}
	return parsedName{Node: m[1], Component: m[2], ReplicaID: m[3], Name: "dtr-" + m[2] + "-" + m[3]}, true
}

// RethinkHost is the name RethinkDB answers to on dtr-ol, which is also the
// name in its certificate.
func RethinkHost(replicaID string) string {
	return "dtr-rethinkdb-" + replicaID + "." + Network
}

// versionFromImage reads a version from an image reference's tag
// (docker/dtr-api:2.9.4, or with a registry and digest).
func versionFromImage(ref string) string {
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	i := strings.LastIndex(ref, ":")
	if i < 0 || strings.Contains(ref[i:], "/") {
		return ""
	}
	tag := ref[i+1:]
	if !versionTag.MatchString(tag) {
		return ""
	}
	return tag
}

var versionTag = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+`)

// versionFromEnv reads DTR_VERSION from a container's environment.
func versionFromEnv(env []string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "DTR_VERSION="); ok {
			return v
		}
	}
	return ""
}

// RethinkServer is the name DTR gives a replica's RethinkDB server
// (--server-name), as the cluster's system tables show it.
func RethinkServer(replicaID string) string { return "dtr_rethinkdb_" + replicaID }
