package dtr

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// engine stands in for the Docker engine's container lifecycle: which
// containers run, and the calls it got, in order. Like the real engine, a
// stop goes on when its client gives up (the stop call does not take the
// request's context on API 1.41).
type engine struct {
	mu      sync.Mutex
	running map[string]bool
	calls   []string // "stop ID", "start ID"
	timeout []int    // each stop's timeout, in seconds
	// gate, when set, holds every stop until it is closed; arrived counts
	// the stops that reached it.
	gate    chan struct{}
	arrived chan string
	// failStop and failStart fail these containers' calls; ignoresTerm
	// are killed by their stop (exit code 137).
	failStop, failStart, ignoresTerm map[string]bool
	killed                           map[string]bool
	// health, for the containers that have a health check, is what each
	// inspect reports in turn, the last one from then on.
	health  map[string][]string
	inspect map[string]int // inspects per container
}

func newEngine(ids ...string) *engine {
	e := &engine{running: map[string]bool{}, failStop: map[string]bool{}, failStart: map[string]bool{}, ignoresTerm: map[string]bool{}, killed: map[string]bool{},
		health: map[string][]string{}, inspect: map[string]int{}}
	for _, id := range ids {
		e.running[id] = true
	}
	return e
}

func (e *engine) ContainerStop(ctx context.Context, id string, o container.StopOptions) error {
	e.mu.Lock()
	e.calls = append(e.calls, "stop "+id)
	e.timeout = append(e.timeout, *o.Timeout)
	gate, fail := e.gate, e.failStop[id]
	e.mu.Unlock()
	if fail {
		return errors.New("engine says no")
	}
	done := make(chan struct{})
	go func() { // the engine's side: it stops the container whatever the client does
		if gate != nil {
			e.arrived <- id
			<-gate
		}
		e.mu.Lock()
		e.running[id] = false
		e.killed[id] = e.ignoresTerm[id]
		e.mu.Unlock()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *engine) ContainerStart(ctx context.Context, id string, _ container.StartOptions) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls = append(e.calls, "start "+id)
	if e.failStart[id] {
		return errors.New("engine says no")
	}
	e.running[id] = true
	return nil
}

func (e *engine) ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := &container.State{Running: e.running[id], Status: "exited"}
	if st.Running {
		st.Status = "running"
	}
	if e.killed[id] {
		st.ExitCode = 137
	}
	if hs := e.health[id]; len(hs) > 0 {
		h := hs[min(e.inspect[id], len(hs)-1)]
		st.Health = &container.Health{Status: h, Log: []*container.HealthcheckResult{{Output: h + " says the check\n"}}}
	}
	e.inspect[id]++
	return container.InspectResponse{ContainerJSONBase: &container.ContainerJSONBase{ID: id, State: st}}, nil
}

func (e *engine) started() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, c := range e.calls {
		if id, ok := strings.CutPrefix(c, "start "); ok {
			out = append(out, id)
		}
	}
	return out
}

func (e *engine) allRunning(t *testing.T) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	for id, run := range e.running {
		assert.Check(t, run, "%s is left stopped", id)
	}
}

// dtrContainers are a replica's containers but RethinkDB, in the order
// discovery lists them (by name); each one's ID is its component.
func dtrContainers() []Container {
	var out []Container
	for _, comp := range []string{"api", "garant", "jobrunner", "nginx", "notary-server", "notary-signer", "registry", "scanningstore"} {
		out = append(out, Container{Component: comp, Name: "dtr-" + comp + "-0123456789ab", ID: comp})
	}
	return out
}

