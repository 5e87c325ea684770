package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/dtrfixture"
	"github.com/docker-dtr/docker-dtr/pkg/helpercontainer"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// A DTR whose registry keeps its images in S3 (a real registry with the
// s3 driver in front of a real S3 server, SeaweedFS; DTR's volume still
// mounted at /storage, empty), and whose settings in dtr2.properties say
// so: status shows the bucket, backup images backs the bucket up (full,
// then incremental), with no credential in the archive, in any helper's
// configuration or in anything printed; the bucket is wiped, restored
// from the chain, and every image pulls by digest. Then the chain moves
// the images to the volume (--to-volume), and they pull from there.
func TestS3Images(t *testing.T) {
	cfg := dockerConfig(t)
	c := dtrfixture.Start(t, dtrfixture.Options{Replicas: 1, Registry: true, Components: []string{"rethinkdb", "registry"}})
	rep := c.Replicas[0]
	vol := "dtr-registry-" + rep.ID
	s3 := dtrfixture.StartS3(t, c)
	const root = "/dtr"
	c.UseS3(t, s3, root)
	driver := c.Connect(t, rep.ID)
	assert.NilError(t, r.DBCreate("dtr2").Exec(driver))
	assert.NilError(t, r.DB("dtr2").TableCreate("properties").Exec(driver))
	// DTR 2.0's storage.yml shape: the registry configuration's text.
	_, err := r.DB("dtr2").Table("properties").Insert([]map[string]any{
		{"id": "ha.json", "value": `{"replicaCount":1}`},
		{"id": "storage.yml", "value": s3.RegistryStorage(root)},
	}).RunWrite(driver)
	assert.NilError(t, err)
	secrets := []string{s3.AccessKey, s3.SecretKey}
	noSecret := func(t *testing.T, what string, data []byte) {
		t.Helper()
		for _, s := range secrets {
			assert.Check(t, !bytes.Contains(data, []byte(s)), "a credential is in %s", what)
		}
	}
	bucket := "s3 bucket " + s3.Bucket + " (region " + s3.Region + ", endpoint " + s3.Endpoint + ", root " + root + ")"

	pushed := dtrfixture.Push(t, c.Client, rep.RegistryAddr, dtrfixture.BuildImages(t, c.Client, 1))
	keys := s3.Keys(t)
	assert.Assert(t, len(keys) > 0)
	assert.Check(t, strings.HasPrefix(keys[0], strings.TrimPrefix(root, "/")+"/docker/registry/v2/"), keys[0])
	assert.Check(t, is.Len(dtrfixture.VolumeFiles(t, c.Client, vol), 0), "the volume holds nothing")

	res := docker(t, cfg, nil, "dtr", "status")
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Check(t, is.Contains(res.stdout, "Image storage: "+bucket))
	noSecret(t, "status", []byte(res.stdout+res.stderr))

	// Every helper's configuration, as the engine shows it, while the
	// commands run.
	inspected := watchHelpers(t, c)

	dir := t.TempDir()
	full := filepath.Join(dir, "backup-images-full.tar")
	res = docker(t, cfg, nil, "dtr", "backup", "images", "--progress", "plain", "-o", full)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Check(t, is.Contains(res.stderr, "DTR keeps its images in "+bucket+" (its setting storage.yml): reading the bucket"))
	assert.Check(t, is.Contains(res.stdout, full+": DTR 2.9.4, replica "+rep.ID+", "+bucket+": "))
	noSecret(t, "backup images' output", []byte(res.stdout+res.stderr))
	data, err := os.ReadFile(full)
	assert.NilError(t, err)
	noSecret(t, "the archive", data)
	assertNoHelpers(t, c)

	res = docker(t, cfg, nil, "dtr", "backup", "inspect", "--format", "json", full)
	assert.Equal(t, res.code, 0, res.stderr)
	var m struct {
		Storage string
		Blobs   int
	}
	assert.NilError(t, json.Unmarshal([]byte(res.stdout), &m))
	assert.Check(t, is.Equal(m.Storage, bucket))
	assert.Check(t, m.Blobs > 0)

	// More pushes, and an incremental backup of the bucket.
	more := dtrfixture.BuildImages(t, c.Client, 2)
	for i := range more {
		more[i].Repo = "more/" + more[i].Repo
	}
	pushed = append(pushed, dtrfixture.Push(t, c.Client, rep.RegistryAddr, more)...)
	incr := filepath.Join(dir, "backup-images-incr.tar")
	res = docker(t, cfg, nil, "dtr", "backup", "images", "--progress", "plain", "--since", full, "-o", incr)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Check(t, is.Contains(res.stdout, "; incremental: "))
	res = docker(t, cfg, nil, "dtr", "backup", "verify", incr)
	assert.Equal(t, res.code, 0, res.stdout+res.stderr)

	// The bucket is lost: restored from the chain, into the bucket.
	var want []string
	for _, k := range s3.Keys(t) {
		if !strings.Contains(k, "/_uploads/") {
			want = append(want, k)
		}
	}
	s3.Wipe(t)
	assert.Check(t, is.Len(s3.Keys(t), 0))
	res = docker(t, cfg, nil, "dtr", "backup", "restore", "--dry-run", "--from", dir, incr)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Check(t, is.Contains(res.stdout, "into "+bucket+" of replica "+rep.ID), res.stdout)
	res = docker(t, cfg, nil, "dtr", "backup", "restore", "--progress", "plain", "--from", dir, incr)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Check(t, is.Contains(res.stdout, "restored "+incr+" into "+bucket+" of replica "+rep.ID))
	noSecret(t, "backup restore's output", []byte(res.stdout+res.stderr))
	assertNoHelpers(t, c)
	assert.Check(t, is.DeepEqual(s3.Keys(t), want))
	c.Start(t, rep.ID, "registry")
	dtrfixture.PullAndCompare(t, c.Client, rep.RegistryAddr, pushed)

	// Moving DTR's images out of the bucket: the chain restored into the
	// empty volume with --to-volume (the settings still say s3, and the
	// bucket is left as it is); the bucket then lost, the registry set to
	// the filesystem, and every image pulls from the volume.
	res = docker(t, cfg, nil, "dtr", "backup", "restore", "--dry-run", "--to-volume", "--from", dir, incr)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Check(t, is.Contains(res.stdout, "into volume "+vol+" of replica "+rep.ID), res.stdout)
	assert.Check(t, is.Contains(res.stderr, "DTR keeps its images in "+bucket+" (its setting storage.yml): --to-volume writes volume "+vol+" instead"), res.stderr)
	res = docker(t, cfg, nil, "dtr", "backup", "restore", "--progress", "plain", "--to-volume", "--from", dir, incr)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Check(t, is.Contains(res.stdout, "restored "+incr+" into volume "+vol+" of replica "+rep.ID), res.stdout)
	assertNoHelpers(t, c)
	assert.Check(t, is.DeepEqual(s3.Keys(t), want), "--to-volume changed the bucket")
	var inVolume, wantInVolume []string
	for f := range dtrfixture.VolumeFiles(t, c.Client, vol) {
		inVolume = append(inVolume, f)
	}
	for _, k := range want {
		wantInVolume = append(wantInVolume, strings.TrimPrefix(k, strings.TrimPrefix(root, "/")+"/"))
	}
	sort.Strings(inVolume)
	sort.Strings(wantInVolume)
	assert.Check(t, is.DeepEqual(inVolume, wantInVolume), "the volume holds what the bucket held")
	s3.Wipe(t)
	c.SetRegistryStorage(t, "")
	dtrfixture.PullAndCompare(t, c.Client, rep.RegistryAddr, pushed)

	for _, h := range inspected() {
		noSecret(t, "helper "+h.name+"'s inspect", h.data)
	}
	assert.Check(t, len(inspected()) > 0, "no helper was seen")
}

