package helpercontainer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
)

// An owner label is "linux:BOOT:PIDNS:PID:START": the kernel's boot id, the
// inode of the plugin's pid namespace, its pid, and its start time in clock
// ticks since boot. A pid means something only in its own namespace on its
// own boot, so a later run checks it only when both match its own (the same
// machine, and the same container if the plugin runs in one); the start
// time tells a reused pid from the original. Elsewhere (a laptop on macOS,
// another host, another container) the owner cannot be checked, and the
// helper's state decides (see Stale).

var self = sync.OnceValue(func() string {
	ns, err := namespace()
	if err != nil {
		return ""
	}
	pid := os.Getpid()
	start, err := startTime(pid)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%s:%d:%s", ns, pid, start)
})

// Self is this process's owner label, or "" where it cannot say (not linux).
func Self() string { return self() }

// namespace is "linux:BOOT:PIDNS".
func namespace() (string, error) {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "", err
	}
	link, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return "", err
	}
	ino := strings.TrimSuffix(strings.TrimPrefix(link, "pid:["), "]")
	if ino == link || ino == "" {
		return "", fmt.Errorf("unexpected pid namespace link %q", link)
	}
	return "linux:" + strings.TrimSpace(string(boot)) + ":" + ino, nil
}

// startTime is field 22 of /proc/PID/stat: when the process started.
func startTime(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	// The command name (field 2) may hold spaces and parentheses: the
	// fields that follow start after its last ")".
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return "", fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	fields := strings.Fields(string(b[i+1:]))
	// fields[0] is field 3 (state): field 22 is fields[19].
	if len(fields) < 20 {
		return "", fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	// A zombie has ended: only its parent has yet to reap it.
	if fields[0] == "Z" || fields[0] == "X" {
		return "", fmt.Errorf("process %d has exited: %w", pid, os.ErrNotExist)
	}
	return fields[19], nil
}

type owner struct {
	ns    string
	pid   int
	start string
}

func parseOwner(s string) (owner, bool) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return owner{}, false
	}
	rest, start := s[:i], s[i+1:]
	j := strings.LastIndexByte(rest, ':')
	if j < 0 {
		return owner{}, false
	}
	pid, err := strconv.Atoi(rest[j+1:])
	if err != nil || pid <= 0 || start == "" {
		return owner{}, false
	}
	return owner{ns: rest[:j], pid: pid, start: start}, true
}

func describeOwner(s string) string {
	if o, ok := parseOwner(s); ok {
		return fmt.Sprintf("pid %d", o.pid)
	}
	return s
}

// Alive says whether the process an owner label names still runs, when
// this process can tell: same boot and pid namespace. A process of that
// pid with another start time is another process.
func Alive(label string) (alive, known bool) {
	return aliveIn(label, Self(), startTime)
}

func aliveIn(label, self string, start func(pid int) (string, error)) (alive, known bool) {
	o, ok := parseOwner(label)
	me, mine := parseOwner(self)
	if !ok || !mine || o.ns != me.ns {
		return false, false
	}
	got, err := start(o.pid)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, true
		}
		return false, false
	}
	return got == o.start, true
}
