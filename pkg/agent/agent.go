// Package agent is what the plugin's binary does when it runs as the agent
// inside a helper container (the hidden 'docker dtr agent' command): relay
// the tunnel's streams to RethinkDB (pkg/tunnel's ServeStdio), measure an
// image volume (DU) or empty it (Wipe). pkg/agentbin ships the binary into
// the helper.
package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"

	"github.com/docker-dtr/docker-dtr/pkg/tunnel"
)

// Options give the agent its one job, as the command's flags do.
type Options struct {
	// Connect relays the streams multiplexed on stdin and stdout to this
	// address.
	Connect string
	// Wipe empties this directory, which must be WipeOnly.
	Wipe string
	// DU prints what this directory holds, as one line of JSON.
	DU string
	// WipeOnly is the one directory Wipe empties: the image volume's mount
	// point in a helper. A wrong argument must not empty the helper's root
	// file system.
	WipeOnly string
}

// Run does the one job o gives.
func Run(o Options, stdin io.ReadCloser, stdout io.WriteCloser, stderr io.Writer) error {
	n := 0
	for _, set := range []string{o.Connect, o.Wipe, o.DU} {
		if set != "" {
			n++
		}
	}
	switch {
	case n != 1:
		return errors.New("agent: give exactly one of --connect, --wipe and --du")
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
	default:
		return tunnel.ServeStdio(stdin, stdout, o.Connect, stderr)
	}
}
