package tunnel

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"strings"
)

// Where DTR keeps RethinkDB's TLS material in the dtr-ca-<id> volume.
const (
	clientCertPath = "/ca/rethink-client/cert.pem"
	clientKeyPath  = "/ca/rethink-client/key.pem"
	caCertPath     = "/ca/rethink/cert.pem"
	maxPEM         = 1 << 20
)

// LocalTLS builds the TLS configuration DTR's RethinkDB expects, for an
// agent in a helper, which has DTR's CA volume mounted at /ca: the
// rethink-client pair as client certificate, the rethink CA as the only
// root, and the server's name on dtr-ol, verified as usual. The key is
// read where it lies and never crosses the Docker API. root replaces "/ca"
// in tests.
func LocalTLS(root, serverName string) (*tls.Config, error) {
	if root == "" {
		root = "/ca"
	}
	files := map[string][]byte{}
	for _, p := range []string{clientCertPath, clientKeyPath, caCertPath} {
		b, err := readLocal(root + strings.TrimPrefix(p, "/ca"))
		if err != nil {
			return nil, fmt.Errorf("reading RethinkDB's TLS material: %v", err)
		}
		files[p] = b
	}
	return buildTLS(files, "DTR's CA volume (/ca)", serverName)
}

func readLocal(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPEM+1))
	if err == nil && len(b) > maxPEM {
		err = fmt.Errorf("%s: too large for a PEM file", path)
	}
	return b, err
}

// buildTLS makes the configuration from the three PEM files; where names
// their place in errors.
func buildTLS(files map[string][]byte, where, serverName string) (*tls.Config, error) {
	pair, err := tls.X509KeyPair(files[clientCertPath], files[clientKeyPath])
	if err != nil {
		return nil, fmt.Errorf("%s: %s and %s: %v", where, clientCertPath, clientKeyPath, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(files[caCertPath]) {
		return nil, fmt.Errorf("%s: %s holds no PEM certificate", where, caCertPath)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{pair},
		RootCAs:      pool,
		ServerName:   serverName,
		MinVersion:   tls.VersionTLS12,
	}, nil
}
