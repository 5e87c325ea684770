// Package dtrstorage finds where a DTR keeps its image content from its
// own configuration: the registry's storage section in one of the
// settings documents of dtr2.properties. The volume mounted at /storage is
// no sign of it: DTR mounts one whatever the driver, and only the
// filesystem driver uses it. Only names and places are kept (driver,
// bucket or container, region, endpoint, root directory), never a
// credential.
package dtrstorage

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/docker-dtr/docker-dtr/pkg/rethink"
	"go.yaml.in/yaml/v3"
)

// Backend is the storage DTR's registry is configured with.
type Backend struct {
	// Driver is docker/distribution's storage driver: filesystem, s3,
	// azure, gcs, swift, …; empty when unknown (Unknown says why).
	Driver         string `json:"driver,omitempty"`
	Bucket         string `json:"bucket,omitempty"`    // s3, gcs
	Container      string `json:"container,omitempty"` // azure, swift
	Region         string `json:"region,omitempty"`
	RegionEndpoint string `json:"regionEndpoint,omitempty"`
	RootDirectory  string `json:"rootDirectory,omitempty"`
	// Setting is the id of the properties document that says it.
	Setting string `json:"setting,omitempty"`
	Unknown string `json:"unknown,omitempty"`
}

// Property is one document of dtr2.properties: its id and its value, a
// settings file's text (a JSON string) or an object.
type Property struct {
	ID    string          `json:"id"`
	Value json.RawMessage `json:"value"`
}

// FromProperties finds the one settings document whose value is a registry
// configuration with a storage section. None, or several that disagree,
// give an unknown backend: the plugin does not guess.
func FromProperties(props []Property) Backend {
	b, _ := configFromProperties(props)
	return b
}

// configFromProperties is FromProperties, with the driver's parameters
// of the one configuration found (nil when unknown).
func configFromProperties(props []Property) (Backend, map[string]any) {
	var found []Backend
	var params []map[string]any
	for _, p := range props {
		if b, ps, ok := fromValue(p.Value); ok {
			b.Setting = p.ID
			found = append(found, b)
			params = append(params, ps)
		}
	}
	switch {
	case len(found) == 0:
		return Backend{Unknown: fmt.Sprintf("none of the %d settings in dtr2.properties holds a registry storage configuration", len(props))}, nil
	case len(found) > 1:
		ids := make([]string, 0, len(found))
		same := true
		for _, b := range found {
			ids = append(ids, b.Setting)
			c := b
			c.Setting = found[0].Setting
			same = same && c == found[0]
		}
		sort.Strings(ids)
		if !same {
			return Backend{Unknown: "settings " + strings.Join(ids, ", ") + " hold different registry storage configurations"}, nil
		}
	}
	return found[0], params[0]
}

// driverParams are the names of a driver's parameters that say where, by
// driver; anything else (keys, secrets, tokens) is never read.
var driverParams = map[string][]string{
	"filesystem": {"rootdirectory"},
	"s3":         {"bucket", "region", "regionendpoint", "rootdirectory"},
	"gcs":        {"bucket", "rootdirectory"},
	"azure":      {"container", "rootdirectory"},
	"swift":      {"container", "region", "authurl", "rootdirectory"},
	"oss":        {"bucket", "region", "endpoint", "rootdirectory"},
	"inmemory":   {},
}

// notDrivers are the storage section's other keys in distribution's
// configuration.
var notDrivers = []string{"cache", "delete", "maintenance", "redirect", "tag"}