func ids(cs []Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

// logger collects Stop's and Start's lines; they come from several
// goroutines.
type logger struct {
	mu    sync.Mutex
	lines []string
}

func (l *logger) log(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

// Every stop is under way before any has ended, each with the one bound:
// a replica whose containers ignore SIGTERM waits StopTimeout once, not
// once per container. The serial Stop fails here: its first stop never
// ends while the others wait.
func TestStopAllAtOnce(t *testing.T) {
	cs := dtrContainers()
	e := newEngine(ids(cs)...)
	e.gate, e.arrived = make(chan struct{}), make(chan string, len(cs))
	var l logger
	type result struct {
		restart func() error
		err     error
	}
	res := make(chan result, 1)
	go func() {
		restart, err := Stop(context.Background(), e, cs, l.log)
		res <- result{restart, err}
	}()
	var arrived []string
	for range cs {
		select {
		case id := <-e.arrived:
			arrived = append(arrived, id)
		case <-time.After(10 * time.Second): // a hang, not a measure
			close(e.gate)
			t.Fatalf("only %v were being stopped while the first had not ended: the stops run one after another", arrived)
		}
	}
	close(e.gate)
	r := <-res
	assert.NilError(t, r.err)
	for _, tmo := range e.timeout {
		assert.Check(t, is.Equal(tmo, int(StopTimeout/time.Second)))
	}
	assert.Check(t, is.Len(l.lines, len(cs)))
	for _, c := range cs {
		assert.Check(t, slices.Contains(l.lines, "stopped "+c.Name), "%v", l.lines)
	}
	assert.NilError(t, r.restart())
	e.allRunning(t)
}

// restart starts what was stopped in DTR's order: each rank once the one
// before has started, nginx last. The old restart started them in the
// order they were stopped (nginx fourth here).
func TestRestartInDTROrder(t *testing.T) {
	cs := append(dtrContainers(), Container{Component: "rethinkdb", Name: "dtr-rethinkdb-0123456789ab", ID: "rethinkdb"})
	e := newEngine(ids(cs)...)
	restart, err := Stop(context.Background(), e, cs, func(string, ...any) {})
	assert.NilError(t, err)
	assert.NilError(t, restart())
	started := e.started()
	assert.Assert(t, is.Len(started, len(cs)))
	var ranks []int
	for _, id := range started {
		ranks = append(ranks, startRanks[id])
	}
	assert.Check(t, slices.IsSorted(ranks), "started in the order %v", started)
	assert.Check(t, is.Equal(started[0], "rethinkdb"))
	assert.Check(t, is.Equal(started[len(started)-1], "nginx"))
	e.allRunning(t)

	// restart starts nothing twice.
	assert.NilError(t, restart())
	assert.Check(t, is.Len(e.started(), len(cs)))
}

// The journal keeps names and ids only: the order comes from the names,
// and a component it does not know starts before nginx.
func TestStartOrderFromNames(t *testing.T) {
	var cs []Container
	for _, n := range []string{"dtr-nginx-0123456789ab", "dtr-newthing-0123456789ab", "node1/dtr-api-0123456789ab", "dtr-registry-0123456789ab", "dtr-rethinkdb-0123456789ab"} {
		cs = append(cs, Container{Name: n, ID: n})
	}
	var got [][]string
	for _, g := range StartOrder(cs) {
		got = append(got, ids(g))
	}
	assert.DeepEqual(t, got, [][]string{
		{"dtr-rethinkdb-0123456789ab"},
		{"dtr-registry-0123456789ab"},
		{"dtr-newthing-0123456789ab", "node1/dtr-api-0123456789ab"},
		{"dtr-nginx-0123456789ab"},
	})
}

// A stop that fails does not keep the others from stopping; the error
// names it, and restart starts the ones that did stop.
func TestStopPartFails(t *testing.T) {
	cs := dtrContainers()
	e := newEngine(ids(cs)...)
	e.failStop["registry"] = true
	restart, err := Stop(context.Background(), e, cs, func(string, ...any) {})
	assert.Check(t, is.ErrorContains(err, "stopping dtr-registry-0123456789ab: engine says no"))
	assert.Assert(t, restart != nil)
	assert.NilError(t, restart())
	started := e.started()
	assert.Check(t, is.Len(started, len(cs)-1))
	assert.Check(t, !slices.Contains(started, "registry"), "started what it never stopped")
	e.allRunning(t)
}

// The container that ignored SIGTERM is named, once; the others are not.
func TestStopNamesTheKilled(t *testing.T) {
	cs := dtrContainers()
	e := newEngine(ids(cs)...)
	e.ignoresTerm["jobrunner"] = true
	var l logger
	restart, err := Stop(context.Background(), e, cs, l.log)
	assert.NilError(t, err)
	defer restart()
	var killed []string
	for _, line := range l.lines {
		if strings.Contains(line, "SIGKILL") {
			killed = append(killed, line)
		}
	}
	assert.DeepEqual(t, killed, []string{"stopped dtr-jobrunner-0123456789ab: it did not exit within 30s of SIGTERM, so the engine killed it (SIGKILL)"})
}

// Ctrl-C while the containers stop: Stop waits for the stops it began,
// which the engine finishes anyway, and says it was interrupted; restart
// then starts every one of them. The serial Stop returned at once with
// the one it was stopping not counted as stopped, and restart left it
// stopped (as it did the rest, never stopped, running).
func TestStopInterrupted(t *testing.T) {
	cs := dtrContainers()
	e := newEngine(ids(cs)...)
	e.gate, e.arrived = make(chan struct{}), make(chan string, len(cs))
	ctx, cancel := context.WithCancel(context.Background())
	type result struct {
		restart func() error
		err     error
	}
	res := make(chan result, 1)
	go func() {
		restart, err := Stop(ctx, e, cs, func(string, ...any) {})
		res <- result{restart, err}
	}()
	<-e.arrived
	cancel()
	select {
	case r := <-res:
		close(e.gate)
		t.Fatalf("Stop returned (%v) while a stop it began was under way: restart would leave that one stopped", r.err)
	case <-time.After(100 * time.Millisecond):
	}
	close(e.gate)
	r := <-res
	assert.Check(t, is.ErrorIs(r.err, context.Canceled))
	assert.NilError(t, r.restart())
	e.allRunning(t)
	assert.Check(t, is.Len(e.started(), len(cs)))
}

// Start goes on past a container that does not start, and names it with
// the command that starts it by hand.
func TestStartGoesOn(t *testing.T) {
	cs := dtrContainers()
	e := newEngine()
	e.failStart["garant"] = true
	var l logger
	err := Start(context.Background(), e, cs, l.log)
	assert.Check(t, is.Error(err, "starting dtr-garant-0123456789ab again: engine says no (start it with: docker start dtr-garant-0123456789ab)"))
	assert.Check(t, is.Len(e.started(), len(cs)))
	assert.Check(t, is.Len(l.lines, len(cs)-1))
	assert.Check(t, slices.Contains(l.lines, "started dtr-nginx-0123456789ab again"))
}

// restart returns once the api, which has a health check, reports
// healthy: a restore that returned while it was starting left the next
// backup to find no healthy replica.
func TestRestartWaitsForHealth(t *testing.T) {
	cs := dtrContainers()
	e := newEngine(ids(cs)...)
	e.health["api"] = []string{"healthy", "starting", "starting", "healthy"} // healthy before the stop
	var l logger
	restart, err := Stop(context.Background(), e, cs, l.log)
	assert.NilError(t, err)
	assert.NilError(t, restart())
	e.mu.Lock()
	defer e.mu.Unlock()
	assert.Check(t, e.inspect["api"] >= 4, "the api was asked %d times: restart did not wait for it to report healthy", e.inspect["api"])
	assert.Check(t, slices.Contains(l.lines, "waiting for dtr-api-0123456789ab to report healthy"), "%v", l.lines)
}

// One that is still unhealthy when the wait ends is named with what its
// check said; one that exited is named at once with its exit code.
func TestWaitHealthyNamesTheUnhealthy(t *testing.T) {
	cs := dtrContainers()
	e := newEngine(ids(cs)...)
	e.health["api"] = []string{"unhealthy"}
	e.running["garant"] = false
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var l logger
	err := WaitHealthy(ctx, e, cs, l.log)
	assert.Check(t, is.ErrorContains(err, "dtr-garant-0123456789ab exited (exit code 0) after it was started again: see docker logs dtr-garant-0123456789ab"))
	assert.Check(t, is.ErrorContains(err, "dtr-api-0123456789ab has not reported healthy (unhealthy: unhealthy says the check): check it with docker dtr status, and docker logs dtr-api-0123456789ab"))
	assert.Check(t, is.DeepEqual(l.lines, []string{"waiting for dtr-api-0123456789ab to report healthy"}))
}

// An interrupted restore starts what it stopped and goes: it does not
// wait for health checks.
func TestRestartInterruptedDoesNotWait(t *testing.T) {
	cs := dtrContainers()
	e := newEngine(ids(cs)...)
	e.health["api"] = []string{"unhealthy"}
	ctx, cancel := context.WithCancel(context.Background())
	restart, err := Stop(ctx, e, cs, func(string, ...any) {})
	assert.NilError(t, err)
	cancel()
	done := make(chan error, 1)
	go func() { done <- restart() }()
	select {
	case err := <-done:
		assert.NilError(t, err)
	case <-time.After(10 * time.Second): // a hang, not a measure
		t.Fatal("an interrupted restart waits for the api's health")
	}
	e.allRunning(t)
}

// An engine answer without the container's state is named, not a panic.
func TestWaitHealthyWithoutState(t *testing.T) {
	cs := []Container{{Name: "dtr-api-0123456789ab", ID: "api"}}
	err := WaitHealthy(context.Background(), noState{}, cs, func(string, ...any) {})
	assert.Check(t, is.Error(err, "dtr-api-0123456789ab: the engine gave no state"))
}

// noState is an engine whose inspect answers carry no state.
type noState struct{ Starter }

func (noState) ContainerInspect(context.Context, string) (container.InspectResponse, error) {
	return container.InspectResponse{}, nil
}
