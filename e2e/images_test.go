package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/dtrfixture"
	"github.com/docker-dtr/docker-dtr/pkg/helpercontainer"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/errdefs"
	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/poll"
)

// These tests push images of their own into the fixture's real registry
// (distribution v3, storing in dtr-registry-<id> at /storage), back the
// volume up through the plugin, and restore it.

func assertRunning(t *testing.T, c *dtrfixture.Cluster, name string) {
	t.Helper()
	info, err := c.Client.ContainerInspect(context.Background(), name)
	assert.NilError(t, err)
	assert.Assert(t, info.State.Running, "%s is %s", name, info.State.Status)
}

func TestImageBackupRoundTrip(t *testing.T) {
	cfg := dockerConfig(t)
	c := dtrfixture.Start(t, dtrfixture.Options{Replicas: 1, Registry: true, Components: []string{"rethinkdb", "registry"}})
	rep := c.Replicas[0]
	vol := "dtr-registry-" + rep.ID
	registry := rep.Containers["registry"]
	pushed := dtrfixture.Push(t, c.Client, rep.RegistryAddr, dtrfixture.BuildImages(t, c.Client, 1))
	before := dtrfixture.VolumeFiles(t, c.Client, vol)
	beforeDirs := dtrfixture.VolumeDirs(t, c.Client, vol)
	driver := c.Connect(t, rep.ID)
	dtrfixture.SeedRegistryMetadata(t, driver, pushed)

	dir := t.TempDir()
	meta := filepath.Join(dir, "backup-metadata.tar")
	res := docker(t, cfg, nil, "dtr", "backup", "create", "-q", "-o", meta)
	assert.Equal(t, res.code, 0, res.stderr)

	images := filepath.Join(dir, "backup-images.tar")
	res = docker(t, cfg, nil, "dtr", "backup", "images", "-o", images)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Assert(t, is.Contains(res.stdout, images+": DTR 2.9.4, replica "+rep.ID+", volume "+vol+": "))
	st, err := os.Stat(images)
	assert.NilError(t, err)
	assert.Equal(t, st.Mode().Perm(), os.FileMode(0o600))
	assert.Assert(t, st.Size() > dtrfixture.BigLayerSize, "the 50 MiB layer is in it")
	assertNoHelpers(t, c)
	assertRunning(t, c, registry)

	// A plain tar: tar lists it, and every blob is under the volume's name.
	out, err := exec.Command("tar", "-tf", images).Output()
	assert.NilError(t, err)
	listing := strings.Split(strings.TrimSpace(string(out)), "\n")
	assert.Equal(t, listing[0], vol+"/")
	assert.Equal(t, listing[len(listing)-1], "docker-dtr-images.jsonl")
	for _, p := range pushed {
		for _, l := range p.Layers {
			assert.Assert(t, is.Contains(string(out), vol+"/"+dtrfixture.BlobPath(l.Digest)))
		}
	}

	res = docker(t, cfg, nil, "dtr", "backup", "verify", images)
	assert.Equal(t, res.code, 0, res.stdout)
	assert.Assert(t, is.Contains(res.stdout, images+": verified"))
	res = docker(t, cfg, nil, "dtr", "backup", "inspect", "--format", "json", images)
	assert.Equal(t, res.code, 0, res.stderr)
	var inspected struct {
		Kind, Volume, ReplicaID string
		Blobs                   int
	}
	assert.NilError(t, json.Unmarshal([]byte(res.stdout), &inspected))
	assert.Equal(t, inspected.Kind, "docker-dtr images")
	assert.Equal(t, inspected.Volume, vol)
	assert.Equal(t, inspected.ReplicaID, rep.ID)
	assert.Equal(t, inspected.Blobs, 15, "5 layers, 5 configs, 5 manifests")

	// Streamed to standard output, and verified from standard input.
	res = docker(t, cfg, nil, "dtr", "backup", "images", "-q", "-o", "-")
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Equal(t, res.stderr, "")
	res = docker(t, cfg, []byte(res.stdout), "dtr", "backup", "verify", "-")
	assert.Equal(t, res.code, 0, res.stdout)
	assert.Assert(t, is.Contains(res.stdout, "standard input: verified"))
	res = docker(t, cfg, nil, "dtr", "backup", "verify", images, "--metadata", meta)
	assert.Equal(t, res.code, 0, res.stdout+res.stderr)
	assert.Assert(t, is.Contains(res.stdout, "every referenced blob is in the image backup"))

	// Metadata that references a blob the image backup does not hold.
	ghost := make([]byte, 32)
	rand.Read(ghost)
	ghostDigest := "sha256:" + hex.EncodeToString(ghost)
	_, err = r.DB("dtr2").Table("tags").Insert(map[string]any{"id": "team/ghost:1", "repository": "team/ghost", "name": "1", "digest": ghostDigest}).RunWrite(driver)
	assert.NilError(t, err)
	meta2 := filepath.Join(dir, "backup-metadata-2.tar")
	res = docker(t, cfg, nil, "dtr", "backup", "create", "-q", "-o", meta2)
	assert.Equal(t, res.code, 0, res.stderr)
	res = docker(t, cfg, nil, "dtr", "backup", "verify", images, "--metadata", meta2)
	assert.Equal(t, res.code, 1, res.stdout)
	assert.Assert(t, is.Contains(res.stdout, "1 blob missing from the image backup:"))
	assert.Assert(t, is.Contains(res.stdout, ghostDigest+" (referenced by [team/ghost:1])"))
	assert.Equal(t, strings.TrimSpace(res.stderr), images+" lacks 1 blob that "+meta2+" references (listed above)")

	// Encrypted to a public key, as an unattended job does: both kinds,
	// cross-checked, need the secret key to read.
	pub, sec := filepath.Join("..", "pkg", "crypt", "testdata", "ecc-pub.asc"), filepath.Join("..", "pkg", "crypt", "testdata", "ecc-sec.asc")
	sealed, sealedMeta := filepath.Join(dir, "backup-images.tar.gpg"), filepath.Join(dir, "backup-metadata.tar.gpg")
	res = docker(t, cfg, nil, "dtr", "backup", "images", "-q", "--recipient-file", pub, "-o", sealed)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Assert(t, is.Contains(res.stdout, ", encrypted to 1 recipient file"))
	res = docker(t, cfg, nil, "dtr", "backup", "create", "-q", "--recipient-file", pub, "-o", sealedMeta)
	assert.Equal(t, res.code, 0, res.stderr)
	res = docker(t, cfg, nil, "dtr", "backup", "verify", sealed, "--metadata", sealedMeta)
	assert.Equal(t, res.code, 1)
	assert.Assert(t, is.Contains(res.stderr, "give it with --identity-file"))
	res = docker(t, cfg, nil, "dtr", "backup", "verify", "--identity-file", sec, sealed, "--metadata", sealedMeta)
	assert.Equal(t, res.code, 1, res.stdout+res.stderr)
	assert.Assert(t, is.Contains(res.stdout, sealed+": verified"))
	assert.Assert(t, is.Contains(res.stdout, ghostDigest+" (referenced by [team/ghost:1])"), "the ghost tag is in this metadata too")

	// Restoring over the live volume is refused; nothing is stopped.
	res = docker(t, cfg, nil, "dtr", "backup", "restore", images)
	assert.Equal(t, res.code, 1)
	assert.Assert(t, is.Contains(res.stderr, "volume "+vol+" of replica "+rep.ID+" is not empty: refusing to restore"))
	assertRunning(t, c, registry)

	// Lose the volume, restore it, and pull every image back.
	dtrfixture.WipeVolume(t, c.Client, vol)
	assert.Equal(t, len(dtrfixture.VolumeFiles(t, c.Client, vol)), 0)
	res = docker(t, cfg, nil, "dtr", "backup", "restore", "--dry-run", images)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Assert(t, is.Contains(res.stdout, "stop "+registry))
	res = docker(t, cfg, nil, "dtr", "backup", "restore", "--identity-file", sec, sealed)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Assert(t, is.Contains(res.stdout, "restored "+sealed+" into volume "+vol+" of replica "+rep.ID))
	assert.Assert(t, is.Contains(res.stdout, "every file checked"))
	assert.Assert(t, is.Contains(res.stderr, "stopped "+registry))
	assert.Assert(t, is.Contains(res.stderr, "started "+registry+" again"))
	// The replica and its volume were looked at while the backup verified;
	// what that found is said after the verify.
	verified, using := strings.Index(res.stderr, sealed+" verified: "), strings.Index(res.stderr, "using replica "+rep.ID)
	empty := strings.Index(res.stderr, "volume "+vol+" is empty")
	assert.Assert(t, verified >= 0 && verified < using && using < empty, "%s", res.stderr)
	assert.DeepEqual(t, dtrfixture.VolumeFiles(t, c.Client, vol), before)
	// Every directory is back with its mode and owner.
	afterDirs := dtrfixture.VolumeDirs(t, c.Client, vol)
	assert.Assert(t, len(beforeDirs) > 0)
	for d, want := range beforeDirs {
		if !strings.Contains(d, "/_uploads/") {
			assert.Check(t, is.Equal(afterDirs[d], want), "directory %s", d)
		}
	}
	assertRunning(t, c, registry)
	c.Start(t, rep.ID, "registry") // waits until the registry answers again
	dtrfixture.PullAndCompare(t, c.Client, rep.RegistryAddr, pushed)
	assertNoHelpers(t, c)
}

