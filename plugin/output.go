package plugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/docker-dtr/docker-dtr/pkg/backupfile"
	"github.com/docker-dtr/docker-dtr/pkg/exitcode"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
	"github.com/docker/cli/cli/command"
)

// backupOutput is where a backup goes (pkg/backupfile), and where its
// summary is printed.
type backupOutput struct {
	*backupfile.Output
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
	out, err := backupfile.Create(name, dockerCli.Out(), rcpt)
	if err != nil {
		return nil, err
	}
	return &backupOutput{out}, nil
}

// result prints a command's summary: JSON with --format json, else text;
// on stdout, or on stderr when stdout carries the archive (-o -).
func (o *backupOutput) result(dockerCli command.Cli, prog *progress.Printer, format string, v any, text string) error {
	w := io.Writer(dockerCli.Out())
	if o.Name == "-" {
		w = dockerCli.Err()
	}
	if format == "json" {
		return encodeJSON(w, v)
	}
	if o.Name == "-" {
		prog.Step("%s", text)
		return nil
	}
	fmt.Fprintln(w, text)
	return nil
}

// writeJSON prints v on standard output as indented JSON, as every
// --format json does.
func writeJSON(dockerCli command.Cli, v any) error { return encodeJSON(dockerCli.Out(), v) }

func encodeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
