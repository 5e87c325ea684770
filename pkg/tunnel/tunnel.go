package tunnel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/helpercontainer"
	"github.com/hashicorp/yamux"
)

// Options say which replica to reach and how.
type Options struct {
	Replica *dtr.Replica
	// AgentBinary is a static linux build of this plugin for the node; empty
	// means this plugin's own executable.
	AgentBinary string
	// Log reports steps; nil is quiet.
	Log func(format string, args ...any)
}

// Tunnel is a loopback listener whose connections reach the replica's
// RethinkDB driver port, and the TLS configuration to talk to it.
type Tunnel struct {
	// TLS is the client configuration for RethinkDB: its client certificate,
	// its CA, and ServerName set to the server's name on dtr-ol.
	TLS *tls.Config
	// Helper is the helper container's name.
	Helper string

	helper *helper
	sess   *yamux.Session
	ln     net.Listener
	wg     sync.WaitGroup

	mu      sync.Mutex
	lastErr error
	closed  bool
}

// openTimeout bounds the setup: a helper that does not answer by then will
// not.
const openTimeout = 2 * time.Minute

// Open starts the helper on the replica's node and returns once a stream
// through it has reached RethinkDB. Close it in every case.
func Open(ctx context.Context, api API, opts Options) (t *Tunnel, err error) {
	log := opts.Log
	if log == nil {
		log = func(string, ...any) {}
	}
	rep := opts.Replica
	removeStale(ctx, api, log)
	ctx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()

	h, err := createHelper(ctx, api, rep, opts.AgentBinary, relayJob(rep))
	if err != nil {
		return nil, err
	}
	t = &Tunnel{helper: h, Helper: h.name}
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	// The certificates are read while the helper starts: neither waits
	// for the other. A helper that fails says why first: its read may
	// fail only because the helper is gone.
	type certs struct {
		tls *tls.Config
		err error
	}
	read := make(chan certs, 1)
	go func() {
		c, err := clientTLS(ctx, api, h.id, rep.CAVolume(), dtr.RethinkHost(rep.ID))
		read <- certs{c, err}
	}()
	var c certs
	readDone := false
	defer func() {
		// A failed Open removes the helper: never while an archive read
		// of it is still under way. On fuse-overlayfs the engine's removal
		// then fails ("directory not empty"), leaving a dead helper that
		// holds DTR's dtr-ca volume. The read takes milliseconds.
		if !readDone {
			<-read
		}
	}()
	if err := h.start(ctx); err != nil {
		return t, err
	}
	log("started tunnel helper %s on node %s (%s)", h.name, rep.Node, h.agent.Describe())
	if t.sess, err = yamux.Client(h.conn(), muxConfig()); err != nil {
		return t, err
	}
	if err := t.probe(ctx); err != nil {
		return t, err
	}
	c, readDone = <-read, true
	if t.TLS, err = c.tls, c.err; err != nil {
		return t, err
	}
	if t.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return t, err
	}
	t.wg.Add(1)
	go t.serve()
	return t, nil
}

// removeStale removes the helpers killed runs left, saying so.
func removeStale(ctx context.Context, api API, log func(string, ...any)) {
	removed, err := helpercontainer.RemoveStale(ctx, api)
	if err != nil {
		log("warning: %v", err)
	}
	for _, r := range removed {
		log("removed the %s", r)
	}
}

// probe opens one stream, so that a helper that cannot run, or cannot reach
// RethinkDB, fails here with its reason.
func (t *Tunnel) probe(ctx context.Context) error {
	type result struct{ err error }
	done := make(chan result, 1)
	go func() {
		s, err := t.sess.OpenStream()
		if err == nil {
			err = readStatus(s)
			s.Close()
		}
		done <- result{err}
	}()
	var err error
	select {
	case r := <-done:
		err = r.err
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err == nil {
		return nil
	}
	target := fmt.Sprintf("%s:%d", dtr.RethinkHost(t.helper.replica), dtr.RethinkPort)
	if t.sess.IsClosed() || errors.Is(err, yamux.ErrSessionShutdown) || ctx.Err() != nil {
		// The agent never answered: say what the container did.
		why := t.helper.failure(context.WithoutCancel(ctx))
		if why == "" {
			why = err.Error()
		}
		return fmt.Errorf("the tunnel helper on node %s did not run: %s", t.helper.node, why)
	}
	return fmt.Errorf("the tunnel helper on node %s cannot reach %s: %v", t.helper.node, target, err)
}

// Addr is the loopback address to give the RethinkDB driver.
func (t *Tunnel) Addr() string { return t.ln.Addr().String() }

func (t *Tunnel) serve() {
	defer t.wg.Done()
	for {
		local, err := t.ln.Accept()
		if err != nil {
			return
		}
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			stream, err := t.sess.OpenStream()
			if err == nil {
				if err = readStatus(stream); err != nil {
					stream.Close()
				}
			}
			if err != nil {
				t.setErr(err)
				local.Close()
				return
			}
			relay(local, stream)
		}()
	}
}

func (t *Tunnel) setErr(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.closed {
		t.lastErr = err
	}
}

// Err is the last error the tunnel met, to explain a driver's bare EOF.
func (t *Tunnel) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	// A lost session explains everything after it, including the
	// multiplexer's own "session shutdown" on the next stream.
	if t.sess != nil && t.sess.IsClosed() {
		return fmt.Errorf("the connection to tunnel helper %s on node %s was lost", t.helper.name, t.helper.node)
	}
	return t.lastErr
}

// Close stops the listener and removes the helper container.
func (t *Tunnel) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.mu.Unlock()
	if t.ln != nil {
		t.ln.Close()
	}
	if t.sess != nil {
		t.sess.Close()
	}
	err := t.helper.remove()
	t.wg.Wait()
	return err
}
