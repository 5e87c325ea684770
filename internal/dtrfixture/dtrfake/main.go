// Command dtrfake stands in for the processes of a Docker Trusted Registry
// replica in the images internal/dtrfixture builds. It is linked statically and
// runs FROM scratch; the first argument picks the mode:
//
//	dtrfake rethinkdb [rethinkdb flags]  the project's RethinkDB test server (internal/rethinktest),
//	                                     keeping its data in --directory if given
//	dtrfake component NAME               a placeholder for another DTR component: waits for SIGTERM
//	dtrfake health                       exits 1 if /tmp/unhealthy exists, else 0 (Docker health check)
//	dtrfake set-health healthy|unhealthy removes or creates /tmp/unhealthy
//	dtrfake dial HOST:PORT...            exits 0 if a TCP connection to each succeeds, else 1
//	dtrfake wipe DIR                     removes everything inside DIR, keeping DIR (emptying a volume)
//
// As PID 1 of a container it gets no default signal handlers, so every
// long-running mode handles SIGTERM and SIGINT itself.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/rethinktest"
)

// unhealthyFile makes the health mode fail while it exists.
const unhealthyFile = "/tmp/unhealthy"

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch mode, args := os.Args[1], os.Args[2:]; mode {
	case "rethinkdb":
		err = runRethinkDB(args)
	case "component":
		if len(args) != 1 {
			usage()
		}
		fmt.Fprintf(os.Stderr, "dtrfake: component %s running\n", args[0])
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
	fmt.Fprintln(os.Stderr, "usage: dtrfake rethinkdb [flags] | component NAME | health | set-health healthy|unhealthy | dial HOST:PORT... | wipe DIR")
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

// rethinkFlags are the subset of rethinkdb's flags that mean something here.
type rethinkFlags struct {
	bind                   string
	port                   int
	directory              string
	tlsKey, tlsCert, tlsCA string
}

// booleanFlags are rethinkdb flags that take no value.
var booleanFlags = map[string]bool{
	"no-update-check": true, "no-http-admin": true, "no-default-bind": true,
	"daemon": true, "version": true, "help": true,
}

// parseRethinkFlags accepts rethinkdb's command line: "--flag value" or
// "--flag=value"; unknown flags (--join, --cluster-tls-*, --canonical-address,
// ...) are ignored together with their value.
func parseRethinkFlags(args []string) (rethinkFlags, error) {
	f := rethinkFlags{port: 28015}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			return f, fmt.Errorf("unexpected argument %q", a)
		}
		name := strings.TrimLeft(a, "-")
		value, hasValue := "", false
		if k, v, ok := strings.Cut(name, "="); ok {
			name, value, hasValue = k, v, true
		} else if !booleanFlags[name] && i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
			i++
			value, hasValue = args[i], true
		}
		needValue := func() error {
			if !hasValue {
				return fmt.Errorf("flag --%s needs a value", name)
			}
			return nil
		}
		switch name {
		case "bind":
			if err := needValue(); err != nil {
				return f, err
			}
			f.bind = value
		case "driver-port":
			if err := needValue(); err != nil {
				return f, err
			}
			p, err := strconv.Atoi(value)
			if err != nil || p < 0 || p > 65535 {
				return f, fmt.Errorf("bad --driver-port %q", value)
			}
			f.port = p
		case "directory", "d":
			if err := needValue(); err != nil {
				return f, err
			}
			f.directory = value
		case "driver-tls-key", "driver-tls-cert", "driver-tls-ca":
			if err := needValue(); err != nil {
				return f, err
			}
			switch name {
			case "driver-tls-key":
				f.tlsKey = value
			case "driver-tls-cert":
				f.tlsCert = value
			default:
				f.tlsCA = value
			}
		}
	}
	return f, nil
}

func runRethinkDB(args []string) error {
	f, err := parseRethinkFlags(args)
	if err != nil {
		return err
	}
	host := "127.0.0.1"
	switch f.bind {
	case "":
	case "all":
		host = ""
	default:
		host = f.bind
	}
	// Like rethinkdb, the directory is created on first start; without
	// --directory everything stays in memory (rethinkdb would use ./rethinkdb_data).
	opts := rethinktest.Options{Addr: net.JoinHostPort(host, strconv.Itoa(f.port)), Directory: f.directory}
	if f.tlsKey != "" || f.tlsCert != "" || f.tlsCA != "" {
		if opts.TLS, err = serverTLS(f); err != nil {
			return err
		}
	}
	sig := signals() // before listening, so an early SIGTERM is not lost
	s, err := rethinktest.Start(opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "dtrfake: rethinkdb listening on %s (tls: %t, directory: %q)\n", s.Addr(), opts.TLS != nil, opts.Directory)
	got := <-sig
	fmt.Fprintf(os.Stderr, "dtrfake: rethinkdb stopping on %s\n", got)
	return s.Close()
}

// serverTLS is RethinkDB's driver TLS: the server presents the key pair and,
// with a CA, requires client certificates that CA signed.
func serverTLS(f rethinkFlags) (*tls.Config, error) {
	if f.tlsKey == "" || f.tlsCert == "" {
		return nil, errors.New("--driver-tls-key and --driver-tls-cert go together")
	}
	cert, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if f.tlsCA != "" {
		pem, err := os.ReadFile(f.tlsCA)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no certificate in %s", f.tlsCA)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}
