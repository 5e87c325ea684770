package rethinktest

import (
	"path/filepath"
	"testing"

	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestHandshakeEmptyPassword(t *testing.T) {
	s := startServer(t, Options{})
	sess := connect(t, s.Addr(), r.ConnectOpts{})
	assert.Equal(t, runAtom(t, sess, r.Expr(1)), float64(1))
	info, err := sess.Server()
	assert.NilError(t, err)
	assert.Equal(t, info.Name, "rethinktest")
}

func TestHandshakePassword(t *testing.T) {
	s := startServer(t, Options{AdminPassword: "s3cret"})
	sess := connect(t, s.Addr(), r.ConnectOpts{Password: "s3cret"})
	assert.Equal(t, runAtom(t, sess, r.Expr("ok")), "ok")

	_, err := r.Connect(r.ConnectOpts{Address: s.Addr(), Password: "wrong"})
	assert.ErrorContains(t, err, "Wrong password")
	_, err = r.Connect(r.ConnectOpts{Address: s.Addr()})
	assert.ErrorContains(t, err, "Wrong password")
	_, err = r.Connect(r.ConnectOpts{Address: s.Addr(), Username: "bob", Password: "s3cret"})
	assert.ErrorContains(t, err, "Unknown user")
}

func TestTLS(t *testing.T) {
	certs, err := NewCerts(t.TempDir(), "db.example")
	assert.NilError(t, err)
	serverTLS, err := certs.ServerTLS()
	assert.NilError(t, err)
	s := startServer(t, Options{TLS: serverTLS})

	clientTLS, err := certs.ClientTLS("localhost")
	assert.NilError(t, err)
	sess := connect(t, s.Addr(), r.ConnectOpts{TLSConfig: clientTLS})
	assert.Equal(t, runAtom(t, sess, r.Expr(2)), float64(2))

	noCert := clientTLS.Clone()
	noCert.Certificates = nil
	_, err = r.Connect(r.ConnectOpts{Address: s.Addr(), TLSConfig: noCert})
	assert.Assert(t, err != nil, "connecting without a client certificate must fail")
}

func TestDropConnections(t *testing.T) {
	s := startServer(t, Options{})
	sess := connect(t, s.Addr(), r.ConnectOpts{})
	assert.Equal(t, runAtom(t, sess, r.Expr(1)), float64(1))
	s.DropConnections()
	// The pool notices the dead connection; a fresh session works.
	sess2 := connect(t, s.Addr(), r.ConnectOpts{})
	assert.Equal(t, runAtom(t, sess2, r.Expr(3)), float64(3))
}

func TestProcess(t *testing.T) {
	dir := t.TempDir()
	certs, err := NewCerts(dir)
	assert.NilError(t, err)
	pwFile := filepath.Join(dir, "pw")
	assert.NilError(t, writeFile(pwFile, "hunter2\n"))
	p := StartProcess(t, ProcessOptions{AdminPasswordFile: pwFile, Certs: certs, MaxBatchRows: 10})
	clientTLS, err := certs.ClientTLS("127.0.0.1")
	assert.NilError(t, err)
	sess := connect(t, p.Addr(), r.ConnectOpts{Password: "hunter2", TLSConfig: clientTLS})
	assert.Equal(t, runAtom(t, sess, r.Expr(7)), float64(7))
	p.Kill()
	_, err = r.Expr(1).Run(sess)
	assert.Assert(t, err != nil)
	_, err = r.Connect(r.ConnectOpts{Address: p.Addr(), Password: "hunter2", TLSConfig: clientTLS})
	assert.Check(t, is.ErrorContains(err, ""))
}
