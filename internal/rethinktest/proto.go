package rethinktest

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"net"
	"strconv"

	p "gopkg.in/rethinkdb/rethinkdb-go.v6/ql2"
)

const maxQueryBytes = 64 << 20

// conn serves one client connection. Queries are handled in arrival order;
// each response carries its query's token, so pipelining works.
type conn struct {
	s       *Server
	nc      net.Conn
	r       *bufio.Reader
	w       *bufio.Writer
	cursors map[int64]*cursor
}

// cursor is an open stream: an iterator plus one look-ahead row so the last
// batch can be marked SUCCESS_SEQUENCE.
type cursor struct {
	it       iterator
	peek     any
	havePeek bool
	maxRows  int
	maxBytes int
}

func newConn(s *Server, nc net.Conn) *conn {
	return &conn{s: s, nc: nc, r: bufio.NewReaderSize(nc, 64<<10), w: bufio.NewWriterSize(nc, 64<<10), cursors: map[int64]*cursor{}}
}

func (c *conn) serve() {
	if err := c.handshake(); err != nil {
		return
	}
	var hdr [12]byte
	for {
		if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
			return
		}
		token := int64(binary.LittleEndian.Uint64(hdr[:8]))
		n := binary.LittleEndian.Uint32(hdr[8:])
		if n > maxQueryBytes {
			c.sendError(token, clientErr("Query size (%d) greater than maximum (%d).", n, maxQueryBytes))
			return
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(c.r, body); err != nil {
			return
		}
		if err := c.handle(token, body); err != nil {
			return
		}
	}
}

func (c *conn) send(token int64, body []byte) error {
	var hdr [12]byte
	binary.LittleEndian.PutUint64(hdr[:8], uint64(token))
	binary.LittleEndian.PutUint32(hdr[8:], uint32(len(body)))
	c.w.Write(hdr[:])
	c.w.Write(body)
	return c.w.Flush()
}

func (c *conn) sendError(token int64, e *rqlError) error {
	b := []byte(`{"t":`)
	b = strconv.AppendInt(b, int64(e.rtype), 10)
	if e.rtype == p.Response_RUNTIME_ERROR {
		b = append(b, `,"e":`...)
		b = strconv.AppendInt(b, int64(e.etype), 10)
	}
	b = append(b, `,"r":[`...)
	b = appendString(b, e.msg)
	b = append(b, `],"b":[],"n":[]}`...)
	return c.send(token, b)
}

func (c *conn) sendAtom(token int64, t p.Response_ResponseType, d any) error {
	b := []byte(`{"t":`)
	b = strconv.AppendInt(b, int64(t), 10)
	b = append(b, `,"r":[`...)
	b = appendJSON(b, d)
	b = append(b, `],"n":[]}`...)
	return c.send(token, b)
}

func (c *conn) handle(token int64, body []byte) (err error) {
	defer func() {
		// A bug in the test server must surface as an error, never a crash.
		if r := recover(); r != nil {
			delete(c.cursors, token)
			err = c.sendError(token, runtimeErr(p.Response_INTERNAL, "rethinktest internal error: %v", r))
		}
	}()
	var q []any
	if err := json.Unmarshal(body, &q); err != nil || len(q) == 0 {
		return c.sendError(token, clientErr("Client is buggy (failed to deserialize query)."))
	}
	qt, ok := q[0].(float64)
	if !ok {
		return c.sendError(token, clientErr("Client is buggy (failed to deserialize query)."))
	}
	switch p.Query_QueryType(qt) {
	case p.Query_START:
		return c.start(token, q)
	case p.Query_CONTINUE:
		cur := c.cursors[token]
		if cur == nil {
			return c.sendError(token, clientErr("Token %d not in stream cache.", token))
		}
		return c.sendBatch(token, cur)
	case p.Query_STOP:
		if c.cursors[token] == nil {
			return c.sendError(token, clientErr("Token %d not in stream cache.", token))
		}
		delete(c.cursors, token)
		return c.send(token, []byte(`{"t":2,"r":[],"n":[]}`))
	case p.Query_NOREPLY_WAIT:
		// Queries run in order, so every earlier noreply query is done.
		return c.send(token, []byte(`{"t":4,"r":[],"n":[]}`))
	case p.Query_SERVER_INFO:
		return c.sendAtom(token, p.Response_SERVER_INFO, map[string]any{"id": c.s.id, "name": serverName, "proxy": false})
	}
	return c.sendError(token, clientErr("Unrecognized QueryType %d.", int(qt)))
}

