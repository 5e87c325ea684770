package imagevolume

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/agent"
	"github.com/docker-dtr/docker-dtr/pkg/agentbin"
	"github.com/docker-dtr/docker-dtr/pkg/dtrstorage"
	"github.com/docker-dtr/docker-dtr/pkg/helpercontainer"
	"github.com/docker-dtr/docker-dtr/pkg/tunnel"
	"github.com/docker/docker/api/types/container"
)

var sendJob = agentJob{prefix: namePrefix, args: []string{"--send", MountPoint}, readOnly: true, verb: "read", doing: "reading"}

// NoAgentError means the agent cannot run on the replica's node (or in the
// registry's image): ReadSelected cannot, Read still can.
type NoAgentError struct{ Err error }

func (e *NoAgentError) Error() string { return e.Err.Error() }
func (e *NoAgentError) Unwrap() error { return e.Err }

// maxListLine bounds a line of the agent's listing: a JSON entry with a
// name of up to PATH_MAX bytes, escaped.
const maxListLine = 6 * 4096

// ReadSelected reads the volume in two steps through one read-only helper
// that runs the agent ("agent --send /storage", which holds a lease on
// this plugin as --lease does). The agent lists the volume, statting every
// file but reading none; c gets each entry, then names the files to leave
// out (name inside the volume, and size). The agent then sends
// the volume as the archive API would, except that those files, and those
// of unfinished uploads, come as headers without data (agent.Send); fn
// reads that tar. Reading only what is new costs what is new, not the
// volume: a stat per file and one stream. A *NoAgentError says the agent
// cannot run there.
func (v *Volume) ReadSelected(ctx context.Context, api API, c Chooser, fn func(io.Reader) error) (err error) {
	job := sendJob
	uc, unlisted := c.(UnlistedChooser)
	unlisted = unlisted && uc.Unlisted() && v.Bucket == nil
	if unlisted {
		job.args = append(slices.Clone(job.args), "--no-listing")
	}
	a, err := v.agent(ctx, api, v.AgentBinary, job)
	if err != nil {
		return &NoAgentError{Err: err}
	}
	helpercontainer.RemoveStale(ctx, api)
	b := make([]byte, 4)
	rand.Read(b)
	name := job.prefix + v.Replica.ID + "-" + hex.EncodeToString(b)
	cfg, host := v.agentConfig(a.config, job)
	cfg.Labels = helpercontainer.LeaseLabels(helpercontainer.KindImages, v.Replica.ID)
	cfg.OpenStdin, cfg.StdinOnce, cfg.AttachStdin = true, true, true
	id, err := v.create(ctx, api, a, name, cfg, host)
	if err != nil {
		return fmt.Errorf("creating a helper container on node %s to read %s: %w", v.Replica.Node, v.Where(), err)
	}
	h := &helper{api: api, id: id, name: name}
	removesItself := false
	defer func() {
		if removesItself {
			return
		}
		if rerr := h.remove(); err == nil {
			err = rerr
		}
	}()
	hj, err := api.ContainerAttach(ctx, h.id, container.AttachOptions{Stream: true, Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		return fmt.Errorf("attaching to helper %s: %w", name, requestErr(err))
	}
	stop := make(chan struct{})
	// A read of the attach stream does not see ctx: an interrupted read
	// (or a backup that no longer wants the bucket while its agent still
	// reads DTR's settings) ends with the connection.
	unhook := context.AfterFunc(ctx, func() { hj.Close() })
	defer func() {
		unhook()
		close(stop)
		hj.Close()
	}()
	var stderr agentbin.Tail
	// Wait before starting, so that the exit is not missed.
	wctx, stopWaiting := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWaiting()
	waitC, errC := api.ContainerWait(wctx, h.id, container.WaitConditionNextExit)
	if err := api.ContainerStart(ctx, h.id, container.StartOptions{}); err != nil {
		return fmt.Errorf("starting helper %s on node %s to read %s: %w", name, v.Replica.Node, v.Where(), requestErr(err))
	}
	// The lease: a keepalive while the agent lists, and while it sends.
	go tunnel.KeepAliveWriter(hj.Conn, tunnel.KeepAlive, stop)
	// failed explains a broken exchange by the agent's exit, if it exited.
	failed := func(err error) error {
		if ctx.Err() != nil {
			return err
		}
		select {
		case w := <-waitC:
			if w.StatusCode != 0 {
				msg := stderr.String()
				if msg == "" {
					msg = "it printed nothing"
				}
				return fmt.Errorf("reading %s on node %s: the agent in helper %s exited with code %d: %s", v.Where(), v.Replica.Node, name, w.StatusCode, msg)
			}
		case <-errC:
		case <-time.After(5 * time.Second):
		}
		if streamBroke(err) {
			return fmt.Errorf("reading %s through helper %s: the connection to the Docker engine was lost: %w", v.Where(), name, err)
		}
		return err
	}
	// awaitExit waits, within exitBound, for an agent that is done to
	// exit: a clean exit leaves the helper to remove itself (AutoRemove).
	awaitExit := func() {
		select {
		case w := <-waitC:
			removesItself = w.StatusCode == 0 && w.Error == nil
		case <-errC:
		case <-ctx.Done():
		case <-time.After(exitBound):
		}
	}
	// Demultiplexed in place, as the tunnel does (pkg/tunnel).
	br := bufio.NewReaderSize(tunnel.NewDemux(hj.Reader, &stderr), 256<<10)
	if v.Bucket != nil {
		b, err := readStorage(br)
		if err != nil {
			return failed(fmt.Errorf("reading %s: DTR's storage settings from the agent: %w", v.Where(), err))
		}
		if err := chooseStorage(c, b); err != nil {
			if b.Driver != "s3" {
				// The agent exits after its settings' line: its
				// helper removes itself.
				awaitExit()
			}
			return err
		}
		v.Bucket.Backend = b
	}
	// One write each, so that no keepalive lands inside a line.
	sendOmit := func(omit map[string]int64) error {
		if _, err := hj.Conn.Write(omitList(omit)); err != nil {
			return failed(fmt.Errorf("reading %s: sending the agent what to leave out: %w", v.Where(), err))
		}
		return nil
	}
	// Leaving nothing out is said at once: a bucket's agent then reads
	// objects while it still lists the rest.
	whole := false
	if wc, ok := c.(WholeChooser); ok && wc.Whole() {
		whole = true
		if err := sendOmit(nil); err != nil {
			return err
		}
	}
	// Unlisted, there is no listing: the list goes first (once the bases
	// are read, while the helper started), and the agent sends as it
	// walks.
	if !unlisted {
		if err := readListing(br, c.Add); err != nil {
			return failed(fmt.Errorf("reading %s: the agent's listing: %w", v.Where(), err))
		}
	}
	omit, err := c.Omit()
	if err != nil {
		return err
	}
	if !whole {
		if err := sendOmit(omit); err != nil {
			return err
		}
	} else if len(omit) > 0 {
		return fmt.Errorf("reading %s: %d files to leave out, after the agent was told to leave out none", v.Where(), len(omit))
	}
	if err := fn(br); err != nil {
		return failed(err)
	}
	// The agent exits once its last byte is sent, and the helper removes
	// itself (AutoRemove): once the exit is seen, the removal (half a
	// second of the engine's) is not waited for. Nothing needs it: the
	// helper mounts the volume read-only, and one that fails to go is an
	// exited helper of a dead plugin, which the next run removes.
	awaitExit()
	return nil
}

// exitBound is how long a read waits for its agent's exit after the last
// byte, before it removes the helper itself.
const exitBound = 5 * time.Second

// Chooser is ReadSelected's caller's side: it gets every entry of the
// listing, in turn, then names the files to leave out.
type Chooser interface {
	Add(agent.ListEntry)
	Omit() (map[string]int64, error)
}

// WholeChooser is a Chooser that may know, before the listing, that it
// leaves nothing out (Whole): a backup with no earlier backup. Its Omit
// then returns nothing.
type WholeChooser interface {
	Chooser
	Whole() bool
}

// UnlistedChooser is a Chooser that may know what to leave out without
// the listing (Unlisted): an incremental backup, which leaves out every
// blob its earlier backups hold, by name and size. On a volume, its Add
// is then never called: Omit is asked once the agent runs, the agent
// sends the tar in one walk (agent --send --no-listing), and a file left
// out comes as its header with no data (Info.Elided takes it).
type UnlistedChooser interface {
	Chooser
	Unlisted() bool
}

// StorageChooser is a Chooser that reads a bucket (Volume.Bucket) and
// wants DTR's storage settings as the agent read them, before the
// listing: its error ends the read there. The agent sends the listing
// on s3 only.
type StorageChooser interface {
	Chooser
	Storage(dtrstorage.Backend) error
}

// chooseStorage hands b to c if it wants it; otherwise b must still be
// an s3 bucket.
func chooseStorage(c Chooser, b dtrstorage.Backend) error {
	if sc, ok := c.(StorageChooser); ok {
		return sc.Storage(b)
	}
	if b.Driver != "s3" {
		return fmt.Errorf("DTR's storage settings now say %s, not an s3 bucket", b)
	}
	return nil
}

// readStorage reads the first line of a bucket's send: DTR's storage
// settings, as the agent read them.
func readStorage(br *bufio.Reader) (dtrstorage.Backend, error) {
	e, line, err := readEntry(br)
	if err != nil {
		return dtrstorage.Backend{}, err
	}
	if e.Type != "storage" || e.Storage == nil {
		return dtrstorage.Backend{}, fmt.Errorf("%q is not DTR's storage settings (is --agent-binary a docker-dtr of this version?)", bytes.TrimSpace(line))
	}
	return *e.Storage, nil
}

// readListing reads the agent's listing, up to agent.ListEnd, into add.
func readListing(br *bufio.Reader, add func(agent.ListEntry)) error {
	for {
		e, _, err := readEntry(br)
		if err != nil {
			return err
		}
		if e.Type == agent.ListEnd.Type {
			return nil
		}
		add(e)
	}
}

// readEntry reads one line of the agent's, a ListEntry, and returns it
// with the line (valid until br is read again).
func readEntry(br *bufio.Reader) (agent.ListEntry, []byte, error) {
	var e agent.ListEntry
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) || len(line) > maxListLine {
		return e, nil, errors.New("a line over 24 KiB")
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return e, nil, err
	}
	e, err = agent.ParseListEntry(line)
	if err != nil {
		return e, nil, fmt.Errorf("%q is not an entry: %v (is --agent-binary a docker-dtr of this version?)", bytes.TrimSpace(line), err)
	}
	return e, line, nil
}

// omitList is the agent's list of files to leave out: "SIZE NAME" lines,
// then "end".
func omitList(omit map[string]int64) []byte {
	var b bytes.Buffer
	for name, size := range omit {
		if strings.ContainsRune(name, '\n') {
			continue // cannot be named on a line: sent whole
		}
		b.WriteString(strconv.FormatInt(size, 10))
		b.WriteByte(' ')
		b.WriteString(name)
		b.WriteByte('\n')
	}
	b.WriteString("end\n")
	return b.Bytes()
}
