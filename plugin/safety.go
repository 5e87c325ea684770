package plugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/backupfile"
	"github.com/docker-dtr/docker-dtr/pkg/exitcode"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/pflag"
)

// safetyOptions say where a restore saves what it is about to replace, so
// that a failed restore can put it back.
type safetyOptions struct {
	dir  string
	skip bool
	// encryption is --safety-encryption: "same" (as the backup restored)
	// or "none" (in clear).
	encryption string
}

func (o *safetyOptions) addFlags(flags *pflag.FlagSet) {
	flags.StringVar(&o.dir, "safety-dir", "", "Directory for the safety backup of what the restore replaces (default: beside FILE; the current directory for standard input)")
	flags.BoolVar(&o.skip, "no-safety-backup", false, "Replace without saving a safety backup first: a failed restore cannot then be rolled back")
	flags.StringVar(&o.encryption, "safety-encryption", "same", `How the safety backup of an encrypted backup is written: "same" encrypts it like the backup (for its passphrase, or to the public key of --identity-file's key), "none" writes it in clear, mode 0600, which puts DTR's private keys in clear beside the backup`)
}

// validate checks --safety-dir and --safety-encryption before anything
// happens.
func (o *safetyOptions) validate() error {
	if o.encryption != "same" && o.encryption != "none" {
		return exitcode.UsageError(fmt.Errorf("--safety-encryption %q: expected \"same\" or \"none\"", o.encryption))
	}
	if o.dir == "" {
		return nil
	}
	if o.skip {
		return exitcode.UsageError(errors.New("--safety-dir and --no-safety-backup contradict each other: give one"))
	}
	st, err := os.Stat(o.dir)
	if err != nil {
		return fmt.Errorf("--safety-dir %s: %w", o.dir, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("--safety-dir %s is not a directory", o.dir)
	}
	return nil
}

// seal is how the safety backup of in is encrypted: like in, unless
// --safety-encryption none (or in is not encrypted), when it is nil.
func (o *safetyOptions) seal(in *backupfile.Input) *backupfile.Protection {
	if o.encryption == "none" {
		return nil
	}
	return in.Protection
}

// warnClear says, when a restore of the encrypted backup name writes its
// safety backup in clear, what that costs.
func (o *safetyOptions) warnClear(in *backupfile.Input, name, safety string, prog *progress.Printer) {
	if in.Protection != nil && safety != "" && o.encryption == "none" {
		prog.Warn("the safety backup %s is written in clear (--safety-encryption none), although %s is encrypted: it holds DTR's private keys, readable by whoever can read the file", safety, name)
	}
}

// cleanupContext is for putting things back after the command's own
// context ended (Ctrl-C, SIGTERM, a lost connection): it has its own time
// limit, and a second SIGINT or SIGTERM ends it.
func cleanupContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	sctx, stop := withSignals(ctx)
	return sctx, func() { stop(); cancel() }
}

// byHand is the command that restores the safety backup when the plugin
// could not: the same target, the same way in, and the files of the
// secrets that open it when it is encrypted.
func byHand(dockerCli command.Cli, tgt *targetOptions, dec decryptOptions, version, safety string) string {
	args := restoreCommand(dockerCli, tgt, tgt.replicaID, []string{"--yes", "--no-safety-backup"})
	if tgt.isDirect() {
		if version != "" {
			args = append(args, "--dtr-version", version)
		} else {
			args = append(args, "--allow-version-mismatch")
		}
	}
	if strings.HasSuffix(safety, ".gpg") {
		args = append(args, dec.fileArgs()...)
	}
	return shellJoin(append(args, safety))
}

// restoreCommand is 'docker dtr backup restore' with flags, into the same
// target the same way in: the context, the replica, the direct connection's
// flags and --agent-binary. The caller adds what follows.
func restoreCommand(dockerCli command.Cli, tgt *targetOptions, replica string, flags []string) []string {
	return dtrCommand(dockerCli, tgt, replica, append([]string{"backup", "restore"}, flags...))
}

// dtrCommand is 'docker dtr' with words, into the same target the same
// way in, as restoreCommand.
func dtrCommand(dockerCli command.Cli, tgt *targetOptions, replica string, words []string) []string {
	args := []string{"docker"}
	if name := dockerCli.CurrentContext(); name != "" && name != "default" && !tgt.isDirect() {
		args = append(args, "--context", name)
	}
	args = append(append(args, "dtr"), words...)
	if replica != "" {
		args = append(args, "--replica-id", replica)
	}
	if tgt.isDirect() {
		d := tgt.direct.Options
		for _, f := range [][2]string{
			{"--rethinkdb-addr", d.Addr}, {"--rethinkdb-ca", d.CAFile}, {"--rethinkdb-cert", d.CertFile},
			{"--rethinkdb-key", d.KeyFile}, {"--rethinkdb-server-name", d.ServerName},
			{"--rethinkdb-password-file", d.PasswordFile},
		} {
			if f[1] != "" {
				args = append(args, f[0], f[1])
			}
		}
		if d.User != "" && d.User != "admin" {
			args = append(args, "--rethinkdb-user", d.User)
		}
	}
	if tgt.agentBinary != "" {
		args = append(args, "--agent-binary", tgt.agentBinary)
	}
	return args
}

// fileArgs are the flags naming the files of the secrets, for a command
// printed to run later (a passphrase from a prompt or the environment
// cannot be named, and is asked for again).
func (o decryptOptions) fileArgs() []string {
	var args []string
	if o.passphraseFile != "" {
		args = append(args, "--passphrase-file", o.passphraseFile)
	}
	if o.identityFile != "" {
		args = append(args, "--identity-file", o.identityFile)
	}
	return args
}

// shellJoin quotes each word for a POSIX shell and joins them.
func shellJoin(args []string) string {
	for i, a := range args {
		args[i] = shellQuote(a)
	}
	return strings.Join(args, " ")
}

// shellQuote quotes a word for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@,+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
