// Package backupfile opens backups for reading and writes new ones: an
// input is spooled when it comes on standard input, recognised when it is
// encrypted or compressed (by its bytes, not its name), and read in passes
// (Input.Pass), an encrypted or compressed one decrypted and decompressed
// anew for each, each checked to read what the first read. The plaintext
// of an encrypted backup never reaches a file. An output is written to a
// temporary name and renamed into place only when complete, compressed
// and encrypted when asked.
//
// The spool of standard input has no name from the moment it is made
// (pkg/anonfile): no kill of the process can leave it behind, and no
// other process can open it. Standard input is spooled as it arrives,
// which is ciphertext when it is encrypted.
package backupfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/docker-dtr/docker-dtr/pkg/anonfile"
	"github.com/docker-dtr/docker-dtr/pkg/crypt"
	"github.com/docker-dtr/docker-dtr/pkg/zstdstream"
)

// Input is a backup opened for reading: a plain tar file, or a stream of
// one. Close it in every case; it frees the temporary files.
type Input struct {
	// File is the plain tar file; nil when Plain is set.
	*os.File
	// Plain, set for an encrypted or a compressed backup, starts a fresh
	// decryption and decompression of it for each pass: its tar, read as
	// it is decrypted and decompressed. A Read error (the file was
	// changed or cut, found by the message's integrity check or the zstd
	// checksum at its end) means that nothing read in that pass may be
	// used.
	Plain func() (io.ReadCloser, error)
	// Compressed says that the tar is zstd-compressed (in the file, or in
	// the plaintext of an encrypted one).
	Compressed bool
	// Protection is how an encrypted backup was sealed, for sealing
	// another file the same way; nil when it was not encrypted.
	Protection *Protection
	cleanup    func()
	// sum is the SHA-256 of the plaintext that the first whole Pass read.
	passMu sync.Mutex
	sum    []byte
}

// Protection is how an encrypted backup was opened, kept to seal another
// file (a restore's safety backup) for the same secret and to open it
// again: for the passphrase that opened the backup, or to the public key
// of the identity whose secret key did.
type Protection struct {
	// To seals a file for the same secret; empty when Err says why
	// nothing can be sealed for it.
	To crypt.Recipients
	// Secrets open the backup, and what To sealed.
	Secrets crypt.Secrets
	// How says it in a few words: "encrypted with the backup's
	// passphrase", or "encrypted to key 0x…".
	How string
	// Err says why no file can be sealed for the identity that opened
	// the backup (its key cannot encrypt: expired, say).
	Err error
}

// Streamed says how a pass reads the tar of a backup that Plain reads:
// "as it is decrypted", "as it is decompressed", or both.
func (in *Input) Streamed() string {
	switch {
	case in.Protection != nil && in.Compressed:
		return "as it is decrypted and decompressed"
	case in.Protection != nil:
		return "as it is decrypted"
	}
	return "as it is decompressed"
}

// Close closes the file, which frees it when it is a temporary one.
func (in *Input) Close() {
	if in != nil && in.cleanup != nil {
		in.cleanup()
		in.cleanup = nil
	}
}

// OpenOptions are what opening may need: standard input, and the secrets
// of an encrypted backup.
type OpenOptions struct {
	// Stdin is read when the name is "-"; StdinIsTerminal refuses that.
	Stdin           io.Reader
	StdinIsTerminal bool
	// Passphrase finds the passphrase of what (the message, or a protected
	// identity key); it is asked for at most once.
	Passphrase func(what string) ([]byte, error)
	// IdentityFile is an OpenPGP secret key for a backup encrypted to a
	// public key.
	IdentityFile string
	// Log says what takes time (decrypting).
	Log func(format string, args ...any)
	// Protection, when set, opens an encrypted backup with its secrets
	// instead of asking (Passphrase and IdentityFile are not used): a
	// file sealed with the same Protection reads back without a prompt.
	Protection *Protection
}

// DisplayName is how a backup argument is named in messages.
func DisplayName(name string) string {
	if name == "-" {
		return "standard input"
	}
	return name
}

// Open opens a backup for reading, or spools standard input to an unnamed
// temporary file when name is "-". An encrypted backup (this plugin's
// --encrypt, 'gpg -c', 'gpg -e') is opened with its secrets and decrypted
// anew for each pass (Input.Plain, Input.Pass), never into a file; what a
// pass reads may be used only once it has read to its end, where the
// message's integrity check is.
func Open(name string, o OpenOptions) (*Input, error) {
	in, err := openPlain(name, o)
	if err != nil {
		return nil, err
	}
	head, err := prefix(in.File)
	if err != nil {
		in.Close()
		return nil, fmt.Errorf("reading %s: %w", DisplayName(name), err)
	}
	switch {
	case crypt.IsEncrypted(head):
		return stream(in, DisplayName(name), o)
	case zstdstream.IsCompressed(head):
		return decompressed(in, DisplayName(name), o), nil
	}
	return in, nil
}

