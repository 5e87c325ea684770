package plugin

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/docker-dtr/docker-dtr/pkg/crypt"
	"github.com/docker-dtr/docker-dtr/pkg/human"
	"github.com/docker/cli/cli/command"
	"github.com/moby/term"
	"github.com/spf13/pflag"
)

// passphraseEnv holds a backup passphrase for jobs that cannot use a file.
const passphraseEnv = "DTR_BACKUP_PASSPHRASE"

// encryptOptions are the encryption flags of the commands that write
// backups. Secrets never come from a flag's value: only files, the
// environment or a terminal.
type encryptOptions struct {
	encrypt        bool
	passphraseFile string
	recipientFiles []string
}

func (o *encryptOptions) addFlags(flags *pflag.FlagSet) {
	flags.BoolVar(&o.encrypt, "encrypt", false, "Encrypt the backup (OpenPGP, AES-256; 'gpg -d' decrypts it) with a passphrase from --passphrase-file, $"+passphraseEnv+" or the terminal")
	flags.StringVar(&o.passphraseFile, "passphrase-file", "", "File whose first line is the passphrase (with --encrypt)")
	flags.StringArrayVar(&o.recipientFiles, "recipient-file", nil, "Encrypt to the OpenPGP public key in this file instead of a passphrase (repeatable; implies --encrypt)")
}

func (o *encryptOptions) enabled() bool { return o.encrypt || len(o.recipientFiles) > 0 }

// validate checks the flags before anything happens.
func (o *encryptOptions) validate() error {
	if o.passphraseFile != "" && !o.encrypt {
		return errors.New("--passphrase-file needs --encrypt: the backup is written in the clear without it")
	}
	if o.passphraseFile != "" && len(o.recipientFiles) > 0 {
		return errors.New("--passphrase-file and --recipient-file: give one; a backup is encrypted with a passphrase or to public keys")
	}
	return nil
}

// recipients reads the keys or the passphrase; nil when not encrypting.
func (o *encryptOptions) recipients(dockerCli command.Cli) (*crypt.Recipients, error) {
	if !o.enabled() {
		return nil, nil
	}
	if len(o.recipientFiles) > 0 {
		var keys openpgp.EntityList
		for _, name := range o.recipientFiles {
			el, err := crypt.ReadRecipients(name)
			if err != nil {
				return nil, fmt.Errorf("--recipient-file: %w", err)
			}
			keys = append(keys, el...)
		}
		return &crypt.Recipients{Keys: keys}, nil
	}
	p, err := passphraseSource{dockerCli: dockerCli, file: o.passphraseFile, confirm: true, what: "the new backup"}.get()
	if err != nil {
		return nil, err
	}
	return &crypt.Recipients{Passphrase: p}, nil
}

// describe says how a backup was encrypted, for the summary.
func (o *encryptOptions) describe() string {
	switch {
	case !o.enabled():
		return ""
	case len(o.recipientFiles) > 0:
		return ", encrypted to " + human.Plural(len(o.recipientFiles), "recipient file")
	}
	return ", encrypted with a passphrase"
}

// decryptOptions are the flags of the commands that read backups, which
// may be encrypted (by this plugin, 'gpg -c' or 'gpg -e').
type decryptOptions struct {
	passphraseFile string
	identityFile   string
}

func (o *decryptOptions) addFlags(flags *pflag.FlagSet) {
	flags.StringVar(&o.passphraseFile, "passphrase-file", "", "File whose first line is the passphrase of an encrypted backup (or of --identity-file's key); else $"+passphraseEnv+" or the terminal")
	flags.StringVar(&o.identityFile, "identity-file", "", "OpenPGP secret key for a backup encrypted to a public key ('gpg --export-secret-keys')")
}

// passphraseSource finds a passphrase: --passphrase-file, then the
// environment, then the terminal (asked twice when confirm, as when a new
// backup is encrypted).
type passphraseSource struct {
	dockerCli command.Cli
	file      string
	confirm   bool
	// what names what the passphrase is for in the prompt and errors.
	what string
}

func (p passphraseSource) get() ([]byte, error) {
	if p.file != "" {
		return readPassphraseFile(p.file)
	}
	if v, ok := os.LookupEnv(passphraseEnv); ok {
		if v == "" {
			return nil, fmt.Errorf("$%s is set but empty: set the passphrase, or unset it", passphraseEnv)
		}
		return []byte(v), nil
	}
	in := p.dockerCli.In()
	if !in.IsTerminal() {
		return nil, fmt.Errorf("%s needs a passphrase: give --passphrase-file FILE, set $%s, or run on a terminal", p.what, passphraseEnv)
	}
	first, err := p.prompt("Passphrase for " + p.what + ": ")
	if err != nil {
		return nil, err
	}
	if len(first) == 0 {
		return nil, errors.New("the passphrase is empty")
	}
	if p.confirm {
		again, err := p.prompt("The same passphrase again: ")
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(first, again) {
			return nil, errors.New("the two passphrases differ: nothing was written")
		}
	}
	return first, nil
}

// prompt reads a line from the terminal without echo.
func (p passphraseSource) prompt(question string) ([]byte, error) {
	in := p.dockerCli.In()
	fd := in.FD()
	state, err := term.SaveState(fd)
	if err != nil {
		return nil, err
	}
	if err := term.DisableEcho(fd, state); err != nil {
		return nil, err
	}
	defer func() {
		term.RestoreTerminal(fd, state)
		fmt.Fprintln(p.dockerCli.Err())
	}()
	fmt.Fprint(p.dockerCli.Err(), question)
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && line == "" {
		return nil, fmt.Errorf("reading the passphrase: %w", err)
	}
	return []byte(strings.TrimRight(line, "\r\n")), nil
}

// readPassphraseFile takes the first line, as 'gpg --passphrase-file' does.
func readPassphraseFile(name string) ([]byte, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("--passphrase-file: %w", err)
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	line = bytes.TrimRight(line, "\r")
	if len(line) == 0 {
		return nil, fmt.Errorf("--passphrase-file %s: its first line is empty: put the passphrase there", name)
	}
	return line, nil
}
