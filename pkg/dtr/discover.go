package dtr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/system"
)

// API is the part of the Docker client that discovery needs.
type API interface {
	ContainerList(ctx context.Context, options container.ListOptions) ([]container.Summary, error)
	ContainerInspectWithRaw(ctx context.Context, id string, getSize bool) (container.InspectResponse, []byte, error)
	Info(ctx context.Context) (system.Info, error)
}

// Container is one DTR component's container.
type Container struct {
	Component string `json:"component"`
	Name      string `json:"name"` // without the node prefix
	ID        string `json:"id"`
	Image     string `json:"image"`
	ImageID   string `json:"imageId"`
	Version   string `json:"version,omitempty"`
	State     string `json:"state"`            // running, exited, created, restarting…
	Health    string `json:"health,omitempty"` // healthy, unhealthy, starting; empty without a health check
	// Mounts by destination; DTR's are /ca, /data and /storage.
	Mounts map[string]Mount `json:"-"`
	// Networks are the networks it is attached to (DTR's services are
	// on dtr-ol): a RethinkDB container off dtr-ol is cut off from the
	// other replicas' servers.
	Networks []string `json:"-"`
}

// Mount is a container's volume or bind mount.
type Mount struct {
	Type   string `json:"type"` // volume or bind
	Name   string `json:"name,omitempty"`
	Driver string `json:"driver,omitempty"`
	Source string `json:"source,omitempty"`
}

// Replica is one DTR replica: a set of containers on one node.
type Replica struct {
	ID         string      `json:"id"`
	Node       string      `json:"node"`
	Version    string      `json:"version"`
	Healthy    bool        `json:"healthy"`
	Problems   []string    `json:"problems,omitempty"`
	Containers []Container `json:"containers"`
	// ImageStorage is the volume at /storage on dtr-registry-<id>; nil when
	// the registry stores images elsewhere (S3, Azure, GCS, Swift) or its
	// container is missing.
	ImageStorage *Mount `json:"imageStorage,omitempty"`
	// Removed says why the replica no longer counts towards the majority:
	// its RethinkDB server is cut off and holds no replica of any table,
	// as an emergency repair leaves the lost replicas ("" for a member).
	Removed string `json:"removedFromDatabase,omitempty"`
	// NodeFromName says the node came from UCP's name prefix, so helper
	// containers can be pinned to it.
	NodeFromName bool `json:"-"`
}

// Container returns the replica's container of a component, or nil.
func (r *Replica) Container(component string) *Container {
	for i := range r.Containers {
		if r.Containers[i].Component == component {
			return &r.Containers[i]
		}
	}
	return nil
}

// OnNetwork says the replica's RethinkDB container is attached to DTR's
// network, where the other replicas' servers reach it.
func (r *Replica) OnNetwork() bool {
	c := r.Container("rethinkdb")
	return c != nil && slices.Contains(c.Networks, Network)
}

// CAVolume is the volume DTR mounts at /ca in the replica's RethinkDB.
func (r *Replica) CAVolume() string {
	if c := r.Container("rethinkdb"); c != nil {
		if m, ok := c.Mounts["/ca"]; ok && m.Name != "" {
			return m.Name
		}
	}
	return "dtr-ca-" + r.ID
}

// ErrNoDTR means no DTR container answers through this Docker endpoint.
var ErrNoDTR = errors.New("no DTR replica found: no container is named dtr-rethinkdb-<replica id>")

