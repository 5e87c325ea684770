package nodejournal_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/dtrfixture"
	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/helpercontainer"
	"github.com/docker-dtr/docker-dtr/pkg/journal"
	"github.com/docker-dtr/docker-dtr/pkg/nodejournal"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// The journal lives on the real engine, as the labels of a container made
// from the replica's own RethinkDB image and never started.
func TestJournalOnTheNode(t *testing.T) {
	cluster := dtrfixture.Start(t, dtrfixture.Options{Replicas: 1, Components: []string{}})
	ctx := context.Background()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	assert.NilError(t, err)
	defer cli.Close()
	found, err := dtr.Discover(ctx, cli)
	assert.NilError(t, err)
	rep := found.Replica(cluster.Replicas[0].ID)
	assert.Assert(t, rep != nil, "the fixture's replica %s is not discovered", cluster.Replicas[0].ID)

	store := &nodejournal.Store{API: cli, Replica: rep}
	got, err := store.Load(ctx)
	assert.NilError(t, err)
	assert.Assert(t, is.Nil(got), "a replica that never restored has no journal")

	rec := &journal.Record{
		Kind: journal.KindMetadata, Replica: rep.ID, Node: rep.Node,
		Started:    time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC),
		Containers: []journal.Container{{Name: "dtr-api-" + rep.ID, ID: "abc"}},
		Tables:     []journal.Table{{DB: "dtr2", Name: "tags", Existed: true}},
		Backup:     "/backups/b.tar", BackupSHA256: strings.Repeat("a", 64),
		Owner: helpercontainer.Self(),
	}
	assert.NilError(t, store.Save(ctx, rec))
	t.Cleanup(func() { store.Remove(context.Background()) })

	c, err := cli.ContainerInspect(ctx, store.Name())
	assert.NilError(t, err)
	assert.Check(t, is.Equal(c.State.Status, "created"), "the journal's container is never started")
	assert.Check(t, is.Equal(string(c.HostConfig.NetworkMode), "none"))
	assert.Check(t, is.Equal(c.HostConfig.LogConfig.Type, "none"))
	assert.Check(t, is.Len(c.Mounts, 0), "the image's volumes must not become anonymous volumes: %v", c.Mounts)
	assert.Check(t, is.Equal(c.Image, rep.Container("rethinkdb").ImageID))

	got, err = store.Load(ctx)
	assert.NilError(t, err)
	assert.DeepEqual(t, got, rec)

	// One journal a replica: a second restore cannot write over the first's.
	err = store.Save(ctx, &journal.Record{Kind: journal.KindImages, Replica: rep.ID})
	assert.ErrorContains(t, err, "another restore's journal is on node "+rep.Node)
	got, err = store.Load(ctx)
	assert.NilError(t, err)
	assert.DeepEqual(t, got, rec)

	all, err := nodejournal.List(ctx, cli)
	assert.NilError(t, err)
	var mine []nodejournal.Found
	for _, f := range all {
		if f.Record.Replica == rep.ID {
			mine = append(mine, f)
		}
	}
	assert.Assert(t, is.Len(mine, 1))
	assert.Check(t, is.Equal(mine[0].Container, store.Name()))

	// Another replica's store does not see this journal.
	other := &nodejournal.Store{API: cli, Replica: &dtr.Replica{ID: "0123456789ab", Node: rep.Node}}
	got, err = other.Load(ctx)
	assert.NilError(t, err)
	assert.Assert(t, is.Nil(got))

	assert.NilError(t, store.Remove(ctx))
	got, err = store.Load(ctx)
	assert.NilError(t, err)
	assert.Assert(t, is.Nil(got))
	assert.NilError(t, store.Remove(ctx), "removing a journal that is gone is not an error")

	// A journal that cannot be read still says a restore is unfinished:
	// List fails, naming the container and how to remove it.
	name := nodejournal.NamePrefix + rep.ID
	_, err = cli.ContainerCreate(ctx, &container.Config{
		Image:      rep.Container("rethinkdb").ImageID,
		Entrypoint: []string{"/never"},
		Labels:     map[string]string{nodejournal.LabelJournal: "{not json", helpercontainer.LabelReplica: rep.ID},
	}, &container.HostConfig{NetworkMode: "none"}, nil, nil, name)
	assert.NilError(t, err)
	t.Cleanup(func() {
		cli.ContainerRemove(context.Background(), name, container.RemoveOptions{Force: true, RemoveVolumes: true})
	})

	_, err = nodejournal.List(ctx, cli)
	assert.ErrorContains(t, err, "container "+name+": ")
	assert.ErrorContains(t, err, "docker rm "+name)
}

func TestMain(m *testing.M) { os.Exit(dtrfixture.Main(m)) }
