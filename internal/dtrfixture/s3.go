package dtrfixture

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"
	"github.com/docker/docker/pkg/jsonmessage"
	"github.com/docker/go-connections/nat"
)

// An S3 server for tests of a registry that stores in S3 (DTR's s3
// storage): SeaweedFS (`weed mini`: master, volume server, filer and S3
// gateway in one process), built static from its module and kept as the
// image SeaweedImage, run beside a cluster on dtr-ol as S3Alias.
//
//	s3 := dtrfixture.StartS3(t, c)   // c: Start with Registry: true
//	c.UseS3(t, s3, "dtr")            // the registries now store in s3.Bucket under dtr/
//	s3.Keys(t)                       // dtr/docker/registry/v2/blobs/sha256/...
//	s3.Wipe(t)

const (
	seaweedModule  = "github.com/seaweedfs/seaweedfs"
	seaweedVersion = "v0.0.0-20261109003541-7506e5f91cd6"

	// SeaweedImage is the S3 server's image: FROM scratch, /weed (static)
	// and empty /tmp, /data and /etc/seaweed. StartS3 builds it when the
	// engine lacks it (about 10 minutes on 2 cores with a cold Go build
	// cache) and it is kept across runs: it carries SeaweedImageLabel, not
	// Label, so Teardown leaves it.
	SeaweedImage = "dtrfixture/seaweedfs:20261109003541-7506e5f91cd6"
	// SeaweedImageLabel marks SeaweedImage (value: the module version).
	SeaweedImageLabel = "com.docker-dtr.test.seaweedfs"

	// seaweedBuildTimeout bounds building weed: a cold build takes about 10
	// minutes on 2 cores.
	seaweedBuildTimeout = 25 * time.Minute

	// S3Alias is the S3 server's name on dtr-ol: containers on the network
	// (and helpers in a registry's network namespace) reach it at
	// "http://" + S3Alias + ":" + S3Port.
	S3Alias = "dtr-s3"
	// S3Port is the port of the S3 API in the container.
	S3Port = "8333"
	// S3Region is the region the server and RegistryStorage use.
	S3Region = "us-east-1"

	s3ContainerName = "dtrfixture-s3"
	// s3StopTimeout is the container's stop timeout: docker stop kills the
	// server after it (Stop says why).
	s3StopTimeout  = 2
	s3ConfigDir    = "/etc/seaweed"
	s3StartTimeout = 2 * time.Minute
	// s3ProbeKey is the object StartS3 writes and deletes to know the
	// server takes writes (its volumes exist).
	s3ProbeKey = "dtrfixture-probe"
)

// S3 is a running S3 server (StartS3) with one bucket.
type S3 struct {
	// Endpoint is the server's URL on dtr-ol: "http://dtr-s3:8333".
	Endpoint string
	// HostEndpoint is its URL for the test process: the S3 port published
	// on loopback, "http://127.0.0.1:PORT".
	HostEndpoint string
	// Bucket is the bucket StartS3 created (random name, "dtr-<12 hex>").
	Bucket string
	// AccessKey and SecretKey are the static credentials of the one
	// identity (random per server), allowed everything.
	AccessKey, SecretKey string
	// Region is S3Region; the server accepts SigV4 signatures for it.
	Region string
	// Container is the container's name.
	Container string

	cli     *client.Client
	cluster *Cluster
	hc      *http.Client
}

// seaweedImage records that this process found or built SeaweedImage.
var seaweedImage struct {
	sync.Mutex
	ok bool
}

