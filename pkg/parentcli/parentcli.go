// Package parentcli reads the Docker CLI's own flags (--context, --host,
// --config, --tls…) of the docker process that runs this plugin for a
// shell completion, which the CLI does not pass on.
package parentcli

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/docker/cli/cli-plugins/metadata"
	cliflags "github.com/docker/cli/cli/flags"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// psTimeout bounds reading the parent's command line with ps: a shell
// waits on a completion.
const psTimeout = 3 * time.Second

// ClientOptions are the Docker CLI's own flags (--context, --host,
// --config, --tls…) of the `docker … __complete dtr …` that runs this
// completion. The CLI hands a plugin's completion only the words after the
// plugin's name (docker/cli cli-plugins/manager/cobra.go), so without this
// `docker --context prod dtr backup create --replica-id <TAB>` would offer
// the replicas of the default context's DTR. They are read from the command
// line of the parent process, the docker CLI; when it cannot be read, or
// the plugin runs standalone, the environment and the config decide, as
// they do for docker itself.
func ClientOptions() *cliflags.ClientOptions {
	if os.Getenv(metadata.ReexecEnvvar) != "" {
		if args, err := processArgs(os.Getppid()); err == nil {
			if global, ok := dockerGlobalFlags(args); ok {
				if opts, err := parseClientOptions(global); err == nil {
					return opts
				}
			}
		}
	}
	opts, _ := parseClientOptions(nil)
	return opts
}

// parseClientOptions parses docker's own flags with docker's flag set, its
// defaults from the environment included.
func parseClientOptions(args []string) (*cliflags.ClientOptions, error) {
	opts := cliflags.NewClientOptions()
	flags := pflag.NewFlagSet("docker", pflag.ContinueOnError)
	flags.SetOutput(io.Discard)
	opts.InstallFlags(flags)
	if err := flags.Parse(args); err != nil {
		return nil, err
	}
	opts.SetDefaultOptions(flags)
	return opts, nil
}

// dockerGlobalFlags returns the words between the docker binary and its
// __complete command: the flags of docker itself. ok is false when args are
// not a docker completion request.
func dockerGlobalFlags(args []string) (global []string, ok bool) {
	if len(args) < 2 {
		return nil, false
	}
	for i, a := range args[1:] {
		if a == cobra.ShellCompRequestCmd || a == cobra.ShellCompNoDescRequestCmd {
			return args[1 : 1+i], true
		}
	}
	return nil, false
}

// processArgs returns the command line of process pid: from /proc on
// Linux; elsewhere from ps, split at spaces (a value with a space in it,
// a --config path, is split wrongly: the completion then offers nothing).
func processArgs(pid int) ([]string, error) {
	if runtime.GOOS == "linux" {
		return procArgs(pid)
	}
	return psArgs(pid)
}

func procArgs(pid int) ([]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return nil, err
	}
	return strings.Split(string(bytes.TrimSuffix(b, []byte{0})), "\x00"), nil
}

func psArgs(pid int) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), psTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ps", "-o", "args=", "-p", strconv.Itoa(pid)).Output()
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(out)), nil
}
