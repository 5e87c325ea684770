package dtrfixture

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/rethinkserver"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
)

// binary is the dtrfake executable, built once per process.
var binary struct {
	once sync.Once
	dir  string // temp dir holding it
	path string
	err  error
}

// images are the tags imported by this process ("dtrfixture/dtr-api:2.9.4")
// and what each holds: imageFake or imageRegistry (dtr-registry holds either).
var images struct {
	sync.Mutex
	done map[string]string
	// rethink is the real RethinkDB's image this process used, which
	// Teardown must leave ("" before the first Start).
	rethink string
}

const (
	imageFake     = "dtrfake"
	imageRegistry = "registry"
)

func clearImages() {
	images.Lock()
	images.done = nil
	images.Unlock()
}

// imageName is the fixture's image for a component, named like DTR's
// (docker/dtr-rethink runs the rethinkdb component).
func imageName(component, version string) string {
	if component == "rethinkdb" {
		component = "rethink"
	}
	return "dtrfixture/dtr-" + component + ":" + version
}

func goCommand() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// buildBinary compiles internal/dtrfixture/dtrfake statically for linux.
func buildBinary() (string, error) {
	binary.once.Do(func() {
		root, err := rethinkserver.ModuleRoot()
		if err != nil {
			binary.err = err
			return
		}
		if binary.dir, err = os.MkdirTemp("", "dtrfixture-"); err != nil {
			binary.err = err
			return
		}
		binary.path = filepath.Join(binary.dir, "dtrfake")
		cmd := exec.Command(goCommand(), "build", "-o", binary.path, "./internal/dtrfixture/dtrfake")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
		if out, err := cmd.CombinedOutput(); err != nil {
			binary.err = fmt.Errorf("building dtrfake: %v\n%s", err, out)
		}
	})
	return binary.path, binary.err
}

// removeBinary deletes the binary's temp dir (Teardown); a later Start
// builds it again.
func removeBinary() {
	if binary.dir != "" {
		os.RemoveAll(binary.dir)
	}
	binary.once = sync.Once{}
	binary.dir, binary.path, binary.err = "", "", nil
}

// rootFS is the image's only layer: /dtrfake and a world-writable /tmp (for
// the health marker).
func rootFS(bin string) ([]byte, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	return layerTar([]layerFile{
		{name: "tmp/", mode: 0o1777},
		{name: "dtrfake", mode: 0o755, data: data},
	})
}

// layerFile is an entry of a layer: a directory when name ends in "/".
type layerFile struct {
	name string
	mode int64
	data []byte
}

// layerTar makes a layer of the files. Fixed times and owners make every
// import of the same files the same layer.
func layerTar(files []layerFile) ([]byte, error) {
	size := 0
	for _, f := range files {
		size += len(f.data) + 1024
	}
	buf := bytes.NewBuffer(make([]byte, 0, size+1024))
	tw := tar.NewWriter(buf)
	mtime := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Typeflag: tar.TypeReg, Mode: f.mode, Size: int64(len(f.data)), ModTime: mtime}
		if strings.HasSuffix(f.name, "/") {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ensureImages imports (once per process) the image of every component but
// rethinkdb for the version: FROM-scratch images whose entrypoint is
// /dtrfake, labelled. With realRegistry, the registry component's image runs
// the real registry instead (registryImageLayer).
func ensureImages(ctx context.Context, cli *client.Client, version string, components []string, realRegistry bool) error {
	images.Lock()
	defer images.Unlock()
	var todo []string
	for _, comp := range components {
		if comp == "rethinkdb" {
			continue // the real server's image: ensureRethinkImage
		}
		if images.done[imageName(comp, version)] != imageKind(comp, realRegistry) {
			todo = append(todo, comp)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	var fakeLayer []byte
	for _, comp := range todo {
		ref := imageName(comp, version)
		kind := imageKind(comp, realRegistry)
		var layer []byte
		var changes []string
		var err error
		switch kind {
		case imageRegistry:
			if layer, err = registryImageLayer(ctx); err != nil {
				return err
			}
			changes = registryImageChanges()
		default:
			if fakeLayer == nil {
				bin, err := buildBinary()
				if err != nil {
					return err
				}
				if fakeLayer, err = rootFS(bin); err != nil {
					return err
				}
			}
			layer = fakeLayer
			changes = []string{`ENTRYPOINT ["/dtrfake"]`, `CMD ["component","` + comp + `"]`}
		}
		if err := importImage(ctx, cli, ref, layer, changes); err != nil {
			return err
		}
		if images.done == nil {
			images.done = map[string]string{}
		}
		images.done[ref] = kind
	}
	return nil
}

// ensureRethinkImage makes the real RethinkDB's image (imported once per
// machine and kept, rethinkserver.EnsureImage) answer to the fixture's
// per-version name as well: without DTR_VERSION, discovery reads the version
// from that tag. The tag is not labelled, so Teardown only untags it
// (untagRethinkImages) and the imported image stays. It returns the
// entrypoint that runs the server.
func ensureRethinkImage(ctx context.Context, cli *client.Client, version string) ([]string, error) {
	ref, entrypoint, err := rethinkserver.EnsureImage(ctx, cli)
	if err != nil {
		return nil, err
	}
	if err := cli.ImageTag(ctx, ref, imageName("rethinkdb", version)); err != nil {
		return nil, fmt.Errorf("tagging the RethinkDB image %s as %s: %w", ref, imageName("rethinkdb", version), err)
	}
	images.Lock()
	images.rethink = ref
	images.Unlock()
	return entrypoint, nil
}

func imageKind(comp string, realRegistry bool) string {
	if comp == "registry" && realRegistry {
		return imageRegistry
	}
	return imageFake
}

// importImage imports a one-layer image with the Dockerfile changes and
// the fixture's label.
func importImage(ctx context.Context, cli *client.Client, ref string, layer []byte, changes []string) error {
	rc, err := cli.ImageImport(ctx, image.ImportSource{Source: bytes.NewReader(layer), SourceName: "-"}, ref,
		image.ImportOptions{Changes: append(slices.Clip(changes), `LABEL `+Label+`=`+labelValue)})
	if err != nil {
		return fmt.Errorf("importing %s: %w", ref, err)
	}
	defer rc.Close()
	if err := jsonmessage.DisplayJSONMessagesStream(rc, io.Discard, 0, false, nil); err != nil {
		return fmt.Errorf("importing %s: %w", ref, err)
	}
	return nil
}

// helperImage is the image of the fixture's short-lived helper containers
// (volume access): /dtrfake as its entrypoint.
const helperImage = "dtrfixture/helper:1"

// ensureHelperImage imports helperImage once per process.
func ensureHelperImage(ctx context.Context, cli *client.Client) (string, error) {
	images.Lock()
	defer images.Unlock()
	if images.done[helperImage] == imageFake {
		return helperImage, nil
	}
	bin, err := buildBinary()
	if err != nil {
		return "", err
	}
	layer, err := rootFS(bin)
	if err != nil {
		return "", err
	}
	if err := importImage(ctx, cli, helperImage, layer, []string{`ENTRYPOINT ["/dtrfake"]`}); err != nil {
		return "", err
	}
	if images.done == nil {
		images.done = map[string]string{}
	}
	images.done[helperImage] = imageFake
	return helperImage, nil
}
