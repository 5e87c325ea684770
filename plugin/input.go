package plugin

import (
	"fmt"

	"github.com/docker-dtr/docker-dtr/pkg/backupfile"
	"github.com/docker-dtr/docker-dtr/pkg/imagearchive"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
	"github.com/docker-dtr/docker-dtr/pkg/verify"
	"github.com/docker/cli/cli/command"
)

// openInput opens a backup argument for reading (pkg/backupfile): FILE,
// or standard input for "-" (spooled as it arrives, ciphertext when it is
// encrypted), keeping how it was encrypted (Input.Protection) for a
// restore's safety backup. Each pass (Input.Pass) of an encrypted backup
// decrypts it anew, so that no plaintext reaches the disk. Close it; it
// frees the spool of standard input.
func openInput(dockerCli command.Cli, name string, dec decryptOptions, prog *progress.Printer) (*backupfile.Input, error) {
	return backupfile.Open(name, dec.openOptions(dockerCli, prog))
}

// openRestorable is openInput, with the name messages give it and whether it
// is an image backup (what a restore does with it depends on that).
func openRestorable(dockerCli command.Cli, file string, dec decryptOptions, prog *progress.Printer) (in *backupfile.Input, name string, images bool, err error) {
	if in, err = openInput(dockerCli, file, dec, prog); err != nil {
		return nil, "", false, err
	}
	if images, err = verify.IsImages(in); err != nil {
		in.Close()
		return nil, "", false, err
	}
	return in, displayName(file), images, nil
}

// openOptions are the flags' secrets, standard input, and where opening
// says what it does.
func (o decryptOptions) openOptions(dockerCli command.Cli, prog *progress.Printer) backupfile.OpenOptions {
	return backupfile.OpenOptions{
		Stdin:           dockerCli.In(),
		StdinIsTerminal: dockerCli.In().IsTerminal(),
		Passphrase: func(what string) ([]byte, error) {
			return passphraseSource(dockerCli, o.passphraseFile, what, false).Get()
		},
		IdentityFile: o.identityFile,
		Log:          prog.Step,
	}
}

// chainDecrypter opens the encrypted earlier backups of an incremental
// image backup, in: with the secret that opened in (no second prompt), or
// else with the flags'. Each is decrypted as it is read, anew for each
// read.
func chainDecrypter(dockerCli command.Cli, dec decryptOptions, in *backupfile.Input, prog *progress.Printer) imagearchive.Decrypter {
	return func(path string) (imagearchive.Source, func(), error) {
		o := dec.openOptions(dockerCli, prog)
		if in != nil && in.Protection != nil {
			o.Protection = in.Protection
		}
		base, err := backupfile.Open(path, o)
		if err != nil {
			return nil, nil, err
		}
		if base.Plain == nil {
			base.Close()
			return nil, nil, fmt.Errorf("%s is not encrypted", path)
		}
		return base.Plain, base.Close, nil
	}
}

// displayName is how a backup argument is named in messages.
func displayName(name string) string { return backupfile.DisplayName(name) }
