package plugin

import (
	"errors"
	"fmt"
	"io"

	"github.com/docker-dtr/docker-dtr/pkg/atomicfile"
	"github.com/docker-dtr/docker-dtr/pkg/crypt"
	"github.com/docker-dtr/docker-dtr/pkg/exitcode"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
	"github.com/docker/cli/cli/command"
)

// backupOutput is where a backup goes: a file written to a temporary name
// and renamed when complete, or standard output.
type backupOutput struct {
	name string
	w    io.Writer
	file *atomicfile.File
	// enc, when encrypting, is the OpenPGP message w writes into.
	enc io.WriteCloser
}

// checkOutput checks -o before anything else happens.
func checkOutput(dockerCli command.Cli, name string) error {
	if name == "" {
		return exitcode.UsageError(errors.New("-o/--output is required: a file name, or - for standard output"))
	}
	if name == "-" && dockerCli.Out().IsTerminal() {
		return errors.New("refusing to write a backup to a terminal: use -o FILE, or redirect standard output")
	}
	return nil
}

// openOutput opens the output; a path that cannot be written fails here,
// before any query. Abort it in every case (a no-op after Commit).
func openOutput(dockerCli command.Cli, name string) (*backupOutput, error) {
	o := &backupOutput{name: name, w: dockerCli.Out()}
	if name != "-" {
		f, err := atomicfile.Create(name)
		if err != nil {
			return nil, err
		}
		o.file, o.w = f, f
	}
	return o, nil
}

func (o *backupOutput) Write(p []byte) (int, error) { return o.w.Write(p) }

// openBackup reads what encryption needs (keys, or a passphrase that may be
// asked for), then opens the output, encrypting when asked: all before any
// query, so a bad flag or an unwritable path changes nothing. Abort it in
// every case.
func openBackup(dockerCli command.Cli, name string, enc *encryptOptions) (*backupOutput, error) {
	if err := enc.validate(); err != nil {
		return nil, err
	}
	rcpt, err := enc.recipients(dockerCli)
	if err != nil {
		return nil, err
	}
	out, err := openOutput(dockerCli, name)
	if err != nil {
		return nil, err
	}
	if err := out.encrypt(rcpt); err != nil {
		out.Abort()
		return nil, err
	}
	return out, nil
}

// encrypt makes what is written from now on an OpenPGP message to rcpt.
func (o *backupOutput) encrypt(rcpt *crypt.Recipients) error {
	if rcpt == nil {
		return nil
	}
	enc, err := crypt.Encrypt(o.w, *rcpt)
	if err != nil {
		return err
	}
	o.enc, o.w = enc, enc
	return nil
}

// Commit ends the encrypted message, if any, and renames the finished file
// into place.
func (o *backupOutput) Commit() error {
	if o.enc != nil {
		if err := o.enc.Close(); err != nil {
			return fmt.Errorf("finishing the encrypted backup: %w", err)
		}
		o.enc = nil
	}
	if o.file == nil {
		return nil
	}
	return o.file.Commit()
}

// Abort removes an unfinished file.
func (o *backupOutput) Abort() {
	if o.file != nil {
		o.file.Abort()
	}
}

// summary prints the result on stdout, or on stderr when stdout carries
// the archive.
func (o *backupOutput) summary(dockerCli command.Cli, prog *progress.Printer, format string, args ...any) {
	if o.name == "-" {
		prog.Step(format, args...)
		return
	}
	fmt.Fprintf(dockerCli.Out(), format+"\n", args...)
}