func (c *conn) start(token int64, q []any) error {
	if len(q) < 2 {
		return c.sendError(token, clientErr("Client is buggy (failed to deserialize query)."))
	}
	var rawOpts map[string]any
	if len(q) > 2 && q[2] != nil {
		var ok bool
		if rawOpts, ok = q[2].(map[string]any); !ok {
			return c.sendError(token, clientErr("Client is buggy (failed to deserialize query)."))
		}
	}
	qc := &queryCtx{srv: c.s, arrayLimit: 100000, now: nowTime()}
	cur := &cursor{maxRows: c.s.opts.MaxBatchRows, maxBytes: c.s.opts.MaxBatchBytes}
	noreply, err := c.globalOpts(qc, cur, rawOpts)
	if err == nil {
		err = compileTerm(q[1])
	}
	if err == nil && c.s.before24() {
		err = refuseNewerTerms(q[1])
	}
	var v any
	if err == nil {
		v, err = (&env{q: qc}).eval(q[1])
	}
	if noreply {
		return nil
	}
	if err != nil {
		return c.sendError(token, asRQL(err))
	}
	switch x := v.(type) {
	case *tableVal, *streamVal:
		it, err := (&env{q: qc}).toIter(x)
		if err != nil {
			return c.sendError(token, asRQL(err))
		}
		cur.it = it
		c.cursors[token] = cur
		return c.sendBatch(token, cur)
	case *singleSel:
		return c.sendAtom(token, p.Response_SUCCESS_ATOM, x.doc)
	case *dbVal, *funcVal:
		return c.sendError(token, logicErr("Query result must be of type DATUM, GROUPED_DATA, or STREAM (got %s).", typeName(v)))
	}
	return c.sendAtom(token, p.Response_SUCCESS_ATOM, v)
}

func asRQL(err error) *rqlError {
	if re, ok := err.(*rqlError); ok {
		return re
	}
	return runtimeErr(p.Response_INTERNAL, "%s", err.Error())
}

// sendBatch streams the next batch: at least one row, at most maxRows rows,
// stopping once maxBytes of JSON has been written.
func (c *conn) sendBatch(token int64, cur *cursor) error {
	b := []byte(`{"t":3,"r":[`) // type digit patched below
	rows, size, done := 0, 0, false
	for rows < cur.maxRows && (rows == 0 || size < cur.maxBytes) {
		d, ok, err := cur.pull()
		if err != nil {
			delete(c.cursors, token)
			return c.sendError(token, asRQL(err))
		}
		if !ok {
			done = true
			break
		}
		if rows > 0 {
			b = append(b, ',')
		}
		start := len(b)
		b = appendJSON(b, d)
		size += len(b) - start
		rows++
	}
	if !done {
		d, ok, err := cur.pull()
		if err != nil {
			delete(c.cursors, token)
			return c.sendError(token, asRQL(err))
		}
		if ok {
			cur.peek, cur.havePeek = d, true
		} else {
			done = true
		}
	}
	if done {
		b[5] = '0' + byte(p.Response_SUCCESS_SEQUENCE)
		delete(c.cursors, token)
	}
	b = append(b, `],"n":[]}`...)
	return c.send(token, b)
}

func (cur *cursor) pull() (any, bool, error) {
	if cur.havePeek {
		d := cur.peek
		cur.peek, cur.havePeek = nil, false
		return d, true, nil
	}
	return cur.it.next()
}

// acceptedGlobalOptargs is RethinkDB 2.4's list of acceptable optarg names.
var acceptedGlobalOptargs = map[string]bool{}

