// Package restoretest proves that a metadata backup restores, the only
// full test of a backup DTR's documentation knows: it starts a throw-away
// RethinkDB from a replica's own dtr-rethinkdb image, on the replica's
// node, restores the backup into it through the restore engine, and
// removes it. No DTR container is stopped or touched.
package restoretest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/helpercontainer"
	"github.com/docker-dtr/docker-dtr/pkg/metadata"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/client"
)

// Server is a throw-away RethinkDB for one replica: the replica's image,
// command and CA, with no network but its own loopback (its name, as
// DTR's certificate says it, points there), no published port, and
// anonymous volumes where the replica's server keeps its data, removed
// with it. It is labelled as a helper of the run that made it, so a run
// killed before Close is cleaned up by the next (helpercontainer).
type Server struct {
	api  client.APIClient
	ID   string
	Name string
	// Replica stands for the server where a database helper is to work
	// on it: the replica, with the server as its RethinkDB container.
	Replica *dtr.Replica
}

// Start creates and starts the server for rep.
func Start(ctx context.Context, api client.APIClient, rep *dtr.Replica) (*Server, error) {
	orig := rep.Container("rethinkdb")
	if orig == nil {
		return nil, fmt.Errorf("replica %s has no dtr-rethinkdb-%s container: there is no image to start a RethinkDB from", rep.ID, rep.ID)
	}
	ref := orig.ID
	if ref == "" {
		ref = orig.Name
	}
	info, err := api.ContainerInspect(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("reading the configuration of %s: %w", orig.Name, err)
	}
	cfg, host := serverConfig(rep, orig, info)
	b := make([]byte, 4)
	rand.Read(b)
	name := "docker-dtr-restore-test-" + rep.ID + "-" + hex.EncodeToString(b)
	created, err := api.ContainerCreate(ctx, cfg, host, nil, nil, name)
	if err != nil {
		return nil, fmt.Errorf("creating the throw-away RethinkDB %s: %w", name, err)
	}
	s := &Server{api: api, ID: created.ID, Name: name}
	if err := api.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		s.Close()
		return nil, fmt.Errorf("starting the throw-away RethinkDB %s: %w", name, err)
	}
	stand := *rep
	stand.Containers = []dtr.Container{{
		Component: "rethinkdb", Name: name, ID: created.ID, Image: orig.Image, ImageID: orig.ImageID,
		Version: orig.Version, State: "running", Mounts: orig.Mounts,
	}}
	stand.ImageStorage = nil
	s.Replica = &stand
	return s, nil
}

// serverConfig is the throw-away server's configuration: the replica's
// RethinkDB's, but for the cluster it would join, its data and its
// network.
func serverConfig(rep *dtr.Replica, orig *dtr.Container, info container.InspectResponse) (*container.Config, *container.HostConfig) {
	cfg := &container.Config{
		Image:       orig.ImageID,
		Entrypoint:  info.Config.Entrypoint,
		Cmd:         withoutJoin(info.Config.Cmd),
		Env:         info.Config.Env,
		WorkingDir:  info.Config.WorkingDir,
		User:        info.Config.User,
		Labels:      helpercontainer.Labels(helpercontainer.KindRestoreTest, rep.ID),
		Healthcheck: &container.HealthConfig{Test: []string{"NONE"}},
	}
	if rep.NodeFromName {
		// UCP schedules plain containers the classic-swarm way.
		cfg.Env = append(append([]string{}, cfg.Env...), "constraint:node=="+rep.Node)
	}
	host := &container.HostConfig{
		NetworkMode: "none",
		ExtraHosts:  []string{dtr.RethinkHost(rep.ID) + ":127.0.0.1"},
		LogConfig:   container.LogConfig{Type: "none"},
	}
	for _, m := range info.Mounts {
		switch {
		case m.Destination == "/ca":
			// DTR's certificates, which its server and the helper use.
			host.Mounts = append(host.Mounts, mount.Mount{Type: mount.TypeVolume, Source: m.Name, Target: "/ca", ReadOnly: true})
		default:
			// Its data: an empty anonymous volume, which the removal
			// takes with it (as it does the image's own VOLUMEs).
			if cfg.Volumes == nil {
				cfg.Volumes = map[string]struct{}{}
			}
			cfg.Volumes[m.Destination] = struct{}{}
		}
	}
	return cfg, host
}

// withoutJoin is a server's arguments without --join: the throw-away
// server is a cluster of its own (and DTR's servers would not resolve).
func withoutJoin(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == "--join":
			i++
		case strings.HasPrefix(args[i], "--join="):
		default:
			out = append(out, args[i])
		}
	}
	return out
}

// Close removes the server and its volumes, within a minute of its own
// (the command's context may be over).
func (s *Server) Close() error {
	if s == nil || s.ID == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := helpercontainer.Remove(ctx, s.api, s.ID); err != nil {
		return fmt.Errorf("removing the throw-away RethinkDB %s: %w", s.Name, err)
	}
	s.ID = ""
	return nil
}

// Options are a restore test's.
type Options struct {
	API     client.APIClient
	Replica *dtr.Replica
	// Restore restores the backup into the server, which server stands
	// for (through a database helper on it), and says what it restored.
	Restore func(ctx context.Context, server *dtr.Replica) ([]metadata.TableResult, error)
	// Log says what is done (the progress printer's Step).
	Log func(format string, args ...any)
}

// Result is a restore test that restored.
type Result struct {
	Replica string                 `json:"replica"`
	Node    string                 `json:"node"`
	Tables  []metadata.TableResult `json:"tables"`
	Rows    int64                  `json:"rows"`
	// Restore is how long the restore took, the server's start aside:
	// the operator's estimate of a restore's time. The command's JSON
	// gives it in seconds (restoreSeconds), once.
	Restore time.Duration `json:"-"`
}

// Run starts the server, has it restored into, and removes it on every
// path out. The error says why the backup did not restore (or why the
// test could not run).
func Run(ctx context.Context, o Options) (res *Result, err error) {
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	srv, err := Start(ctx, o.API, o.Replica)
	if err != nil {
		return nil, err
	}
	o.Log("started the throw-away RethinkDB %s on node %s (replica %s's image, no network, nothing of DTR's touched)", srv.Name, o.Replica.Node, o.Replica.ID)
	defer func() {
		if cerr := srv.Close(); cerr != nil && err == nil {
			err = cerr
		} else if cerr == nil {
			o.Log("removed %s and its volumes", srv.Name)
		}
	}()
	began := time.Now()
	tables, err := o.Restore(ctx, srv.Replica)
	if err != nil {
		return nil, err
	}
	res = &Result{Replica: o.Replica.ID, Node: o.Replica.Node, Tables: tables, Restore: time.Since(began)}
	for _, t := range tables {
		res.Rows += t.Rows
	}
	return res, nil
}
