package remotedb

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/rethinkserver"
	"github.com/docker-dtr/docker-dtr/pkg/dtrstorage"
	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// The agent reads where DTR keeps its images from its settings, next to
// the database: the storage's credentials are in those settings, and
// none of their bytes cross the link.
func TestSessionStorage(t *testing.T) {
	srv := rethinkserver.Start(t, rethinkserver.Options{TLS: true})
	ctx := context.Background()
	direct := srv.Connect(t)
	const secret = "wJalrXUtnFEMI-K7MDENG-SECRET"

	// Without dtr2.properties, the backend is unknown, not an error.
	s, sent, served := storageSession(t, srv)
	b, err := s.Storage(ctx)
	assert.NilError(t, err)
	assert.Check(t, !b.Known())
	assert.Check(t, is.Equal(b.Unknown, "the database has no dtr2.properties"))

	assert.NilError(t, r.DBCreate("dtr2").Exec(direct))
	assert.NilError(t, r.DB("dtr2").TableCreate("properties").Exec(direct))
	assert.NilError(t, r.DB("dtr2").Table("properties").Insert([]any{
		map[string]any{"id": "ha.json", "value": `{"replicaCount":1}`},
		map[string]any{"id": "registry.json", "value": `{"storage":{"s3":{"bucket":"dtr-images","region":"eu-west-1","accesskey":"AKIAEXAMPLE","secretkey":"` + secret + `"}}}`},
	}).Exec(direct))
	b, err = s.Storage(ctx)
	assert.NilError(t, err)
	assert.DeepEqual(t, b, dtrstorage.Backend{Driver: "s3", Bucket: "dtr-images", Region: "eu-west-1", Setting: "registry.json"})
	// Once the agent is done, all it sent is in sent.
	assert.NilError(t, s.Close())
	<-served
	assert.Assert(t, sent.Len() > 0)
	assert.Assert(t, !bytes.Contains(sent.Bytes(), []byte(secret)) && !bytes.Contains(sent.Bytes(), []byte("AKIAEXAMPLE")), "a credential crossed the link")
}

// storageSession is a session whose agent with what it sends kept in sent,
// which is whole once served is closed.
func storageSession(t *testing.T, srv *rethinkserver.Server) (s *Session, sent *bytes.Buffer, served <-chan struct{}) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	sent = &bytes.Buffer{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Serve(Dial(srv.Addr, caDir(t, srv.Certs)), inR, io.MultiWriter(outW, sent), time.Minute)
		outW.Close()
	}()
	t.Cleanup(func() { inW.Close(); outR.Close() })
	s = newSession("docker-dtr-db-test", "node1", pipeLink{in: inW, out: outR, agentIn: inR}, 1)
	t.Cleanup(func() { s.Close() })
	return s, sent, done
}

// The agent reads its server's view of the cluster: connected servers,
// tables and issues come back through the session.
func TestSessionHealth(t *testing.T) {
	srv := rethinkserver.Start(t, rethinkserver.Options{TLS: true})
	direct := srv.Connect(t)
	assert.NilError(t, r.DBCreate("dtr2").Exec(direct))
	assert.NilError(t, r.DB("dtr2").TableCreate("tags").Exec(direct))
	s, _, _ := storageSession(t, srv)
	h, err := s.Health(context.Background())
	assert.NilError(t, err)
	assert.Check(t, h.Server != "")
	assert.Check(t, is.DeepEqual(h.Connected, []string{h.Server}))
	assert.Assert(t, is.Len(h.Tables, 1))
	assert.Check(t, is.Equal(h.Tables[0].String(), "dtr2.tags"))
	assert.Check(t, h.Tables[0].ReadyForWrites)
}

// A server whose name does not resolve (cut off from dtr-ol) is reached on
// the loopback of its network namespace; a name that resolves, or an
// address, is dialled as it is.
func TestLoopback(t *testing.T) {
	ctx := context.Background()
	got, ok := loopback(ctx, "dtr-rethinkdb-0123456789ab.invalid:28015")
	assert.Check(t, ok)
	assert.Check(t, is.Equal(got, "127.0.0.1:28015"))
	_, ok = loopback(ctx, "localhost:28015")
	assert.Check(t, !ok)
	_, ok = loopback(ctx, "10.0.0.7:28015")
	assert.Check(t, !ok)
}