func init() {
	for _, k := range []string{"_EVAL_FLAGS_", "_NO_RECURSE_", "_SHORTCUT_", "array_limit", "attempts", "auth",
		"base", "binary_format", "changefeed_queue_size", "conflict", "data", "db", "default", "default_timezone",
		"dry_run", "durability", "emergency_repair", "fill", "first_batch_scaledown_factor", "float", "geo",
		"geo_system", "group_format", "header", "identifier_format", "include_initial_vals", "include_states",
		"index", "left_bound", "max_batch_bytes", "max_batch_rows", "max_batch_seconds", "max_dist", "max_results",
		"method", "min_batch_rows", "multi", "non_atomic", "nonvoting_replica_tags", "noreply", "num_vertices",
		"overwrite", "page", "page_limit", "params", "primary_key", "primary_replica_tag", "profile", "read_mode",
		"redirects", "replicas", "result_format", "return_changes", "return_vals", "right_bound", "shards", "squash",
		"time_format", "timeout", "unit", "verify", "wait_for"} {
		acceptedGlobalOptargs[k] = true
	}
}

// globalOpts validates the run() options. It reports noreply even on error,
// since a noreply query gets no response at all.
func (c *conn) globalOpts(qc *queryCtx, cur *cursor, opts map[string]any) (bool, error) {
	noreply := false
	if raw, ok := opts["noreply"]; ok {
		if b, isBool := raw.(bool); isBool {
			noreply = b
		}
	}
	for k := range opts {
		if !acceptedGlobalOptargs[k] {
			return noreply, compileErr("Unrecognized global optional argument `%s`.", k)
		}
	}
	for k := range opts {
		if err := compileTerm(opts[k]); err != nil {
			return noreply, err
		}
	}
	e := &env{q: qc}
	for k, raw := range opts {
		switch k {
		case "db":
			if a, ok := raw.([]any); ok && len(a) == 2 {
				if tf, _ := a[0].(float64); p.Term_TermType(tf) == p.Term_DB {
					if args, _ := a[1].([]any); len(args) == 1 {
						if name, ok := args[0].(string); ok {
							qc.defaultDB = name
							continue
						}
					}
				}
			}
			v, err := e.eval(raw)
			if err != nil {
				return noreply, err
			}
			dv, ok := v.(*dbVal)
			if !ok {
				return noreply, expectType(v, "DATABASE")
			}
			qc.defaultDB = dv.db.name
		case "durability":
			d, err := e.durabilityOpt(opts, "hard")
			if err != nil {
				return noreply, err
			}
			qc.durability = d
		case "read_mode":
			if err := e.checkReadMode(raw); err != nil {
				return noreply, err
			}
		case "time_format", "binary_format", "group_format":
			s, err := e.evalString(raw)
			if err != nil {
				return noreply, err
			}
			if s != "native" && s != "raw" {
				return noreply, logicErr("Unrecognized %s `%s` (options are \"native\" and \"raw\").", k, s)
			}
		case "noreply", "profile":
			if _, err := e.evalBool(raw); err != nil {
				return noreply, err
			}
		case "array_limit", "min_batch_rows", "max_batch_rows", "max_batch_bytes", "max_batch_seconds", "first_batch_scaledown_factor":
			f, err := e.evalNumber(raw)
			if err != nil {
				return noreply, err
			}
			if k != "max_batch_seconds" && (f != math.Trunc(f) || math.Abs(f) > 1<<53) {
				return noreply, logicErr("Number not an integer: %s", string(appendNum(nil, f)))
			}
			n := int(f)
			switch k {
			case "array_limit":
				if n < 1 {
					return noreply, logicErr("Illegal array size limit `%d`.  (Must be >= 1.)", n)
				}
				qc.arrayLimit = n
			case "max_batch_rows":
				if n < 1 {
					n = 1
				}
				cur.maxRows = n
			case "max_batch_bytes":
				if n < 1 {
					n = 1
				}
				cur.maxBytes = n
			}
		}
	}
	return noreply, nil
}
