package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/dtrfixture"
	"github.com/docker/docker/client"
)

// cpuUse is where the CPU time of a benchmark's step went: the whole
// machine's busy time (/proc/stat), the engine's daemons and one
// container's cgroup. What the step's own processes took is the rest.
type cpuUse struct {
	total, dockerd, containerd, server time.Duration
}

// tick is the kernel's USER_HZ, which /proc reports times in.
const tick = 10 * time.Millisecond

// cpuNow reads the counters; server is a container whose cgroup
// (cpuacct, v1 or v2) is counted on its own.
func cpuNow(b *testing.B, c *dtrfixture.Cluster, server string) cpuUse {
	b.Helper()
	var u cpuUse
	if data, err := os.ReadFile("/proc/stat"); err == nil {
		f := strings.Fields(strings.SplitN(string(data), "\n", 2)[0])
		for i, v := range f[1:] {
			if i == 3 || i == 4 { // idle, iowait
				continue
			}
			n, _ := strconv.ParseInt(v, 10, 64)
			u.total += time.Duration(n) * tick
		}
	}
	u.dockerd = procCPU(b, dockerdPID(b))
	u.containerd = namedCPU(b, "containerd")
	info, err := c.Client.ContainerInspect(context.Background(), server)
	if err != nil {
		return u
	}
	// cgroup v1's cpuacct (nanoseconds), else v2's cpu.stat (microseconds).
	if data, err := os.ReadFile("/sys/fs/cgroup/cpuacct/docker/" + info.ID + "/cpuacct.usage"); err == nil {
		n, _ := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
		u.server = time.Duration(n)
	} else if data, err := os.ReadFile("/sys/fs/cgroup/system.slice/docker-" + info.ID + ".scope/cpu.stat"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, "usage_usec "); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				u.server = time.Duration(n) * time.Microsecond
			}
		}
	}
	return u
}

// namedCPU is the CPU time of the processes named name (pidof).
func namedCPU(b *testing.B, name string) time.Duration {
	out, err := exec.Command("pidof", name).Output()
	if err != nil {
		return 0
	}
	var sum time.Duration
	for _, pid := range strings.Fields(string(out)) {
		if n, err := strconv.Atoi(pid); err == nil {
			sum += procCPU(b, n)
		}
	}
	return sum
}

func (u cpuUse) sub(v cpuUse) cpuUse {
	return cpuUse{total: u.total - v.total, dockerd: u.dockerd - v.dockerd, containerd: u.containerd - v.containerd, server: u.server - v.server}
}

func (u cpuUse) String() string {
	rest := u.total - u.dockerd - u.containerd - u.server
	return fmt.Sprintf("CPU %.2fs: server %.2fs, dockerd %.2fs, containerd %.2fs, the rest (the step's own processes, shims) %.2fs",
		u.total.Seconds(), u.server.Seconds(), u.dockerd.Seconds(), u.containerd.Seconds(), rest.Seconds())
}

// profileDockerd writes a CPU profile of the engine's daemon (its own
// /debug/pprof, served on the API socket) to file while a step runs;
// the step should last longer than d. The function returned waits for it.
func profileDockerd(b *testing.B, c *dtrfixture.Cluster, file string, d time.Duration) func() {
	if file == "" {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		u := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", client.DummyHost, int(d.Seconds()))
		resp, err := c.Client.HTTPClient().Get(u)
		if err != nil {
			b.Errorf("dockerd's profile: %v", err)
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(file)
		if err == nil {
			_, err = io.Copy(f, resp.Body)
			f.Close()
		}
		if err != nil {
			b.Errorf("dockerd's profile: %v", err)
		}
	}()
	return func() { <-done }
}