// StartS3 runs an S3 server for the cluster: SeaweedFS in the container
// dtrfixture-s3 (labelled Label, so Sweep removes what a killed run left),
// on c.Network with the alias S3Alias, its S3 port published on a free
// loopback port (HostEndpoint). Its only identity has random static
// credentials, given in an identities file copied into the container (not
// on the command line). It waits until the S3 API answers, creates a
// bucket of a random name and checks that an object can be written and
// deleted. The container and its data (kept in the container) are removed
// on cleanup, even when the test fails. The first call on a machine builds
// SeaweedImage (about 10 minutes); then it takes about 6 s. Stop and Start
// make an outage.
func StartS3(t TB, c *Cluster) *S3 {
	t.Helper()
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), seaweedBuildTimeout+s3StartTimeout)
	defer cancel()
	built, err := ensureSeaweedImage(ctx, c.Client, t.Logf)
	if err != nil {
		t.Fatalf("dtrfixture: %v", err)
	}
	imageReady := time.Now()
	if built > 0 {
		t.Logf("dtrfixture: built SeaweedFS and its image %s in %s", SeaweedImage, built.Round(time.Second))
	}
	ctx, cancel = context.WithTimeout(context.Background(), s3StartTimeout)
	defer cancel()

	port, err := freePort(map[string]bool{})
	if err != nil {
		t.Fatalf("dtrfixture: %v", err)
	}
	s := &S3{
		Endpoint:     "http://" + S3Alias + ":" + S3Port,
		HostEndpoint: "http://" + net.JoinHostPort("127.0.0.1", port),
		Bucket:       "dtr-" + randomHex(6),
		AccessKey:    "DTRFIXTURE" + strings.ToUpper(randomHex(5)),
		SecretKey:    randomHex(20),
		Region:       S3Region,
		Container:    s3ContainerName,
		cli:          c.Client,
		cluster:      c,
		hc:           &http.Client{Timeout: time.Minute},
	}
	p := nat.Port(S3Port + "/tcp")
	cfg := &container.Config{
		Image:        SeaweedImage,
		Cmd:          seaweedArgs(),
		ExposedPorts: nat.PortSet{p: {}},
		Labels:       labels(),
		StopTimeout:  ptr(s3StopTimeout),
	}
	hostCfg := &container.HostConfig{
		PortBindings: nat.PortMap{p: {{HostIP: "127.0.0.1", HostPort: port}}},
	}
	netCfg := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
		c.Network: {Aliases: []string{S3Alias}},
	}}
	resp, err := c.Client.ContainerCreate(ctx, cfg, hostCfg, netCfg, nil, s.Container)
	if err != nil {
		t.Fatalf("dtrfixture: creating the S3 server %s: %v", s.Container, err)
	}
	// The cluster removes it too (before its network), should this
	// cleanup not run first.
	c.mu.Lock()
	c.containers = append(c.containers, resp.ID)
	c.mu.Unlock()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if t.Failed() {
			t.Logf("dtrfixture: %s: %s", s.Container, containerLogs(ctx, c.Client, resp.ID))
		}
		if err := removeContainer(ctx, c.Client, resp.ID); err != nil {
			t.Errorf("dtrfixture: removing the S3 server %s: %v", s.Container, err)
		}
	})
	identities, err := s.identitiesTar()
	if err != nil {
		t.Fatalf("dtrfixture: %v", err)
	}
	if err := c.Client.CopyToContainer(ctx, resp.ID, s3ConfigDir, bytes.NewReader(identities), container.CopyToContainerOptions{}); err != nil {
		t.Fatalf("dtrfixture: copying the S3 identities into %s: %v", s.Container, err)
	}
	if err := c.Client.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
		t.Fatalf("dtrfixture: starting the S3 server %s: %v", s.Container, err)
	}
	started := time.Now()
	answered, err := s.waitReady(ctx, true)
	if err != nil {
		t.Fatalf("dtrfixture: %v", err)
	}
	t.Logf("dtrfixture: S3 server (SeaweedFS) %s at %s (%s on %s), bucket %s: up in %s (the API answered %s after the start, writes %s after)",
		s.Container, s.HostEndpoint, s.Endpoint, c.Network, s.Bucket, time.Since(imageReady).Round(10*time.Millisecond),
		answered.Sub(started).Round(10*time.Millisecond), time.Since(started).Round(10*time.Millisecond))
	debugf("S3 server up %s after StartS3 began", time.Since(began))
	return s
}

