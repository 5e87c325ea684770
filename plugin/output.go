package plugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/docker-dtr/docker-dtr/pkg/backupfile"
	"github.com/docker-dtr/docker-dtr/pkg/exitcode"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/pflag"
)

// backupOutput is where a backup goes (pkg/backupfile), and where its
// summary is printed.
type backupOutput struct {
	*backupfile.Output
}

// outputHelp is the paragraph of the help of the commands that write a
// backup to -o FILE, on its temporary file.
const outputHelp = `The backup is written to a hidden 0600 file beside the -o file
(.NAME.tmp-NNN), locked while it is written and renamed to NAME once
complete. A run that is killed leaves that file: the next 'backup create'
or 'backup images' into the same directory removes it, as 'backup prune'
does, and says so on stderr (not with --quiet). The file of a backup that
is still running is never touched.
`

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
// asked for), then opens the output, compressing and encrypting when
// asked: all before any query, so a bad flag or an unwritable path changes
// nothing. Abort it in every case.
func openBackup(dockerCli command.Cli, name string, enc *encryptOptions, compress bool) (*backupOutput, error) {
	if err := enc.validate(); err != nil {
		return nil, err
	}
	rcpt, err := enc.recipients(dockerCli)
	if err != nil {
		return nil, err
	}
	out, err := backupfile.Create(name, dockerCli.Out(), rcpt, compress)
	if err != nil {
		return nil, err
	}
	return &backupOutput{out}, nil
}

// compressedHelp is the paragraph of the help of the commands that read
// backups, on compressed ones.
const compressedHelp = `A zstd-compressed backup ('backup create -o NAME.tar.zst', or 'zstd' of a
plain one), encrypted or not, is recognised by its bytes, not its name,
and decompressed as it is read, after the decryption, anew for each pass;
a damaged or cut one fails with an error naming the file.
`

// compressOptions is the --compress flag of 'backup create'.
type compressOptions struct {
	mode string
}

func (o *compressOptions) addFlags(flags *pflag.FlagSet) {
	flags.StringVar(&o.mode, "compress", "", `Compress the archive: "zstd" or "none" (default: zstd when the -o name ends in .zst or .tzst, .gpg after it or not)`)
}

// compress says whether the backup written to output is compressed: as
// --compress says, or else as the file's name does.
func (o compressOptions) compress(output string) (bool, error) {
	switch o.mode {
	case "":
		return zstdName(output), nil
	case "zstd":
		return true, nil
	case "none":
		if zstdName(output) {
			return false, exitcode.UsageError(fmt.Errorf("--compress none, but -o %s is named as a zstd file: name it without .zst, or leave --compress out", output))
		}
		return false, nil
	}
	return false, exitcode.UsageError(fmt.Errorf("--compress %q: expected zstd or none", o.mode))
}

// zstdName says whether a file's name says that it is zstd-compressed:
// NAME.zst or NAME.tzst, and the same with .gpg, .pgp or .asc after it.
func zstdName(name string) bool {
	base := strings.ToLower(filepath.Base(name))
	for _, enc := range []string{".gpg", ".pgp", ".asc"} {
		base = strings.TrimSuffix(base, enc)
	}
	return strings.HasSuffix(base, ".zst") || strings.HasSuffix(base, ".tzst")
}

// reportSwept says on stderr which temporary files of killed runs opening
// the output removed from its directory (nothing with --quiet), and warns
// of those it could not.
func (o *backupOutput) reportSwept(prog *progress.Printer) {
	for _, p := range o.Swept {
		prog.Step("removed %s, the temporary file of a backup that was killed", p)
	}
	for _, err := range o.SweepErrors {
		prog.Warn("cannot remove the temporary file of a backup that was killed: %v", err)
	}
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
