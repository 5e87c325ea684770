// Command dtrfake stands in for the processes of a Docker Trusted Registry
// replica in the images internal/dtrfixture builds, but RethinkDB (the
// fixture runs the real server). It is linked statically and runs FROM
// scratch; the first argument picks the mode:
//
//	dtrfake component NAME               a placeholder for another DTR component: waits for SIGTERM
//	                                     (with DTRFAKE_IGNORE_SIGTERM=1, for SIGKILL only)
//	dtrfake health                       exits 1 if /tmp/unhealthy exists, else 0 (Docker health check)
//	dtrfake set-health healthy|unhealthy removes or creates /tmp/unhealthy
//	dtrfake dial HOST:PORT...            exits 0 if a TCP connection to each succeeds, else 1
//	dtrfake wipe DIR                     removes everything inside DIR, keeping DIR (emptying a volume)
//
// As PID 1 of a container it gets no default signal handlers, so every
// long-running mode handles SIGTERM and SIGINT itself.
package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

// unhealthyFile makes the health mode fail while it exists.
const unhealthyFile = "/tmp/unhealthy"

// ignoreTermEnv makes the component mode ignore SIGTERM and SIGINT.
const ignoreTermEnv = "DTRFAKE_IGNORE_SIGTERM"

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch mode, args := os.Args[1], os.Args[2:]; mode {
	case "component":
		if len(args) != 1 {
			usage()
		}
		fmt.Fprintf(os.Stderr, "dtrfake: component %s running\n", args[0])
		if os.Getenv(ignoreTermEnv) == "1" {
			// A component that does not shut down: docker stop waits out
			// its timeout and kills it.
			signal.Ignore(syscall.SIGTERM, syscall.SIGINT)
			for { // not select{}: the runtime calls that a deadlock
				time.Sleep(time.Hour)
			}
		}
		<-signals()
	case "health":
		if _, err := os.Stat(unhealthyFile); err == nil {
			fmt.Println("unhealthy:", unhealthyFile, "exists")
			os.Exit(1)
		}
		fmt.Println("healthy")
	case "set-health":
		if len(args) != 1 {
			usage()
		}
		switch args[0] {
		case "healthy":
			if err = os.Remove(unhealthyFile); errors.Is(err, os.ErrNotExist) {
				err = nil
			}
		case "unhealthy":
			err = os.WriteFile(unhealthyFile, []byte("unhealthy\n"), 0o644)
		default:
			usage()
		}
	case "dial":
		if len(args) == 0 {
			usage()
		}
		err = dial(args)
	case "wipe":
		if len(args) != 1 {
			usage()
		}
		err = wipe(args[0])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dtrfake:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: dtrfake component NAME | health | set-health healthy|unhealthy | dial HOST:PORT... | wipe DIR")
	os.Exit(2)
}

// dial connects to every address, reporting each, and fails if any fails.
func dial(addrs []string) error {
	var errs []error
	for _, a := range addrs {
		c, err := net.DialTimeout("tcp", a, 5*time.Second)
		if err != nil {
			fmt.Printf("%s: %v\n", a, err)
			errs = append(errs, err)
			continue
		}
		fmt.Printf("%s: connected to %s\n", a, c.RemoteAddr())
		c.Close()
	}
	return errors.Join(errs...)
}

// wipe removes the contents of dir, not dir itself (a volume's mount point).
func wipe(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		errs = append(errs, os.RemoveAll(filepath.Join(dir, e.Name())))
	}
	fmt.Printf("wiped %s: removed %d entries\n", dir, len(entries))
	return errors.Join(errs...)
}

func signals() <-chan os.Signal {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	return ch
}
