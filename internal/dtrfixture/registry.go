package dtrfixture

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/rethinkserver"
)

// registryPackage is the real image registry, a Go tool of the module
// (go.mod: tool github.com/distribution/distribution/v3/cmd/registry).
const registryPackage = "github.com/distribution/distribution/v3/cmd/registry"

const (
	registryPort = "5000"
	// registryConfigPath is where the image keeps the configuration; the
	// container runs `registry serve registryConfigPath`.
	registryConfigPath = "/etc/distribution/config.yml"
	// registryBuildTimeout bounds building the registry: a cold build (empty
	// Go build cache) takes 3-4 minutes on 2 cores, a warm one a few seconds.
	registryBuildTimeout = 10 * time.Minute
)

// registryConfig stores under the volume DTR mounts at /storage, so the
// volume holds DTR's layout: docker/registry/v2/blobs/sha256/<2 hex>/<64
// hex>/data and docker/registry/v2/repositories/<name>/{_manifests,_layers,
// _uploads}. No auth, no TLS, no cache (what is on disk is what it serves),
// deletes enabled, upload purging off (it would delete under tests' feet),
// warnings and errors to stderr, no access log. A drain timeout makes it
// handle SIGTERM (as PID 1 it has no default handler), so docker stop is quick.
var registryConfig = registryConfigWith(registryFilesystemStorage)

// registryFilesystemStorage is the registry's storage section by default:
// the filesystem under /storage.
const registryFilesystemStorage = `storage:
  filesystem:
    rootdirectory: /storage
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
`

// registryConfigWith is the registry's configuration with another storage
// section (a top-level "storage:" mapping, as S3.RegistryStorage makes).
func registryConfigWith(storage string) string {
	if !strings.HasSuffix(storage, "\n") {
		storage += "\n"
	}
	return `version: 0.1
log:
  level: warn
  formatter: text
  accesslog:
    disabled: true
` + storage + `http:
  addr: :` + registryPort + `
  secret: dtrfixture-registry-http-secret
  draintimeout: 1s
  headers:
    X-Content-Type-Options: [nosniff]
`
}

// registryBinary is the registry executable, built once per process.
var registryBinary struct {
	once    sync.Once
	dir     string
	path    string
	took    time.Duration
	builtAt time.Time
	err     error
}

// buildRegistry compiles the registry statically for linux with
// -trimpath -ldflags="-s -w" (about 55 MB instead of 78). The Go build cache
// keeps the compiled packages, so only the first build on a machine is slow.
func buildRegistry(ctx context.Context) (string, error) {
	registryBinary.once.Do(func() {
		began := time.Now()
		defer func() { registryBinary.took, registryBinary.builtAt = time.Since(began), time.Now() }()
		root, err := rethinkserver.ModuleRoot()
		if err != nil {
			registryBinary.err = err
			return
		}
		if registryBinary.dir, err = os.MkdirTemp("", "dtrfixture-registry-"); err != nil {
			registryBinary.err = err
			return
		}
		registryBinary.path = filepath.Join(registryBinary.dir, "registry")
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), registryBuildTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, goCommand(), "build", "-trimpath", "-ldflags=-s -w",
			"-o", registryBinary.path, registryPackage)
		// The tool's own module keeps its dependencies out of the plugin's.
		cmd.Dir = filepath.Join(root, "internal", "dtrfixture", "registrytool")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
		if out, err := cmd.CombinedOutput(); err != nil {
			registryBinary.err = fmt.Errorf("building the registry (%s): %v\n%s", registryPackage, err, out)
		}
		debugf("built the registry in %s", time.Since(began))
	})
	return registryBinary.path, registryBinary.err
}

// removeRegistryBinary deletes the registry's temp dir (Teardown).
func removeRegistryBinary() {
	if registryBinary.dir != "" {
		os.RemoveAll(registryBinary.dir)
	}
	registryBinary.once = sync.Once{}
	registryBinary.dir, registryBinary.path, registryBinary.err = "", "", nil
	registryBinary.took, registryBinary.builtAt = 0, time.Time{}
}

// registryImageLayer is the layer of the real registry's image: /registry,
// its configuration and a world-writable /tmp.
func registryImageLayer(ctx context.Context) ([]byte, error) {
	bin, err := buildRegistry(ctx)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	return layerTar([]layerFile{
		{name: "tmp/", mode: 0o1777},
		{name: "etc/", mode: 0o755},
		{name: "etc/distribution/", mode: 0o755},
		{name: "etc/distribution/config.yml", mode: 0o644, data: []byte(registryConfig)},
		{name: "registry", mode: 0o755, data: data},
	})
}

// registryImageChanges: OTEL_TRACES_EXPORTER=none keeps the registry from
// exporting traces to localhost:4318 (its default) and logging the failures.
func registryImageChanges() []string {
	return []string{
		`ENTRYPOINT ["/registry"]`,
		`CMD ["serve","` + registryConfigPath + `"]`,
		`ENV OTEL_TRACES_EXPORTER=none`,
		`EXPOSE ` + registryPort + `/tcp`,
	}
}

// waitRegistry waits until GET /v2/ on RegistryAddr answers 200: the
// published port accepts connections (docker-proxy) before the registry
// listens.
func (c *Cluster) waitRegistry(ctx context.Context, rep *Replica) error {
	name := rep.Containers["registry"]
	hc := &http.Client{Timeout: 2 * time.Second}
	url := "http://" + rep.RegistryAddr + "/v2/"
	return c.waitAnswer(ctx, name, "the registry "+name, rep.RegistryAddr, func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	})
}
