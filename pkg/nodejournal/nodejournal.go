// Package nodejournal keeps a replica's restore journal (pkg/journal) on
// the replica's node, as the labels of a small container that is never
// started: it lives with the cluster, so every machine whose Docker context
// reaches the cluster sees it, and a container's name holds it once.
package nodejournal

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/helpercontainer"
	"github.com/docker-dtr/docker-dtr/pkg/journal"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/client"
)

// LabelJournal holds the journal, as JSON. It is not a helper's label
// (helpercontainer.LabelKind): no cleanup of killed runs' helpers touches
// a journal.
const LabelJournal = "com.docker-dtr.journal"

// NamePrefix names the journal's container: one name a replica, so that a
// second restore cannot write its journal over the first's.
const NamePrefix = "docker-dtr-journal-"

// API is the Docker client; through UCP the calls reach the replica's node.
type API = client.APIClient

// Store is the journal of one replica, on its node.
type Store struct {
	API     API
	Replica *dtr.Replica
}

var _ journal.Store = (*Store)(nil)

// Name is the journal container's name.
func (s *Store) Name() string { return NamePrefix + s.Replica.ID }

func (s *Store) Where() string {
	return fmt.Sprintf("container %s on node %s", s.Name(), s.Replica.Node)
}

func (s *Store) Load(ctx context.Context) (*journal.Record, error) {
	all, err := List(ctx, s.API)
	if err != nil {
		return nil, err
	}
	for _, f := range all {
		if f.Record.Replica == s.Replica.ID {
			return f.Record, nil
		}
	}
	return nil, nil
}

// Save creates the container that holds r: from the image of the
// replica's RethinkDB (already on the node), pinned to the node, without
// network, logs or volumes. It is never started.
func (s *Store) Save(ctx context.Context, r *journal.Record) error {
	rep := s.Replica
	rdb := rep.Container("rethinkdb")
	if rdb == nil {
		return fmt.Errorf("replica %s has no dtr-rethinkdb-%s container to take an image from", rep.ID, rep.ID)
	}
	data, err := journal.Marshal(r)
	if err != nil {
		return err
	}
	labels := map[string]string{LabelJournal: data, helpercontainer.LabelReplica: rep.ID}
	if r.Owner != "" {
		labels[helpercontainer.LabelOwner] = r.Owner
	}
	cfg := &container.Config{
		Image:      rdb.ImageID,
		Entrypoint: []string{"/docker-dtr-never-started"},
		Labels:     labels,
	}
	if rep.NodeFromName {
		cfg.Env = []string{"constraint:node==" + rep.Node}
	}
	host := &container.HostConfig{NetworkMode: "none", LogConfig: container.LogConfig{Type: "none"}}
	// The image's own volumes would be made as anonymous volumes: tmpfs
	// instead, which a container never started never mounts.
	if img, err := s.API.ImageInspect(ctx, rdb.ImageID); err == nil && img.Config != nil {
		for _, dir := range slices.Sorted(maps.Keys(img.Config.Volumes)) {
			host.Mounts = append(host.Mounts, mount.Mount{Type: mount.TypeTmpfs, Target: dir})
		}
	}
	if _, err := s.API.ContainerCreate(ctx, cfg, host, nil, nil, s.Name()); err != nil {
		if strings.Contains(err.Error(), "Conflict") || strings.Contains(err.Error(), "already in use") {
			return fmt.Errorf("another restore's journal is on node %s (container %s)", rep.Node, s.Name())
		}
		return fmt.Errorf("creating the journal container %s on node %s: %w", s.Name(), rep.Node, err)
	}
	return nil
}

func (s *Store) Remove(ctx context.Context) error {
	list, err := s.API.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", LabelJournal), filters.Arg("label", helpercontainer.LabelReplica+"="+s.Replica.ID))})
	if err != nil {
		return fmt.Errorf("listing the restore journal: %w", err)
	}
	for _, c := range list {
		if err := helpercontainer.Remove(ctx, s.API, c.ID); err != nil {
			return fmt.Errorf("removing the restore journal %s: %w (remove it with: docker rm %s)", s.Name(), err, s.Name())
		}
	}
	return nil
}

// Found is a journal found on the cluster.
type Found struct {
	Record    *journal.Record
	Container string
}

// List finds every replica's journal that this Docker endpoint sees. One
// that cannot be read is an error: it still says a restore is unfinished.
func List(ctx context.Context, api API) ([]Found, error) {
	list, err := api.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", LabelJournal))})
	if err != nil {
		return nil, fmt.Errorf("looking for restore journals: %w", err)
	}
	var out []Found
	for _, c := range list {
		name := c.ID
		if len(c.Names) > 0 {
			name = c.Names[0][strings.LastIndex(c.Names[0], "/")+1:]
		}
		r, err := journal.Unmarshal(c.Labels[LabelJournal])
		if err != nil {
			return nil, fmt.Errorf("container %s: %w (remove it with: docker rm %s, once the restore it records is known finished)", name, err, name)
		}
		out = append(out, Found{Record: r, Container: name})
	}
	slices.SortFunc(out, func(a, b Found) int { return strings.Compare(a.Record.Replica, b.Record.Replica) })
	return out, nil
}
