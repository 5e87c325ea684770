package plugin

import (
	"errors"
	"fmt"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/docker-dtr/docker-dtr/pkg/crypt"
	"github.com/docker-dtr/docker-dtr/pkg/human"
	"github.com/docker-dtr/docker-dtr/pkg/passphrase"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/pflag"
)

// passphraseEnv holds a backup passphrase for jobs that cannot use a file.
const passphraseEnv = passphrase.Env

// encryptHelp is the paragraph of the help of the commands that write
// backups about their encryption flags.
const encryptHelp = `With --encrypt the backup is an OpenPGP message (AES-256, the format gpg
2.2 reads) that 'gpg -d' decrypts, sealed with a passphrase from
--passphrase-file, $DTR_BACKUP_PASSPHRASE or the terminal (asked twice);
--recipient-file encrypts to public keys instead, so that an unattended job
holds no secret. verify, inspect and restore decrypt it themselves.
`

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
	p, err := passphraseSource(dockerCli, o.passphraseFile, "the new backup", true).Get()
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

// passphraseSource asks on the terminal of the Docker CLI's streams.
func passphraseSource(dockerCli command.Cli, file, what string, confirm bool) passphrase.Source {
	return passphrase.Source{File: file, In: dockerCli.In(), Prompt: dockerCli.Err(), Confirm: confirm, What: what}
}