// waitReady waits until the S3 API answers, creates the bucket (create),
// and waits until an object can be written and deleted; it returns when
// the API first answered. The API answers (ListBuckets) once the filer is
// up; the bucket is a directory of the filer; a write needs volumes, which
// the master grows on the first write of the bucket's collection, and the
// filer's lock ring.
func (s *S3) waitReady(ctx context.Context, create bool) (time.Time, error) {
	steps := []struct {
		what  string
		probe func() error
	}{
		{"the S3 API", func() error { return s.do(ctx, http.MethodGet, "/", nil, nil, nil) }},
		{"creating the bucket", func() error { return s.createBucket(ctx) }},
		{"writing an object", func() error {
			if err := s.do(ctx, http.MethodPut, s.objectPath(s3ProbeKey), nil, []byte("probe"), nil); err != nil {
				return err
			}
			return s.do(ctx, http.MethodDelete, s.objectPath(s3ProbeKey), nil, nil, nil)
		}},
	}
	if !create {
		steps = slices.Delete(steps, 1, 2)
	}
	var answered time.Time
	for i, step := range steps {
		if err := s.cluster.waitAnswer(ctx, s.Container, "the S3 server "+s.Container+" ("+step.what+")", s.HostEndpoint, step.probe); err != nil {
			return answered, err
		}
		if i == 0 {
			answered = time.Now()
		}
	}
	return answered, nil
}

// Stop stops the S3 server (docker stop): SIGTERM, and SIGKILL after 2 s
// (the container's stop timeout), as its graceful shutdown, quick when it
// is idle, can hang once a registry has used it (its volume server's HTTP
// server waiting for connections). What it stored stays, in the container,
// but not always all of it: a clean-clone CI run found objects written
// just before a kill missing after Start (weed mini's filer), so no test
// relies on an outage keeping every object. While it is stopped,
// the name dtr-s3 does not resolve, and the registry answers 500 (its
// error: "lookup dtr-s3 ... no such host"); HostEndpoint refuses.
func (s *S3) Stop(t TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := s.cli.ContainerStop(ctx, s.Container, container.StopOptions{}); err != nil {
		t.Fatalf("dtrfixture: stopping the S3 server %s: %v", s.Container, err)
	}
}

// Start starts the stopped S3 server again, at the same addresses, and
// waits until it takes writes: about 16 s, as its master, restarted with
// volumes, holds writes for 15 s (three heartbeats) while the volume server
// reports them; the API answers after about 5 s. The bucket and its
// objects are there.
func (s *S3) Start(t TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), s3StartTimeout)
	defer cancel()
	if err := s.cli.ContainerStart(ctx, s.Container, container.StartOptions{}); err != nil {
		t.Fatalf("dtrfixture: starting the S3 server %s: %v", s.Container, err)
	}
	if _, err := s.waitReady(ctx, false); err != nil {
		t.Fatalf("dtrfixture: %v", err)
	}
}

// seaweedArgs run `weed mini`: master, volume server, filer and S3
// gateway in one process (with its admin server and maintenance worker on
// loopback), small: 64 MB volumes, not preallocated (the default), at most
// 32 of them, data in the container's /data, logs to stderr, no telemetry,
// no WebDAV, admin UI, Iceberg or Lance ports, no pause before stopping the
// volume server. Addresses: 127.0.0.1 between its own parts, all
// interfaces for clients.
//
// Not `weed server -s3`: its filer announces itself to the master (and
// takes writes) only after a membership check of 8-9 s that mini skips,
// and on SIGTERM it stops the volume server before the filer, which then
// retries flushing its metadata log for 15 s. mini takes writes about 6 s
// after the start, and an idle one exits within a second of SIGTERM.
func seaweedArgs() []string {
	return []string{"-logtostderr", "mini",
		"-dir=/data", "-ip=127.0.0.1", "-ip.bind=0.0.0.0",
		"-master.volumeSizeLimitMB=64", "-master.telemetry=false",
		"-volume.max=32", "-volume.preStopSeconds=0",
		"-webdav=false", "-admin.ui=false",
		"-s3.port=" + S3Port, "-s3.config=" + s3ConfigDir + "/s3.json",
		"-s3.port.iceberg=0", "-s3.port.lance=0",
	}
}

