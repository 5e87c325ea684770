package imagevolume

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/agent"
	"github.com/docker-dtr/docker-dtr/pkg/agentbin"
	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/dtrstorage"
	"github.com/docker-dtr/docker-dtr/pkg/helpercontainer"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/pkg/stdcopy"
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

// Where names what v reads and writes: "volume V" or "s3 bucket B (…)".
func (v *Volume) Where() string {
	if v.Bucket != nil {
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
func (v *Volume) receive(ctx context.Context, api API, content io.Reader) (err error) {
	a, err := v.agent(ctx, api, v.AgentBinary, receiveJob)
	if err != nil {
		return err
	}
	helpercontainer.RemoveStale(ctx, api)
	b := make([]byte, 4)
	rand.Read(b)
	name := receiveJob.prefix + v.Replica.ID + "-" + hex.EncodeToString(b)
	cfg, host := v.agentConfig(a.config, receiveJob)
	cfg.OpenStdin, cfg.StdinOnce, cfg.AttachStdin = true, true, true
	id, err := v.create(ctx, api, a, name, cfg, host)
	if err != nil {
		return fmt.Errorf("creating a helper container on node %s to write %s: %w", v.Replica.Node, v.Where(), err)
	}
	h := &helper{api: api, id: id, name: name}
	defer func() {
		if rerr := h.remove(); err == nil {
			err = rerr
		}
	}()
	hj, err := api.ContainerAttach(ctx, id, container.AttachOptions{Stream: true, Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		return fmt.Errorf("attaching to helper %s: %w", name, requestErr(err))
	}
	defer hj.Close()
	var stdout, stderr agentbin.Tail
	copied := make(chan struct{})
	go func() {
		stdcopy.StdCopy(&stdout, &stderr, hj.Reader)
		close(copied)
	}()
	waitC, errC := api.ContainerWait(ctx, id, container.WaitConditionNextExit)
	if err := api.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return fmt.Errorf("starting helper %s on node %s to write %s: %w", name, v.Replica.Node, v.Where(), requestErr(err))
	}
	_, werr := io.Copy(hj.Conn, io.MultiReader(content, strings.NewReader(agent.ReceiveEnd)))
	hj.CloseWrite()
	var code int64
	select {
	case w := <-waitC:
		code = w.StatusCode
	case err := <-errC:
		return fmt.Errorf("writing %s: waiting for helper %s: %w", v.Where(), name, requestErr(err))
	}
	select {
	case <-copied:
	case <-time.After(5 * time.Second):
	}
	if werr != nil && code == 0 {
		return fmt.Errorf("writing %s: %w", v.Where(), werr)
	}
	if werr != nil && ctx.Err() != nil {
		return werr
	}
	if code != 0 {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = "it printed nothing"
		}
		if werr != nil {
			msg += " (sending it the content: " + werr.Error() + ")"
		}
		return fmt.Errorf("writing %s on node %s failed: the agent in helper %s exited with code %d: %s", v.Where(), v.Replica.Node, name, code, strings.ReplaceAll(msg, "\n", "; "))
	}
	return nil
}
