// Package journal is the restore journal: what a restore records before it
// stops anything, so that the next command finds a restore that was killed
// and says how to finish it (--resume) or undo it (--undo). A Store keeps
// one replica's journal; where it lives is the way in's business (a
// container's labels on the replica's node, or a file in direct mode).
package journal

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Kinds of restore.
const (
	KindMetadata = "metadata"
	KindImages   = "images"
	// KindRepair is an emergency repair (docker dtr repair): the next
	// repair finishes it; it has no backup and nothing to undo.
	KindRepair = "repair"
)

// Record is one restore under way.
type Record struct {
	Kind    string    `json:"kind"`
	Replica string    `json:"replica,omitempty"` // empty in direct mode
	Node    string    `json:"node,omitempty"`
	Started time.Time `json:"started"`
	// Containers are those the restore stops, started again by --resume
	// and --undo.
	Containers []Container `json:"containers,omitempty"`
	// Tables are those a metadata restore replaces or creates, and
	// CreatedDBs the databases it creates: what --undo drops.
	Tables     []Table  `json:"tables,omitempty"`
	CreatedDBs []string `json:"createdDatabases,omitempty"`
	// Volume is the image volume an image restore writes, and
	// VolumeEmpty says it held nothing before.
	Volume      string `json:"volume,omitempty"`
	VolumeEmpty bool   `json:"volumeEmpty,omitempty"`
	// ToVolume says the image restore wrote the volume whatever DTR's
	// storage settings said (--to-volume): --resume and --undo write it
	// too, not the bucket the settings may name.
	ToVolume bool `json:"toVolume,omitempty"`
	// Backup is the backup being restored (an absolute path, or "-"), and
	// BackupSHA256 the checksum of its content, decrypted. An image
	// restore names its backup by ManifestSHA256 instead: the SHA-256 of
	// the verified backup's manifest, which names every file's size,
	// SHA-256, mode and link (and an incremental's bases by their
	// manifests), so that its verify hashes each byte once, not twice.
	// Journals before it have BackupSHA256 for image restores too.
	Backup         string `json:"backup"`
	BackupSHA256   string `json:"backupSha256,omitempty"`
	ManifestSHA256 string `json:"manifestSha256,omitempty"`
	// Safety is the safety backup (empty when none was taken), and
	// SafetySHA256 the checksum of the file as saved.
	Safety       string `json:"safety,omitempty"`
	SafetySHA256 string `json:"safetySha256,omitempty"`
	// Protection says how the safety backup is protected ("" for a plain
	// file, mode 0600).
	Protection string `json:"protection,omitempty"`
	// Owner is the run that wrote the journal, as helpercontainer.Self.
	Owner string `json:"owner,omitempty"`
}

// Container is a container the restore stops.
type Container struct {
	Name string `json:"name"`
	ID   string `json:"id"`
}

// Table is a table of a metadata restore; Existed says it was there
// before, and is replaced (else the restore creates it).
type Table struct {
	DB      string `json:"db"`
	Name    string `json:"name"`
	Existed bool   `json:"existed"`
}

// Names are the containers' names.
func (r *Record) Names() []string {
	var names []string
	for _, c := range r.Containers {
		names = append(names, c.Name)
	}
	return names
}

// Where names the target: "replica X" or "the RethinkDB at ADDR".
func (r *Record) Where() string {
	if r.Replica != "" {
		return "replica " + r.Replica
	}
	return "the database"
}

// CanUndo says whether --undo can put back what the restore replaced: from
// its safety backup, or because nothing was there before.
func (r *Record) CanUndo() bool {
	if r.Kind == KindRepair {
		return false // a repair's safety backup is restored by hand
	}
	if r.Safety != "" {
		return true
	}
	if r.Kind == KindImages {
		return r.VolumeEmpty
	}
	for _, t := range r.Tables {
		if t.Existed {
			return false
		}
	}
	return true
}

// Store keeps the journal of one target.
type Store interface {
	// Load returns the journal, or nil when there is none.
	Load(ctx context.Context) (*Record, error)
	// Save writes the journal; it fails if there is one already.
	Save(ctx context.Context, r *Record) error
	// Remove deletes the journal; none is not an error.
	Remove(ctx context.Context) error
	// Where says where the journal is kept, for messages.
	Where() string
}

// Marshal and Unmarshal are the journal's one form, wherever it is kept.
func Marshal(r *Record) (string, error) {
	b, err := json.Marshal(r)
	return string(b), err
}

func Unmarshal(s string) (*Record, error) {
	var r Record
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return nil, fmt.Errorf("the restore journal is unreadable: %w", err)
	}
	if r.Kind != KindMetadata && r.Kind != KindImages && r.Kind != KindRepair {
		return nil, fmt.Errorf("the restore journal names an unknown kind of restore %q", r.Kind)
	}
	return &r, nil
}

// SHA256 is the checksum of what r holds, from its start.
func SHA256(r io.ReaderAt) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(r, 0, 1<<62)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// FileSHA256 is the checksum of the file at path.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return SHA256(f)
}

// FileStore keeps a journal in a file: for a RethinkDB reached directly,
// which has no node to keep it on.
type FileStore struct{ Path string }

// DirectPath is the journal file of the RethinkDB at addr: in dir (the
// user's configuration directory), one per address.
func DirectPath(dir, addr string) string {
	safe := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '_'
	}, addr)
	return filepath.Join(dir, "docker-dtr", "restore-journal-"+safe+".json")
}

func (s FileStore) Load(context.Context) (*Record, error) {
	b, err := os.ReadFile(s.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the restore journal %s: %w", s.Path, err)
	}
	return Unmarshal(string(b))
}

// Save writes the file whole (a temporary file, synced, linked into place),
// and never over one that is there.
func (s FileStore) Save(_ context.Context, r *Record) error {
	data, err := Marshal(r)
	if err != nil {
		return err
	}
	dir := filepath.Dir(s.Path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("writing the restore journal: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".restore-journal-*")
	if err != nil {
		return fmt.Errorf("writing the restore journal: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// A link fails if the journal exists: two restores cannot both
		// hold it.
		err = os.Link(tmp.Name(), s.Path)
	}
	if err != nil {
		return fmt.Errorf("writing the restore journal %s: %w", s.Path, err)
	}
	return nil
}

func (s FileStore) Remove(context.Context) error {
	if err := os.Remove(s.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing the restore journal %s: %w", s.Path, err)
	}
	return nil
}

func (s FileStore) Where() string { return "file " + s.Path }
