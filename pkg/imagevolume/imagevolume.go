// Package imagevolume moves a DTR replica's image content (the volume at
// /storage on dtr-registry-<id>) in and out through the Docker archive API
// of a helper container that mounts the volume: no ssh, no sudo. The helper
// that reads runs this plugin's binary as an agent that only holds a lease
// on the plugin's attach connection (agent --lease): once the plugin is
// gone, the agent exits and the helper removes itself. Where the agent
// cannot run on the node, and for writing, the helper is never started.
package imagevolume

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/agent"
	"github.com/docker-dtr/docker-dtr/pkg/bufpipe"
	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/helpercontainer"
	"github.com/docker-dtr/docker-dtr/pkg/tunnel"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/client"
)

// API is the Docker client; through UCP the calls reach the replica's node.
type API = client.APIClient

// MountPoint is where DTR's registry mounts its image volume.
const MountPoint = "/storage"

const namePrefix = "docker-dtr-images-"

// Volume is a replica's image volume and what it needs from the replica.
type Volume struct {
	Replica *dtr.Replica
	Name    string
	Driver  string
	// Image is the registry container's image, already on the node.
	Image string
	// AgentBinary is --agent-binary: the agent the reading helper runs,
	// empty for this plugin's own binary.
	AgentBinary string
	// Bucket, when set, is where the images really are: every read and
	// write goes to it instead (see Bucket).
	Bucket *Bucket
}

// ExternalStorageError means the registry keeps images outside any volume.
type ExternalStorageError struct{ ReplicaID string }

func (e *ExternalStorageError) Error() string {
	return fmt.Sprintf("replica %s has no image volume (no volume at %s on dtr-registry-%s): DTR stores its images in external storage (S3, Azure, GCS or Swift); back that storage up with its own tools (bucket versioning and replication, azcopy, gsutil rsync, swift), nothing was written", e.ReplicaID, MountPoint, e.ReplicaID)
}

// Of returns the replica's image volume.
func Of(rep *dtr.Replica) (*Volume, error) {
	reg := rep.Container("registry")
	if reg == nil {
		return nil, fmt.Errorf("replica %s has no dtr-registry-%s container: its image volume cannot be found", rep.ID, rep.ID)
	}
	m := rep.ImageStorage
	if m == nil {
		return nil, &ExternalStorageError{ReplicaID: rep.ID}
	}
	if m.Type != "volume" || m.Name == "" {
		return nil, fmt.Errorf("replica %s keeps images in the host directory %s (a bind mount, not a volume): back it up on the node", rep.ID, m.Source)
	}
	return &Volume{Replica: rep, Name: m.Name, Driver: m.Driver, Image: reg.ImageID}, nil
}

// WithoutVolume is the replica's registry with no image volume (Of said
// so): it can stand only for a bucket (InBucket).
func WithoutVolume(rep *dtr.Replica) (*Volume, error) {
	reg := rep.Container("registry")
	if reg == nil {
		return nil, fmt.Errorf("replica %s has no dtr-registry-%s container: its images cannot be found", rep.ID, rep.ID)
	}
	return &Volume{Replica: rep, Image: reg.ImageID}, nil
}

// Users are the replica's containers that mount the volume and run: the
// ones a restore stops while it writes.
func (v *Volume) Users() []dtr.Container {
	if v.Name == "" {
		return nil // a bucket with no volume (WithoutVolume): none
	}
	return v.Replica.Running(func(c dtr.Container) bool {
		for _, m := range c.Mounts {
			if m.Name == v.Name {
				return true
			}
		}
		return false
	})
}

// helper is a container that mounts the volume: created and never
// started, or running the agent that holds a lease on this plugin.
type helper struct {
	api  API
	id   string
	name string
	// release ends the lease, if it holds one; stopWaiting stops the
	// wait for its exit.
	release     func()
	stopWaiting func()
	// exited is closed if the lease's agent exits while the plugin works;
	// status is then its exit code.
	exited chan struct{}
	status int64
}

