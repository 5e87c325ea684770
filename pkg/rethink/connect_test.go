package rethink

import (
	"context"
	"testing"

	"github.com/docker-dtr/docker-dtr/internal/rethinkserver"
	"gotest.tools/v3/assert"
)

// The real server refuses a client certificate after the TLS 1.3
// handshake: the driver may see only a broken pipe or a reset, and the
// message must still name the certificate, every time.
func TestClientCertificateRefusedSaysSo(t *testing.T) {
	srv := rethinkserver.Start(t, rethinkserver.Options{TLS: true})
	other, err := rethinkserver.NewCerts(t.TempDir(), rethinkserver.ServerName)
	assert.NilError(t, err)
	opts := Options{Addr: srv.Addr, CAFile: srv.Certs.CA, CertFile: other.ClientCert, KeyFile: other.ClientKey,
		ServerName: rethinkserver.ServerName}
	for range 20 {
		_, err := Connect(context.Background(), opts)
		assert.ErrorContains(t, err, "rejected the client certificate (remote error: tls: unknown certificate authority): check --rethinkdb-cert and --rethinkdb-key")
	}
	opts.CertFile, opts.KeyFile = "", ""
	_, err = Connect(context.Background(), opts)
	assert.ErrorContains(t, err, "rejected the client certificate (remote error: tls: certificate required)")
}
