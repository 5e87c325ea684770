package imagevolume

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/docker-dtr/docker-dtr/pkg/agent"
	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/dtrstorage"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
)

// Bucket is where a DTR whose storage driver is s3 keeps its images. A
// Volume with a Bucket reads, writes, measures and empties the bucket
// instead of the volume, in the same tar shape (top directory
// "storage/"), so that image archives, incrementals and restores are the
// same. The agent does the work (agent --bucket), in a helper on the
// replica's node: in the network namespace of the replica's RethinkDB
// (which stays up while a restore stops the registry), with DTR's CA
// volume read-only. It reads DTR's storage settings there and opens the
// bucket with docker/distribution's s3 driver: the credentials never
// reach the plugin, nor the helper's configuration.
type Bucket struct {
	Backend dtrstorage.Backend
}

// InBucket makes v stand for the bucket b (an s3 backend).
func (v *Volume) InBucket(b dtrstorage.Backend) { v.Bucket = &Bucket{Backend: b} }

// Where names what v reads and writes: "volume V" or "s3 bucket B (…)";
// "DTR's image storage" for a bucket whose settings are not read yet.
func (v *Volume) Where() string {
	if v.Bucket != nil {
		if v.Bucket.Backend == (dtrstorage.Backend{}) {
			return "DTR's image storage"
		}
		return v.Bucket.Backend.String()
	}
	return "volume " + v.Name
}

// bucketConfig turns an agent helper's configuration into the bucket's:
// no volume, DTR's CA, RethinkDB's network namespace, --bucket.
func (v *Volume) bucketConfig(cfg *container.Config, host *container.HostConfig) {
	rep := v.Replica
	cfg.Cmd = append([]string{"agent", "--bucket", fmt.Sprintf("%s:%d", dtr.RethinkHost(rep.ID), dtr.RethinkPort)}, cfg.Cmd[1:]...)
	ref := ""
	if c := rep.Container("rethinkdb"); c != nil {
		ref = c.ID
		if ref == "" {
			ref = c.Name
		}
	}
	host.NetworkMode = container.NetworkMode("container:" + ref)
	mounts := []mount.Mount{{Type: mount.TypeVolume, Source: rep.CAVolume(), Target: "/ca", ReadOnly: true}}
	for _, m := range host.Mounts {
		if m.Target != MountPoint && m.Target != "/ca" {
			mounts = append(mounts, m)
		}
	}
	host.Mounts = mounts
}

// omitNothing is the Chooser of a whole read: every file is sent.
type omitNothing struct{}

func (omitNothing) Add(agent.ListEntry)             {}
func (omitNothing) Omit() (map[string]int64, error) { return nil, nil }
func (omitNothing) Whole() bool                     { return true }

// readBucket is Read of the bucket: the agent's send protocol with
// nothing left out.
func (v *Volume) readBucket(ctx context.Context, api API, fn func(io.Reader) error) error {
	err := v.ReadSelected(ctx, api, omitNothing{}, fn)
	if e, ok := err.(*NoAgentError); ok {
		return fmt.Errorf("reading %s needs this plugin's agent on node %s: %w", v.Where(), v.Replica.Node, e.Err)
	}
	return err
}

// emptyBucket says whether the bucket holds no object under its root.
func (v *Volume) emptyBucket(ctx context.Context, api API) (bool, error) {
	u, err := v.Size(ctx, api, v.AgentBinary)
	if err != nil {
		return false, err
	}
	return u.Files+u.UploadFiles == 0, nil
}

var receiveJob = agentJob{prefix: namePrefix, args: []string{"--receive", MountPoint}, verb: "write", doing: "writing"}

// writeBucket writes the tar content (names relative to the mount point)
// into the bucket through the agent's --receive, then reads the bucket
// back through check, unless check is nil.
func (v *Volume) writeBucket(ctx context.Context, api API, content io.Reader, check func(io.Reader) error) error {
	if err := v.receive(ctx, api, content); err != nil {
		return err
	}
	if check == nil {
		return nil
	}
	return v.readBucket(ctx, api, check)
}

// receive runs "agent --bucket … --receive /storage" with content, then
// agent.ReceiveEnd, on its stdin.
func (v *Volume) receive(ctx context.Context, api API, content io.Reader) error {
	_, err := v.runAgent(ctx, api, v.AgentBinary, receiveJob, io.MultiReader(content, strings.NewReader(agent.ReceiveEnd)))
	return err
}
