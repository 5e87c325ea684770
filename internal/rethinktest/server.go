// Package rethinktest is a RethinkDB wire-protocol server for tests, in memory
// or, with Options.Directory, persisted with RethinkDB's durability (persist.go).
// It speaks the V1_0 handshake with SCRAM-SHA-256, the JSON query protocol
// with cursors and partial batches, and the subset of ReQL a backup/restore
// tool needs, with RethinkDB 2.4's result shapes and error messages.
// Write hooks are stored and reported but never executed.
package rethinktest

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
)

// Options configure a Server.
type Options struct {
	AdminPassword string
	TLS           *tls.Config
	MaxBatchRows  int // default 1000
	MaxBatchBytes int // default 1 << 20
	// Version is reported in the handshake; "2.3.x" also refuses the terms
	// RethinkDB 2.4 added (write hooks). Default DefaultVersion.
	Version string
	// Addr is the address to listen on. Default "127.0.0.1:0".
	Addr string
	// Directory is rethinkdb's --directory: where databases, tables,
	// documents, indexes and write hooks are kept across restarts (created if
	// missing). Empty keeps everything in memory.
	Directory string
}

// Server is a running test server.
type Server struct {
	opts Options
	ln   net.Listener
	cat  *catalog
	id   string
	jnl  *journal // nil in memory

	// SCRAM material for the admin user, derived once.
	salt       []byte
	iterations int
	saltedPass []byte

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

const scramIterations = 4096

// Start listens on opts.Addr (default 127.0.0.1:0) and serves until Close.
func Start(opts Options) (*Server, error) {
	if opts.MaxBatchRows <= 0 {
		opts.MaxBatchRows = 1000
	}
	if opts.MaxBatchBytes <= 0 {
		opts.MaxBatchBytes = 1 << 20
	}
	if opts.Version == "" {
		opts.Version = DefaultVersion
	}
	s := &Server{opts: opts, cat: newCatalog(), id: newUUID(), conns: map[net.Conn]struct{}{}, iterations: scramIterations}
	s.salt = make([]byte, 16)
	if _, err := rand.Read(s.salt); err != nil {
		return nil, err
	}
	var err error
	if s.saltedPass, err = pbkdf2.Key(sha256.New, opts.AdminPassword, s.salt, s.iterations, sha256.Size); err != nil {
		return nil, err
	}
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.Directory != "" {
		if s.jnl, err = openJournal(opts.Directory); err != nil {
			return nil, err
		}
		s.cat, s.id = s.jnl.cat, s.jnl.serverID
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		s.jnl.close()
		return nil, err
	}
	if opts.TLS != nil {
		ln = tls.NewListener(ln, opts.TLS)
	}
	s.ln = ln
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Addr is the address the server listens on: "127.0.0.1:port" by default.
func (s *Server) Addr() string { return s.ln.Addr().String() }

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.conns[nc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, nc)
				s.mu.Unlock()
				nc.Close()
			}()
			newConn(s, nc).serve()
		}()
	}
}

// DropConnections closes every open client connection but keeps listening.
func (s *Server) DropConnections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

// Close stops the listener and all connections, then writes every change to
// the data directory (soft-durability ones too) and closes it.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	err := s.ln.Close()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	if jerr := s.jnl.close(); err == nil {
		err = jerr
	}
	return err
}

func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
