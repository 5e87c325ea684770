package imagebackup

import (
	"fmt"

	"github.com/docker-dtr/docker-dtr/pkg/dtrstorage"
	"github.com/docker-dtr/docker-dtr/pkg/human"
	"github.com/docker-dtr/docker-dtr/pkg/imagearchive"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
)

type storageAnswer struct {
	backend dtrstorage.Backend
	err     error
}

// judgeStorage says whether m, the archive of volume vol, holds DTR's
// images as its storage configuration says they are kept: a backup of a
// volume that DTR does not use (its images in a bucket), or of an empty
// one, would restore nothing, and is refused rather than reported good.
func judgeStorage(a storageAnswer, m *imagearchive.Manifest, vol string, prog *progress.Printer) error {
	b := a.backend
	blobs := m.Blobs + m.OmittedBlobs
	nothing := "this backup would restore no image"
	switch {
	case a.err == nil && b.External():
		notIn := ", not in volume " + vol
		if vol == "" {
			notIn = ""
		}
		return fmt.Errorf("DTR keeps its images in %s (its setting %s)%s: %s; backup images reads filesystem, NFS and s3 storage only, nothing was written: back the %s up with its provider's tools, and DTR's metadata with backup create",
			b, b.Setting, notIn, nothing, b.Place())
	case blobs > 0 && a.err != nil:
		// As when the settings are unknown: a note, not a warning (the
		// agent may not run on the node, which has been said already).
		prog.Step("DTR's storage configuration could not be read (%v): backing up volume %s as it is, %s", a.err, vol, human.Plural(int(blobs), "blob"))
	case blobs > 0 && !b.Known():
		prog.Step("DTR's storage configuration is unknown (%s): backing up volume %s as it is, %s", b.Unknown, vol, human.Plural(int(blobs), "blob"))
	case blobs > 0:
		prog.Step("DTR keeps its images in %s (its setting %s): volume %s", b, b.Setting, vol)
	case a.err != nil:
		return fmt.Errorf("volume %s holds no image content, and DTR's storage configuration could not be read (%v): %s", vol, a.err, nothing)
	case !b.Known():
		return fmt.Errorf("volume %s holds no image content, and DTR's storage configuration is unknown (%s): %s; if DTR keeps its images in S3, Azure, GCS or Swift, back that up with its provider's tools", vol, b.Unknown, nothing)
	default:
		return fmt.Errorf("volume %s holds no image content, though DTR's setting %s says its images are there (%s): %s; check that it is the volume the replica's registry writes to", vol, b.Setting, b, nothing)
	}
	return nil
}
