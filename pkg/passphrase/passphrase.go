// Package passphrase finds a backup's passphrase, never in a flag's value:
// a file (its first line, as 'gpg --passphrase-file' reads it), the
// environment ($DTR_BACKUP_PASSPHRASE), or the terminal, asked twice for a
// new backup.
package passphrase

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/moby/term"
)

// Env holds a backup passphrase for jobs that cannot use a file.
const Env = "DTR_BACKUP_PASSPHRASE"

// Terminal is standard input, which may be a terminal to ask on.
type Terminal interface {
	io.Reader
	FD() uintptr
	IsTerminal() bool
}

// Source finds a passphrase: File, then the environment, then the terminal
// In, prompting on Prompt (asked twice when Confirm, as when a new backup
// is encrypted).
type Source struct {
	File    string
	In      Terminal
	Prompt  io.Writer
	Confirm bool
	// What names what the passphrase is for in the prompt and errors.
	What string
}

// Get returns the passphrase.
func (p Source) Get() ([]byte, error) {
	if p.File != "" {
		return ReadFile(p.File)
	}
	if v, ok := os.LookupEnv(Env); ok {
		if v == "" {
			return nil, fmt.Errorf("$%s is set but empty: set the passphrase, or unset it", Env)
		}
		return []byte(v), nil
	}
	if !p.In.IsTerminal() {
		return nil, fmt.Errorf("%s needs a passphrase: give --passphrase-file FILE, set $%s, or run on a terminal", p.What, Env)
	}
	first, err := p.ask("Passphrase for " + p.What + ": ")
	if err != nil {
		return nil, err
	}
	if len(first) == 0 {
		return nil, errors.New("the passphrase is empty")
	}
	if p.Confirm {
		again, err := p.ask("The same passphrase again: ")
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(first, again) {
			return nil, errors.New("the two passphrases differ: nothing was written")
		}
	}
	return first, nil
}

// Available says a passphrase can be had without asking anyone: from
// file, or the environment.
func Available(file string) bool {
	_, set := os.LookupEnv(Env)
	return file != "" || set
}

// ask reads a line from the terminal without echo.
func (p Source) ask(question string) ([]byte, error) {
	fd := p.In.FD()
	state, err := term.SaveState(fd)
	if err != nil {
		return nil, err
	}
	if err := term.DisableEcho(fd, state); err != nil {
		return nil, err
	}
	defer func() {
		term.RestoreTerminal(fd, state)
		fmt.Fprintln(p.Prompt)
	}()
	fmt.Fprint(p.Prompt, question)
	line, err := bufio.NewReader(p.In).ReadString('\n')
	if err != nil && line == "" {
		return nil, fmt.Errorf("reading the passphrase: %w", err)
	}
	return []byte(strings.TrimRight(line, "\r\n")), nil
}

// ReadFile takes the first line of the file name (--passphrase-file), as
// 'gpg --passphrase-file' does.
func ReadFile(name string) ([]byte, error) {
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
