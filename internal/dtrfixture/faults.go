package dtrfixture

import (
	"context"
	"fmt"
	"time"
)

// Kill sends SIGKILL to running containers of a replica (docker kill; no
// components means all of them) and waits until the engine reports them
// stopped. Unlike Stop, nothing is given time to shut down: this is the
// crash of a node's process. Start brings them back.
func (c *Cluster) Kill(t TB, replicaID string, components ...string) {
	t.Helper()
	rep, comps := c.replica(t, replicaID, components)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	err := forEach(len(comps), parallelStarts, func(i int) error {
		name := rep.Containers[comps[i]]
		if err := c.Client.ContainerKill(ctx, name, "KILL"); err != nil {
			return fmt.Errorf("killing %s: %w", name, err)
		}
		for {
			st, err := c.Client.ContainerInspect(ctx, name)
			if err != nil {
				return fmt.Errorf("killing %s: %w", name, err)
			}
			if !st.State.Running {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("killing %s: still running: %w", name, ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	if err != nil {
		t.Fatalf("dtrfixture: %v", err)
	}
	debugf("killed %s %v", replicaID, comps)
}

// WaitReady waits until a replica's RethinkDB (and real registry) answer and
// its health-checked container has a status other than "starting": after a
// command under test started containers again itself, before the next one
// looks for a healthy replica. Every component must be running.
func (c *Cluster) WaitReady(t TB, replicaID string) {
	t.Helper()
	rep, comps := c.replica(t, replicaID, nil)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := c.waitReady(ctx, []*Replica{rep}, comps); err != nil {
		t.Fatalf("dtrfixture: %v", err)
	}
}
