package rethinkserver

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"sync"
)

// Older DTR releases run RethinkDB 2.3, which has no write hooks: the plugin
// must back such a server up (recording no hooks) and restore to it. No
// RethinkDB 2.3 build is at hand, and the only difference the plugin can
// meet is that 2.3 does not know the terms 2.4 added: it refuses a query
// holding one before running any of it. So a 2.3 server is the real 2.4
// server behind Proxy23, which forwards the V1_0 handshake and every query
// unchanged except those: it answers a query holding a term 2.3 lacks as
// 2.3's term walker (src/rdb_protocol/term_walker.cc) does, with a
// COMPILE_ERROR "Unrecognized TermType: N." (error type QUERY_LOGIC, the
// backtrace to the term), and never sends it on. Everything else, from the
// data to the other errors, is the real server's.

// TermsSince24 are the term types RethinkDB 2.4 added (ql2.proto).
var TermsSince24 = map[int]string{
	189: "SET_WRITE_HOOK", 190: "GET_WRITE_HOOK",
	191: "BIT_AND", 192: "BIT_OR", 193: "BIT_XOR", 194: "BIT_NOT", 195: "BIT_SAL", 196: "BIT_SAR",
}

// Version23 is the server version Proxy23 reports in the handshake.
const Version23 = "2.3.7"

// Proxy23 makes a 2.4 server look like RethinkDB 2.3 to its clients.
type Proxy23 struct {
	// Addr is the proxy's "127.0.0.1:PORT", for clients.
	Addr string

	backend string
	ln      net.Listener
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	closed  bool
	wg      sync.WaitGroup
}

// StartProxy23 listens on loopback in front of backend, a server without
// TLS (its Addr), until the test ends.
func StartProxy23(t TB, backend *Server) *Proxy23 {
	t.Helper()
	if backend.Certs != nil {
		t.Fatal("rethinkserver: Proxy23 fronts a server without TLS")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("rethinkserver: %v", err)
	}
	p := &Proxy23{Addr: ln.Addr().String(), backend: backend.Addr, ln: ln, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// Close stops listening and ends every connection.
func (p *Proxy23) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.ln.Close()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Proxy23) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy23) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(client) {
			return
		}
		server, err := net.Dial("tcp", p.backend)
		if err != nil {
			client.Close()
			continue
		}
		if !p.track(server) {
			client.Close()
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(client, server)
			p.mu.Lock()
			delete(p.conns, client)
			delete(p.conns, server)
			p.mu.Unlock()
		}()
	}
}

