// Package agent is what the plugin's binary does when it runs as the agent
// inside a helper container (the hidden 'docker dtr agent' command): do a
// command's database work next to the replica's RethinkDB (DB,
// pkg/remotedb), measure an image volume (DU), send the parts of it an
// incremental backup lacks (Send), or empty it (Wipe), or only hold a
// lease on its plugin's connection (Lease). pkg/agentbin ships the binary
// into the helper.
//
// The database work and the lease exit once their plugin is gone: its connection
// ends, or stays silent for tunnel.IdleTimeout (the plugin sends something
// every tunnel.KeepAlive). Their containers remove themselves then.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/bucket"
	"github.com/docker-dtr/docker-dtr/pkg/remotedb"
	"github.com/docker-dtr/docker-dtr/pkg/tunnel"
)

// Options give the agent its one job, as the command's flags do.
type Options struct {
	// DB serves the plugin's requests on the RethinkDB at this address
	// (the replica's, on dtr-ol) with DTR's client certificate from /ca:
	// dumps, plans, loads (pkg/remotedb).
	DB string
	// CARoot replaces /ca, for tests.
	CARoot string
	// Wipe empties this directory, which must be WipeOnly.
	Wipe string
	// DU prints what this directory holds, as one line of JSON.
	DU string
	// Send lists this directory, then sends a tar of it without the files
	// the plugin names (an incremental image backup: see Send).
	Send string
	// NoListing makes Send read the plugin's list first and send the tar
	// in one walk, without a listing: see SendUnlisted.
	NoListing bool
	// Bucket makes --send, --du, --wipe and --receive work on DTR's S3
	// bucket instead of the directory they name (which then only names
	// the tar's top directory and must be WipeOnly): the agent reads
	// DTR's storage settings from the RethinkDB at this address, with
	// DTR's client certificate, as --db does, and opens the bucket with
	// them. The credentials stay in the agent.
	Bucket string
	// Receive writes the tar on stdin into the bucket (with Bucket only:
	// a volume is written through the engine's archive API).
	Receive string
	// Lease reads stdin and exits once it ends or stays silent for
	// IdleTimeout: a helper that only has to live as long as its plugin.
	// With DU, it measures that directory meanwhile: one line of JSON on
	// stdout, or its error on stderr (the lease holds either way).
	Lease bool
	// IdleTimeout is how long the relay and the lease wait for a byte from
	// the plugin before they take it for gone; zero is tunnel.IdleTimeout.
	IdleTimeout time.Duration
	// WipeOnly is the one directory Wipe empties: the image volume's mount
	// point in a helper. A wrong argument must not empty the helper's root
	// file system.
	WipeOnly string
}

// LeaseHeld is the line a lease's agent writes on stdout before anything
// else (its sizes, with DU, come after it).
const LeaseHeld = "lease held"

