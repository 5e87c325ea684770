package imagebackup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/version"
	"github.com/docker-dtr/docker-dtr/pkg/dtrstorage"
	"github.com/docker-dtr/docker-dtr/pkg/imagearchive"
	"github.com/docker-dtr/docker-dtr/pkg/imagevolume"
)

// storageWait bounds the wait for DTR's storage settings: a database that
// does not answer must not hold a backup of what the volume holds (a lost
// majority is when it matters most); the helper and the read take a
// second or so.
const storageWait = 20 * time.Second

// errNotBucket ends the bucket's read after the settings' line: DTR does
// not keep its images in an s3 bucket.
var errNotBucket = errors.New("DTR does not keep its images in an s3 bucket")

// probe is the bucket's read, started before DTR's storage settings are
// known: its agent reads them, says what they are (answer), and on s3
// goes on to list the bucket, whose send waits until the backup takes it
// (bucket). One helper both tells where DTR keeps its images and reads
// them there: no database helper's start before the bucket's, and no
// second read of the settings.
type probe struct {
	answers chan storageAnswer
	tell    sync.Once
	use     chan struct{}
	useOnce sync.Once
	cancel  context.CancelFunc
	result  bucketResult
	done    chan struct{}
	answer  func() storageAnswer
}

type bucketResult struct {
	m   *imagearchive.Manifest
	err error
}

// bucketRead reads the bucket (writeBucket): storage gets DTR's settings
// first, and its error ends the read before anything is written.
type bucketRead func(ctx context.Context, storage func(dtrstorage.Backend) error) (*imagearchive.Manifest, error)

// startProbe starts read; nothing is written before bucket is called.
func startProbe(ctx context.Context, read bucketRead) *probe {
	pctx, cancel := context.WithCancel(ctx)
	p := &probe{answers: make(chan storageAnswer, 1), use: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
	p.answer = sync.OnceValue(func() storageAnswer {
		select {
		case a := <-p.answers:
			return a
		case <-ctx.Done():
			return storageAnswer{err: ctx.Err()}
		case <-time.After(storageWait):
			p.cancel()
			return storageAnswer{err: fmt.Errorf("no answer within %s", storageWait)}
		}
	})
	go func() {
		defer close(p.done)
		m, err := read(pctx, p.storage)
		if err != nil {
			// Failed before its settings' line: that is the answer.
			p.say(storageAnswer{err: err})
		}
		p.result = bucketResult{m, err}
	}()
	return p
}

func (p *probe) say(a storageAnswer) { p.tell.Do(func() { p.answers <- a }) }

// storage is the agent's settings' line: the answer; on s3, the send
// waits until the backup takes the bucket, or ends.
func (p *probe) storage(b dtrstorage.Backend) error {
	p.say(storageAnswer{backend: b})
	if b.Driver != "s3" {
		return errNotBucket
	}
	<-p.use
	return nil
}

// bucket backs up the bucket (its settings said s3): the result of the
// probe's read.
func (p *probe) bucket() (*imagearchive.Manifest, error) {
	p.useOnce.Do(func() { close(p.use) })
	<-p.done
	return p.result.m, p.result.err
}

// stop ends the probe's read, if the backup did not take it, and waits
// for its helper to be gone.
func (p *probe) stop() {
	p.cancel()
	p.useOnce.Do(func() { close(p.use) })
	<-p.done
}

// writeBucket backs up DTR's s3 bucket: the agent reads DTR's settings
// and hands them to storage, then, if it returns nil, lists the bucket
// and sends it (incremental: what the bases lack) in the volume's tar
// shape (imagevolume.Bucket), so the archive is the same as a volume's.
func writeBucket(ctx context.Context, api imagevolume.API, out io.Writer, o Options, storage func(dtrstorage.Backend) error) (*imagearchive.Manifest, error) {
	rep, prog := o.Replica, o.Progress
	vol := *o.Volume
	vol.InBucket(dtrstorage.Backend{}) // as the agent's first line says
	o.Volume = &vol
	info := imagearchive.Info{
		Tool: version.Tool(), DTRVersion: rep.Version, ReplicaID: rep.ID, Node: rep.Node,
		Volume: vol.Name, VolumeDriver: vol.Driver, Started: time.Now(),
	}
	m, err := writeSelected(ctx, api, out, info, o, nil, func(b dtrstorage.Backend) error {
		if err := storage(b); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		prog.Step("DTR keeps its images in %s (its setting %s): reading the bucket through a helper container on node %s", b, b.Setting, rep.Node)
		return nil
	})
	if err != nil {
		return nil, err
	}
	b := vol.Bucket.Backend
	if m.Blobs+m.OmittedBlobs == 0 {
		return nil, fmt.Errorf("%s holds no image content, though DTR's setting %s says its images are there: this backup would restore no image; check the bucket and its root directory", b, b.Setting)
	}
	return m, nil
}
