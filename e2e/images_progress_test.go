package e2e

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/docker-dtr/docker-dtr/internal/dtrfixture"
	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/human"
	"github.com/docker-dtr/docker-dtr/pkg/imagevolume"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// The image backup measures the volume while it reads it (the reading
// helper's agent walks it), so that its progress has a total; when it
// cannot, it goes on without.
func TestImageBackupProgressTotal(t *testing.T) {
	cfg := dockerConfig(t)
	c := dtrfixture.Start(t, dtrfixture.Options{Replicas: 1, Components: []string{"rethinkdb", "registry"}})
	rep := c.Replicas[0]
	vol := "dtr-registry-" + rep.ID
	dir := t.TempDir()

	// Known content, in DTR's layout: a blob at its digest, many small
	// link files (tar headers, long names: what the estimate must count
	// besides the data), and an unfinished push, which the backup reads
	// through the archive API but leaves out.
	blob := make([]byte, 1<<20)
	rand.Read(blob)
	sum := sha256.Sum256(blob)
	digest := hex.EncodeToString(sum[:])
	files := map[string][]byte{dtrfixture.BlobPath("sha256:" + digest): blob}
	const links = 300
	for i := range links {
		files[fmt.Sprintf("docker/registry/v2/repositories/team/app%03d/_layers/sha256/%s/link", i, digest)] = []byte("sha256:" + digest)
	}
	upload := make([]byte, 100<<10)
	files["docker/registry/v2/repositories/team/app000/_uploads/0f4c2a5e-upload/data"] = upload
	files["docker/registry/v2/repositories/team/app000/_uploads/0f4c2a5e-upload/startedat"] = []byte("2026-11-25T12:00:00Z")
	putFiles(t, c, vol, files)

	images := filepath.Join(dir, "backup-images.tar")
	res := docker(t, cfg, nil, "dtr", "backup", "images", "--progress", "plain", "-o", images)
	assert.Equal(t, res.code, 0, res.stderr)
	// What the backup itself counted.
	nFiles, nBytes := strconv.Itoa(1+links), human.Bytes(int64(len(blob)+links*len("sha256:"+digest)))
	assert.Assert(t, is.Contains(res.stdout, fmt.Sprintf(": %s files, 1 blobs, %s", nFiles, nBytes)), res.stdout)
	assert.Assert(t, is.Contains(res.stdout, "(2 files in unfinished uploads left out)"), res.stdout)
	assert.Assert(t, !strings.Contains(res.stderr, "volume size unknown"), res.stderr)
	assertNoHelpers(t, c)

	// The read does not wait for the measure: on this small volume either
	// may end first. With the engine's stream slowed (each connection
	// through the engine proxy at 256 KiB/s: 8 s for this 2 MiB archive of
	// dirs and headers) the measure comes while the read goes on, and the
	// terminal's line gets a percentage of the total, which is the archive
	// the engine sends (headers and uploads too), as read.
	slow := newEngineProxy(t)
	slow.ThrottleEach(256 << 10)
	cmd := exec.Command("docker", "--config", cfg, "dtr", "backup", "images", "--progress", "tty", "-o", images)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+slow.Host())
	res = run(t, cmd, nil)
	assert.Equal(t, res.code, 0, res.stderr)
	m := regexp.MustCompile(`(?m)\d\d:\d\d:\d\d volume ` + regexp.QuoteMeta(vol) + ` holds (\d+) files, (\S+ \w*B), and 2 files, (\S+ \w*B) in unfinished uploads to skip$`).FindStringSubmatch(res.stderr)
	assert.Assert(t, m != nil, "no size announced:\n%s", res.stderr)
	assert.Equal(t, m[1], nFiles)
	assert.Equal(t, m[2], nBytes)
	assert.Equal(t, m[3], human.Bytes(int64(len(upload)+len("2026-11-25T12:00:00Z"))))
	total := regexp.MustCompile(`reading volume ` + regexp.QuoteMeta(vol) + `:\s+\d+% \S+ \w*B/(\S+ \w*B)`).FindStringSubmatch(res.stderr)
	assert.Assert(t, total != nil, "no percentage of a total:\n%q", res.stderr)
	done := regexp.MustCompile(`reading volume ` + regexp.QuoteMeta(vol) + `: done, (\S+ \w*B) in `).FindStringSubmatch(res.stderr)
	assert.Assert(t, done != nil, "no end of the phase:\n%q", res.stderr)
	assert.Equal(t, total[1], done[1], "the estimate is what was read")
	t.Logf("estimated %s, read %s", total[1], done[1])
	assertNoHelpers(t, c)

	// A measure that never comes (an agent that holds the lease but never
	// measures, hangs if asked to measure alone, and fails at everything
	// else) delays nothing: the read does not wait for it (the code before
	// waited for its bound, minutes), and nothing is said of it once the
	// read has ended.
	hang := buildAgentProgram(t, t.TempDir(), `package main

import (
	"io"
	"os"
	"slices"
	"time"
)

func main() {
	switch {
	case slices.Contains(os.Args, "--lease"):
		os.Stdout.WriteString("lease held\n")
		io.Copy(io.Discard, os.Stdin)
		return
	case slices.Contains(os.Args, "--du"):
		time.Sleep(time.Hour)
	}
	os.Stderr.WriteString("agent: boom\n")
	os.Exit(3)
}
`)
	res = docker(t, cfg, nil, "dtr", "backup", "images", "--progress", "plain", "--agent-binary", hang, "-o", images)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Assert(t, is.Contains(res.stdout, fmt.Sprintf(": %s files, 1 blobs, %s", nFiles, nBytes)), res.stdout)
	assert.Assert(t, !strings.Contains(res.stderr, "volume size unknown"), res.stderr)
	assertNoHelpers(t, c)

	// To the byte: the agent's estimate, and the archive the engine sends.
	v := &imagevolume.Volume{Replica: &dtr.Replica{ID: rep.ID, Node: "test-node"}, Name: vol, Image: mustImageID(t, c, rep.Containers["registry"])}
	u, err := v.Size(context.Background(), c.Client, buildPlugin(t))
	assert.NilError(t, err)
	assert.Equal(t, u.Files, int64(1+links))
	sent := archiveSize(t, c, vol)
	t.Logf("estimated %d bytes, the engine sent %d", u.Stream, sent)
	assert.Equal(t, u.Stream, sent)
	assertNoHelpers(t, c)

	// Quiet: nothing is measured, nothing printed; the summary as JSON.
	assert.NilError(t, os.Remove(images))
	res = docker(t, cfg, nil, "dtr", "backup", "images", "-q", "--format", "json", "-o", images)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Equal(t, res.stderr, "")
	var summary struct {
		File        string `json:"file"`
		Encrypted   bool   `json:"encrypted"`
		ReplicaID   string `json:"replicaId"`
		Volume      string `json:"volume"`
		Files       int64  `json:"files"`
		Blobs       int64  `json:"blobs"`
		UploadFiles int64  `json:"uploadFiles"`
	}
	assert.NilError(t, json.Unmarshal([]byte(res.stdout), &summary), res.stdout)
	assert.Equal(t, summary.File, images)
	assert.Equal(t, summary.ReplicaID, rep.ID)
	assert.Equal(t, summary.Volume, vol)
	assert.Equal(t, summary.Files, int64(1+links))
	assert.Equal(t, summary.Blobs, int64(1))
	assert.Equal(t, summary.UploadFiles, int64(2))
	assert.Assert(t, !summary.Encrypted)

	// An agent that cannot run on the node, or that fails there: the
	// backup is written all the same, with a plain note.
	notELF := filepath.Join(dir, "docker-dtr-darwin-arm64")
	assert.NilError(t, os.WriteFile(notELF, []byte("\xcf\xfa\xed\xfe not ELF"), 0o644))
	boom := buildAgent(t, dir, `os.Stderr.WriteString("agent: boom\n"); os.Exit(3)`)
	for bin, why := range map[string]string{
		notELF: "--agent-binary " + notELF + " is not a linux program",
		boom:   "the agent in helper docker-dtr-images-" + rep.ID + "-",
	} {
		assert.NilError(t, os.Remove(images))
		res = docker(t, cfg, nil, "dtr", "backup", "images", "--progress", "plain", "--agent-binary", bin, "-o", images)
		assert.Equal(t, res.code, 0, res.stderr)
		assert.Assert(t, is.Regexp(`(?m)^\S+ volume size unknown \(.*`+regexp.QuoteMeta(why)+`.*\): no ETA$`, res.stderr))
		assert.Assert(t, !strings.Contains(strings.ToLower(res.stderr), "warning"), res.stderr)
		assert.Assert(t, is.Contains(res.stdout, images+": DTR "), res.stdout)
		_, err := os.Stat(images)
		assert.NilError(t, err)
		assertNoHelpers(t, c)
	}

	// A flag naming no file is wrong usage, before anything runs.
	res = docker(t, cfg, nil, "dtr", "backup", "images", "--agent-binary", filepath.Join(dir, "missing"), "-o", images+".2")
	assert.Equal(t, res.code, 1)
	assert.Assert(t, is.Contains(res.stderr, "--agent-binary "+filepath.Join(dir, "missing")+": no such file"), res.stderr)
	_, err = os.Stat(images + ".2")
	assert.Assert(t, os.IsNotExist(err))
}

// archiveSize is the size of the tar the archive API gives of the volume
// mounted at /storage, as the backup's helper mounts it.
func archiveSize(t *testing.T, c *dtrfixture.Cluster, volume string) int64 {
	t.Helper()
	ctx := context.Background()
	img := mustImageID(t, c, c.Replicas[0].Containers["rethinkdb"])
	cr, err := c.Client.ContainerCreate(ctx, &container.Config{Image: img, Labels: map[string]string{dtrfixture.Label: "fixture"}},
		&container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: volume, Target: "/storage", ReadOnly: true}}}, nil, nil, "")
	assert.NilError(t, err)
	defer c.Client.ContainerRemove(ctx, cr.ID, container.RemoveOptions{Force: true})
	rc, _, err := c.Client.CopyFromContainer(ctx, cr.ID, "/storage")
	assert.NilError(t, err)
	defer rc.Close()
	n, err := io.Copy(io.Discard, rc)
	assert.NilError(t, err)
	return n
}