// identitiesTar holds s3.json, the server's only identity with the
// credentials, for CopyToContainer into s3ConfigDir.
func (s *S3) identitiesTar() ([]byte, error) {
	type credential struct {
		AccessKey string `json:"accessKey"`
		SecretKey string `json:"secretKey"`
	}
	type identity struct {
		Name        string       `json:"name"`
		Credentials []credential `json:"credentials"`
		Actions     []string     `json:"actions"`
	}
	data, err := json.Marshal(map[string][]identity{"identities": {{
		Name:        "dtr",
		Credentials: []credential{{AccessKey: s.AccessKey, SecretKey: s.SecretKey}},
		Actions:     []string{"Admin", "Read", "Write", "List", "Tagging"},
	}}})
	if err != nil {
		return nil, err
	}
	return layerTar([]layerFile{{name: "s3.json", mode: 0o600, data: data}})
}

// RegistryStorage is the storage section of a distribution registry's
// configuration that stores in the bucket under root (a key prefix, ""
// for none): the s3 driver with the static credentials, the endpoint on
// dtr-ol over plain HTTP, path-style requests and SigV4; redirects off (the
// registry serves blobs itself, rather than sending clients to the
// bucket), deletes on, upload purging off.
func (s *S3) RegistryStorage(root string) string {
	q := strconv.Quote
	return `storage:
  s3:
    accesskey: ` + q(s.AccessKey) + `
    secretkey: ` + q(s.SecretKey) + `
    region: ` + q(s.Region) + `
    regionendpoint: ` + q(s.Endpoint) + `
    bucket: ` + q(s.Bucket) + `
    rootdirectory: ` + q(root) + `
    secure: false
    forcepathstyle: true
    v4auth: true
  redirect:
    disable: true
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
`
}

// UseS3 makes every replica's real registry store in the S3 server's
// bucket under root (s.RegistryStorage(root)), with SetRegistryStorage.
func (c *Cluster) UseS3(t TB, s *S3, root string) {
	t.Helper()
	c.SetRegistryStorage(t, s.RegistryStorage(root))
}

