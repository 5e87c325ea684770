package agentbin

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	static := filepath.Join(dir, "static")
	src := filepath.Join(dir, "main.go")
	assert.NilError(t, os.WriteFile(src, []byte("package main\nfunc main() {}\n"), 0o644))
	build := exec.Command("go", "build", "-o", static, src)
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=")
	out, err := build.CombinedOutput()
	assert.NilError(t, err, string(out))
	text := filepath.Join(dir, "text")
	assert.NilError(t, os.WriteFile(text, []byte("#!/bin/sh\n"), 0o755))

	assert.NilError(t, Check(static, true, "node1", "amd64"))
	assert.Error(t, Check(filepath.Join(dir, "missing"), true, "node1", "amd64"),
		"--agent-binary "+filepath.Join(dir, "missing")+": no such file: pass --agent-binary with a static linux/amd64 build of docker-dtr ('make cross' writes bin/docker-dtr-linux-amd64)")
	assert.Assert(t, is.ErrorContains(Check(static, true, "node1", "arm64"),
		"is a linux/amd64 program and cannot run on node node1 (linux/arm64): pass --agent-binary with a static linux/arm64 build"))
	assert.Assert(t, is.ErrorContains(Check(text, false, "node1", "amd64"),
		"this docker-dtr ("+text+") is not a linux program and cannot run on node node1 (linux/amd64)"))
	if runtime.GOOS == "linux" && runtime.GOARCH == "amd64" {
		if _, err := os.Stat("/bin/ls"); err == nil { // a dynamically linked program
			assert.Assert(t, is.ErrorContains(Check("/bin/ls", true, "node1", "amd64"), "is dynamically linked"))
		}
	}
}

func TestFind(t *testing.T) {
	path, explicit, err := Find("/opt/docker-dtr-linux-arm64")
	assert.NilError(t, err)
	assert.Equal(t, path, "/opt/docker-dtr-linux-arm64")
	assert.Assert(t, explicit)
	self, err := os.Executable()
	assert.NilError(t, err)
	path, explicit, err = Find("")
	assert.NilError(t, err)
	assert.Equal(t, path, self)
	assert.Assert(t, !explicit)
}

// copier records what CopyToContainer was given.
type copier struct {
	id, dst string
	names   []string
	modes   []int64
	data    []byte
	fail    error
}

func (c *copier) CopyToContainer(_ context.Context, id, dst string, content io.Reader, _ container.CopyToContainerOptions) error {
	c.id, c.dst = id, dst
	if c.fail != nil {
		return c.fail // without reading: Copy must not hang
	}
	tr := tar.NewReader(content)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		c.names = append(c.names, hdr.Name)
		c.modes = append(c.modes, hdr.Mode)
		if c.data, err = io.ReadAll(tr); err != nil {
			return err
		}
	}
}

func TestCopy(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "docker-dtr")
	assert.NilError(t, os.WriteFile(bin, []byte("\x7fELF the agent"), 0o755))
	c := &copier{}
	assert.NilError(t, Copy(context.Background(), c, "c0ffee", bin))
	assert.Equal(t, c.id, "c0ffee")
	assert.Equal(t, c.dst, "/")
	assert.DeepEqual(t, c.names, []string{"docker-dtr-agent"})
	assert.DeepEqual(t, c.modes, []int64{0o755})
	assert.Equal(t, string(c.data), "\x7fELF the agent")

	c = &copier{fail: errors.New("no such container")}
	assert.Error(t, Copy(context.Background(), c, "c0ffee", bin), "no such container")
	assert.Assert(t, Copy(context.Background(), &copier{}, "c0ffee", bin+".missing") != nil)
}

// The fill's tar: the binary, then the marker that says it is whole,
// holding the digest.
func TestSendMarkerLast(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "docker-dtr")
	assert.NilError(t, os.WriteFile(bin, []byte("\x7fELF the agent"), 0o755))
	digest, err := Digest(bin)
	assert.NilError(t, err)
	c := &copier{}
	assert.NilError(t, send(context.Background(), c, "c0ffee", CacheDir, "docker-dtr-agent", bin, digest))
	assert.Equal(t, c.dst, CacheDir)
	assert.DeepEqual(t, c.names, []string{"docker-dtr-agent", "sha256-" + digest})
	assert.DeepEqual(t, c.modes, []int64{0o755, 0o444})
	assert.Equal(t, string(c.data), digest+"\n")
}

// A binary that is not the one hashed (rebuilt meanwhile) fails the copy
// before its marker: the volume of that digest never holds another agent.
func TestSendChangedBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "docker-dtr")
	assert.NilError(t, os.WriteFile(bin, []byte("\x7fELF the agent"), 0o755))
	c := &copier{}
	err := send(context.Background(), c, "c0ffee", CacheDir, "docker-dtr-agent", bin, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	assert.ErrorContains(t, err, "changed while it was copied")
	assert.DeepEqual(t, c.names, []string{"docker-dtr-agent"})
}

func TestDigest(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "docker-dtr")
	assert.NilError(t, os.WriteFile(bin, []byte("abc"), 0o755))
	d, err := Digest(bin)
	assert.NilError(t, err)
	assert.Equal(t, d, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
	// Rebuilt: hashed again.
	assert.NilError(t, os.WriteFile(bin, []byte("abcd"), 0o755))
	d, err = Digest(bin)
	assert.NilError(t, err)
	assert.Equal(t, d, "88d4266fd4e6338d13b845fcf289579d209c897823b9217da3e161936f031589")
	assert.Equal(t, VolumeName(d), "docker-dtr-agent-88d4266fd4e6338d")
}

// The helper runs the agent from the cache volume, mounted read-only with
// the labels that name the agent; the caller's configuration is left as
// it was, for the copy that falls back.
func TestWithCache(t *testing.T) {
	cfg := &container.Config{Image: "img", Entrypoint: []string{Path}, Cmd: []string{"agent", "--lease"}}
	host := &container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: "dtr-ca-x", Target: "/ca", ReadOnly: true}}}
	digest := "88d4266fd4e6338d13b845fcf289579d209c897823b9217da3e161936f031589"
	c, h := withCache(cfg, host, digest, "arm64")
	assert.DeepEqual(t, []string(c.Entrypoint), []string{"/docker-dtr-agent.d/docker-dtr-agent"})
	assert.DeepEqual(t, []string(c.Cmd), []string{"agent", "--lease"})
	assert.Equal(t, len(h.Mounts), 2)
	assert.DeepEqual(t, h.Mounts[1], mount.Mount{
		Type: mount.TypeVolume, Source: "docker-dtr-agent-88d4266fd4e6338d", Target: CacheDir, ReadOnly: true,
		VolumeOptions: &mount.VolumeOptions{NoCopy: true, Labels: map[string]string{LabelDigest: digest, LabelArch: "arm64"}},
	})
	assert.DeepEqual(t, []string(cfg.Entrypoint), []string{Path})
	assert.Equal(t, len(host.Mounts), 1)
}

func TestFillName(t *testing.T) {
	digest := "88d4266fd4e6338d13b845fcf289579d209c897823b9217da3e161936f031589"
	assert.Equal(t, fillName(digest, ""), "docker-dtr-agent-fill-88d4266fd4e6338d")
	assert.Equal(t, fillName(digest, "ucp-worker.example.com"), "docker-dtr-agent-fill-88d4266fd4e6338d-ucp-worker.example.com")
	assert.Equal(t, fillName(digest, "node 1/é"), "docker-dtr-agent-fill-88d4266fd4e6338d-node-1--")
}
