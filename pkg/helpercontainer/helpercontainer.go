// Package helpercontainer holds what the plugin's helper containers share: the
// labels that mark them as the plugin's, and the cleanup of those that a
// killed run left behind.
package helpercontainer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
)

// Labels on every helper container.
const (
	// LabelKind marks a container as the plugin's; its value says what for.
	LabelKind = "com.docker-dtr.helper"
	// LabelReplica is the replica the helper works on.
	LabelReplica = "com.docker-dtr.replica"

	KindTunnel = "tunnel" // runs the agent, relays to RethinkDB
	KindImages = "images" // never started: its mounts are read and written
)

// Labels for a helper of a kind, working on a replica.
func Labels(kind, replicaID string) map[string]string {
	return map[string]string{LabelKind: kind, LabelReplica: replicaID}
}

// staleAfter is how long a created-but-never-started helper may belong to
// another run before it counts as left behind: a tunnel helper is started
// seconds after it is made, but an image helper stays "created" for as long
// as its copy runs, which for a large registry is hours.
var staleAfter = map[string]time.Duration{
	KindTunnel: 2 * time.Minute,
	KindImages: 48 * time.Hour,
}

// RemoveStale removes helpers that killed runs left behind: stopped ones,
// and created ones older than their kind's staleAfter. Running helpers belong to runs in
// progress (a tunnel helper whose run died exits on its own, as its stdin
// closes). It returns how many it removed.
func RemoveStale(ctx context.Context, api client.APIClient) (int, error) {
	list, err := api.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", LabelKind)),
	})
	if err != nil {
		return 0, fmt.Errorf("listing helper containers: %w", err)
	}
	n := 0
	var errs []error
	for _, c := range list {
		limit, ok := staleAfter[c.Labels[LabelKind]]
		if !ok {
			limit = 48 * time.Hour
		}
		stale := c.State == "exited" || c.State == "dead" ||
			(c.State == "created" && time.Since(time.Unix(c.Created, 0)) > limit)
		if !stale {
			continue
		}
		if err := Remove(ctx, api, c.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// Remove deletes a helper in any state, with the anonymous volumes its image
// may have declared (never a named volume it mounts).
// A removal that fails is tried again: after a dropped engine connection,
// the first request may go out on a connection that is already dead, and
// the HTTP client does not resend a DELETE by itself.
func Remove(ctx context.Context, api client.APIClient, id string) error {
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return err
			case <-time.After(time.Duration(attempt) * 500 * time.Millisecond):
			}
		}
		err = api.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
		// Someone else (a user's docker rm -f) removing it is as good.
		if err == nil || IsNotFound(err) || strings.Contains(err.Error(), "is already in progress") {
			return nil
		}
	}
	return err
}

// IsNotFound says the container is already gone.
func IsNotFound(err error) bool {
	var nf interface{ NotFound() }
	return errors.As(err, &nf) || strings.Contains(err.Error(), "No such container")
}
