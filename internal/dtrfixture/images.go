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
	"strings"
	"sync"
	"time"

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

// images are the tags imported by this process ("dtrfixture/dtr-api:2.9.4").
var images struct {
	sync.Mutex
	done map[string]bool
}

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

// moduleRoot finds the directory of go.mod: from this file's path when the
// build kept it, else by asking the go command.
func moduleRoot() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		root := filepath.Dir(filepath.Dir(filepath.Dir(file)))
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			return root, nil
		}
	}
	out, err := exec.Command(goCommand(), "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("finding the module root: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("finding the module root: not in a module")
	}
	return filepath.Dir(gomod), nil
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
		root, err := moduleRoot()
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
// the health marker). Fixed times make every import the same layer.
func rootFS(bin string) ([]byte, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	hdrs := []*tar.Header{
		{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777, ModTime: mtime},
		{Name: "dtrfake", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(data)), ModTime: mtime},
	}
	for _, h := range hdrs {
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ensureImages imports (once per process) the image of every component for
// the version: FROM-scratch images whose entrypoint is /dtrfake, labelled.
func ensureImages(ctx context.Context, cli *client.Client, version string, components []string) error {
	images.Lock()
	defer images.Unlock()
	var todo []string
	for _, comp := range components {
		if !images.done[imageName(comp, version)] {
			todo = append(todo, comp)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	bin, err := buildBinary()
	if err != nil {
		return err
	}
	layer, err := rootFS(bin)
	if err != nil {
		return err
	}
	if images.done == nil {
		images.done = map[string]bool{}
	}
	for _, comp := range todo {
		ref := imageName(comp, version)
		cmd := `["component","` + comp + `"]`
		if comp == "rethinkdb" {
			cmd = `["rethinkdb","--bind","all"]`
		}
		rc, err := cli.ImageImport(ctx, image.ImportSource{Source: bytes.NewReader(layer), SourceName: "-"}, ref,
			image.ImportOptions{Changes: []string{
				`ENTRYPOINT ["/dtrfake"]`,
				`CMD ` + cmd,
				`LABEL ` + Label + `=` + labelValue,
			}})
		if err != nil {
			return fmt.Errorf("importing %s: %w", ref, err)
		}
		err = jsonmessage.DisplayJSONMessagesStream(rc, io.Discard, 0, false, nil)
		rc.Close()
		if err != nil {
			return fmt.Errorf("importing %s: %w", ref, err)
		}
		images.done[ref] = true
	}
	return nil
}
