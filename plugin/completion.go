package plugin

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/parentcli"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"
)

// completionTimeout bounds the discovery behind --replica-id completion: a
// shell waits on it, and an unreachable engine must not hang the prompt.
const completionTimeout = 3 * time.Second

// backupExts are the names a backup file has: plain, encrypted, armored,
// compressed.
var backupExts = []string{"tar", "gpg", "asc", "pgp", "zst", "tzst"}

// registerCompletions registers completions by flag name on every command
// of the tree, so that a flag added later (--progress, --format) completes
// without its command knowing. The Docker CLI forwards
// `docker __complete dtr …` to the plugin's cobra __complete.
func registerCompletions(root *cobra.Command, dockerCli command.Cli) {
	byFlag := map[string]cobra.CompletionFunc{
		"replica-id":              replicaIDs(dockerCli),
		"format":                  nil, // per command: its usage says what it takes
		"progress":                cobra.FixedCompletions([]string{"auto", "tty", "plain", "quiet"}, cobra.ShellCompDirectiveNoFileComp),
		"output":                  files,
		"passphrase-file":         files,
		"identity-file":           files,
		"recipient-file":          files,
		"agent-binary":            files,
		"rethinkdb-ca":            files,
		"rethinkdb-cert":          files,
		"rethinkdb-key":           files,
		"rethinkdb-password-file": files,
		"metadata":                backupFiles,
		"since":                   files, // a file or a directory
		"safety-dir":              dirs,
		"from":                    dirs,
		"safety-encryption":       cobra.FixedCompletions([]string{"same", "none"}, cobra.ShellCompDirectiveNoFileComp),
		"compress":                cobra.FixedCompletions([]string{"zstd", "none"}, cobra.ShellCompDirectiveNoFileComp),
	}
	visitAll(root, func(c *cobra.Command) {
		for name, fn := range byFlag {
			f := c.Flags().Lookup(name)
			if f == nil {
				continue
			}
			if name == "format" {
				fn = formats(f.Usage)
			}
			// An error means the command registered its own: keep that.
			_ = c.RegisterFlagCompletionFunc(name, fn)
		}
		// Commands whose argument is a backup FILE ("verify [OPTIONS] FILE").
		if c.ValidArgsFunction == nil && strings.HasSuffix(c.Use, " FILE") {
			c.ValidArgsFunction = func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
				if len(args) > 0 {
					return nil, cobra.ShellCompDirectiveNoFileComp
				}
				return backupFiles(nil, nil, "")
			}
		}
		// Commands whose argument is a directory of backups ("prune … DIR").
		if c.ValidArgsFunction == nil && strings.HasSuffix(c.Use, " DIR") {
			c.ValidArgsFunction = func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
				if len(args) > 0 {
					return nil, cobra.ShellCompDirectiveNoFileComp
				}
				return dirs(nil, nil, "")
			}
		}
		// Every other command takes no file argument: offer none.
		if c.ValidArgsFunction == nil {
			c.ValidArgsFunction = cobra.NoFileCompletions
		}
	})
}

func files(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return nil, cobra.ShellCompDirectiveDefault
}

func dirs(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return nil, cobra.ShellCompDirectiveFilterDirs
}

func backupFiles(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return slices.Clone(backupExts), cobra.ShellCompDirectiveFilterFileExt
}

// formats offers json, and table where the flag's usage names it.
func formats(usage string) cobra.CompletionFunc {
	values := []string{"json"}
	if strings.Contains(usage, `"table"`) {
		values = append(values, "table")
	}
	return cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp)
}

// replicaIDs completes the replica ids of the DTR behind the Docker context
// the completed command would use, with their health as the description;
// any error gives nothing.
func replicaIDs(dockerCli command.Cli) cobra.CompletionFunc {
	return func(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
		// __complete runs no PersistentPreRunE: the client is not set up yet.
		if dcli, ok := dockerCli.(*command.DockerCli); ok {
			if err := dcli.Initialize(parentcli.ClientOptions()); err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
		}
		ctx := cmd.Context()
		if ctx == nil {
			ctx = context.Background()
		}
		ctx, cancel := context.WithTimeout(ctx, completionTimeout)
		defer cancel()
		cluster, err := dtr.Discover(ctx, dockerCli.Client())
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []string
		for _, r := range cluster.Replicas {
			desc := "healthy"
			if !r.Healthy {
				desc = "not healthy: " + strings.Join(r.Problems, "; ")
			}
			out = append(out, cobra.CompletionWithDesc(r.ID, desc))
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}
