package dtr

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/docker/docker/api/types/container"
)

// Starter is the part of the Docker client that stopping and starting a
// replica's containers needs.
type Starter interface {
	ContainerStop(ctx context.Context, id string, options container.StopOptions) error
	ContainerStart(ctx context.Context, id string, options container.StartOptions) error
}

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

// Stop stops the containers and returns a function that starts the ones it
// stopped again. Call restart whatever happens next, even when Stop fails
// part way: it uses its own context, so it works after Ctrl-C too.
func Stop(ctx context.Context, api Starter, containers []Container, log func(string, ...any)) (restart func() error, err error) {
	var stopped []Container
	restart = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		var errs []error
		for _, c := range stopped {
			if err := api.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
				errs = append(errs, fmt.Errorf("starting %s again: %w (start it with: docker start %s)", c.Name, err, c.Name))
				continue
			}
			log("started %s again", c.Name)
		}
		stopped = nil
		return errors.Join(errs...)
	}
	timeout := 30
	for _, c := range containers {
		if err := api.ContainerStop(ctx, c.ID, container.StopOptions{Timeout: &timeout}); err != nil {
			return restart, fmt.Errorf("stopping %s: %w", c.Name, err)
		}
		stopped = append(stopped, c)
		log("stopped %s", c.Name)
	}
	return restart, nil
}
