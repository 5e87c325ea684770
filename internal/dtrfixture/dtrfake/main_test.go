package main

import (
	"os"
	"path/filepath"
	"testing"

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
	assert.Equal(t, f, rethinkFlags{bind: "all", port: 28016,
		tlsKey: "/ca/rethink-client/key.pem", tlsCert: "/ca/rethink-client/cert.pem", tlsCA: "/ca/rethink/cert.pem"})

	f, err = parseRethinkFlags(nil)
	assert.NilError(t, err)
	assert.Equal(t, f.port, 28015)

	_, err = parseRethinkFlags([]string{"--driver-port", "x"})
	assert.ErrorContains(t, err, "bad --driver-port")
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
