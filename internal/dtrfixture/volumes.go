package dtrfixture

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/client"
)

// volumeTimeout bounds each volume helper.
const volumeTimeout = 2 * time.Minute

// volumeMount is where helper containers mount the volume they work on.
const volumeMount = "/vol"

var sha256Digest = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// BlobPath is where a registry storing on the filesystem (DTR's, and the
// fixture's real registry) keeps a blob, relative to its root directory
// (the volume dtr-registry-<id>):
// "docker/registry/v2/blobs/sha256/<first 2 hex>/<64 hex>/data".
func BlobPath(digest string) string {
	hexPart := strings.TrimPrefix(digest, "sha256:")
	if len(hexPart) < 2 {
		return "docker/registry/v2/blobs/sha256/" + hexPart + "/data"
	}
	return "docker/registry/v2/blobs/sha256/" + hexPart[:2] + "/" + hexPart + "/data"
}

// helperContainer creates (and, with cmd, does not yet start) a labelled
// container of the helper image that mounts the volume at /vol; the caller
// removes it. The volume must exist: a mount would create it, unlabelled.
func helperContainer(ctx context.Context, cli *client.Client, volume string, cmd []string) (string, error) {
	if _, err := cli.VolumeInspect(ctx, volume); err != nil {
		return "", fmt.Errorf("volume %s: %w", volume, err)
	}
	img, err := ensureHelperImage(ctx, cli)
	if err != nil {
		return "", err
	}
	resp, err := cli.ContainerCreate(ctx,
		&container.Config{Image: img, Cmd: cmd, Labels: labels()},
		&container.HostConfig{
			NetworkMode: "none",
			Mounts:      []mount.Mount{{Type: mount.TypeVolume, Source: volume, Target: volumeMount}},
		},
		nil, nil, "")
	if err != nil {
		return "", fmt.Errorf("creating a helper container for volume %s: %w", volume, err)
	}
	return resp.ID, nil
}

// withHelper runs f with a helper container on the volume and removes the
// container after, also when f fails the test.
func withHelper(t TB, cli *client.Client, volume string, cmd []string, f func(ctx context.Context, id string) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), volumeTimeout)
	defer cancel()
	id, err := helperContainer(ctx, cli, volume, cmd)
	if err != nil {
		t.Fatalf("dtrfixture: %v", err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if err := removeContainer(ctx, cli, id); err != nil {
			t.Errorf("dtrfixture: removing helper container %s: %v", id, err)
		}
	}()
	if err := f(ctx, id); err != nil {
		t.Fatalf("dtrfixture: %v", err)
	}
}

// CorruptBlob overwrites the data file of the blob with the digest inside
// the named registry volume (at BlobPath) with different bytes of the same
// length (each byte inverted), through the archive API of a created, never
// started helper container. The registry then serves content that does not
// match the digest. The blob must exist and not be empty.
func CorruptBlob(t TB, cli *client.Client, volume, digest string) {
	t.Helper()
	if !sha256Digest.MatchString(digest) {
		t.Fatalf("dtrfixture: CorruptBlob: %q is not a sha256 digest", digest)
	}
	src := path.Join(volumeMount, BlobPath(digest))
	withHelper(t, cli, volume, nil, func(ctx context.Context, id string) error {
		rc, _, err := cli.CopyFromContainer(ctx, id, src)
		if err != nil {
			return fmt.Errorf("reading %s of volume %s: %w", BlobPath(digest), volume, err)
		}
		defer rc.Close()
		tr := tar.NewReader(rc)
		hdr, err := tr.Next()
		if err != nil {
			return fmt.Errorf("reading %s of volume %s: %w", BlobPath(digest), volume, err)
		}
		if hdr.Typeflag != tar.TypeReg || hdr.Size == 0 {
			return fmt.Errorf("%s of volume %s is not a non-empty file (type %q, %d bytes)", BlobPath(digest), volume, hdr.Typeflag, hdr.Size)
		}
		// Read it all before writing: the engine does not take a copy into a
		// container while a copy out of it is still being read.
		data, err := io.ReadAll(invert{tr})
		rc.Close()
		if err != nil {
			return fmt.Errorf("reading %s of volume %s: %w", BlobPath(digest), volume, err)
		}
		h := *hdr
		h.Name = path.Base(src)
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		if err := tw.WriteHeader(&h); err != nil {
			return err
		}
		tw.Write(data)
		if err := tw.Close(); err != nil {
			return err
		}
		if err := cli.CopyToContainer(ctx, id, path.Dir(src), &buf, container.CopyToContainerOptions{}); err != nil {
			return fmt.Errorf("writing %s of volume %s: %w", BlobPath(digest), volume, err)
		}
		return nil
	})
}

