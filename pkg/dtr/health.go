package dtr

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
)

// HealthWait bounds how long a restore waits, once it has started DTR's
// containers again, for them to report healthy: a restore that returns
// while the api is still starting leaves the next command (a backup, a
// status) to find no healthy replica.
const HealthWait = 2 * time.Minute

// healthPoll is how often WaitHealthy asks the engine again.
const healthPoll = 250 * time.Millisecond

// WaitHealthy returns once every container of cs runs and, where it has a
// health check, reports healthy. A container that exits is reported at
// once; one still starting or unhealthy when ctx ends is named with its
// health check's last output. It says what it waits for, once.
func WaitHealthy(ctx context.Context, api Starter, cs []Container, log func(string, ...any)) error {
	pending := slices.Clone(cs)
	var errs []error
	last := map[string]string{} // container name: its last health output
	announced := false
	for {
		var next []Container
		for _, c := range pending {
			info, err := api.ContainerInspect(ctx, c.ID)
			if err != nil {
				if ctx.Err() != nil {
					next = append(next, c)
					continue
				}
				errs = append(errs, fmt.Errorf("%s: %w", c.Name, err))
				continue
			}
			if info.ContainerJSONBase == nil || info.State == nil {
				errs = append(errs, fmt.Errorf("%s: the engine gave no state", c.Name))
				continue
			}
			st := info.State
			switch {
			case !st.Running:
				errs = append(errs, fmt.Errorf("%s %s (exit code %d) after it was started again: see docker logs %s", c.Name, st.Status, st.ExitCode, c.Name))
			case st.Health == nil || st.Health.Status == "" || st.Health.Status == container.NoHealthcheck || st.Health.Status == container.Healthy:
			default:
				last[c.Name] = st.Health.Status + lastProbe(st.Health)
				next = append(next, c)
			}
		}
		pending = next
		if len(pending) == 0 {
			return errors.Join(errs...)
		}
		if !announced {
			announced = true
			log("waiting for %s to report healthy", names(pending))
		}
		select {
		case <-ctx.Done():
			for _, c := range pending {
				errs = append(errs, fmt.Errorf("%s has not reported healthy (%s): check it with docker dtr status, and docker logs %s", c.Name, last[c.Name], c.Name))
			}
			return errors.Join(errs...)
		case <-time.After(healthPoll):
		}
	}
}

// StartHealthy starts the containers (Start, within startCtx) and, once
// they all started and healthCtx has not ended, waits for them to report
// healthy (WaitHealthy, within HealthWait of healthCtx): an interrupted
// run, whose healthCtx has ended, only starts them.
func StartHealthy(startCtx, healthCtx context.Context, api Starter, cs []Container, log func(string, ...any)) error {
	if err := Start(startCtx, api, cs, log); err != nil || healthCtx.Err() != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(healthCtx, HealthWait)
	defer cancel()
	return WaitHealthy(ctx, api, cs, log)
}

// lastProbe is the last health check's output, on one line.
func lastProbe(h *container.Health) string {
	if len(h.Log) == 0 {
		return ""
	}
	out := strings.Join(strings.Fields(h.Log[len(h.Log)-1].Output), " ")
	if out == "" {
		return ""
	}
	return ": " + out
}

func names(cs []Container) string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return strings.Join(out, ", ")
}