// fromValue reads a value as a registry configuration: an object, or
// text holding JSON or YAML, and returns the driver's parameters too. ok
// is false when it has no storage section that names one driver.
func fromValue(v json.RawMessage) (Backend, map[string]any, bool) {
	var cfg map[string]any
	var text string
	if json.Unmarshal(v, &text) == nil {
		if yaml.Unmarshal([]byte(text), &cfg) != nil {
			return Backend{}, nil, false
		}
	} else if json.Unmarshal(v, &cfg) != nil {
		return Backend{}, nil, false
	}
	storage, ok := cfg["storage"].(map[string]any)
	if !ok {
		return Backend{}, nil, false
	}
	var drivers []string
	for k := range storage {
		if !slices.Contains(notDrivers, k) {
			drivers = append(drivers, k)
		}
	}
	if len(drivers) != 1 {
		return Backend{}, nil, false
	}
	b := Backend{Driver: drivers[0]}
	params, _ := storage[b.Driver].(map[string]any)
	get := func(name string) string {
		if slices.Contains(driverParams[b.Driver], name) {
			if s, ok := params[name].(string); ok {
				return s
			}
		}
		return ""
	}
	b.Bucket, b.Container, b.Region = get("bucket"), get("container"), get("region")
	b.RegionEndpoint = get("regionendpoint")
	if b.RegionEndpoint == "" {
		b.RegionEndpoint = get("endpoint")
	}
	if b.RegionEndpoint == "" {
		b.RegionEndpoint = get("authurl")
	}
	b.RegionEndpoint = withoutUserinfo(b.RegionEndpoint)
	b.RootDirectory = get("rootdirectory")
	return b, params, true
}

// withoutUserinfo drops a user and password from an endpoint's URL.
func withoutUserinfo(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		u.User = nil
		return u.String()
	}
	return s
}

// Known says the configuration was found.
func (b Backend) Known() bool { return b.Driver != "" }

// External says the content is not in the replica's volume: any driver
// but filesystem (an NFS volume is the filesystem driver too).
func (b Backend) External() bool { return b.Known() && b.Driver != "filesystem" }

// Place names what an external backend keeps the images in: "bucket",
// "container", or "storage".
func (b Backend) Place() string {
	switch {
	case b.Bucket != "":
		return "bucket"
	case b.Container != "":
		return "container"
	}
	return "storage"
}

// String describes the backend without a credential: "s3 bucket b
// (region r, endpoint e, root /x)", "filesystem (root /storage)".
func (b Backend) String() string {
	if !b.Known() {
		return "unknown (" + b.Unknown + ")"
	}
	s := b.Driver
	switch {
	case b.Bucket != "":
		s += " bucket " + b.Bucket
	case b.Container != "":
		s += " container " + b.Container
	}
	var where []string
	if b.Region != "" {
		where = append(where, "region "+b.Region)
	}
	if b.RegionEndpoint != "" {
		where = append(where, "endpoint "+b.RegionEndpoint)
	}
	if b.RootDirectory != "" {
		where = append(where, "root "+b.RootDirectory)
	}
	if len(where) > 0 {
		s += " (" + strings.Join(where, ", ") + ")"
	}
	return s
}

// Read reads dtr2.properties and finds the backend in it. A DTR without
// that table gives an unknown backend, not an error.
func Read(ctx context.Context, sess *rethink.Session) (Backend, error) {
	b, _, err := ReadConfig(ctx, sess)
	return b, err
}

// ReadConfig is Read, with the driver's parameters as DTR's registry gets
// them, credentials included (nil when the backend is unknown). Only the
// agent calls it, next to the database, to open the bucket itself: the
// parameters never leave the node, and are never printed or sent.
func ReadConfig(ctx context.Context, sess *rethink.Session) (Backend, map[string]any, error) {
	t := rethink.TableRef{DB: "dtr2", Table: "properties"}
	dbs, err := sess.DBList(ctx)
	if err != nil {
		return Backend{}, nil, err
	}
	var tables []string
	if slices.Contains(dbs, t.DB) {
		if tables, err = sess.TableList(ctx, t.DB); err != nil {
			return Backend{}, nil, err
		}
	}
	if !slices.Contains(tables, t.Table) {
		return Backend{Unknown: "the database has no dtr2.properties"}, nil, nil
	}
	// Where the majority is lost (status, or the image backup of what
	// survives), the settings are read from the server's own replica: they
	// are what its registry runs with.
	mode := ""
	if ready, err := sess.Readiness(ctx); err == nil && !ready[t].ForReads && ready[t].ForOutdatedReads {
		mode = rethink.ReadOutdated
	}
	var props []Property
	err = sess.ScanMode(ctx, t, mode, func(doc []byte) error {
		var p Property
		if json.Unmarshal(doc, &p) == nil {
			props = append(props, p)
		}
		return nil
	})
	if err != nil {
		return Backend{}, nil, err
	}
	b, params := configFromProperties(props)
	return b, params, nil
}
