package remotedump

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/metadata"
	"github.com/docker-dtr/docker-dtr/pkg/tunnel"
	"github.com/docker-dtr/docker-dtr/pkg/zstdstream"
)

// Hooks hear the agent's progress: Total once, before the first row (when
// the request asked for an estimate); Progress its steps, and its counts
// when it is also a metadata.Counter.
type Hooks struct {
	Total    func(rows int64)
	Progress metadata.Progress
}

// Options say where to dump.
type Options struct {
	Replica     *dtr.Replica
	AgentBinary string
	// Log reports the helper's steps and warnings; nil is quiet.
	Log func(format string, args ...any)
}

// Run starts the dump helper on the replica's node, has it dump as req
// says, writes the archive to w and returns its manifest. The helper is
// removed before Run returns, whatever happens.
func Run(ctx context.Context, api tunnel.API, o Options, req Request, w io.Writer, hooks Hooks) (m *archive.Manifest, err error) {
	log := o.Log
	if log == nil {
		log = func(string, ...any) {}
	}
	jo := tunnel.DumpJob(o.Replica)
	jo.AgentBinary, jo.Log = o.AgentBinary, log
	job, err := tunnel.StartJob(ctx, api, jo)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("interrupted while starting the dump helper on node %s: %w", o.Replica.Node, ctx.Err())
		}
		return nil, err
	}
	defer func() {
		if cerr := job.Close(); cerr != nil {
			log("warning: %v", cerr)
		}
	}()
	line, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if _, err := job.Stdin().Write(append(line, '\n')); err != nil {
		return nil, job.Lost(err)
	}
	// The lease: the agent stops once these stop (the plugin was killed).
	stop := make(chan struct{})
	defer close(stop)
	go tunnel.KeepAliveWriter(job.Stdin(), tunnel.KeepAlive, stop)
	// An interrupt ends the read at once: the agent sees its input end.
	go func() {
		select {
		case <-ctx.Done():
			job.Interrupt()
		case <-stop:
		}
	}()

	m, lost, err := Receive(job.Stdout(), w, hooks)
	var ae *AgentError
	switch {
	case err == nil:
		return m, nil
	case errors.As(err, &ae):
		ae.Msg = fmt.Sprintf("the dump helper %s on node %s: %s", job.Helper, job.Node, ae.Msg)
		return nil, ae
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case lost:
		return nil, job.Lost(err)
	}
	return nil, err
}

// Receive reads the agent's frames from r and writes the archive they
// carry, decompressed, to w. It returns the agent's manifest, or its
// error; lost says the stream ended (or failed) before the agent's result.
func Receive(r io.Reader, w io.Writer, hooks Hooks) (m *archive.Manifest, lost bool, err error) {
	counter, _ := hooks.Progress.(metadata.Counter)
	fr := newFrameReader(r, func(p Progress) {
		switch {
		case p.Step != "":
			if hooks.Progress != nil {
				hooks.Progress.Step("%s", p.Step)
			}
		case p.Total != 0:
			if hooks.Total != nil {
				hooks.Total(p.Total)
			}
		case counter != nil:
			counter.Add(p.Rows, p.Bytes)
		}
	})
	dec, err := zstdstream.NewReader(fr, "the dump helper's stream", nil)
	if err != nil {
		return nil, false, err
	}
	defer dec.Close()
	ow := &errWriter{w: w}
	n, cerr := io.Copy(ow, dec)
	if ow.err != nil {
		return nil, false, ow.err // the backup file's own error
	}
	res := fr.result
	switch {
	case res == nil && cerr == nil:
		// The decoder stopped at the end of a frame; what came next?
		_, cerr = io.Copy(io.Discard, fr)
		if res = fr.result; res == nil {
			return nil, true, cerr
		}
	case res == nil:
		return nil, true, cerr
	}
	if res.Error != "" {
		return nil, false, &AgentError{Msg: res.Error}
	}
	if cerr != nil {
		return nil, false, fmt.Errorf("the dump helper's stream: %w", cerr)
	}
	if res.Manifest == nil || res.Size != n {
		return nil, false, fmt.Errorf("the dump helper's stream: %d bytes of archive arrived, the helper sent %d", n, res.Size)
	}
	return res.Manifest, false, nil
}

// AgentError is a dump that failed in the agent, as its result says (a
// RethinkDB error, say), not a lost agent.
type AgentError struct{ Msg string }

func (e *AgentError) Error() string { return e.Msg }

// errWriter keeps w's error apart from the reader's.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil {
		e.err = err
	}
	return n, err
}