// SetRegistryStorage replaces the storage section of every replica's real
// registry configuration (Options.Registry) by storage, a top-level
// "storage:" mapping ("" for the default: the filesystem under /storage):
// it stops each running registry, copies the new /etc/distribution/config.yml
// into the container and starts it again, and waits until it answers. A
// stopped registry gets the configuration and stays stopped. The volume
// dtr-registry-<id> stays mounted at /storage, whether the registry uses
// it or not; the configuration stays across Stop and Start.
func (c *Cluster) SetRegistryStorage(t TB, storage string) {
	t.Helper()
	if !c.realRegistry {
		t.Fatalf("dtrfixture: SetRegistryStorage needs Options.Registry")
	}
	if storage == "" {
		storage = registryFilesystemStorage
	}
	cfgTar, err := layerTar([]layerFile{{name: filepath.Base(registryConfigPath), mode: 0o644, data: []byte(registryConfigWith(storage))}})
	if err != nil {
		t.Fatalf("dtrfixture: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	var restarted []*Replica
	var mu sync.Mutex
	timeout := stopTimeout
	err = forEach(len(c.Replicas), parallelStarts, func(i int) error {
		rep := c.Replicas[i]
		name := rep.Containers["registry"]
		st, err := c.Client.ContainerInspect(ctx, name)
		if err != nil {
			return err
		}
		if st.State.Running {
			if err := c.Client.ContainerStop(ctx, name, container.StopOptions{Timeout: &timeout}); err != nil {
				return fmt.Errorf("stopping %s: %w", name, err)
			}
		}
		if err := c.Client.CopyToContainer(ctx, name, filepath.Dir(registryConfigPath), bytes.NewReader(cfgTar), container.CopyToContainerOptions{}); err != nil {
			return fmt.Errorf("copying the registry configuration into %s: %w", name, err)
		}
		if !st.State.Running {
			return nil
		}
		if err := c.Client.ContainerStart(ctx, name, container.StartOptions{}); err != nil {
			return fmt.Errorf("starting %s: %w", name, err)
		}
		mu.Lock()
		restarted = append(restarted, rep)
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatalf("dtrfixture: %v", err)
	}
	if err := c.waitReady(ctx, restarted, []string{"registry"}); err != nil {
		t.Fatalf("dtrfixture: %v", err)
	}
}

// Keys returns the key of every object in the bucket, sorted.
func (s *S3) Keys(t TB) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	keys, err := s.list(ctx)
	if err != nil {
		t.Fatalf("dtrfixture: %v", err)
	}
	return keys
}

// Wipe deletes every object in the bucket; the bucket stays.
func (s *S3) Wipe(t TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	keys, err := s.list(ctx)
	if err != nil {
		t.Fatalf("dtrfixture: %v", err)
	}
	err = forEach(len(keys), 4, func(i int) error {
		return s.do(ctx, http.MethodDelete, s.objectPath(keys[i]), nil, nil, nil)
	})
	if err != nil {
		t.Fatalf("dtrfixture: wiping the bucket %s: %v", s.Bucket, err)
	}
	if left, err := s.list(ctx); err != nil {
		t.Fatalf("dtrfixture: %v", err)
	} else if len(left) > 0 {
		t.Fatalf("dtrfixture: the bucket %s still holds %d objects after the wipe: %v", s.Bucket, len(left), left[:min(len(left), 10)])
	}
}

func (s *S3) objectPath(key string) string { return "/" + s.Bucket + "/" + key }

// createBucket creates the bucket; one the identity owns already is fine.
func (s *S3) createBucket(ctx context.Context) error {
	err := s.do(ctx, http.MethodPut, "/"+s.Bucket, nil, nil, nil)
	var se *s3Error
	if errors.As(err, &se) && se.Code == "BucketAlreadyOwnedByYou" {
		return nil
	}
	return err
}

// list lists the bucket with ListObjectsV2, page by page.
func (s *S3) list(ctx context.Context) ([]string, error) {
	var keys []string
	token := ""
	for {
		q := url.Values{"list-type": {"2"}, "max-keys": {"1000"}}
		if token != "" {
			q.Set("continuation-token", token)
		}
		var res struct {
			IsTruncated           bool
			NextContinuationToken string
			Contents              []struct{ Key string }
		}
		if err := s.do(ctx, http.MethodGet, "/"+s.Bucket, q, nil, &res); err != nil {
			return nil, fmt.Errorf("listing the bucket %s: %w", s.Bucket, err)
		}
		for _, c := range res.Contents {
			keys = append(keys, c.Key)
		}
		if !res.IsTruncated || res.NextContinuationToken == "" {
			break
		}
		token = res.NextContinuationToken
	}
	sort.Strings(keys)
	return slices.Compact(keys), nil
}

// s3Error is an S3 error response.
type s3Error struct {
	Method, Path string
	Status       string
	Code         string
	Message      string
}

func (e *s3Error) Error() string {
	return fmt.Sprintf("S3 %s %s: %s: %s %s", e.Method, e.Path, e.Status, e.Code, e.Message)
}

// do sends a request signed with SigV4 (path-style, payload hashed) to
// HostEndpoint, and decodes an XML answer into out when out is not nil.
func (s *S3) do(ctx context.Context, method, path string, query url.Values, body []byte, out any) error {
	u, err := url.Parse(s.HostEndpoint)
	if err != nil {
		return err
	}
	payload := sha256Hex(body)
	amzDate := time.Now().UTC().Format("20060102T150405Z")
	canonURI, canonQuery := awsEscape(path, false), canonicalQuery(query)
	auth := signV4(method, u.Host, canonURI, canonQuery, payload, amzDate, s.Region, s.AccessKey, s.SecretKey)

	target := s.HostEndpoint + canonURI
	if canonQuery != "" {
		target += "?" + canonQuery
	}
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("X-Amz-Date", amzDate)
	req.Header.Set("X-Amz-Content-Sha256", payload)
	req.Header.Set("Authorization", auth)
	hc := s.hc
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("S3 %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		e := &s3Error{Method: method, Path: path, Status: resp.Status}
		var x struct{ Code, Message string }
		if xml.Unmarshal(data, &x) == nil {
			e.Code, e.Message = x.Code, x.Message
		} else {
			e.Message = strings.TrimSpace(string(data[:min(len(data), 500)]))
		}
		return e
	}
	if out != nil {
		if err := xml.Unmarshal(data, out); err != nil {
			return fmt.Errorf("S3 %s %s: %w", method, path, err)
		}
	}
	return nil
}

// signV4 is the Authorization header of an S3 request signed with SigV4,
// whose signed headers are host, x-amz-content-sha256 (payload) and
// x-amz-date (amzDate, "20060102T150405Z"); canonURI and canonQuery are
// escaped already (awsEscape, canonicalQuery).
func signV4(method, host, canonURI, canonQuery, payload, amzDate, region, accessKey, secretKey string) string {
	const signedHeaders = "host;x-amz-content-sha256;x-amz-date"
	canonRequest := strings.Join([]string{
		method, canonURI, canonQuery,
		"host:" + host + "\nx-amz-content-sha256:" + payload + "\nx-amz-date:" + amzDate + "\n",
		signedHeaders, payload,
	}, "\n")
	day := amzDate[:8]
	scope := day + "/" + region + "/s3/aws4_request"
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + sha256Hex([]byte(canonRequest))
	key := []byte("AWS4" + secretKey)
	for _, part := range []string{day, region, "s3", "aws4_request"} {
		key = hmacSHA256(key, part)
	}
	return "AWS4-HMAC-SHA256 Credential=" + accessKey + "/" + scope + ", SignedHeaders=" + signedHeaders +
		", Signature=" + hex.EncodeToString(hmacSHA256(key, toSign))
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}

// awsEscape is SigV4's URI encoding: every byte but the unreserved ones
// (and "/" unless encodeSlash) as %XX.
func awsEscape(s string, encodeSlash bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case 'A' <= ch && ch <= 'Z', 'a' <= ch && ch <= 'z', '0' <= ch && ch <= '9',
			ch == '-', ch == '_', ch == '.', ch == '~', ch == '/' && !encodeSlash:
			b.WriteByte(ch)
		default:
			fmt.Fprintf(&b, "%%%02X", ch)
		}
	}
	return b.String()
}

