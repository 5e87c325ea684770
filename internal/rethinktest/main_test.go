package rethinktest

import (
	"os"
	"testing"

	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
)

func TestMain(m *testing.M) {
	ServeIfChild()
	os.Exit(m.Run())
}

func startServer(t *testing.T, opts Options) *Server {
	t.Helper()
	s, err := Start(opts)
	assert.NilError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func connect(t *testing.T, addr string, opts r.ConnectOpts) *r.Session {
	t.Helper()
	opts.Address = addr
	sess, err := r.Connect(opts)
	assert.NilError(t, err)
	t.Cleanup(func() { sess.Close() })
	return sess
}

// runAtom runs a query and decodes its single result into a generic value.
func runAtom(t *testing.T, sess *r.Session, q r.Term) any {
	t.Helper()
	var out any
	assert.NilError(t, q.ReadOne(&out, sess))
	return out
}

func mustRun(t *testing.T, sess *r.Session, q r.Term) {
	t.Helper()
	_, err := q.RunWrite(sess)
	assert.NilError(t, err)
}

// runAll runs a query and decodes every result (atom arrays included).
func runAll(t *testing.T, sess *r.Session, q r.Term) []any {
	t.Helper()
	out := []any{}
	assert.NilError(t, q.ReadAll(&out, sess))
	return out
}

// runRaw returns the first raw JSON result, for checking nulls and pseudo-types.
func runRaw(t *testing.T, sess *r.Session, q r.Term) string {
	t.Helper()
	cur, err := q.Run(sess)
	assert.NilError(t, err)
	defer cur.Close()
	raw, ok := cur.NextResponse()
	assert.Assert(t, ok)
	return string(raw)
}
