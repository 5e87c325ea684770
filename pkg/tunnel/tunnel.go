// Package tunnel is the plugin's link to an agent in a helper container
// on a replica's node: the helper (the replica's RethinkDB image, on
// dtr-ol, DTR's CA volume read-only at /ca, the agent from the node's
// cache), its attach connection as the agent's standard input and output,
// and the lease that ends the agent once the plugin is gone. The agent's
// jobs are other packages' (pkg/remotedb).
package tunnel

import (
	"context"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/helpercontainer"
)

// openTimeout bounds the setup: a helper that does not answer by then will
// not.
const openTimeout = 2 * time.Minute

// removeStale removes the helpers killed runs left, saying so.
func removeStale(ctx context.Context, api API, log func(string, ...any)) {
	removed, err := helpercontainer.RemoveStale(ctx, api)
	if err != nil {
		log("warning: %v", err)
	}
	for _, r := range removed {
		log("removed the %s", r)
	}
}
