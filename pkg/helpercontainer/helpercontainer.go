// Package helpercontainer holds what the plugin's helper containers share: the
// labels that mark them as the plugin's and name the run that made them, and
// the cleanup of those that a killed run left behind.
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
	// LabelOwner names the plugin process that made the helper (see Self),
	// where the process can tell: a later run in the same pid namespace
	// asks the kernel whether that process still lives.
	LabelOwner = "com.docker-dtr.owner"
	// LabelLease says the helper runs an agent tied to its plugin's
	// connection ("agent"): the agent exits once the connection ends or
	// stays silent for the idle bound, and the container removes itself.
	// Such a helper is started seconds after it is made.
	LabelLease = "com.docker-dtr.lease"

	KindDB     = "db"     // runs the agent, does the database work next to RethinkDB (create, restore)
	KindImages = "images" // mounts an image volume: read and written through the archive API
	// KindAgentFill fills a node's agent cache volume (pkg/agentbin); never
	// started. Its name is the fill's lock, so its replica label is the node.
	KindAgentFill = "agent-fill"
	// KindRestoreTest is a throw-away RethinkDB that backup verify
	// --restore-test restores into (pkg/restoretest): it runs no agent,
	// so it does not end by itself.
	KindRestoreTest = "restore-test"

	LeaseAgent = "agent"
)

// Labels for a helper of a kind, working on a replica, made by this process.
func Labels(kind, replicaID string) map[string]string {
	l := map[string]string{LabelKind: kind, LabelReplica: replicaID}
	if self := Self(); self != "" {
		l[LabelOwner] = self
	}
	return l
}

// LeaseLabels are Labels for a helper whose agent holds a lease on its
// plugin's connection.
func LeaseLabels(kind, replicaID string) map[string]string {
	l := Labels(kind, replicaID)
	l[LabelLease] = LeaseAgent
	return l
}

// setupBound is how long a helper whose agent holds a lease may stay
// created: it is started once the agent is copied in and the certificates
// read, seconds on a local engine, a minute or two over a slow link.
const setupBound = 5 * time.Minute

// staleAfter is how long a created-but-never-started helper without a
// lease may belong to another run before it counts as left behind: an
// image helper that could not run the agent stays "created" for as long as
// its copy runs, which for a large registry is hours.
var staleAfter = map[string]time.Duration{
	KindDB:        setupBound,
	KindImages:    48 * time.Hour,
	KindAgentFill: setupBound,
}

// runningBound is how long a running helper that ends only when its run
// removes it may belong to another run whose life this process cannot
// tell (a remote engine) before it counts as left behind.
var runningBound = map[string]time.Duration{
	KindRestoreTest: 6 * time.Hour,
}

// Stale says whether a helper was left by a run that is no longer alive,
// and why. alive reports on an owner label: whether that process lives,
// and whether this process can tell (same host, same pid namespace).
//
//   - An owner this process can check decides: a helper of a live process
//     is never stale, whatever its state; one of a dead process always is.
//   - Otherwise the state decides. Exited or dead: stale. Running: alive,
//     since a leased agent exits on its own within the idle bound once its
//     plugin is gone (and an older agent when its stdin closes); a
//     restore test's server, which runs no agent, once older than its
//     kind's runningBound. Created:
//     stale once older than the setup bound (a leased helper) or its kind's
//     staleAfter.
func Stale(c container.Summary, alive func(owner string) (alive, known bool), now time.Time) (bool, string) {
	if owner := c.Labels[LabelOwner]; owner != "" {
		if ok, known := alive(owner); known {
			if ok {
				return false, ""
			}
			return true, "the run that made it (" + describeOwner(owner) + ") is no longer alive"
		}
	}
	switch c.State {
	case "exited", "dead":
		return true, "it has stopped"
	case "running":
		if limit := runningBound[c.Labels[LabelKind]]; limit > 0 {
			if age := now.Sub(time.Unix(c.Created, 0)); age > limit {
				return true, fmt.Sprintf("it has run for %s, longer than any run of its kind", age.Round(time.Second))
			}
		}
	case "created":
		limit := staleAfter[c.Labels[LabelKind]]
		if limit == 0 {
			limit = 48 * time.Hour
		}
		if c.Labels[LabelLease] == LeaseAgent {
			limit = setupBound
		}
		if age := now.Sub(time.Unix(c.Created, 0)); age > limit {
			return true, fmt.Sprintf("it was never started (made %s ago)", age.Round(time.Second))
		}
	}
	return false, ""
}

// Removed is a helper that RemoveStale removed.
type Removed struct {
	Name, Kind, Replica, Why string
}

func (r Removed) String() string {
	return fmt.Sprintf("%s helper %s of replica %s: %s", r.Kind, r.Name, r.Replica, r.Why)
}

// RemoveStale removes the helpers, of every kind and every replica, that
// runs no longer alive left behind (see Stale), and says which.
func RemoveStale(ctx context.Context, api client.APIClient) ([]Removed, error) {
	list, err := api.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", LabelKind)),
	})
	if err != nil {
		return nil, fmt.Errorf("listing helper containers: %w", err)
	}
	var removed []Removed
	var errs []error
	now := time.Now()
	for _, c := range list {
		stale, why := Stale(c, Alive, now)
		if !stale {
			continue
		}
		if err := Remove(ctx, api, c.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		name := c.ID
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		removed = append(removed, Removed{Name: name, Kind: c.Labels[LabelKind], Replica: c.Labels[LabelReplica], Why: why})
	}
	return removed, errors.Join(errs...)
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
		if err == nil || IsNotFound(err) {
			return nil
		}
		// Someone else (a user's docker rm -f, or the engine's AutoRemove
		// once the agent exits) removing it is as good: wait a moment for
		// it to finish, so that the caller finds it gone. That removal may
		// fail (the engine keeps the container then): ours goes again.
		if strings.Contains(err.Error(), "is already in progress") && waitGone(ctx, api, id) {
			return nil
		}
	}
	return err
}

// waitGone waits, within ctx and 10 seconds, until the container is gone.
// It lists rather than inspects: a listing does not wait for the
// container's lock, which an archive copy holds while it streams.
// It says whether it is gone (or cannot tell: a listing that fails).
func waitGone(ctx context.Context, api client.APIClient, id string) bool {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		list, err := api.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("id", id))})
		if err != nil || len(list) == 0 {
			return true
		}
		if list[0].State != "removing" {
			// The other removal ended, and the container is still there.
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// IsNotFound says the container is already gone.
func IsNotFound(err error) bool {
	var nf interface{ NotFound() }
	return errors.As(err, &nf) || strings.Contains(err.Error(), "No such container")
}
