// Package rethinkserver runs the real RethinkDB 2.4 server for the tests and
// benchmarks: on the host, on loopback with DTR's mutual TLS (Start), and as
// the image of the fixture's dtr-rethinkdb containers (EnsureImage). DTR runs
// the real server, so the tests do too.
//
// The server is found, in this order (Find):
//  1. $DTR_TEST_RETHINKDB: a rethinkdb binary, or a wrapper that runs one
//     (../shared/rethinkdb/rethinkdb). $DTR_TEST_RETHINKDB_IMAGE then names
//     a root file system tarball to import, or a local image, for the engine.
//  2. ../shared/rethinkdb beside the module: the wrapper and its rootfs.
//  3. A local image rethinkdb:2.4.4 (docker pull rethinkdb:2.4.4), used for
//     both: host tests then run it as a container with a published port.
//
// Without any of them, Require skips the test with one line saying how to
// get one, except under CI=true, where it fails.
package rethinkserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/client"
)

// Environment variables that point at a server.
const (
	EnvBinary = "DTR_TEST_RETHINKDB"
	EnvImage  = "DTR_TEST_RETHINKDB_IMAGE"
)

// PublicImage is the image a contributor without ../shared would pull.
const PublicImage = "rethinkdb:2.4.4"

// HowToGet is the one line a test that cannot find a server skips with.
const HowToGet = "no RethinkDB 2.4 server for this test: set " + EnvBinary + " to a rethinkdb binary, " +
	"check out the project beside ../shared/rethinkdb, or run 'docker pull " + PublicImage + "'"

// Source says where the server comes from.
type Source struct {
	// Binary runs the server on the host: a rethinkdb binary or wrapper.
	// Empty when only an image is known (host servers then run in it).
	Binary string
	// Rootfs is a root file system tarball with /bin/rethinkdb, imported as
	// the image (EnsureImage). Empty when Image names a ready image.
	Rootfs string
	// Image is a local image that runs the server ("" with Rootfs).
	Image string
	// From says which rule found it, for logs.
	From string
}

var found struct {
	once sync.Once
	src  *Source
	err  error
}

// Find locates the server once per process.
func Find() (*Source, error) {
	found.once.Do(func() { found.src, found.err = find() })
	return found.src, found.err
}

func find() (*Source, error) {
	if bin := os.Getenv(EnvBinary); bin != "" {
		if _, err := exec.LookPath(bin); err != nil {
			return nil, fmt.Errorf("%s=%s: %w", EnvBinary, bin, err)
		}
		src := &Source{Binary: bin, From: "$" + EnvBinary}
		if img := os.Getenv(EnvImage); img != "" {
			if st, err := os.Stat(img); err == nil && st.Mode().IsRegular() {
				src.Rootfs = img
			} else {
				src.Image = img
			}
		} else if root, err := sharedDir(); err == nil {
			src.Rootfs = filepath.Join(root, rootfsName)
		}
		return src, nil
	}
	if dir, err := sharedDir(); err == nil {
		return &Source{Binary: filepath.Join(dir, "rethinkdb"), Rootfs: filepath.Join(dir, rootfsName), From: dir}, nil
	}
	if img := os.Getenv(EnvImage); img != "" {
		if st, err := os.Stat(img); err == nil && st.Mode().IsRegular() {
			return &Source{Rootfs: img, From: "$" + EnvImage}, nil
		}
		return &Source{Image: img, From: "$" + EnvImage}, nil
	}
	if cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation()); err == nil {
		defer cli.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := cli.ImageInspect(ctx, PublicImage); err == nil {
			return &Source{Image: PublicImage, From: "image " + PublicImage}, nil
		}
	}
	return nil, errors.New(HowToGet)
}

const rootfsName = "rethinkdb-2.4.4-rootfs.tar.gz"

// sharedDir is ../shared/rethinkdb beside the module root, if it holds the
// wrapper and the rootfs.
func sharedDir() (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(filepath.Dir(root), "shared", "rethinkdb")
	for _, f := range []string{"rethinkdb", rootfsName} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// ModuleRoot is the directory of go.mod: from this file's path when the
// build kept it, else by asking the go command.
func ModuleRoot() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		root := filepath.Dir(filepath.Dir(filepath.Dir(file)))
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			return root, nil
		}
	}
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if p, err := exec.LookPath("go"); err == nil {
		gobin = p
	}
	out, err := exec.Command(gobin, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("finding the module root: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("finding the module root: not in a module")
	}
	return filepath.Dir(gomod), nil
}

// Require returns the source, or skips the test (fails it under CI=true)
// with HowToGet.
func Require(t TB) *Source {
	t.Helper()
	src, err := Find()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return src
}
