package helpercontainer

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestStale(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	const live, dead, foreign = "linux:b:1:10:100", "linux:b:1:11:100", "linux:other:1:12:100"
	alive := func(o string) (bool, bool) {
		switch o {
		case live:
			return true, true
		case dead:
			return false, true
		}
		return false, false
	}
	helper := func(kind, state string, age time.Duration, owner string, lease bool) container.Summary {
		l := map[string]string{LabelKind: kind, LabelReplica: "0123456789ab"}
		if owner != "" {
			l[LabelOwner] = owner
		}
		if lease {
			l[LabelLease] = LeaseAgent
		}
		return container.Summary{State: state, Created: now.Add(-age).Unix(), Labels: l}
	}
	for _, c := range []struct {
		name  string
		c     container.Summary
		stale bool
		why   string
	}{
		// A run this process can check decides, whatever the state.
		{"running database helper of a dead run", helper(KindDB, "running", time.Second, dead, true), true, "the run that made it (pid 11) is no longer alive"},
		{"images helper of a dead run, just made", helper(KindImages, "created", time.Second, dead, false), true, "no longer alive"},
		{"running images lease of a dead run", helper(KindImages, "running", time.Second, dead, true), true, "no longer alive"},
		{"live run's running database helper", helper(KindDB, "running", time.Hour, live, true), false, ""},
		{"live run's images helper, never started for hours", helper(KindImages, "created", 100*time.Hour, live, false), false, ""},
		{"live run's helper that exited (its run reads why)", helper(KindDB, "exited", time.Minute, live, true), false, ""},
		// Where the owner cannot be checked, the state decides.
		{"running, another host", helper(KindDB, "running", time.Hour, foreign, true), false, ""},
		{"exited, another host", helper(KindDB, "exited", time.Second, foreign, true), true, "it has stopped"},
		{"dead, no owner", helper(KindImages, "dead", time.Second, "", false), true, "it has stopped"},
		{"leased helper being set up", helper(KindImages, "created", time.Minute, foreign, true), false, ""},
		{"leased helper never started", helper(KindImages, "created", 6*time.Minute, foreign, true), true, "it was never started (made 6m0s ago)"},
		{"database helper never started", helper(KindDB, "created", 6*time.Minute, "", false), true, "never started"},
		{"unleased images helper copying for hours", helper(KindImages, "created", 47*time.Hour, "", false), false, ""},
		// An agent cache's fill is a minute's copy: the lock of a run
		// killed elsewhere goes after the setup bound.
		{"agent fill under way", helper(KindAgentFill, "created", time.Minute, foreign, false), false, ""},
		{"agent fill of a killed run on another host", helper(KindAgentFill, "created", 6*time.Minute, foreign, false), true, "never started"},
		{"unleased images helper from two days ago", helper(KindImages, "created", 49*time.Hour, "", false), true, "never started"},
		{"removal in progress", helper(KindDB, "removing", time.Hour, "", false), false, ""},
		// A restore test's server runs no agent: it goes with a dead run,
		// or, where the run cannot be told, after its running bound.
		{"restore test server of a dead run", helper(KindRestoreTest, "running", time.Minute, dead, false), true, "no longer alive"},
		{"restore test server, another host", helper(KindRestoreTest, "running", time.Hour, foreign, false), false, ""},
		{"restore test server, another host, for 7 hours", helper(KindRestoreTest, "running", 7*time.Hour, foreign, false), true, "it has run for 7h0m0s"},
	} {
		t.Run(c.name, func(t *testing.T) {
			stale, why := Stale(c.c, alive, now)
			assert.Check(t, is.Equal(stale, c.stale))
			assert.Check(t, is.Contains(why, c.why))
		})
	}
}

func TestOwner(t *testing.T) {
	if runtime.GOOS != "linux" {
		assert.Equal(t, Self(), "")
		return
	}
	me := Self()
	assert.Assert(t, me != "")
	o, ok := parseOwner(me)
	assert.Assert(t, ok, me)
	assert.Equal(t, o.pid, os.Getpid())
	assert.DeepEqual(t, Labels(KindDB, "0123456789ab"), map[string]string{LabelKind: KindDB, LabelReplica: "0123456789ab", LabelOwner: me})
	assert.Equal(t, LeaseLabels(KindImages, "0123456789ab")[LabelLease], LeaseAgent)

	alive, known := Alive(me)
	assert.Assert(t, alive && known, "this process lives")

	// A child that has exited and been reaped is dead.
	cmd := exec.Command("true")
	assert.NilError(t, cmd.Run())
	gone := fmt.Sprintf("%s:%d:%s", o.ns, cmd.Process.Pid, o.start)
	alive, known = Alive(gone)
	assert.Assert(t, !alive && known, "a reaped child is dead")

	// A child that has exited but is not reaped yet (a zombie) is dead.
	zombie := exec.Command("true")
	assert.NilError(t, zombie.Start())
	defer zombie.Wait()
	zlabel := ""
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", zombie.Process.Pid))
		assert.NilError(t, err)
		if f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:])); f[0] == "Z" {
			zlabel = fmt.Sprintf("%s:%d:%s", o.ns, zombie.Process.Pid, f[19])
			break
		}
	}
	assert.Assert(t, zlabel != "", "the child never became a zombie")
	alive, known = Alive(zlabel)
	assert.Assert(t, !alive && known, "a zombie is dead")

	// The same pid with another start time is another process.
	alive, known = Alive(fmt.Sprintf("%s:%d:%s", o.ns, o.pid, o.start+"0"))
	assert.Assert(t, !alive && known, "a reused pid")

	// Another boot or namespace cannot be told.
	for _, label := range []string{"linux:another-boot:1:1:1", "garbage", "", "a:b:c:x:1"} {
		_, known := Alive(label)
		assert.Check(t, !known, label)
	}
	// A /proc read that fails for another reason (permission) cannot be told.
	_, known = aliveIn(me, me, func(int) (string, error) { return "", errors.New("permission denied") })
	assert.Check(t, !known)
}
