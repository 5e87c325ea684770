package restore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"github.com/docker-dtr/docker-dtr/pkg/dtrstorage"
)

// storageReader is a Database that can say where the DTR it belongs to
// keeps its images (dtrdb.Target).
type storageReader interface {
	Storage(ctx context.Context) (dtrstorage.Backend, error)
}

// BackupStorage finds, in a verified metadata backup, where the DTR it
// was taken of kept its images: its dtr2.properties, as the agent finds
// it in a live database. A backup without that table says unknown. It
// costs a pass over the backup.
func BackupStorage(open archive.Source, rep *archive.Report) (dtrstorage.Backend, error) {
	rc, err := open()
	if err != nil {
		return dtrstorage.Backend{}, err
	}
	defer rc.Close()
	var props []dtrstorage.Property
	seen := false
	rd := archive.NewReader(rc, rep.VersionDir)
	for {
		dir, doc, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return dtrstorage.Backend{}, err
		}
		t, ok := rep.Table(dir)
		isProps := ok && t.DB == "dtr2" && t.Name == "properties"
		if !isProps {
			if seen {
				break // a table's documents come together: it is over
			}
			continue
		}
		seen = true
		var p dtrstorage.Property
		if json.Unmarshal(doc, &p) == nil {
			props = append(props, p)
		}
	}
	// Read to its end: only then has the pass been checked against the
	// verified one (and an encrypted one's integrity).
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return dtrstorage.Backend{}, err
	}
	if !seen {
		return dtrstorage.Backend{Unknown: "the backup holds no dtr2.properties documents"}, nil
	}
	return dtrstorage.FromProperties(props), nil
}

// StorageDifference says how the storage a backup's DTR used differs from
// the target's, in driver, bucket or container, or root directory; empty
// when they agree or either is unknown. DTR's guidance is never to change
// storage between a backup and its restore: the restored settings point
// the registry at the backup's storage.
func StorageDifference(backup, target dtrstorage.Backend) string {
	if !backup.Known() || !target.Known() {
		return ""
	}
	var diff []string
	if backup.Driver != target.Driver {
		diff = append(diff, fmt.Sprintf("driver %s, the target's %s", backup.Driver, target.Driver))
	}
	if backup.Bucket != target.Bucket {
		diff = append(diff, fmt.Sprintf("bucket %q, the target's %q", backup.Bucket, target.Bucket))
	}
	if backup.Container != target.Container {
		diff = append(diff, fmt.Sprintf("container %q, the target's %q", backup.Container, target.Container))
	}
	if backup.RootDirectory != target.RootDirectory {
		diff = append(diff, fmt.Sprintf("root directory %q, the target's %q", backup.RootDirectory, target.RootDirectory))
	}
	if len(diff) == 0 {
		return ""
	}
	return fmt.Sprintf("the backup's DTR kept its images in %s, the target keeps them in %s (%s)", backup, target, strings.Join(diff, "; "))
}