type inspectedHelper struct {
	name string
	data []byte
}

// watchHelpers inspects every helper container of the plugin's that
// appears until the test ends, and returns what it saw.
func watchHelpers(t *testing.T, c *dtrfixture.Cluster) func() []inspectedHelper {
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	seen := map[string]inspectedHelper{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			list, err := c.Client.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", helpercontainer.LabelKind))})
			if err == nil {
				for _, s := range list {
					mu.Lock()
					_, ok := seen[s.ID]
					mu.Unlock()
					if ok {
						continue
					}
					_, raw, err := c.Client.ContainerInspectWithRaw(ctx, s.ID, false)
					if err == nil {
						mu.Lock()
						seen[s.ID] = inspectedHelper{name: strings.Join(s.Names, ","), data: raw}
						mu.Unlock()
					}
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return func() []inspectedHelper {
		mu.Lock()
		defer mu.Unlock()
		var out []inspectedHelper
		for _, h := range seen {
			out = append(out, h)
		}
		return out
	}
}

// A restore into the bucket killed with SIGKILL while it writes leaves a
// journal; `backup restore --undo` puts the bucket back as it was, from
// the safety backup of what it held (its objects, uploads aside).
func TestKilledS3RestoreUndone(t *testing.T) {
	cfg := dockerConfig(t)
	c := dtrfixture.Start(t, dtrfixture.Options{Replicas: 1, Registry: true, Components: []string{"rethinkdb", "registry"}})
	rep := c.Replicas[0]
	s3 := dtrfixture.StartS3(t, c)
	c.UseS3(t, s3, "/dtr")
	driver := c.Connect(t, rep.ID)
	assert.NilError(t, r.DBCreate("dtr2").Exec(driver))
	assert.NilError(t, r.DB("dtr2").TableCreate("properties").Exec(driver))
	_, err := r.DB("dtr2").Table("properties").Insert(map[string]any{"id": "storage.yml", "value": s3.RegistryStorage("/dtr")}).RunWrite(driver)
	assert.NilError(t, err)
	dtrfixture.Push(t, c.Client, rep.RegistryAddr, dtrfixture.BuildImages(t, c.Client, 7))
	dir := t.TempDir()
	out := filepath.Join(dir, "backup-images.tar")
	res := docker(t, cfg, nil, "dtr", "backup", "images", "-o", out)
	assert.Equal(t, res.code, 0, res.stderr)

	more := dtrfixture.BuildImages(t, c.Client, 8)
	for i := range more {
		more[i].Repo = "more/" + more[i].Repo
	}
	dtrfixture.Push(t, c.Client, rep.RegistryAddr, more)
	objects := func() []string {
		var keys []string
		for _, k := range s3.Keys(t) {
			if !strings.Contains(k, "/_uploads/") {
				keys = append(keys, k)
			}
		}
		return keys
	}
	held := objects()

	rig := &faultRig{cfg: cfg, bin: filepath.Join(cfg, "cli-plugins", "docker-dtr"), c: c, rep: rep}
	b := killRestoreWhileWriting(t, rig, out)
	assert.Check(t, is.Contains(b.stderr.String(), "the restore writes there"), b.stderr.String())
	statusReports(t, rig, "an image restore", out)

	res = docker(t, cfg, nil, "dtr", "backup", "restore", "--undo", "--replica-id", rep.ID)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Check(t, is.DeepEqual(objects(), held))
	assertAllRunning(t, rig)
	statusClear(t, rig)
	assertNoHelpers(t, c)
}