func TestImageBackupFaults(t *testing.T) {
	cfg := dockerConfig(t)
	c := dtrfixture.Start(t, dtrfixture.Options{Replicas: 1, Registry: true, Components: []string{"rethinkdb", "registry"}})
	rep := c.Replicas[0]
	vol := "dtr-registry-" + rep.ID
	registry := rep.Containers["registry"]
	pushed := dtrfixture.Push(t, c.Client, rep.RegistryAddr, dtrfixture.BuildImages(t, c.Client, 2))
	dir := t.TempDir()

	// A blob corrupted in the live registry: named, the backup completes,
	// and the exit status says so unless --allow-corrupt-blobs.
	bad := pushed[0].Layers[0].Digest
	dtrfixture.CorruptBlob(t, c.Client, vol, bad)
	images := filepath.Join(dir, "backup-images.tar")
	res := docker(t, cfg, nil, "dtr", "backup", "images", "-o", images)
	assert.Equal(t, res.code, 1)
	assert.Assert(t, is.Contains(res.stderr, "corrupt in the registry (data does not match its digest): "+dtrfixture.BlobPath(bad)))
	assert.Assert(t, is.Contains(res.stderr, "the backup is complete, but 1 blob in the live registry do"))
	_, err := os.Stat(images)
	assert.NilError(t, err, "the backup completes")
	res = docker(t, cfg, nil, "dtr", "backup", "images", "--allow-corrupt-blobs", "-o", images)
	assert.Equal(t, res.code, 0, res.stderr)
	res = docker(t, cfg, nil, "dtr", "backup", "verify", images)
	assert.Equal(t, res.code, 0, "as it was in the registry: %s", res.stdout)
	assert.Assert(t, is.Contains(res.stdout, "Corrupt in the registry  "+dtrfixture.BlobPath(bad)))
	before := dtrfixture.VolumeFiles(t, c.Client, vol)

	// An agent that holds the lease, then dies under the read (killed,
	// out of memory): the engine may have sent the volume with files
	// missing, so the backup does not count and nothing is written.
	dying := buildAgentProgram(t, t.TempDir(), "package main\nimport (\"os\"; \"time\")\nfunc main() { os.Stdout.WriteString(\"lease held\\n\"); time.Sleep(50 * time.Millisecond); os.Exit(9) }\n")
	short := filepath.Join(dir, "short.tar")
	res = docker(t, cfg, nil, "dtr", "backup", "images", "--agent-binary", dying, "--allow-corrupt-blobs", "-o", short)
	assert.Equal(t, res.code, 1, res.stderr)
	assert.Assert(t, is.Regexp(`the agent in helper docker-dtr-images-\S+ exited with code 9 before the read ended, so the engine may have sent the volume with files missing: nothing read counts; run it again$`, lastLine(res.stderr)))
	_, err = os.Stat(short)
	assert.Assert(t, os.IsNotExist(err), "nothing written: %v", err)
	assertNoHelpers(t, c)

	// An archive with an entry that leaves the volume: refused before
	// anything is stopped or written.
	evil := filepath.Join(dir, "evil.tar")
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: vol + "/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: vol + "/../../../../etc/evil", Typeflag: tar.TypeReg, Mode: 0o644, Size: 4})
	tw.Write([]byte("evil"))
	tw.Close()
	assert.NilError(t, os.WriteFile(evil, buf.Bytes(), 0o600))
	res = docker(t, cfg, nil, "dtr", "backup", "restore", "--force", evil)
	assert.Equal(t, res.code, 1)
	assert.Assert(t, is.Contains(res.stderr, "refusing to restore "+evil+": it did not verify"))
	assert.Assert(t, is.Contains(res.stderr, "nothing was changed"))
	assertRunning(t, c, registry)
	assert.DeepEqual(t, dtrfixture.VolumeFiles(t, c.Client, vol), before)
	// The helper made while it verified is gone, and what it found unsaid.
	assertNoHelpers(t, c)
	assert.Assert(t, !strings.Contains(res.stderr, "using replica"), res.stderr)
	assertNoJournal(t, c)

	// An agent that cannot run on the node: refused before anything is
	// saved, stopped or written, since a failed write could not be undone.
	wrong := filepath.Join(dir, "docker-dtr-darwin-arm64")
	assert.NilError(t, os.WriteFile(wrong, []byte("\xcf\xfa\xed\xfe not ELF"), 0o755))
	res = docker(t, cfg, nil, "dtr", "backup", "restore", "-q", "--force", "--agent-binary", wrong, images)
	assert.Equal(t, res.code, 1)
	assert.Assert(t, is.Regexp(`^refusing to restore `+regexp.QuoteMeta(images)+`, nothing was changed: putting volume `+vol+` back if writing fails runs this plugin as an agent on node \S+: --agent-binary `+regexp.QuoteMeta(wrong)+` is not a linux program`, res.stderr))
	assert.Equal(t, strings.Count(res.stderr, "\n"), 1, "one line: %q", res.stderr)
	assertRunning(t, c, registry)
	assert.DeepEqual(t, dtrfixture.VolumeFiles(t, c.Client, vol), before)
	assertNoHelpers(t, c)
	assertNoJournal(t, c)
	left, err := filepath.Glob(filepath.Join(dir, "*safety*"))
	assert.NilError(t, err)
	assert.Equal(t, len(left), 0, "no safety backup: %v", left)

	// SIGKILL while a backup verifies (a long one, which will not), once
	// the helper that looks into the volume (and would write into it)
	// exists: that helper, never started, is all the run leaves, and the
	// next run removes it; nothing else was touched.
	long := filepath.Join(dir, "long.tar")
	var hdrs bytes.Buffer
	tw = tar.NewWriter(&hdrs)
	assert.NilError(t, tw.WriteHeader(&tar.Header{Name: vol + "/", Typeflag: tar.TypeDir, Mode: 0o755}))
	const longSize = 4 << 30 // zeros, a sparse file: seconds of hashing, no disk
	assert.NilError(t, tw.WriteHeader(&tar.Header{Name: vol + "/docker/registry/v2/blobs/sha256/00/00/data", Typeflag: tar.TypeReg, Mode: 0o644, Size: longSize}))
	assert.NilError(t, os.WriteFile(long, hdrs.Bytes(), 0o600))
	// The content, then the two zero blocks that end a tar; no manifest.
	assert.NilError(t, os.Truncate(long, int64(hdrs.Len())+longSize+1024))
	killed, stderr := killWithWriter(t, c, filepath.Join(cfg, "cli-plugins", "docker-dtr"), "backup", "restore", "--force", long)
	assert.Assert(t, is.Contains(stderr, "verifying "+long))
	assert.Assert(t, !strings.Contains(stderr, "manifest") && !strings.Contains(stderr, "refusing"), "killed before the verify ended: %s", stderr)
	state, ok := helperState(t, c, killed.ID)
	t.Logf("the killed run's helper %s after the kill: %v %q", helperNameOf(killed), ok, state)
	res = docker(t, cfg, nil, "dtr", "backup", "restore", "--dry-run", "--force", images)
	assert.Equal(t, res.code, 0, res.stderr)
	state, ok = helperState(t, c, killed.ID)
	assert.Assert(t, !ok, "the killed run's helper %s after the next run: %s", helperNameOf(killed), state)
	assertNoHelpers(t, c)
	assertNoJournal(t, c)
	assertRunning(t, c, registry)
	assert.DeepEqual(t, dtrfixture.VolumeFiles(t, c.Client, vol), before)

	// --force over a volume that holds data: what it holds is saved first,
	// beside the input, private, and a backup that verifies, with the blob
	// that was already corrupt kept as it was.
	res = docker(t, cfg, nil, "dtr", "backup", "restore", "--dry-run", "--force", "--format", "json", images)
	assert.Equal(t, res.code, 0, res.stderr)
	var plan struct {
		VolumeEmpty  bool
		SafetyBackup string
	}
	assert.NilError(t, json.Unmarshal([]byte(res.stdout), &plan))
	assert.Assert(t, !plan.VolumeEmpty)
	assert.Assert(t, is.Regexp(`^`+regexp.QuoteMeta(filepath.Join(dir, "safety-images-"+rep.ID+"-"))+`\d{8}T\d{6}Z\.tar$`, plan.SafetyBackup))
	res = docker(t, cfg, nil, "dtr", "backup", "restore", "--force", images)
	assert.Equal(t, res.code, 0, res.stderr)
	safety := safetyBackupPath(t, res.stderr, vol)
	assert.Equal(t, filepath.Dir(safety), dir, "beside the input")
	st, err := os.Stat(safety)
	assert.NilError(t, err)
	assert.Equal(t, st.Mode().Perm(), os.FileMode(0o600))
	res = docker(t, cfg, nil, "dtr", "backup", "verify", safety)
	assert.Equal(t, res.code, 0, res.stdout+res.stderr)
	assert.Assert(t, is.Contains(res.stdout, "Corrupt in the registry  "+dtrfixture.BlobPath(bad)))
	assert.DeepEqual(t, dtrfixture.VolumeFiles(t, c.Client, vol), before)
	assertRunning(t, c, registry)
	assertNoHelpers(t, c)

	// A restore that fails while writing (a file where the backup has a
	// directory, met after the blobs were written) puts the volume back
	// from the safety backup, then starts the registry again.
	dtrfixture.WipeVolume(t, c.Client, vol)
	putFile(t, c, vol, "docker/registry/v2/repositories", "in the way")
	putFile(t, c, vol, "zz-kept", "was here before")
	held := dtrfixture.VolumeFiles(t, c.Client, vol)
	res = docker(t, cfg, nil, "dtr", "backup", "restore", "--force", images)
	assert.Equal(t, res.code, 1, res.stdout)
	safety = safetyBackupPath(t, res.stderr, vol)
	assert.Assert(t, is.Regexp(`^restore of `+regexp.QuoteMeta(images)+` failed, and volume `+vol+` was put back from the safety backup `+regexp.QuoteMeta(safety)+`: writing into volume `+vol+`: \S`, lastLine(res.stderr)))
	assert.Assert(t, is.Contains(res.stderr, "put volume "+vol+" back from "+safety))
	assert.Assert(t, strings.Index(res.stderr, "put volume "+vol+" back") < strings.Index(res.stderr, "started "+registry+" again"), "the registry starts after the rollback:\n%s", res.stderr)
	assert.DeepEqual(t, dtrfixture.VolumeFiles(t, c.Client, vol), held)
	assertRunning(t, c, registry)
	assertNoHelpers(t, c)

	// The same failure, and putting the volume back fails too (an agent
	// that dies): the command that finishes by hand is printed, and works.
	boom := buildAgent(t, dir, `os.Stderr.WriteString("agent: boom\n"); os.Exit(3)`)
	res = docker(t, cfg, nil, "dtr", "backup", "restore", "--force", "--agent-binary", boom, images)
	assert.Equal(t, res.code, 3, "partly restored: finish by hand; %s\n%s", res.stdout, res.stderr)
	safety = safetyBackupPath(t, res.stderr, vol)
	// The restore's journal stays: --undo empties the volume and writes
	// the safety backup back.
	byHand := `docker dtr backup restore --undo --replica-id ` + rep.ID + ` --agent-binary ` + boom
	assert.Assert(t, is.Regexp(`^restore of `+regexp.QuoteMeta(images)+` failed \(writing into volume `+vol+`: .+\), and putting the volume back failed too \(emptying volume `+vol+` on node \S+ failed: the agent in helper docker-dtr-wipe-\S+ exited with code 3: agent: boom\): finish by hand, once the cause is fixed, with: `+regexp.QuoteMeta(byHand)+`$`, lastLine(res.stderr)))
	assert.Assert(t, is.Contains(res.stderr, "started "+registry+" again"))
	assertRunning(t, c, registry)
	assertNoHelpers(t, c)
	// The cause fixed: the plugin's own agent.
	res = docker(t, cfg, nil, strings.Fields(strings.TrimPrefix(strings.TrimSuffix(byHand, " --agent-binary "+boom), "docker "))...)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Assert(t, is.Contains(res.stdout, "undid an image restore of "+images+" into replica "+rep.ID+": put back from the safety backup "+safety))
	after := dtrfixture.VolumeFiles(t, c.Client, vol)
	for name, sum := range held {
		assert.Check(t, is.Equal(after[name], sum), "%s put back by hand", name)
	}
	if t.Failed() {
		t.Fatalf("the volume after the undo: %v\nthe undo said:\n%s", after, res.stderr)
	}
	assertRunning(t, c, registry)
	assertNoHelpers(t, c)

	// Into an empty volume, SIGTERM while writing: the volume is emptied
	// again.
	dtrfixture.WipeVolume(t, c.Client, vol)
	run := startRestore(t, cfg, "--quiet", images)
	waitForWriter(t, c, run, registry)
	assert.NilError(t, run.cmd.Process.Signal(syscall.SIGTERM))
	res = run.wait(t)
	assert.Equal(t, res.code, 130, res.stdout)
	assert.Assert(t, is.Regexp(`^restore of `+regexp.QuoteMeta(images)+` was interrupted, and volume `+vol+` was emptied again, as it was before: interrupted$`, lastLine(res.stderr)))
	assert.Equal(t, strings.Count(res.stderr, "\n"), 1, "--quiet: the reason alone: %q", res.stderr)
	assert.Equal(t, len(dtrfixture.VolumeFiles(t, c.Client, vol)), 0)
	assertRunning(t, c, registry)
	assertNoHelpers(t, c)

	// The writing helper removed under the restore. The engine holds the
	// removal until the copy into it ends, so the copy may complete; the
	// read-back then fails (the volume is emptied again), unless it too
	// got in first (the restore is whole). Either way the volume is one of
	// the two, never half written.
	run = startRestore(t, cfg, "--quiet", images)
	writer := waitForWriter(t, c, run, registry)
	// The restore may be removing it itself by now (it finished): the
	// engine then refuses a second removal.
	if err := c.Client.ContainerRemove(context.Background(), writer, container.RemoveOptions{Force: true}); err != nil {
		assert.Assert(t, errdefs.IsNotFound(err) || strings.Contains(err.Error(), "already in progress"), err)
	}
	res = run.wait(t)
	if res.code == 0 {
		t.Logf("the restore finished before the helper went: %s", res.stdout)
		assert.Assert(t, is.Contains(res.stdout, "every file checked"))
		dtrfixture.WipeVolume(t, c.Client, vol)
	} else {
		assert.Assert(t, is.Regexp(`^restore of `+regexp.QuoteMeta(images)+` failed, and volume `+vol+` was emptied again, as it was before: \S`, lastLine(res.stderr)))
		assert.Equal(t, len(dtrfixture.VolumeFiles(t, c.Client, vol)), 0)
	}
	assertRunning(t, c, registry)
	assertNoHelpers(t, c)

	// SIGINT while writing over a volume that holds data: put back from the
	// safety backup, and the registry started again.
	putFile(t, c, vol, "docker/registry/v2/repositories/team/old/_layers/x", "an older registry")
	held = dtrfixture.VolumeFiles(t, c.Client, vol)
	run = startRestore(t, cfg, "--force", images)
	waitForWriter(t, c, run, registry)
	assert.NilError(t, run.cmd.Process.Signal(syscall.SIGINT))
	res = run.wait(t)
	assert.Equal(t, res.code, 130, res.stdout)
	safety = safetyBackupPath(t, res.stderr, vol)
	assert.Assert(t, is.Regexp(`^restore of `+regexp.QuoteMeta(images)+` was interrupted, and volume `+vol+` was put back from the safety backup `+regexp.QuoteMeta(safety)+`: interrupted$`, lastLine(res.stderr)))
	assert.Assert(t, is.Contains(res.stderr, "started "+registry+" again"))
	assert.DeepEqual(t, dtrfixture.VolumeFiles(t, c.Client, vol), held)
	assertRunning(t, c, registry)
	assertNoHelpers(t, c)
}