// leaseLost explains a request that failed because the reading helper's
// agent exited (and the container removed itself): an agent that does not
// know --lease, or one that lost its plugin.
func (h *helper) leaseLost(err error) error {
	if h.exited == nil {
		return err
	}
	select {
	case <-h.exited:
		return fmt.Errorf("%w (the agent in helper %s exited and the helper removed itself: is --agent-binary a docker-dtr of this version?)", err, h.name)
	default:
		return err
	}
}

// diedAtOnce says the lease's agent has exited, waiting a moment for the
// engine to say so: the read that failed may have been first to know.
func (h *helper) diedAtOnce() bool {
	if h.exited == nil {
		return false
	}
	select {
	case <-h.exited:
		return true
	case <-time.After(2 * time.Second):
		return false
	}
}

// leaseJob is the reading helper's agent: it only lives while the plugin
// does.
var leaseJob = agentJob{prefix: namePrefix, args: []string{"--lease"}, readOnly: true, verb: "read", doing: "reading"}

// helper is a helper for a read (readOnly) or a write. A reading one's
// agent also measures the volume for m, if not nil.
func (v *Volume) helper(ctx context.Context, api API, readOnly bool, m *measure) (*helper, error) {
	// What killed runs left behind goes first (best effort); it may hold
	// the volume.
	helpercontainer.RemoveStale(ctx, api)
	if readOnly {
		a, err := v.agent(ctx, api, v.AgentBinary, leaseJob)
		if err == nil {
			var h *helper
			h, err = v.leaseHelper(ctx, api, a, m)
			var noLease *noLeaseError
			if !errors.As(err, &noLease) {
				return h, err
			}
		}
		// The agent cannot run there: a helper that is never started
		// reads as well, but one that a killed run leaves behind waits
		// for a run that can tell its plugin is gone.
		m.tell(agent.Usage{}, err)
	}
	return v.plainHelper(ctx, api, readOnly)
}

// plainHelper is a helper that mounts the volume and is never started.
func (v *Volume) plainHelper(ctx context.Context, api API, readOnly bool) (*helper, error) {
	b := make([]byte, 4)
	rand.Read(b)
	name := namePrefix + v.Replica.ID + "-" + hex.EncodeToString(b)
	cfg := &container.Config{
		Image: v.Image,
		// Never started: the entrypoint only has to be a valid one to create.
		Entrypoint: []string{"/docker-dtr-never-started"},
		Labels:     helpercontainer.Labels(helpercontainer.KindImages, v.Replica.ID),
	}
	if v.Replica.NodeFromName {
		cfg.Env = []string{"constraint:node==" + v.Replica.Node}
	}
	host := &container.HostConfig{
		NetworkMode: "none",
		LogConfig:   container.LogConfig{Type: "none"},
		Mounts:      []mount.Mount{{Type: mount.TypeVolume, Source: v.Name, Target: MountPoint, ReadOnly: readOnly}},
	}
	created, err := api.ContainerCreate(ctx, cfg, host, nil, nil, name)
	if err != nil {
		return nil, fmt.Errorf("creating a helper container on node %s to mount %s: %w", v.Replica.Node, v.Name, err)
	}
	return &helper{api: api, id: created.ID, name: name}, nil
}

