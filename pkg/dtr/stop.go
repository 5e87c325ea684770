package dtr

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
)

// Starter is the part of the Docker client that stopping and starting a
// replica's containers needs.
type Starter interface {
	ContainerStop(ctx context.Context, id string, options container.StopOptions) error
	ContainerStart(ctx context.Context, id string, options container.StartOptions) error
	ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error)
}

// StopTimeout is how long the containers Stop stops get, all at once, to
// exit on SIGTERM before the engine kills them: docker stop's default
// grace, paid once for the replica instead of once per container.
const StopTimeout = 30 * time.Second

// stopSlack bounds, beyond StopTimeout, how long the engine may take to
// kill what ignored SIGTERM and answer.
const stopSlack = 30 * time.Second

// Running are the replica's running containers for which keep is true.
func (r *Replica) Running(keep func(Container) bool) []Container {
	var out []Container
	for _, c := range r.Containers {
		if c.State == "running" && keep(c) {
			out = append(out, c)
		}
	}
	return out
}

// Stop stops the containers, all at once, and returns a function that
// starts the ones it stopped again, in the order DTR needs (StartOrder),
// and waits for them to report healthy (StartHealthy: not after ctx has
// ended, an interrupted run goes at once).
// Call restart whatever happens next, even when Stop fails part way: it
// uses its own context, so it works after Ctrl-C too. A container that
// ignores SIGTERM is killed StopTimeout after the stops began, and the log
// says so.
//
// Stop returns only once every stop has ended, even when ctx ends first:
// the engine goes on stopping a container when its client goes away, so a
// restart that ran before it had would find the container running and
// leave it, to be killed a moment later.
func Stop(ctx context.Context, api Starter, containers []Container, log func(string, ...any)) (restart func() error, err error) {
	var mu sync.Mutex // guards stopped and log
	var stopped []Container
	restart = func() error {
		mu.Lock()
		cs := stopped
		stopped = nil
		mu.Unlock()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		return StartHealthy(sctx, ctx, api, cs, log)
	}

	// The stops run on when ctx ends (see above), within a bound of their own.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), StopTimeout+stopSlack)
	defer cancel()
	timeout := int(StopTimeout / time.Second)
	errs := make([]error, len(containers))
	var wg sync.WaitGroup
	for i, c := range containers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := api.ContainerStop(sctx, c.ID, container.StopOptions{Timeout: &timeout}); err != nil {
				errs[i] = fmt.Errorf("stopping %s: %w", c.Name, err)
				return
			}
			killed := killedAfterStop(sctx, api, c.ID)
			mu.Lock()
			defer mu.Unlock()
			stopped = append(stopped, c)
			if killed {
				log("stopped %s: it did not exit within %s of SIGTERM, so the engine killed it (SIGKILL)", c.Name, StopTimeout)
			} else {
				log("stopped %s", c.Name)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return restart, err
	}
	return restart, ctx.Err()
}

// killedAfterStop says whether the container a stop just ended was killed
// with SIGKILL (exit code 128+9) rather than exiting on SIGTERM, and not by
// the kernel for memory.
func killedAfterStop(ctx context.Context, api Starter, id string) bool {
	info, err := api.ContainerInspect(ctx, id)
	if err != nil || info.ContainerJSONBase == nil || info.State == nil {
		return false // only the message depends on it
	}
	return info.State.ExitCode == 137 && !info.State.OOMKilled
}

// startRanks order DTR's components by what each needs running when it
// starts. DTR publishes no start order; this one is inferred from what the
// components use: RethinkDB (etcd before 2.2) holds everyone's state; the
// scanning store, notary's signer, garant (authentication) and the
// registry need only it; the api, notary's server (which calls the signer)
// and the jobrunner come next; nginx, which proxies to all of them, last.
// Components of one rank start at once.
var startRanks = map[string]int{
	"rethinkdb": 0, "etcd": 0,
	"scanningstore": 1, "nautilusstore": 1, "notary-signer": 1, "garant": 1, "registry": 1,
	"api": 2, "notary-server": 2, "jobrunner": 2,
	"nginx": 3,
}

// unknownRank puts a component this list does not know after the ones it
// may need and before nginx.
const unknownRank = 2

// startRank is c's rank, from its component or else its name.
func startRank(c Container) int {
	comp := c.Component
	if comp == "" {
		if p, ok := parseName(c.Name); ok {
			comp = p.Component
		}
	}
	if r, ok := startRanks[comp]; ok {
		return r
	}
	return unknownRank
}

// StartOrder groups containers by the order DTR needs them started in:
// each group after the one before, the containers of a group at once.
func StartOrder(containers []Container) [][]Container {
	sorted := slices.Clone(containers)
	slices.SortStableFunc(sorted, func(a, b Container) int { return startRank(a) - startRank(b) })
	var groups [][]Container
	for i, c := range sorted {
		if i == 0 || startRank(c) != startRank(sorted[i-1]) {
			groups = append(groups, nil)
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], c)
	}
	return groups
}

// Start starts the containers in the order DTR needs (StartOrder). A
// container that does not start does not hold back the others; the error
// names each one with the command that starts it by hand.
func Start(ctx context.Context, api Starter, containers []Container, log func(string, ...any)) error {
	var mu sync.Mutex // guards log
	var errs []error
	for _, group := range StartOrder(containers) {
		failed := make([]error, len(group))
		var wg sync.WaitGroup
		for i, c := range group {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := api.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
					failed[i] = fmt.Errorf("starting %s again: %w (start it with: docker start %s)", c.Name, err, c.Name)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				log("started %s again", c.Name)
			}()
		}
		wg.Wait()
		errs = append(errs, failed...)
	}
	return errors.Join(errs...)
}