// canonicalQuery is SigV4's canonical query string, also sent as is.
func canonicalQuery(q url.Values) string {
	var parts []string
	for k, vs := range q {
		for _, v := range vs {
			parts = append(parts, awsEscape(k, true)+"="+awsEscape(v, true))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, "&")
}

func ptr[T any](v T) *T { return &v }

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// ensureSeaweedImage builds SeaweedImage unless the engine has it, and
// returns how long building took (0 when it was there).
func ensureSeaweedImage(ctx context.Context, cli *client.Client, logf func(string, ...any)) (time.Duration, error) {
	seaweedImage.Lock()
	defer seaweedImage.Unlock()
	if seaweedImage.ok {
		return 0, nil
	}
	if _, err := cli.ImageInspect(ctx, SeaweedImage); err == nil {
		seaweedImage.ok = true
		return 0, nil
	} else if !errdefs.IsNotFound(err) {
		return 0, fmt.Errorf("inspecting %s: %w", SeaweedImage, err)
	}
	began := time.Now()
	dir, err := os.MkdirTemp("", "dtrfixture-seaweedfs-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "weed")
	logf("dtrfixture: building SeaweedFS %s@%s for the image %s: about 10 minutes on 2 cores with a cold Go build cache, once per machine (the image is kept)",
		seaweedModule, seaweedVersion, SeaweedImage)
	if err := buildSeaweed(ctx, bin); err != nil {
		return 0, err
	}
	debugf("built weed in %s", time.Since(began))
	if err := importSeaweedImage(ctx, cli, bin); err != nil {
		return 0, err
	}
	seaweedImage.ok = true
	return time.Since(began), nil
}

// buildSeaweed compiles weed statically for linux. The module's go.mod has
// replace directives, so `go install module@version` refuses it: it is
// downloaded into the module cache and built there as the main module.
func buildSeaweed(ctx context.Context, out string) error {
	ctx, cancel := context.WithTimeout(ctx, seaweedBuildTimeout)
	defer cancel()
	tmp := filepath.Dir(out)
	env := append(os.Environ(), "GOWORK=off", "GO111MODULE=on")
	dl := exec.CommandContext(ctx, goCommand(), "mod", "download", "-json", seaweedModule+"@"+seaweedVersion)
	dl.Dir = tmp // outside any module
	dl.Env = env
	var stderr bytes.Buffer
	dl.Stderr = &stderr
	data, err := dl.Output()
	var mod struct{ Dir, Error string }
	if jerr := json.Unmarshal(data, &mod); err != nil || jerr != nil || mod.Error != "" || mod.Dir == "" {
		return fmt.Errorf("downloading %s@%s: %v %s %s%s", seaweedModule, seaweedVersion, err, mod.Error, stderr.Bytes(), data)
	}
	build := exec.CommandContext(ctx, goCommand(), "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./weed")
	build.Dir = mod.Dir
	build.Env = append(env, "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH, "GOFLAGS=-mod=mod -buildvcs=false")
	build.WaitDelay = 10 * time.Second
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building weed (%s@%s) in %s: %v\n%s", seaweedModule, seaweedVersion, mod.Dir, err, out)
	}
	return nil
}

// importSeaweedImage imports SeaweedImage, streaming the layer (the binary
// is about 200 MB).
func importSeaweedImage(ctx context.Context, cli *client.Client, bin string) error {
	f, err := os.Open(bin)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	defer pr.Close()
	go func() {
		tw := tar.NewWriter(pw)
		mtime := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
		for _, d := range []struct {
			name string
			mode int64
		}{{"tmp/", 0o1777}, {"data/", 0o755}, {"etc/", 0o755}, {s3ConfigDir[1:] + "/", 0o755}} {
			if err := tw.WriteHeader(&tar.Header{Name: d.name, Typeflag: tar.TypeDir, Mode: d.mode, ModTime: mtime}); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		err := tw.WriteHeader(&tar.Header{Name: "weed", Typeflag: tar.TypeReg, Mode: 0o755, Size: st.Size(), ModTime: mtime})
		if err == nil {
			_, err = io.Copy(tw, f)
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	changes := []string{
		`ENTRYPOINT ["/weed"]`,
		`CMD ["mini","-dir=/data"]`,
		`ENV HOME=/tmp`,
		`WORKDIR /data`,
		`EXPOSE ` + S3Port + `/tcp`,
		`LABEL ` + SeaweedImageLabel + `=` + seaweedVersion,
	}
	rc, err := cli.ImageImport(ctx, image.ImportSource{Source: pr, SourceName: "-"}, SeaweedImage, image.ImportOptions{Changes: changes})
	if err != nil {
		return fmt.Errorf("importing %s: %w", SeaweedImage, err)
	}
	defer rc.Close()
	if err := jsonmessage.DisplayJSONMessagesStream(rc, io.Discard, 0, false, nil); err != nil {
		return fmt.Errorf("importing %s: %w", SeaweedImage, err)
	}
	return nil
}
