package dtrfixture

import (
	"archive/tar"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/rethinkserver"
)

// pki is a cluster's TLS material in PEM: the CA that signs and the one
// rethink-client pair that RethinkDB presents as its server certificate and
// clients present as theirs (its SANs name every replica's RethinkDB).
type pki struct {
	caCert, caKey     []byte
	certPEM, keyPEM   []byte
	caPool            *x509.CertPool
	clientCertificate tls.Certificate
}

func newPKI(replicaIDs []string) (*pki, error) {
	now := time.Now()
	ca, err := rethinkserver.NewCA("dtrfixture rethink CA", 7*24*time.Hour)
	if err != nil {
		return nil, err
	}
	// The server presents the pair and clients present it too, and the
	// real server's OpenSSL checks its purpose both ways: both usages.
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "dtrfixture rethink-client"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	for _, id := range replicaIDs {
		name := containerName("rethinkdb", id)
		leaf.DNSNames = append(leaf.DNSNames, name+"."+networkName, name)
	}
	p := &pki{caCert: ca.CertPEM, caKey: ca.KeyPEM, caPool: x509.NewCertPool()}
	if p.certPEM, p.keyPEM, err = ca.Issue(leaf); err != nil {
		return nil, err
	}
	p.caPool.AddCert(ca.Cert)
	if p.clientCertificate, err = tls.X509KeyPair(p.certPEM, p.keyPEM); err != nil {
		return nil, err
	}
	return p, nil
}

// writeFiles puts the CA certificate and the pair into dir for the host side.
func (p *pki) writeFiles(dir string) (caFile, certFile, keyFile string, err error) {
	caFile = filepath.Join(dir, "ca.pem")
	certFile = filepath.Join(dir, "cert.pem")
	keyFile = filepath.Join(dir, "key.pem")
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{{caFile, p.caCert, 0o644}, {certFile, p.certPEM, 0o644}, {keyFile, p.keyPEM, 0o600}} {
		if err = os.WriteFile(f.path, f.data, f.mode); err != nil {
			return
		}
	}
	return
}

// volumeTar is the content of dtr-ca-<id> at DTR's paths, relative to /ca.
func (p *pki) volumeTar() ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	entries := []struct {
		name string
		data []byte
		mode int64
	}{
		{"rethink/", nil, 0o755},
		{"rethink/cert.pem", p.caCert, 0o644},
		{"rethink/key.pem", p.caKey, 0o600},
		{"rethink-client/", nil, 0o755},
		{"rethink-client/cert.pem", p.certPEM, 0o644},
		{"rethink-client/key.pem", p.keyPEM, 0o600},
	}
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, ModTime: now, Typeflag: tar.TypeReg, Size: int64(len(e.data))}
		if e.data == nil {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// clientTLS trusts the CA, presents the pair and verifies serverName.
func (p *pki) clientTLS(serverName string) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{p.clientCertificate},
		RootCAs:      p.caPool,
		ServerName:   serverName,
		MinVersion:   tls.VersionTLS12,
	}
}
