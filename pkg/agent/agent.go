// Package agent is what the plugin's binary does when it runs as the agent
// inside a helper container (the hidden 'docker dtr agent' command): relay
// the tunnel's streams to RethinkDB (pkg/tunnel's ServeStdio), measure an
// image volume (DU), dump the replica's RethinkDB as 'backup create' does
// (Dump, pkg/remotedump), send the parts of it an incremental backup lacks
// (Send), or empty it (Wipe), or only hold a lease on its
// plugin's connection (Lease). pkg/agentbin ships the binary into the
// helper.
//
// The relay and the lease exit once their plugin is gone: its connection
// ends, or stays silent for tunnel.IdleTimeout (the plugin sends something
// every tunnel.KeepAlive). Their containers remove themselves then.
package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/remotedump"
	"github.com/docker-dtr/docker-dtr/pkg/tunnel"
)

// Options give the agent its one job, as the command's flags do.
type Options struct {
	// Connect relays the streams multiplexed on stdin and stdout to this
	// address.
	Connect string
	// Dump dumps the RethinkDB at this address (the replica's, on dtr-ol)
	// with DTR's client certificate from /ca, and sends the archive on
	// stdout (pkg/remotedump).
	Dump string
	// CARoot replaces /ca, for tests.
	CARoot string
	// Wipe empties this directory, which must be WipeOnly.
	Wipe string
	// DU prints what this directory holds, as one line of JSON.
	DU string
	// Send lists this directory, then sends a tar of it without the files
	// the plugin names (an incremental image backup: see Send).
	Send string
	// Lease reads stdin and exits once it ends or stays silent for
	// IdleTimeout: a helper that only has to live as long as its plugin.
	Lease bool
	// IdleTimeout is how long the relay and the lease wait for a byte from
	// the plugin before they take it for gone; zero is tunnel.IdleTimeout.
	IdleTimeout time.Duration
	// WipeOnly is the one directory Wipe empties: the image volume's mount
	// point in a helper. A wrong argument must not empty the helper's root
	// file system.
	WipeOnly string
}

// Run does the one job o gives.
func Run(o Options, stdin io.ReadCloser, stdout io.WriteCloser, stderr io.Writer) error {
	n := 0
	for _, set := range []string{o.Connect, o.Dump, o.Wipe, o.DU, o.Send} {
		if set != "" {
			n++
		}
	}
	if o.Lease {
		n++
	}
	idle := o.IdleTimeout
	if idle <= 0 {
		idle = tunnel.IdleTimeout
	}
	switch {
	case n != 1:
		return errors.New("agent: give exactly one of --connect, --dump, --wipe, --du, --send and --lease")
	case o.Lease:
		why := tunnel.Hold(stdin, idle)
		if strings.HasPrefix(why, "no word") {
			return fmt.Errorf("agent: %s: taking it for gone", why)
		}
		return nil
	case o.Dump != "":
		if err := remotedump.Serve(remotedump.Dial(o.Dump, o.CARoot), stdin, stdout, idle); err != nil {
			return fmt.Errorf("agent: --dump %s: %w", o.Dump, err)
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
		u, err := DU(o.DU)
		if err != nil {
			return fmt.Errorf("agent: --du %s: %w", o.DU, err)
		}
		return json.NewEncoder(stdout).Encode(u)
	case o.Send != "":
		if err := Send(o.Send, stdin, stdout, idle); err != nil {
			return fmt.Errorf("agent: --send %s: %w", o.Send, err)
		}
		return nil
	default:
		return tunnel.ServeStdio(stdin, stdout, o.Connect, stderr, idle)
	}
}
