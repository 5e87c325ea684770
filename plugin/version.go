package plugin

import (
	"fmt"
	"runtime"
	"strings"

	"github.com/docker-dtr/docker-dtr/internal/version"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"
)

type versionOptions struct {
	format string
}

// versionInfo is what `version` prints, and its JSON.
type versionInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"goVersion"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
}

func newVersionCmd(dockerCli command.Cli) *cobra.Command {
	var opts versionOptions
	cmd := &cobra.Command{
		Use:   "version [OPTIONS]",
		Short: "Show the docker dtr version information",
		Long: `Show the plugin's version, the git commit it was built from, the Go
version that built it and the platform it runs on.

Exit status: 0 success; 2 wrong usage (an unknown --format too).`,
		Example: `  docker dtr version
  docker dtr version --format json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVersion(dockerCli, opts)
		},
	}
	cmd.Flags().StringVar(&opts.format, "format", "", `Output format: "json", or empty for text`)
	return cmd
}

func runVersion(dockerCli command.Cli, opts versionOptions) error {
	if err := checkFormat(opts.format); err != nil {
		return err
	}
	v := versionInfo{
		Version:   version.Version,
		Commit:    version.Commit,
		GoVersion: runtime.Version(),
		OS:        runtime.GOOS,
		Arch:      runtime.GOARCH,
	}
	if strings.EqualFold(opts.format, "json") {
		return writeJSON(dockerCli, v)
	}
	fmt.Fprintf(dockerCli.Out(), "docker-dtr version %s\n Git commit: %s\n Go version: %s\n OS/Arch:    %s/%s\n",
		v.Version, v.Commit, v.GoVersion, v.OS, v.Arch)
	return nil
}