// serve relays one connection: the handshake as it comes (with 2.3's
// version), then whole frames (token, length, JSON) both ways, so that an
// answer of the proxy's own never splits one of the server's.
func (p *Proxy23) serve(client, server net.Conn) {
	defer client.Close()
	defer server.Close()
	var wmu sync.Mutex // frames to the client
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer client.Close()
		in := bufio.NewReader(server)
		// The server's handshake: its versions, then two SCRAM messages.
		for i := range 3 {
			msg, err := in.ReadBytes(0)
			if err != nil {
				return
			}
			if i == 0 {
				msg = withVersion(msg, Version23)
			}
			if _, err := client.Write(msg); err != nil {
				return
			}
		}
		for {
			frame, err := readFrame(in)
			if err != nil {
				return
			}
			wmu.Lock()
			_, err = client.Write(frame)
			wmu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	in := bufio.NewReader(client)
	// The client's handshake: the V1_0 magic number, then two messages.
	magic := make([]byte, 4)
	if _, err := io.ReadFull(in, magic); err != nil {
		return
	}
	if _, err := server.Write(magic); err != nil {
		return
	}
	for range 2 {
		msg, err := in.ReadBytes(0)
		if err != nil {
			return
		}
		if _, err := server.Write(msg); err != nil {
			return
		}
	}
	for {
		frame, err := readFrame(in)
		if err != nil {
			break
		}
		if answer := refuse23(frame); answer == nil {
			_, err = server.Write(frame)
		} else if len(answer) > 0 {
			wmu.Lock()
			_, err = client.Write(answer)
			wmu.Unlock()
		}
		if err != nil {
			break
		}
	}
	server.Close()
	<-done
}

// withVersion sets server_version in the server's first handshake message
// (JSON and its terminating NUL).
func withVersion(msg []byte, version string) []byte {
	var m map[string]any
	if err := json.Unmarshal(bytes.TrimSuffix(msg, []byte{0}), &m); err != nil || m["server_version"] == nil {
		return msg
	}
	m["server_version"] = version
	out, err := json.Marshal(m)
	if err != nil {
		return msg
	}
	return append(out, 0)
}

// readFrame reads a query or response: token (8 bytes), length (4, little
// endian), then that many bytes of JSON.
func readFrame(r *bufio.Reader) ([]byte, error) {
	head := make([]byte, 12)
	if _, err := io.ReadFull(r, head); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint32(head[8:])
	frame := make([]byte, 12+int(n))
	copy(frame, head)
	if _, err := io.ReadFull(r, frame[12:]); err != nil {
		return nil, err
	}
	return frame, nil
}

// refuse23 returns 2.3's answer to a query it cannot compile, or nil to
// forward the query. A noreply query is answered with nothing, as the
// server does; nil is then an empty, non-nil frame.
func refuse23(frame []byte) []byte {
	var q []json.RawMessage
	if err := json.Unmarshal(frame[12:], &q); err != nil || len(q) < 2 {
		return nil
	}
	var typ int
	if json.Unmarshal(q[0], &typ) != nil || typ != 1 { // START
		return nil
	}
	var term any
	dec := json.NewDecoder(bytes.NewReader(q[1]))
	dec.UseNumber()
	if dec.Decode(&term) != nil {
		return nil
	}
	bt, unknown, found := findTerm(term, []any{})
	if !found {
		return nil
	}
	if len(q) > 2 {
		var opts struct {
			Noreply bool `json:"noreply"`
		}
		if json.Unmarshal(q[2], &opts) == nil && opts.Noreply {
			return []byte{}
		}
	}
	body, _ := json.Marshal(map[string]any{
		"t": 17,      // COMPILE_ERROR
		"e": 3000000, // QUERY_LOGIC
		"r": []string{fmt.Sprintf("Unrecognized TermType: %d.", unknown)},
		"b": bt,
	})
	out := make([]byte, 12, 12+len(body))
	copy(out, frame[:8])
	binary.LittleEndian.PutUint32(out[8:], uint32(len(body)))
	return append(out, body...)
}

// findTerm walks a JSON-protocol term ([type, args, optargs]; objects are
// literal objects of terms) for a term 2.3 lacks, and returns the backtrace
// to it: argument indexes and optarg names, as the server reports them.
func findTerm(term any, bt []any) ([]any, int, bool) {
	switch x := term.(type) {
	case []any:
		if len(x) == 0 {
			return nil, 0, false
		}
		n, ok := x[0].(json.Number)
		if !ok {
			return nil, 0, false
		}
		typ, err := n.Int64()
		if err != nil {
			return nil, 0, false
		}
		if typ == 1 { // DATUM: a value, never a term
			return nil, 0, false
		}
		if _, lacks := TermsSince24[int(typ)]; lacks {
			return bt, int(typ), true
		}
		if len(x) > 1 {
			if args, ok := x[1].([]any); ok {
				for i, a := range args {
					if b, u, ok := findTerm(a, append(bt[:len(bt):len(bt)], i)); ok {
						return b, u, true
					}
				}
			}
		}
		if len(x) > 2 {
			if opts, ok := x[2].(map[string]any); ok {
				for k, v := range opts {
					if b, u, ok := findTerm(v, append(bt[:len(bt):len(bt)], k)); ok {
						return b, u, true
					}
				}
			}
		}
	case map[string]any:
		for k, v := range x {
			if b, u, ok := findTerm(v, append(bt[:len(bt):len(bt)], k)); ok {
				return b, u, true
			}
		}
	}
	return nil, 0, false
}
