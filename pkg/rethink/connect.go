// Package rethink connects to RethinkDB and runs the few queries a backup
// needs, keeping raw JSON (TIME and BINARY as $reql_type$ pseudo-types) so
// nothing is converted on the way through.
package rethink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
)

// Options say how to reach a RethinkDB server directly.
type Options struct {
	Addr string
	// CAFile, CertFile and KeyFile enable TLS; DTR requires all three (mutual TLS).
	CAFile, CertFile, KeyFile string
	// ServerName is checked against the server certificate; defaults to the
	// host of Addr. DTR's certificate names dtr-rethinkdb-<id>.dtr-ol.
	ServerName   string
	User         string
	PasswordFile string
	// TLS, when set, is used instead of the files: the tunnel reads DTR's
	// material through the Docker API and keeps it in memory.
	TLS *tls.Config
	// Via names the path to the server in errors, such as "the tunnel to
	// replica 0123456789ab"; empty means the --rethinkdb-* flags.
	Via string
	// Connections is the size of the connection pool (writers use one each).
	Connections int
	Timeout     time.Duration
}

// Validate checks the options without touching the network or files.
func (o Options) Validate() error {
	if o.Addr == "" {
		return errors.New("--rethinkdb-addr is required (host:port of RethinkDB's driver port, 28015)")
	}
	if _, _, err := net.SplitHostPort(o.Addr); err != nil {
		return fmt.Errorf("--rethinkdb-addr %q: %v (expected host:port)", o.Addr, err)
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return errors.New("--rethinkdb-cert and --rethinkdb-key go together: give both or neither")
	}
	if o.CertFile != "" && o.CAFile == "" {
		return errors.New("--rethinkdb-cert needs --rethinkdb-ca to verify the server")
	}
	return nil
}

// Session is a connection pool to one server.
type Session struct {
	s    *r.Session
	addr string
}

// Connect opens a session and checks it with a round trip.
func Connect(ctx context.Context, o Options) (*Session, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	opts := r.ConnectOpts{
		Address:    o.Addr,
		Username:   o.User,
		InitialCap: 1,
		MaxOpen:    max(o.Connections, 1),
		Timeout:    o.Timeout,
		NumRetries: 1,
	}
	if opts.Timeout == 0 {
		opts.Timeout = 20 * time.Second
	}
	if o.PasswordFile != "" {
		pw, err := readPassword(o.PasswordFile)
		if err != nil {
			return nil, err
		}
		opts.Password = pw
	}
	if o.TLS != nil {
		opts.TLSConfig = o.TLS.Clone()
	} else if o.CAFile != "" {
		cfg, err := o.tlsConfig()
		if err != nil {
			return nil, err
		}
		opts.TLSConfig = cfg
	}
	s, err := r.Connect(opts)
	if err != nil {
		return nil, connectError(o, tlsRefusal(o.Addr, opts, err))
	}
	sess := &Session{s: s, addr: o.Addr}
	if err := sess.ping(ctx); err != nil {
		s.Close()
		return nil, connectError(o, tlsRefusal(o.Addr, opts, err))
	}
	return sess, nil
}

// tlsRefusal finds out why a TLS server closed a new connection. With TLS
// 1.3, RethinkDB checks the client certificate after the handshake: its
// alert ("unknown certificate authority", "certificate required") comes
// while the driver writes its first message, which then often fails with
// a bare "broken pipe" or "connection reset" instead, as if the server had
// gone. A connection that only reads receives the alert itself: err is
// replaced by it when the server sends one within a second, else kept.
func tlsRefusal(addr string, opts r.ConnectOpts, err error) error {
	if opts.TLSConfig == nil || !closedEarly(err) {
		return err
	}
	d := net.Dialer{Timeout: min(opts.Timeout, 5*time.Second)}
	conn, derr := tls.DialWithDialer(&d, "tcp", addr, opts.TLSConfig)
	if derr != nil {
		if remoteAlert(derr) {
			return derr // TLS 1.2: refused in the handshake
		}
		return err
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(time.Second))
	if _, rerr := conn.Read(make([]byte, 1)); remoteAlert(rerr) {
		return rerr
	}
	return err
}

// closedEarly is a connection that the far end closed or reset.
func closedEarly(err error) bool {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "broken pipe") || strings.Contains(msg, "connection reset") || strings.HasSuffix(msg, "EOF")
}

// remoteAlert is a TLS alert the server sent ("remote error: tls: …").
func remoteAlert(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "remote error"
}

func (o Options) tlsConfig() (*tls.Config, error) {
	ca, err := os.ReadFile(o.CAFile)
	if err != nil {
		return nil, fmt.Errorf("--rethinkdb-ca: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("--rethinkdb-ca %s: no PEM certificate in it", o.CAFile)
	}
	name := o.ServerName
	if name == "" {
		name, _, _ = net.SplitHostPort(o.Addr)
	}
	cfg := &tls.Config{RootCAs: pool, ServerName: name, MinVersion: tls.VersionTLS12}
	if o.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("--rethinkdb-cert/--rethinkdb-key: %v", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// readPassword reads a password file; one trailing newline is not part of it.
func readPassword(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--rethinkdb-password-file: %v", err)
	}
	s := strings.TrimSuffix(string(b), "\n")
	return strings.TrimSuffix(s, "\r"), nil
}

// connectError turns driver errors into a line that says what to check.
func connectError(o Options, err error) error {
	msg := err.Error()
	if o.Via != "" {
		// No flags to check: the material came from DTR's own volume.
		msg = strings.TrimPrefix(strings.TrimPrefix(msg, "rethinkdb: "), "gorethink: ")
		return fmt.Errorf("connecting to rethinkdb through %s: %s", o.Via, strings.TrimRight(msg, ": "))
	}
	msg = strings.TrimPrefix(msg, "rethinkdb: ")
	msg = strings.TrimPrefix(msg, "gorethink: ")
	low := strings.ToLower(msg)
	switch {
	case strings.Contains(low, "wrong password"), strings.Contains(low, "unknown user"):
		return fmt.Errorf("rethinkdb at %s refused the credentials (%s): check --rethinkdb-password-file", o.Addr, msg)
	case strings.Contains(low, "certificate signed by unknown authority"),
		strings.Contains(low, "certificate is valid for"), strings.Contains(low, "x509"):
		return fmt.Errorf("rethinkdb at %s: the server certificate does not verify (%s): check --rethinkdb-ca and --rethinkdb-server-name", o.Addr, msg)
	case strings.Contains(low, "bad certificate"), strings.Contains(low, "certificate required"),
		strings.Contains(low, "unknown certificate"):
		return fmt.Errorf("rethinkdb at %s rejected the client certificate (%s): check --rethinkdb-cert and --rethinkdb-key", o.Addr, msg)
	}
	msg = strings.TrimRight(msg, ": ")
	if o.CAFile == "" && strings.Contains(low, "eof") {
		return fmt.Errorf("connecting to rethinkdb at %s: %s: the server may require TLS (DTR's does): give --rethinkdb-ca, --rethinkdb-cert and --rethinkdb-key", o.Addr, msg)
	}
	return fmt.Errorf("connecting to rethinkdb at %s: %s", o.Addr, msg)
}

// Close closes every connection.
func (s *Session) Close() error { return s.s.Close() }

// Addr is the server's address.
func (s *Session) Addr() string { return s.addr }

func (s *Session) ping(ctx context.Context) error {
	_, err := s.s.Server()
	return err
}