// leaseHelper starts a reading helper whose agent holds a lease: attached
// to its stdin, this plugin writes a byte every tunnel.KeepAlive; the
// agent exits once the attach stream ends or stays silent for
// tunnel.IdleTimeout, and the container removes itself.
func (v *Volume) leaseHelper(ctx context.Context, api API, a agentImage, m *measure) (*helper, error) {
	b := make([]byte, 4)
	rand.Read(b)
	name := namePrefix + v.Replica.ID + "-" + hex.EncodeToString(b)
	job := leaseJob
	if m != nil {
		// The same walk as Size's, in the same helper: no other to start.
		job.args = append(slices.Clone(job.args), "--du", MountPoint)
	}
	cfg, host := v.agentConfig(a.config, job)
	cfg.Labels = helpercontainer.LeaseLabels(helpercontainer.KindImages, v.Replica.ID)
	cfg.OpenStdin, cfg.StdinOnce, cfg.AttachStdin = true, true, true
	id, err := v.create(ctx, api, a, name, cfg, host)
	if err != nil {
		return nil, fmt.Errorf("creating a helper container on node %s to mount %s: %w", v.Replica.Node, v.Name, err)
	}
	h := &helper{api: api, id: id, name: name}
	fail := func(err error) (*helper, error) {
		h.remove()
		return nil, err
	}
	hj, err := api.ContainerAttach(ctx, h.id, container.AttachOptions{Stream: true, Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		return fail(fmt.Errorf("attaching to helper %s: %w", name, requestErr(err)))
	}
	stop := make(chan struct{})
	var once sync.Once
	held := make(chan error, 1)
	go m.read(name, hj.Reader, held)
	// Wait before starting, so that an exit is not missed.
	wctx, stopWaiting := context.WithCancel(context.WithoutCancel(ctx))
	waitC, errC := api.ContainerWait(wctx, h.id, container.WaitConditionNextExit)
	h.exited = make(chan struct{})
	go func() {
		select {
		case w := <-waitC:
			h.status = w.StatusCode
			close(h.exited)
		case <-errC:
		}
	}()
	h.release = func() {
		once.Do(func() {
			close(stop)
			hj.Close()
		})
	}
	h.stopWaiting = stopWaiting
	if err := api.ContainerStart(ctx, h.id, container.StartOptions{}); err != nil {
		return fail(fmt.Errorf("starting helper %s on node %s: %w", name, v.Replica.Node, requestErr(err)))
	}
	go tunnel.KeepAliveWriter(hj.Conn, tunnel.KeepAlive, stop)
	// Read through it only once its agent holds the lease: one that dies
	// at once (an --agent-binary that fails) takes the helper away as the
	// engine archives the volume, and on fuse-overlayfs the archive's
	// walk then loses files without an error, a short stream that looks
	// whole. The helper goes, and a helper that is never started reads.
	select {
	case err := <-held:
		if err != nil {
			return fail(&noLeaseError{err})
		}
	case <-h.exited:
		return fail(&noLeaseError{fmt.Errorf("the agent in helper %s exited at once with code %d", name, h.status)})
	case <-time.After(leaseHeldBound):
		return fail(&noLeaseError{fmt.Errorf("the agent in helper %s did not say it holds the lease within %s", name, leaseHeldBound)})
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	return h, nil
}

// leaseHeldBound is how long a reading helper's agent has to say it
// holds the lease once started: milliseconds, unless the node is
// overloaded; past it the read goes through a helper never started.
const leaseHeldBound = 15 * time.Second

// noLeaseError is a reading helper whose agent did not come to hold the
// lease: the read goes through a helper that is never started instead.
type noLeaseError struct{ err error }

func (e *noLeaseError) Error() string { return e.err.Error() }
func (e *noLeaseError) Unwrap() error { return e.err }

// remove runs with its own context: it must happen after Ctrl-C too.
func (h *helper) remove() error {
	if h.release != nil {
		h.release()
		h.stopWaiting()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := helpercontainer.Remove(ctx, h.api, h.id); err != nil {
		return fmt.Errorf("removing helper %s: %w (remove it with: docker rm -f %s)", h.name, err, h.name)
	}
	return nil
}

// done ends a helper whose read succeeded. A lease's agent exits once
// released, and its container removes itself (AutoRemove): once the exit
// is seen, that removal (a quarter to half a second of the engine's, at
// the end of every backup) is not waited for, as ReadSelected does not.
// Nothing needs it: the helper mounts the volume read-only, and one that
// fails to go is an exited helper of a dead plugin, which the next run
// removes. A helper that does not exit in exitBound, or never started, is
// removed.
//
// An agent that exited before its release, or not for it (a code other
// than 0: killed, out of memory, no word from a plugin that was stopped),
// may have taken the helper away under the engine's archive of the
// volume, whose walk then skips what it no longer finds: the read does
// not count.
func (h *helper) done() error {
	if h.release == nil {
		return h.remove()
	}
	select {
	case <-h.exited:
		return h.diedUnderRead()
	default:
	}
	h.release()
	select {
	case <-h.exited:
		h.stopWaiting()
		if h.status != 0 {
			return h.diedUnderRead()
		}
		return nil
	case <-time.After(exitBound):
	}
	return h.remove()
}

// diedUnderRead removes a reading helper whose agent exited during the
// read (its AutoRemove may fail on fuse-overlayfs, "failed to remove root
// filesystem"; helpercontainer.Remove waits for a removal in progress and
// tries again), and says the read does not count.
func (h *helper) diedUnderRead() error {
	err := fmt.Errorf("the agent in helper %s exited with code %d before the read ended, so the engine may have sent the volume with files missing: nothing read counts; run it again", h.name, h.status)
	if rerr := h.remove(); rerr != nil {
		err = fmt.Errorf("%w; and %v", err, rerr)
	}
	return err
}

// Read streams the volume's content as the archive API gives it (a tar
// under the top directory "storage/") to fn, through a read-only helper.
func (v *Volume) Read(ctx context.Context, api API, fn func(io.Reader) error) (err error) {
	return v.ReadSized(ctx, api, nil, fn)
}

// ReadSized is Read that also measures the volume, for a progress's
// total: the reading helper's agent walks it (as Size does) while the
// engine sends it, so no other helper starts and the read waits for
// nothing. sized, if not nil, is called at most once, from another
// goroutine, with the sizes or why they are unknown (the agent cannot
// run, or failed), and never once the read has ended.
func (v *Volume) ReadSized(ctx context.Context, api API, sized Sized, fn func(io.Reader) error) (err error) {
	if v.Bucket != nil {
		return v.readBucket(ctx, api, fn)
	}
	m := newMeasure(sized)
	h, err := v.helper(ctx, api, true, m)
	if err != nil {
		m.end()
		return err
	}
	var dead *helper // a lease helper the engine failed to remove
	defer func() {
		m.end()
		ends := []func() error{}
		if h != nil {
			end := h.remove
			if err == nil {
				end = h.done
			}
			ends = append(ends, end)
		}
		if dead != nil {
			ends = append(ends, dead.remove)
		}
		for _, end := range ends {
			if rerr := end(); err == nil {
				err = rerr
			} else if rerr != nil {
				err = fmt.Errorf("%w; and %v", err, rerr)
			}
		}
	}()
	rc, _, err := api.CopyFromContainer(ctx, h.id, MountPoint)
	if err != nil && ctx.Err() == nil && h.diedAtOnce() {
		// Its agent exited at once (an --agent-binary that fails) and took
		// the helper away before the read began: read as where the agent
		// cannot run, through a helper that is never started. The engine
		// can fail that helper's removal as its agent dies (fuse-overlayfs:
		// "failed to remove root filesystem"): it goes again at the end.
		m.tell(agent.Usage{}, fmt.Errorf("the agent in helper %s exited at once", h.name))
		if h.remove() != nil {
			dead = h
		}
		h = nil
		ph, perr := v.plainHelper(ctx, api, true)
		if perr != nil {
			return perr
		}
		h = ph
		rc, _, err = api.CopyFromContainer(ctx, h.id, MountPoint)
	}
	if err != nil {
		return fmt.Errorf("reading volume %s: %w", v.Name, h.leaseLost(err))
	}
	defer rc.Close()
	// The engine's stream is read a few MiB ahead, on a goroutine of its
	// own, of what fn does with it (the hashing and the file's writes of
	// a backup): the engine's tar no longer waits on them. 10 % faster
	// here (docs/benchmarks.md, section 4); an agent's stream, read on
	// the agent's core, was slower that way (section 11) and is not.
	ahead := bufpipe.ReadAhead(rc, readAheadChunk, readAheadChunks)
	defer ahead.Close()
	if err := fn(ahead); err != nil {
		if ctx.Err() == nil && streamBroke(err) {
			// The engine's stream ended mid-file: the connection, not the
			// registry's data.
			return fmt.Errorf("reading volume %s through helper %s: the connection to the Docker engine was lost: %w", v.Name, h.name, err)
		}
		return err
	}
	return nil
}

// The read ahead of the engine's stream: up to 32 reads, 8 MiB.
const (
	readAheadChunk  = 256 << 10
	readAheadChunks = 32
)

// streamBroke says a read ended because the connection did.
func streamBroke(err error) bool {
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed)
}

// Writer is a helper that mounts the volume read-write, created and
// never started: a restore looks through it at whether the volume is
// empty and writes into it, with one helper for both. Creating it changes
// nothing in the volume. Close removes it.
type Writer struct {
	v   *Volume
	api API
	h   *helper
}

// NewWriter creates the volume's writing helper.
func (v *Volume) NewWriter(ctx context.Context, api API) (*Writer, error) {
	if v.Bucket != nil {
		return &Writer{v: v, api: api}, nil // each step runs a helper
	}
	h, err := v.helper(ctx, api, false, nil)
	if err != nil {
		return nil, err
	}
	return &Writer{v: v, api: api, h: h}, nil
}

// Empty reports whether the volume holds nothing at all.
func (w *Writer) Empty(ctx context.Context) (bool, error) {
	if w.v.Bucket != nil {
		return w.v.emptyBucket(ctx, w.api)
	}
	rc, _, err := w.api.CopyFromContainer(ctx, w.h.id, MountPoint)
	if err != nil {
		return false, fmt.Errorf("reading volume %s: %w", w.v.Name, requestErr(err))
	}
	defer rc.Close()
	n, err := countEntries(rc, 2)
	return n < 2, err // the top directory alone
}

// Write extracts a tar (names relative to the volume) into the volume,
// then reads it back through check, unless check is nil.
func (w *Writer) Write(ctx context.Context, content io.Reader, check func(io.Reader) error) error {
	v := w.v
	if v.Bucket != nil {
		return v.writeBucket(ctx, w.api, content, check)
	}
	if err := w.api.CopyToContainer(ctx, w.h.id, MountPoint, content, container.CopyToContainerOptions{}); err != nil {
		return fmt.Errorf("writing into volume %s: %w", v.Name, requestErr(err))
	}
	if check == nil {
		return nil
	}
	rc, _, err := w.api.CopyFromContainer(ctx, w.h.id, MountPoint)
	if err != nil {
		return fmt.Errorf("reading volume %s back: %w", v.Name, requestErr(err))
	}
	defer rc.Close()
	return check(rc)
}

// Close removes the helper (with its own context: after Ctrl-C too).
func (w *Writer) Close() error {
	if w.h == nil {
		return nil
	}
	return w.h.remove()
}

// Write extracts a tar (names relative to the volume) into the volume
// through a writing helper of its own, then reads it back through check,
// unless check is nil.
func (v *Volume) Write(ctx context.Context, api API, content io.Reader, check func(io.Reader) error) (err error) {
	w, err := v.NewWriter(ctx, api)
	if err != nil {
		return err
	}
	defer func() {
		if rerr := w.Close(); err == nil {
			err = rerr
		}
	}()
	return w.Write(ctx, content, check)
}

// Empty reports whether the volume holds nothing at all.
func (v *Volume) Empty(ctx context.Context, api API) (empty bool, err error) {
	if v.Bucket != nil {
		return v.emptyBucket(ctx, api)
	}
	err = v.Read(ctx, api, func(r io.Reader) error {
		n, err := countEntries(r, 2)
		empty = n < 2 // the top directory alone
		return err
	})
	return empty, err
}

// Stop stops the running users of the volume and returns a function that
// starts them again; call it whatever happens next.
func (v *Volume) Stop(ctx context.Context, api API, log func(string, ...any)) (restart func() error, err error) {
	return dtr.Stop(ctx, api, v.Users(), log)
}

// requestErr drops the request line the HTTP client puts before why a
// request failed (`Put "http://%2Fvar%2Frun%2Fdocker.sock/v1.41/…": `),
// which says nothing the message does not.
func requestErr(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) && uerr.Err != nil {
		return uerr.Err
	}
	return err
}

// countEntries reads up to max tar headers.
func countEntries(r io.Reader, max int) (int, error) {
	tr := tar.NewReader(r)
	n := 0
	for n < max {
		if _, err := tr.Next(); err != nil {
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			return n, err
		}
		n++
	}
	return n, nil
}
