package rethinkserver

import (
	"os"
	"testing"

	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// The server requires a client certificate of its CA, as DTR's does, and
// keeps its data across a kill and a restart on the same directory.
func TestMutualTLSAndRestart(t *testing.T) {
	s := Start(t, Options{TLS: true, Password: "pw"})
	sess := s.Connect(t)
	var version string
	assert.NilError(t, r.DB("rethinkdb").Table("server_status").Nth(0).Field("process").Field("version").ReadOne(&version, sess))
	assert.Assert(t, is.Contains(version, "2.4."))
	_, err := r.DBCreate("dtr2").RunWrite(sess)
	assert.NilError(t, err)
	assert.NilError(t, r.DB("dtr2").TableCreate("properties").Exec(sess))
	assert.NilError(t, r.DB("dtr2").Table("properties").Wait().Exec(sess))
	_, err = r.DB("dtr2").Table("properties").Insert(map[string]any{"id": "version", "value": "2.9.4"}).RunWrite(sess, r.RunOpts{Durability: "hard"})
	assert.NilError(t, err)

	noCert := s.ConnectOpts()
	noCert.TLSConfig = noCert.TLSConfig.Clone()
	noCert.TLSConfig.Certificates = nil
	_, err = r.Connect(noCert)
	assert.Assert(t, err != nil, "a client without a certificate must be refused")

	wrongPW := s.ConnectOpts()
	wrongPW.Password = "other"
	_, err = r.Connect(wrongPW)
	assert.ErrorContains(t, err, "Wrong password")

	s.Kill()
	again := Start(t, Options{Directory: s.Directory, Password: "pw"})
	// What a killed server keeps is what it acknowledged as written to
	// disk: a document written with hard durability, in its table. (An
	// empty database created just before the kill is sometimes not there
	// again: 1 run in 15 here.)
	var doc map[string]any
	sess = again.Connect(t)
	assert.NilError(t, r.DB("dtr2").Table("properties").Wait().Exec(sess))
	assert.NilError(t, r.DB("dtr2").Table("properties").Get("version").ReadOne(&doc, sess))
	assert.Equal(t, doc["value"], "2.9.4")
}

// Without a host binary (only an image: a contributor's docker pull), the
// server runs in a container of the image, with the same TLS.
func TestInTheImage(t *testing.T) {
	src := Require(t)
	if src.Rootfs == "" && src.Image == "" {
		t.Skip("no image source")
	}
	if _, err := os.Stat("/var/run/docker.sock"); err != nil && os.Getenv("DOCKER_HOST") == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("no Docker engine")
		}
		t.Skip("no Docker engine")
	}
	s := start(t, &Source{Rootfs: src.Rootfs, Image: src.Image, From: "test"}, Options{TLS: true})
	assert.Assert(t, s.container != "")
	sess := s.Connect(t)
	_, err := r.DBCreate("dtr2").RunWrite(sess)
	assert.NilError(t, err)
	s.Kill()
	_, err = r.DBList().Run(sess)
	assert.Assert(t, err != nil, "the container is gone")
}
