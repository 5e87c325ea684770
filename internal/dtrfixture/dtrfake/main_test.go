package main

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
)

func TestParseRethinkFlags(t *testing.T) {
	f, err := parseRethinkFlags([]string{
		"--bind", "all", "--no-update-check", "--directory", "/data/rethink",
		"--driver-port=28016", "--canonical-address", "dtr-rethinkdb-0123456789ab.dtr-ol",
		"--join", "dtr-rethinkdb-ba9876543210.dtr-ol:29015",
		"--driver-tls-key", "/ca/rethink-client/key.pem", "--driver-tls-cert", "/ca/rethink-client/cert.pem",
		"--driver-tls-ca", "/ca/rethink/cert.pem",
		"--cluster-tls-key", "/ca/rethink-client/key.pem", "--cluster-tls-cert", "/ca/rethink-client/cert.pem",
		"--cluster-tls-ca", "/ca/rethink/cert.pem",
	})
	assert.NilError(t, err)
	assert.Equal(t, f, rethinkFlags{bind: "all", port: 28016, directory: "/data/rethink",
		tlsKey: "/ca/rethink-client/key.pem", tlsCert: "/ca/rethink-client/cert.pem", tlsCA: "/ca/rethink/cert.pem"})

	f, err = parseRethinkFlags(nil)
	assert.NilError(t, err)
	assert.Equal(t, f.port, 28015)

	_, err = parseRethinkFlags([]string{"--driver-port", "x"})
	assert.ErrorContains(t, err, "bad --driver-port")
	f, err = parseRethinkFlags([]string{"--directory=/d", "-d", "/e"})
	assert.NilError(t, err)
	assert.Equal(t, f.directory, "/e")
	_, err = parseRethinkFlags([]string{"--directory"})
	assert.ErrorContains(t, err, "needs a value")
	_, err = parseRethinkFlags([]string{"--bind"})
	assert.ErrorContains(t, err, "needs a value")
	_, err = parseRethinkFlags([]string{"stray"})
	assert.ErrorContains(t, err, "unexpected argument")
}

func TestWipe(t *testing.T) {
	dir := t.TempDir()
	assert.NilError(t, os.MkdirAll(filepath.Join(dir, "docker/registry/v2/blobs"), 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "docker/registry/v2/blobs/data"), []byte("x"), 0o644))
	assert.NilError(t, os.WriteFile(filepath.Join(dir, ".hidden"), []byte("x"), 0o600))
	assert.NilError(t, wipe(dir))
	entries, err := os.ReadDir(dir)
	assert.NilError(t, err)
	assert.Equal(t, len(entries), 0)
	_, err = os.Stat(dir)
	assert.NilError(t, err)

	assert.ErrorContains(t, wipe(filepath.Join(dir, "missing")), "no such file")
}

// TestRethinkDBDirectory runs the rethinkdb mode twice on one --directory
// (created on the first start) and stops it with SIGTERM each time, as docker
// stop does: a database created in the first run is there in the second.
func TestRethinkDBDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "rethink")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	assert.NilError(t, err)
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	run := func(q r.Term) []any {
		t.Helper()
		done := make(chan error, 1)
		go func() {
			done <- runRethinkDB([]string{"--bind", "127.0.0.1", "--driver-port", port, "--directory", dir, "--no-update-check"})
		}()
		var sess *r.Session
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			s, err := r.Connect(r.ConnectOpts{Address: "127.0.0.1:" + port})
			if err == nil {
				sess = s
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("connecting: %v", err)
			}
		}
		var out []any
		err := q.ReadAll(&out, sess)
		sess.Close()
		assert.NilError(t, err)
		// The server is listening, so its SIGTERM handler is in place.
		self, err := os.FindProcess(os.Getpid())
		assert.NilError(t, err)
		assert.NilError(t, self.Signal(syscall.SIGTERM))
		select {
		case err := <-done:
			assert.NilError(t, err)
		case <-time.After(10 * time.Second):
			t.Fatal("rethinkdb mode did not stop on SIGTERM")
		}
		return out
	}
	run(r.DBCreate("kept"))
	assert.DeepEqual(t, run(r.DBList()), []any{"kept", "rethinkdb", "test"})
}