// Run does the one job o gives.
func Run(o Options, stdin io.ReadCloser, stdout io.WriteCloser, stderr io.Writer) error {
	n := 0
	for _, set := range []string{o.DB, o.Wipe, o.DU, o.Send, o.Receive} {
		if set != "" {
			n++
		}
	}
	if o.Lease && o.DU == "" {
		n++
	}
	idle := o.IdleTimeout
	if idle <= 0 {
		idle = tunnel.IdleTimeout
	}
	// What the agent sends goes through its stdout, a pipe to the engine.
	growPipe(stdout)
	if o.NoListing && (o.Send == "" || o.Bucket != "") {
		return errors.New("agent: --no-listing goes with --send, on a directory")
	}
	if o.Bucket != "" {
		if n != 1 || o.Lease || o.DB != "" {
			return errors.New("agent: --bucket goes with exactly one of --wipe, --du, --send and --receive")
		}
		return runBucket(o, stdin, stdout, idle)
	}
	switch {
	case n != 1:
		return errors.New("agent: give exactly one of --db, --wipe, --du, --send and --lease")
	case o.Receive != "":
		return errors.New("agent: --receive writes into a bucket only: give --bucket")
	case o.Lease:
		// Said first: the plugin reads through this helper only once its
		// agent has said it holds the lease (imagevolume's leaseHelper).
		if _, err := io.WriteString(stdout, LeaseHeld+"\n"); err != nil {
			return fmt.Errorf("agent: --lease: %w", err)
		}
		if o.DU != "" {
			// Beside the lease: the read it guards must not wait for it.
			go func() {
				if err := printDU(o.DU, stdout); err != nil {
					fmt.Fprintln(stderr, err)
				}
			}()
		}
		why := tunnel.Hold(stdin, idle)
		if strings.HasPrefix(why, "no word") {
			return fmt.Errorf("agent: %s: taking it for gone", why)
		}
		return nil
	case o.DB != "":
		if err := remotedb.Serve(remotedb.Dial(o.DB, o.CARoot), stdin, stdout, idle); err != nil {
			return fmt.Errorf("agent: --db %s: %w", o.DB, err)
		}
		return nil
	case o.Wipe != "":
		if path.Clean(o.Wipe) != o.WipeOnly {
			return fmt.Errorf("agent: --wipe %s: refusing, only %s (the image volume's mount point in a helper) is emptied", o.Wipe, o.WipeOnly)
		}
		n, err := Wipe(o.WipeOnly)
		if err != nil {
			return fmt.Errorf("agent: emptying %s: %w", o.WipeOnly, err)
		}
		fmt.Fprintf(stdout, "emptied %s: removed %d entries\n", o.WipeOnly, n)
		return nil
	case o.DU != "":
		return printDU(o.DU, stdout)
	case o.NoListing:
		if err := SendUnlisted(o.Send, stdin, stdout, idle); err != nil {
			return fmt.Errorf("agent: --send %s --no-listing: %w", o.Send, err)
		}
		return nil
	default:
		if err := Send(o.Send, stdin, stdout, idle); err != nil {
			return fmt.Errorf("agent: --send %s: %w", o.Send, err)
		}
		return nil
	}
}

// printDU prints what dir holds as one line of JSON (--du).
func printDU(dir string, stdout io.Writer) error {
	u, err := DU(dir)
	if err != nil {
		return fmt.Errorf("agent: --du %s: %w", dir, err)
	}
	return json.NewEncoder(stdout).Encode(u)
}

// runBucket does o's job on DTR's bucket.
func runBucket(o Options, stdin io.Reader, stdout io.Writer, idle time.Duration) error {
	dir := o.Wipe + o.DU + o.Send + o.Receive
	if path.Clean(dir) != o.WipeOnly {
		return fmt.Errorf("agent: --bucket: %s is not %s, the mount point the bucket stands for", dir, o.WipeOnly)
	}
	ctx := context.Background()
	if o.Send != "" {
		if err := sendBucket(ctx, o, path.Base(o.WipeOnly), stdin, stdout, idle); err != nil {
			return fmt.Errorf("agent: --bucket --send: %w", err)
		}
		return nil
	}
	b, err := openBucket(ctx, o.Bucket, o.CARoot)
	if err != nil {
		return fmt.Errorf("agent: --bucket: %w", err)
	}
	t := &bucketTree{ctx: ctx, b: b, name: path.Base(o.WipeOnly)}
	switch {
	case o.Wipe != "":
		n, err := b.Empty(ctx)
		if err != nil {
			return fmt.Errorf("agent: emptying %s: %w", b.Backend, err)
		}
		fmt.Fprintf(stdout, "emptied %s: removed %d entries\n", b.Backend, n)
		return nil
	case o.DU != "":
		u, err := usage(t)
		if err != nil {
			return fmt.Errorf("agent: measuring %s: %w", b.Backend, err)
		}
		return json.NewEncoder(stdout).Encode(u)
	default:
		if err := receive(ctx, b, stdin, stdout); err != nil {
			return fmt.Errorf("agent: --receive: %w", err)
		}
		return nil
	}
}

// SendBucket runs the send protocol (Send) on the bucket, under the top
// directory top: what "agent --bucket --send" does in its helper, which
// the S3 benchmark also runs in its own process, to tell the agent's cost
// from the helper's stream.
func SendBucket(ctx context.Context, b *bucket.Bucket, top string, stdin io.Reader, stdout io.Writer, idle time.Duration) error {
	return send(&bucketTree{ctx: ctx, b: b, name: top}, stdin, stdout, idle)
}