// prefix is the first 512 bytes of f, or all of a shorter f.
func prefix(f io.ReaderAt) ([]byte, error) {
	head := make([]byte, 512)
	n, err := f.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return head[:n], nil
}

// Encrypted says whether f starts as an OpenPGP message does, from its
// first 512 bytes.
func Encrypted(f io.ReaderAt) (bool, error) {
	head, err := prefix(f)
	return crypt.IsEncrypted(head), err
}

// EncryptedFile is Encrypted of the file at path.
func EncryptedFile(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	return Encrypted(f)
}

// decryptError is the error of a decryption that failed as it read.
func decryptError(name string, err error) error {
	if errors.Is(err, crypt.ErrTampered) || errors.Is(err, crypt.ErrTruncated) {
		return fmt.Errorf("cannot decrypt %s: %w; nothing decrypted was used", name, err)
	}
	return fmt.Errorf("decrypting %s: %w", name, err)
}

// secretsFor reads how the encrypted file f (name in messages) is
// encrypted, and the secrets that may open it (openSecrets).
func secretsFor(f *os.File, name string, o OpenOptions) (crypt.Info, crypt.Secrets, error) {
	info, err := crypt.Inspect(io.NewSectionReader(f, 0, 1<<62))
	if err != nil {
		return info, crypt.Secrets{}, fmt.Errorf("cannot decrypt %s: %w", name, err)
	}
	secrets, err := openSecrets(name+" ("+info.String()+")", o)
	return info, secrets, err
}

// openSecrets are the secrets that may open the message what: the given
// Protection's, or the passphrase (asked for at most once, for the
// message and a protected identity key alike) and the identity file.
func openSecrets(what string, o OpenOptions) (crypt.Secrets, error) {
	if o.Protection != nil {
		return o.Protection.Secrets, nil
	}
	secrets := crypt.Secrets{Passphrase: sync.OnceValues(func() ([]byte, error) {
		if o.Passphrase == nil {
			return nil, fmt.Errorf("%s needs a passphrase", what)
		}
		return o.Passphrase(what)
	})}
	if o.IdentityFile != "" {
		var err error
		if secrets.Identities, err = crypt.ReadIdentity(o.IdentityFile, nil); err != nil {
			return crypt.Secrets{}, fmt.Errorf("--identity-file: %w", err)
		}
	}
	return secrets, nil
}

// protection seals for the secret that opened a message: its passphrase
// (asked already, so no prompt), or the identity's public key.
func protection(opened crypt.Opened, secrets crypt.Secrets) (*Protection, error) {
	p := &Protection{Secrets: secrets}
	if opened.Passphrase {
		pass, err := secrets.Passphrase()
		if err != nil {
			return nil, err
		}
		p.To.Passphrase, p.How = pass, "encrypted with the backup's passphrase"
		return p, nil
	}
	id, err := crypt.EncryptionKeyID(opened.Identity)
	if err != nil {
		p.How, p.Err = "not encrypted: the key that opened the backup cannot encrypt", err
		return p, nil
	}
	p.To.Keys, p.How = openpgp.EntityList{opened.Identity}, "encrypted to key "+crypt.KeyID(id)
	return p, nil
}

// temporary is an Input of an unnamed file: closing it frees the file.
func temporary(f *os.File) *Input {
	return &Input{File: f, cleanup: func() { f.Close() }}
}

// openPlain opens the file, or spools standard input.
func openPlain(name string, o OpenOptions) (*Input, error) {
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("cannot open backup: %w", err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		if st.IsDir() {
			f.Close()
			return nil, fmt.Errorf("%s is a directory: give a backup file", name)
		}
		return &Input{File: f, cleanup: func() { f.Close() }}, nil
	}
	if o.StdinIsTerminal {
		return nil, fmt.Errorf("reading a backup from standard input, but it is a terminal: pipe the backup in, or give its file name")
	}
	f, err := anonfile.Create("", "docker-dtr-stdin-*.tar")
	if err != nil {
		return nil, fmt.Errorf("spooling standard input: %w", err)
	}
	in := temporary(f)
	if _, err := io.Copy(f, o.Stdin); err != nil {
		in.Close()
		return nil, fmt.Errorf("spooling standard input: %w", err)
	}
	return in, nil
}