// buildAgent builds a static linux program whose main is body, to stand in
// for the plugin's agent.
func buildAgent(t *testing.T, dir, body string) string {
	t.Helper()
	return buildAgentProgram(t, dir, "package main\nimport \"os\"\nfunc main() { "+body+" }\n")
}

// buildAgentProgram builds the Go program src as an --agent-binary.
func buildAgentProgram(t *testing.T, dir, src string) string {
	t.Helper()
	file := filepath.Join(dir, "agent.go")
	assert.NilError(t, os.WriteFile(file, []byte(src), 0o644))
	bin := filepath.Join(dir, "agent")
	build := exec.Command("go", "build", "-o", bin, file)
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	out, err := build.CombinedOutput()
	assert.NilError(t, err, string(out))
	return bin
}

// safetyBackupPath is the safety backup a restore announced on stderr.
func safetyBackupPath(t *testing.T, stderr, volume string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^safety backup of volume ` + regexp.QuoteMeta(volume) + `: (\S+)$`).FindStringSubmatch(stderr)
	assert.Assert(t, m != nil, "no safety backup announced:\n%s", stderr)
	return m[1]
}

// lastLine is the last line of a command's stderr: the one-line reason.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// restoreRun is the plugin restoring, run directly so that the test can
// signal it.
type restoreRun struct {
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	done           chan struct{}
	err            error
}

func startRestore(t *testing.T, cfg string, args ...string) *restoreRun {
	t.Helper()
	cmd := exec.Command(filepath.Join(cfg, "cli-plugins", "docker-dtr"), append([]string{"backup", "restore"}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+cfg)
	run := &restoreRun{cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = run.stdout, run.stderr
	assert.NilError(t, cmd.Start())
	go func() {
		run.err = cmd.Wait()
		close(run.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-run.done
	})
	return run
}

// wait waits for the plugin to exit; one that runs on for minutes hangs.
func (run *restoreRun) wait(t *testing.T) result {
	t.Helper()
	select {
	case <-run.done:
	case <-time.After(3 * time.Minute):
		run.cmd.Process.Kill()
		<-run.done
		t.Fatalf("the restore hung; killed; stderr: %s", run.stderr)
	}
	code := 0
	var exit *exec.ExitError
	if errors.As(run.err, &exit) {
		code = exit.ExitCode()
	} else {
		assert.NilError(t, run.err)
	}
	return result{run.stdout.String(), run.stderr.String(), code}
}

// waitForWriter waits until the restore's writing helper exists (an image
// helper that mounts the volume read-write and never starts) and the
// registry is stopped, and returns the helper's ID: the restore is
// writing, or about to. (The helper exists from the verify on; the
// registry stops just before the write.)
func waitForWriter(t *testing.T, c *dtrfixture.Cluster, run *restoreRun, registry string) string {
	t.Helper()
	var id string
	volume := registry // DTR names the container and its volume alike
	// The volume's directory on the host, when the engine is local and
	// this test may read it.
	var dir string
	if v, err := c.Client.VolumeInspect(context.Background(), volume); err == nil {
		if _, err := os.ReadDir(v.Mountpoint); err == nil {
			dir = v.Mountpoint
		}
	}
	startedEmpty := false
	if dir != "" {
		names, _ := os.ReadDir(dir)
		startedEmpty = len(names) == 0
	}
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		select {
		case <-run.done:
			return poll.Error(fmt.Errorf("the restore ended (%v) before it wrote: %s", run.err, run.stderr))
		default:
		}
		if id != "" {
			// Found already: the registry's stop is waited for, then the
			// first file in the volume (the helper exists from the verify
			// on, and the stop ends a moment after the registry has
			// stopped), read on the host where the engine is local.
			if reg, err := c.Client.ContainerInspect(context.Background(), registry); err != nil || reg.State.Running {
				return poll.Continue("%s still running; stderr: %s", registry, run.stderr)
			}
			// Without --quiet the plugin says it writes; with it, an
			// emptied volume shows the first file.
			if strings.Contains(run.stderr.String(), "writing ") {
				return poll.Success()
			}
			if dir == "" || !startedEmpty {
				if !strings.Contains(strings.Join(run.cmd.Args, " "), "--quiet") {
					return poll.Continue("no writing line yet; stderr: %s", run.stderr)
				}
				return poll.Success() // nothing else to see: the stop will do
			}
			if names, _ := os.ReadDir(dir); len(names) == 0 {
				return poll.Continue("volume %s still empty; stderr: %s", volume, run.stderr)
			}
			return poll.Success()
		}
		for _, h := range helperContainers(t, c) {
			if h.State != "created" || h.Labels[helpercontainer.LabelKind] != helpercontainer.KindImages {
				continue
			}
			info, err := c.Client.ContainerInspect(context.Background(), h.ID)
			if err != nil || !slices.Contains(info.Config.Entrypoint, "/docker-dtr-never-started") {
				continue
			}
			for _, m := range info.Mounts {
				if m.Destination == "/storage" && m.RW {
					id = h.ID
					return poll.Continue("the writing helper is there; waiting for %s to stop", registry)
				}
			}
		}
		return poll.Continue("no writing helper yet; stderr: %s", run.stderr)
	}, poll.WithTimeout(2*time.Minute), poll.WithDelay(2*time.Millisecond))
	return id
}

// putFile writes one file into a volume through the archive API.
func putFile(t *testing.T, c *dtrfixture.Cluster, volume, name, content string) {
	t.Helper()
	putFiles(t, c, volume, map[string][]byte{name: []byte(content)})
}

// putFiles writes files into a volume in one copy through the archive API
// of a labelled helper, removed after.
func putFiles(t *testing.T, c *dtrfixture.Cluster, volume string, files map[string][]byte) {
	t.Helper()
	ctx := context.Background()
	img := mustImageID(t, c, c.Replicas[0].Containers["rethinkdb"])
	cr, err := c.Client.ContainerCreate(ctx, &container.Config{Image: img, Labels: map[string]string{dtrfixture.Label: "fixture"}},
		&container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: volume, Target: "/v"}}}, nil, nil, "")
	assert.NilError(t, err)
	defer c.Client.ContainerRemove(ctx, cr.ID, container.RemoveOptions{Force: true})
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, content := range files {
		assert.NilError(t, tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(content))}))
		_, err := tw.Write(content)
		assert.NilError(t, err)
	}
	assert.NilError(t, tw.Close())
	assert.NilError(t, c.Client.CopyToContainer(ctx, cr.ID, "/v", &buf, container.CopyToContainerOptions{}))
}

// killWithWriter runs the plugin (bin, args) and SIGKILLs it once its
// images helper exists, created and not started; it returns that helper
// and what the run printed on stderr.
func killWithWriter(t *testing.T, c *dtrfixture.Cluster, bin string, args ...string) (container.Summary, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	assert.NilError(t, cmd.Start())
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	defer func() {
		cmd.Process.Kill()
		<-done
	}()
	pid := strconv.Itoa(cmd.Process.Pid)
	for {
		for _, h := range helperContainers(t, c) {
			owner := strings.Split(h.Labels[helpercontainer.LabelOwner], ":")
			if h.Labels[helpercontainer.LabelKind] == helpercontainer.KindImages && h.State == "created" && len(owner) > 2 && owner[len(owner)-2] == pid {
				assert.NilError(t, cmd.Process.Kill())
				<-done
				return h, stderr.String()
			}
		}
		select {
		case <-done:
			t.Fatalf("the run ended before its helper was seen: %s", stderr.String())
		default:
		}
		time.Sleep(5 * time.Millisecond)
	}
}
