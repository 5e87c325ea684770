package agent

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/bucket"
	"github.com/docker-dtr/docker-dtr/pkg/dtrstorage"
	"github.com/docker-dtr/docker-dtr/pkg/remotedb"
)

// settingsTimeout bounds reading DTR's storage settings.
const settingsTimeout = 30 * time.Second

// openBucket reads DTR's storage settings from the RethinkDB at db (with
// DTR's client certificate, as --db does) and opens the bucket they name:
// the credentials stay in this process.
func openBucket(ctx context.Context, db, caRoot string) (*bucket.Bucket, error) {
	b, params, err := readSettings(ctx, db, caRoot)
	if err != nil {
		return nil, err
	}
	if !b.Known() {
		return nil, fmt.Errorf("DTR's storage configuration is %s", b)
	}
	return bucket.Open(ctx, b, params)
}

// readSettings reads DTR's storage settings from the RethinkDB at db, with
// the driver's parameters (credentials too: they stay in this process).
func readSettings(ctx context.Context, db, caRoot string) (dtrstorage.Backend, map[string]any, error) {
	sctx, cancel := context.WithTimeout(ctx, settingsTimeout)
	defer cancel()
	sess, err := remotedb.Dial(db, caRoot)(sctx, 1)
	if err != nil {
		return dtrstorage.Backend{}, nil, err
	}
	b, params, err := dtrstorage.ReadConfig(sctx, sess)
	sess.Close()
	if err != nil {
		return dtrstorage.Backend{}, nil, fmt.Errorf("reading DTR's storage settings: %w", err)
	}
	return b, params, nil
}

// sendBucket is --bucket --send: the settings as the first line (a
// ListEntry of type "storage", no credential), then, on s3 only, the send
// protocol on the bucket. The plugin starts this helper before it knows
// where DTR keeps its images: one helper both tells it and, on s3, reads
// the bucket, without a second read of the settings or a second helper's
// start. On any other storage the agent exits after that line.
func sendBucket(ctx context.Context, o Options, top string, stdin io.Reader, stdout io.Writer, idle time.Duration) error {
	b, params, err := readSettings(ctx, o.Bucket, o.CARoot)
	if err != nil {
		return err
	}
	if err := json.NewEncoder(stdout).Encode(ListEntry{Type: "storage", Storage: &b}); err != nil {
		return err
	}
	if b.Driver != "s3" {
		return nil
	}
	bk, err := bucket.Open(ctx, b, params)
	if err != nil {
		return err
	}
	if err := SendBucket(ctx, bk, top, stdin, stdout, idle); err != nil {
		return fmt.Errorf("%s: %w", b, err)
	}
	return nil
}

// ReceiveEnd is the line the plugin sends after the tar a receive
// writes: a stream cut short at an entry's end (its plugin gone) ends
// without it, which a tar alone would not tell.
const ReceiveEnd = "end\n"

// receive writes the tar on r into the bucket: each regular file as an
// object at its name (relative to the mount point, as the engine's
// archive API takes it), then expects ReceiveEnd. S3 has no directories:
// they, and links, are not written. What a failed receive wrote stays,
// for the plugin's rollback.
func receive(ctx context.Context, b *bucket.Bucket, r io.Reader, out io.Writer) error {
	tr := tar.NewReader(r)
	var files, bytes, skipped int64
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the plugin's tar: %w", err)
		}
		name := strings.TrimPrefix(path.Clean("/"+hdr.Name), "/")
		switch hdr.Typeflag {
		case tar.TypeReg:
		case tar.TypeDir:
			continue
		default:
			skipped++
			continue
		}
		if name == "" || name == "." {
			continue
		}
		if err := b.Put(ctx, name, tr, hdr.Size); err != nil {
			return fmt.Errorf("writing to %s: %w", b.Backend, err)
		}
		files++
		bytes += hdr.Size
	}
	end, err := io.ReadAll(io.LimitReader(r, int64(len(ReceiveEnd))+1))
	if err != nil || string(end) != ReceiveEnd {
		return fmt.Errorf("the plugin's stream ended without its end line, after %d files: taking the plugin for gone", files)
	}
	fmt.Fprintf(out, "wrote %d files, %d bytes; skipped %d links\n", files, bytes, skipped)
	return nil
}