// invert reads each byte inverted.
type invert struct{ r io.Reader }

func (v invert) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	for i := range p[:n] {
		p[i] = ^p[i]
	}
	return n, err
}

// WipeVolume removes everything inside the named volume, keeping the
// volume: a short-lived helper container runs `dtrfake wipe /vol` (the
// archive API cannot delete). A registry using the volume may keep running;
// what it had is gone.
func WipeVolume(t TB, cli *client.Client, volume string) {
	t.Helper()
	withHelper(t, cli, volume, []string{"wipe", volumeMount}, func(ctx context.Context, id string) error {
		waitC, errC := cli.ContainerWait(ctx, id, container.WaitConditionNextExit)
		if err := cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
			return fmt.Errorf("wiping volume %s: %w", volume, err)
		}
		select {
		case w := <-waitC:
			if w.Error != nil || w.StatusCode != 0 {
				return fmt.Errorf("wiping volume %s: exit code %d %v: %s", volume, w.StatusCode, w.Error, containerLogs(ctx, cli, id))
			}
			return nil
		case err := <-errC:
			return fmt.Errorf("wiping volume %s: %w", volume, err)
		}
	})
}

// VolumeFiles returns, for every regular file in the named volume, its path
// relative to the volume's root ("docker/registry/v2/...") and the sha256
// of its content in hex, read through the archive API of a created, never
// started helper container. Directories, symlinks and other entries are
// left out. For a registry volume, a blob's value equals the hex of its
// digest unless the blob is corrupt.
func VolumeFiles(t TB, cli *client.Client, volume string) map[string]string {
	t.Helper()
	files := map[string]string{}
	walkVolume(t, cli, volume, func(hdr *tar.Header, rel string, r io.Reader) error {
		if hdr.Typeflag != tar.TypeReg {
			return nil
		}
		if rel == "" {
			return fmt.Errorf("reading volume %s: unexpected entry %q", volume, hdr.Name)
		}
		h := sha256.New()
		if _, err := io.Copy(h, r); err != nil {
			return fmt.Errorf("reading %s of volume %s: %w", rel, volume, err)
		}
		files[rel] = hex.EncodeToString(h.Sum(nil))
		return nil
	})
	return files
}

// VolumeDirs lists the volume's directories (names relative to its root,
// with a trailing slash) with their mode and owner ("0755 0:0"), read as
// VolumeFiles reads the files; the root itself is left out.
func VolumeDirs(t TB, cli *client.Client, volume string) map[string]string {
	t.Helper()
	dirs := map[string]string{}
	walkVolume(t, cli, volume, func(hdr *tar.Header, rel string, _ io.Reader) error {
		if hdr.Typeflag == tar.TypeDir && rel != "" {
			dirs[rel] = fmt.Sprintf("%04o %d:%d", hdr.Mode&0o7777, hdr.Uid, hdr.Gid)
		}
		return nil
	})
	return dirs
}

// walkVolume hands fn each entry of the volume as the archive API gives
// it, with its name relative to the volume's root (entries are named
// after the mount point: "vol/docker/..."), through a created, never
// started helper container.
func walkVolume(t TB, cli *client.Client, volume string, fn func(hdr *tar.Header, rel string, r io.Reader) error) {
	t.Helper()
	withHelper(t, cli, volume, nil, func(ctx context.Context, id string) error {
		rc, _, err := cli.CopyFromContainer(ctx, id, volumeMount)
		if err != nil {
			return fmt.Errorf("reading volume %s: %w", volume, err)
		}
		defer rc.Close()
		tr := tar.NewReader(rc)
		for {
			hdr, err := tr.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("reading volume %s: %w", volume, err)
			}
			_, rel, _ := strings.Cut(hdr.Name, "/")
			if err := fn(hdr, rel, tr); err != nil {
				return err
			}
		}
	})
}
