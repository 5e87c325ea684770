package plugin

import (
	"fmt"
	"io"
	"os"

	"github.com/docker/cli/cli/command"
)

// openArchive opens FILE for reading, or spools standard input to a 0600
// temporary file when FILE is "-": verify and restore read an archive twice.
// The returned function closes (and removes a spool).
func openArchive(dockerCli command.Cli, name string) (*os.File, func(), error) {
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
