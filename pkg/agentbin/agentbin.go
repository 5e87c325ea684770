// Package agentbin ships the plugin's own static binary into a helper
// container on a replica's node, where it runs as the agent (pkg/agent):
// finding it (--agent-binary, or this very executable), checking that it
// can run there, and creating the helper with it as entrypoint: from the
// node's agent cache volume, filled once per node and binary (cache.go),
// or copied into the created container before it starts. The tunnel runs
// it to relay streams to RethinkDB, the image volume helpers to read or
// empty a volume.
package agentbin

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"time"

	"github.com/docker/docker/api/types/container"
)

// Path is where the agent is copied into a helper container; helpers use
// it as their entrypoint.
const Path = "/docker-dtr-agent"

// elfArch names ELF machines as Go and image platforms do.
var elfArch = map[elf.Machine]string{
	elf.EM_X86_64:  "amd64",
	elf.EM_AARCH64: "arm64",
	elf.EM_386:     "386",
	elf.EM_ARM:     "arm",
	elf.EM_PPC64:   "ppc64le",
	elf.EM_S390:    "s390x",
	elf.EM_RISCV:   "riscv64",
}

// Find returns the path of the binary to run in a helper: flag
// (--agent-binary) when set, else this plugin's own executable. explicit
// says the path came from the flag.
func Find(flag string) (path string, explicit bool, err error) {
	if flag != "" {
		return flag, true, nil
	}
	self, err := os.Executable()
	if err != nil {
		return "", false, fmt.Errorf("finding this plugin's own binary: %v: pass --agent-binary", err)
	}
	return self, false, nil
}

// Check makes sure the binary at path can run in a linux container of
// arch: a static ELF executable for that machine. explicit says the path
// came from --agent-binary rather than being this plugin's own executable.
func Check(path string, explicit bool, node, arch string) error {
	fix := fmt.Sprintf("pass --agent-binary with a static linux/%s build of docker-dtr ('make cross' writes bin/docker-dtr-linux-%s)", arch, arch)
	what := "this docker-dtr (" + path + ")"
	if explicit {
		what = "--agent-binary " + path
	}
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: no such file: %s", what, fix)
		}
		return fmt.Errorf("%s: %v", what, err)
	}
	f, err := elf.Open(path)
	if err != nil {
		// Not ELF (a Mach-O or PE build, a script, a truncated file).
		return fmt.Errorf("%s is not a linux program and cannot run on node %s (linux/%s): %s", what, node, arch, fix)
	}
	defer f.Close()
	got := elfArch[f.Machine]
	if got == "" {
		got = f.Machine.String()
	}
	if got != arch {
		return fmt.Errorf("%s is a linux/%s program and cannot run on node %s (linux/%s): %s", what, got, node, arch, fix)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked and cannot run in DTR's images: build it with CGO_ENABLED=0, or %s", what, fix)
		}
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("%s is not an executable: %s", what, fix)
	}
	return nil
}

// Copier is the part of the Docker client that Copy needs.
type Copier interface {
	CopyToContainer(ctx context.Context, id, dst string, content io.Reader, options container.CopyToContainerOptions) error
}

// Copy puts the binary at Path in the created container, before it starts,
// through the archive API.
func Copy(ctx context.Context, api Copier, containerID, binary string) error {
	return send(ctx, api, containerID, path.Dir(Path), path.Base(Path), binary, "")
}

// send copies the binary into the container's directory dir as name.
// With a digest, a marker file named after it follows, holding it, and
// only if the bytes sent are the digest's: the archive API writes the
// entries in turn, so a marker means a whole binary, and a binary
// changed since it was hashed fails the copy before its marker.
func send(ctx context.Context, api Copier, containerID, dir, name, binary, digest string) error {
	f, err := os.Open(binary)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	go func() {
		now := time.Now()
		tw := tar.NewWriter(pw)
		sum := sha256.New()
		err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: st.Size(), ModTime: now, Typeflag: tar.TypeReg})
		if err == nil {
			_, err = io.Copy(io.MultiWriter(tw, sum), f)
		}
		if err == nil && digest != "" {
			if got := hex.EncodeToString(sum.Sum(nil)); got != digest {
				err = fmt.Errorf("%s changed while it was copied (sha256 %s, was %s)", binary, got, digest)
			} else {
				body := digest + "\n"
				err = tw.WriteHeader(&tar.Header{Name: marker(digest), Mode: 0o444, Size: int64(len(body)), ModTime: now, Typeflag: tar.TypeReg})
				if err == nil {
					_, err = io.WriteString(tw, body)
				}
			}
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	err = api.CopyToContainer(ctx, containerID, dir, pr, container.CopyToContainerOptions{})
	// Ends the writer whether or not the engine read it all; f stays open
	// until it has.
	pr.CloseWithError(errors.New("the copy ended"))
	return err
}
