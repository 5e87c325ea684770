// Command sandbox starts a DTR-shaped cluster on the local Docker engine
// to rehearse the runbook on, and removes it: `make sandbox` and `make
// sandbox-down`. The cluster is the e2e tests' fixture (internal/dtrfixture),
// kept running: the real RethinkDB 2.4.4 with DTR's TLS, a real registry
// per replica holding a few pushed images, DTR's names, volumes and
// dtr-ol network, and a Docker context, dtr-sandbox, that points at the
// engine, so that every command of docs/disaster-recovery.md can be tried
// with `docker --context dtr-sandbox dtr …`.
//
//	go run ./internal/sandbox up      # REPLICAS=3 for three replicas
//	go run ./internal/sandbox down
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/docker-dtr/docker-dtr/internal/dtrfixture"
	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
)

// Context is the Docker context the sandbox makes.
const Context = "dtr-sandbox"

func main() {
	if len(os.Args) != 2 || (os.Args[1] != "up" && os.Args[1] != "down") {
		fmt.Fprintln(os.Stderr, "usage: sandbox up|down (REPLICAS=N for up, default 1)")
		os.Exit(2)
	}
	var err error
	if os.Args[1] == "up" {
		err = up()
	} else {
		err = down()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sandbox:", err)
		os.Exit(1)
	}
}

func up() error {
	replicas := 1
	if v := os.Getenv("REPLICAS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 5 {
			return fmt.Errorf("REPLICAS=%s: expected 1 to 5", v)
		}
		replicas = n
	}
	if err := exec.Command("docker", "context", "inspect", Context).Run(); err == nil {
		return fmt.Errorf("the Docker context %s exists: the sandbox is up ('make sandbox-down' removes it)", Context)
	}
	t := &keeper{}
	defer t.undoOnFailure()
	c := dtrfixture.Start(t, dtrfixture.Options{Replicas: replicas, Registry: true})
	// The images are built and pushed, then removed from the engine:
	// they are in the registry, where DTR keeps them. DTR's tables
	// describe them (tags, manifests, blobs), with its settings
	// (properties), a replica of each on every server.
	mark := len(t.cleanups)
	images := dtrfixture.BuildImages(t, c.Client, 1)
	pushed := dtrfixture.Push(t, c.Client, c.Replicas[0].RegistryAddr, images)
	t.runFrom(mark)
	driver := c.Connect(t, c.Replicas[0].ID)
	dtrfixture.SeedRegistryMetadata(t, driver, pushed)
	props := []any{
		map[string]any{"id": "ha.json", "value": fmt.Sprintf(`{"replicaCount":%d}`, replicas)},
		map[string]any{"id": "registry.json", "value": `{"storage":{"filesystem":{"rootdirectory":"/storage"}}}`},
	}
	if err := r.DB("dtr2").TableCreate("properties").Exec(driver); err != nil {
		t.Fatalf("creating dtr2.properties: %v", err)
	}
	if err := r.DB("dtr2").Table("properties").Insert(props).Exec(driver); err != nil {
		t.Fatalf("writing dtr2.properties: %v", err)
	}
	c.Replicate(t)
	host := c.Client.DaemonHost()
	out, err := exec.Command("docker", "context", "create", Context, "--description", "docker dtr sandbox (make sandbox-down removes it)", "--docker", "host="+host).CombinedOutput()
	if err != nil {
		t.Fatalf("creating the Docker context %s: %v: %s", Context, err, strings.TrimSpace(string(out)))
	}
	t.ok = true
	var ids []string
	for _, rep := range c.Replicas {
		ids = append(ids, rep.ID)
	}
	fmt.Printf("sandbox up: %d replica(s) of DTR %s (%s), %d images pushed to replica %s's registry at %s\n",
		len(c.Replicas), c.Version, strings.Join(ids, ", "), len(pushed), ids[0], c.Replicas[0].RegistryAddr)
	fmt.Printf("try:  docker --context %s dtr status\n", Context)
	fmt.Printf("      docker --context %s dtr backup create -o backup-metadata.tar\n", Context)
	fmt.Printf("      docker --context %s dtr backup images -o backup-images.tar\n", Context)
	fmt.Printf("      docker --context %s dtr backup verify --restore-test backup-metadata.tar\n", Context)
	if len(c.Replicas) >= 3 {
		fmt.Printf("lose the majority:  docker network disconnect -f dtr-ol dtr-rethinkdb-%s; docker network disconnect -f dtr-ol dtr-rethinkdb-%s\n", ids[1], ids[2])
		fmt.Printf("then:  docker --context %s dtr backup create --allow-outdated --replica-id %s -o survivor-metadata.tar\n", Context, ids[0])
		fmt.Printf("       docker --context %s dtr repair --dry-run; docker --context %s dtr repair\n", Context, Context)
	}
	fmt.Println("remove it all:  make sandbox-down")
	return nil
}

func down() error {
	var errs []error
	if err := exec.Command("docker", "context", "inspect", Context).Run(); err == nil {
		if out, err := exec.Command("docker", "context", "rm", "--force", Context).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("removing the Docker context %s: %v: %s", Context, err, strings.TrimSpace(string(out))))
		}
	}
	// Everything the fixture made carries its label: containers, volumes,
	// networks, the swarm it initialised, the images it built. Under a
	// test that holds the engine (dtrfixture.EnvLocked), the images and
	// the swarm are the test's, and stay.
	teardown, what := dtrfixture.Teardown, "containers, volumes, network, swarm, images"
	if os.Getenv(dtrfixture.EnvLocked) != "" {
		teardown, what = dtrfixture.Sweep, "containers, volumes, network"
	}
	if err := teardown(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		fmt.Printf("sandbox down: its %s and the Docker context %s are removed\n", what, Context)
	}
	return errors.Join(errs...)
}

// keeper stands in for a test (dtrfixture.TB): it keeps what the fixture
// starts, and removes it only when starting fails.
type keeper struct {
	cleanups []func()
	failed   bool
	ok       bool
}

func (k *keeper) Helper()          {}
func (k *keeper) Name() string     { return "sandbox" }
func (k *keeper) Failed() bool     { return k.failed }
func (k *keeper) Cleanup(f func()) { k.cleanups = append(k.cleanups, f) }
func (k *keeper) TempDir() string {
	dir, err := os.MkdirTemp("", "dtr-sandbox-*")
	if err != nil {
		k.Fatalf("%v", err)
	}
	return dir
}
func (k *keeper) Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}
func (k *keeper) Errorf(format string, args ...any) {
	k.failed = true
	k.Logf(format, args...)
}
func (k *keeper) Fatalf(format string, args ...any) {
	k.Errorf(format, args...)
	panic(fatal{})
}
func (k *keeper) Fatal(args ...any) { k.Fatalf("%s", fmt.Sprint(args...)) }
func (k *keeper) Skip(args ...any)  { k.Fatal(args...) }

type fatal struct{}

// runFrom runs the cleanups registered since mark, newest first, and
// forgets them.
func (k *keeper) runFrom(mark int) {
	for i := len(k.cleanups) - 1; i >= mark; i-- {
		k.cleanups[i]()
	}
	k.cleanups = k.cleanups[:mark]
}

// undoOnFailure removes what was made when up did not finish, as a
// failed test's cleanups would, and exits 1.
func (k *keeper) undoOnFailure() {
	p := recover()
	if k.ok && p == nil {
		return
	}
	if _, isFatal := p.(fatal); p != nil && !isFatal {
		panic(p)
	}
	fmt.Fprintln(os.Stderr, "sandbox: starting failed, removing what was made")
	k.runFrom(0)
	os.Exit(1)
}
