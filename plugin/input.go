package plugin

import (
	"github.com/docker-dtr/docker-dtr/pkg/backupfile"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
	"github.com/docker/cli/cli/command"
)

// openInput opens a backup argument for reading (pkg/backupfile): FILE,
// or standard input for "-", decrypted when encrypted, keeping how it was
// encrypted (Input.Protection) for a restore's safety backup. Close it; it
// removes the temporary files.
func openInput(dockerCli command.Cli, name string, dec decryptOptions, prog *progress.Printer) (*backupfile.Input, error) {
	return backupfile.Open(name, dec.openOptions(dockerCli, prog))
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

// displayName is how a backup argument is named in messages.
func displayName(name string) string { return backupfile.DisplayName(name) }