// Discover lists the DTR replicas that the Docker endpoint sees.
func Discover(ctx context.Context, api API) (*Cluster, error) {
	list, err := api.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("name", "dtr-")),
	})
	if err != nil {
		return nil, fmt.Errorf("listing containers: %w", err)
	}
	type found struct {
		name parsedName
		sum  container.Summary
	}
	var dtrs []found
	for _, c := range list {
		for _, n := range c.Names {
			if p, ok := parseName(n); ok {
				dtrs = append(dtrs, found{p, c})
				break
			}
		}
	}
	if len(dtrs) == 0 {
		return nil, ErrNoDTR
	}

	// Inspect for what the list lacks: environment, health, the node.
	inspected := make([]Container, len(dtrs))
	nodes := make([]string, len(dtrs))
	errs := make([]error, len(dtrs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, f := range dtrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			inspected[i], nodes[i], errs[i] = inspect(ctx, api, f.sum, f.name)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	byID := map[string]*Replica{}
	var engineName string
	for i, f := range dtrs {
		rep := byID[f.name.ReplicaID]
		if rep == nil {
			rep = &Replica{ID: f.name.ReplicaID}
			byID[rep.ID] = rep
		}
		rep.Containers = append(rep.Containers, inspected[i])
		switch {
		case f.name.Node != "":
			rep.Node, rep.NodeFromName = f.name.Node, true
		case rep.Node == "" && nodes[i] != "":
			rep.Node = nodes[i]
		}
	}
	c := &Cluster{}
	for _, rep := range byID {
		if rep.Node == "" {
			// A plain engine: every container is on it.
			if engineName == "" {
				if info, err := api.Info(ctx); err == nil {
					engineName = info.Name
				}
			}
			rep.Node = engineName
		}
		rep.settle()
		c.Replicas = append(c.Replicas, rep)
	}
	sort.Slice(c.Replicas, func(i, j int) bool { return c.Replicas[i].ID < c.Replicas[j].ID })
	return c, nil
}

// inspect fills a Container; node is the classic-swarm Node.Name that UCP
// adds to inspect output, when present.
func inspect(ctx context.Context, api API, sum container.Summary, name parsedName) (Container, string, error) {
	c := Container{
		Component: name.Component, Name: name.Name, ID: sum.ID,
		Image: sum.Image, ImageID: sum.ImageID, State: sum.State,
		Mounts: map[string]Mount{},
	}
	for _, m := range sum.Mounts {
		c.Mounts[m.Destination] = Mount{Type: string(m.Type), Name: m.Name, Driver: m.Driver, Source: m.Source}
	}
	info, raw, err := api.ContainerInspectWithRaw(ctx, sum.ID, false)
	if err != nil {
		return c, "", fmt.Errorf("inspecting %s: %w", name.Name, err)
	}
	if info.Config != nil {
		c.Version = versionFromEnv(info.Config.Env)
		if info.Config.Image != "" {
			c.Image = info.Config.Image
		}
	}
	if c.Version == "" {
		c.Version = versionFromImage(c.Image)
	}
	if info.ContainerJSONBase != nil && info.State != nil {
		c.State = info.State.Status
		if info.State.Health != nil {
			c.Health = info.State.Health.Status
		}
	}
	if info.ContainerJSONBase != nil && info.Image != "" {
		c.ImageID = info.Image
	}
	if info.NetworkSettings != nil {
		for name := range info.NetworkSettings.Networks {
			c.Networks = append(c.Networks, name)
		}
		sort.Strings(c.Networks)
	}
	var node struct{ Node *struct{ Name string } }
	_ = json.Unmarshal(raw, &node)
	if node.Node != nil {
		return c, node.Node.Name, nil
	}
	return c, "", nil
}

// settle sorts the containers and works out version, storage and health.
func (r *Replica) settle() {
	sort.Slice(r.Containers, func(i, j int) bool { return r.Containers[i].Component < r.Containers[j].Component })
	if c := r.Container("rethinkdb"); c != nil && c.Version != "" {
		r.Version = c.Version
	}
	versions := map[string]bool{}
	for _, c := range r.Containers {
		if c.Version != "" {
			versions[c.Version] = true
			if r.Version == "" {
				r.Version = c.Version
			}
		}
	}
	if reg := r.Container("registry"); reg != nil {
		if m, ok := reg.Mounts["/storage"]; ok {
			r.ImageStorage = &m
		}
	}
	r.Problems = nil
	if r.Container("rethinkdb") == nil {
		r.Problems = append(r.Problems, "no dtr-rethinkdb-"+r.ID+" container")
	}
	for _, c := range r.Containers {
		switch {
		case c.State != "running":
			r.Problems = append(r.Problems, c.Component+" is "+c.State)
		case c.Health == "unhealthy" || c.Health == "starting":
			r.Problems = append(r.Problems, c.Component+" is "+c.Health)
		}
	}
	if len(versions) > 1 {
		r.Problems = append(r.Problems, "containers of different versions: "+joinSorted(versions))
	}
	r.Healthy = len(r.Problems) == 0
}
