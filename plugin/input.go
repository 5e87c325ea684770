package plugin

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/docker-dtr/docker-dtr/pkg/crypt"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
	"github.com/docker/cli/cli/command"
)

// openArchive opens FILE for reading, or spools standard input to a 0600
// temporary file when FILE is "-": verify and restore read an archive twice.
// An encrypted backup (this plugin's --encrypt, 'gpg -c', 'gpg -e') is
// decrypted into a 0600 temporary file first, and only handed on once the
// message's integrity check at its end has passed. The returned function
// closes (and removes the temporary files).
func openArchive(dockerCli command.Cli, name string, dec decryptOptions, prog *progress.Printer) (*os.File, func(), error) {
	f, done, err := openPlain(dockerCli, name)
	if err != nil {
		return nil, nil, err
	}
	prefix := make([]byte, 512)
	n, err := f.ReadAt(prefix, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		done()
		return nil, nil, fmt.Errorf("reading %s: %w", displayName(name), err)
	}
	if !crypt.IsEncrypted(prefix[:n]) {
		return f, done, nil
	}
	defer done()
	plain, err := decryptArchive(dockerCli, f, displayName(name), dec, prog)
	if err != nil {
		return nil, nil, err
	}
	return plain, func() { plain.Close(); os.Remove(plain.Name()) }, nil
}

// decryptArchive writes the plaintext of f to a private temporary file.
func decryptArchive(dockerCli command.Cli, f *os.File, name string, dec decryptOptions, prog *progress.Printer) (*os.File, error) {
	info, err := crypt.Inspect(io.NewSectionReader(f, 0, 1<<62))
	if err != nil {
		return nil, fmt.Errorf("cannot decrypt %s: %w", name, err)
	}
	// One passphrase, asked for at most once, serves the message and a
	// protected identity key.
	src := passphraseSource{dockerCli: dockerCli, file: dec.passphraseFile, what: name + " (" + info.String() + ")"}
	passphrase := sync.OnceValues(src.get)
	secrets := crypt.Secrets{Passphrase: passphrase}
	if dec.identityFile != "" {
		if secrets.Identities, err = crypt.ReadIdentity(dec.identityFile, nil); err != nil {
			return nil, fmt.Errorf("--identity-file: %w", err)
		}
	}
	prog.Step("decrypting %s (%s) into a private temporary file", name, info)
	r, err := crypt.Decrypt(io.NewSectionReader(f, 0, 1<<62), secrets)
	if err != nil {
		return nil, fmt.Errorf("cannot decrypt %s: %w", name, err)
	}
	plain, err := os.CreateTemp("", "docker-dtr-decrypted-*.tar")
	if err != nil {
		return nil, fmt.Errorf("decrypting %s: %w", name, err)
	}
	if _, err := io.Copy(plain, r); err != nil {
		plain.Close()
		os.Remove(plain.Name())
		if errors.Is(err, crypt.ErrTampered) || errors.Is(err, crypt.ErrTruncated) {
			return nil, fmt.Errorf("cannot decrypt %s: %w; nothing decrypted was used", name, err)
		}
		return nil, fmt.Errorf("decrypting %s: %w", name, err)
	}
	return plain, nil
}

// openPlain opens the file, or spools standard input.
func openPlain(dockerCli command.Cli, name string) (*os.File, func(), error) {
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, nil, fmt.Errorf("cannot open backup: %w", err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, nil, err
		}
		if st.IsDir() {
			f.Close()
			return nil, nil, fmt.Errorf("%s is a directory: give a backup file", name)
		}
		return f, func() { f.Close() }, nil
	}
	if dockerCli.In().IsTerminal() {
		return nil, nil, fmt.Errorf("reading a backup from standard input, but it is a terminal: pipe the backup in, or give its file name")
	}
	f, err := os.CreateTemp("", "docker-dtr-stdin-*.tar")
	if err != nil {
		return nil, nil, fmt.Errorf("spooling standard input: %w", err)
	}
	cleanup := func() { f.Close(); os.Remove(f.Name()) }
	if _, err := io.Copy(f, dockerCli.In()); err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("spooling standard input: %w", err)
	}
	return f, cleanup, nil
}

// displayName is how a backup argument is named in messages.
func displayName(name string) string {
	if name == "-" {
		return "standard input"
	}
	return name
}
