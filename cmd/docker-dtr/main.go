// Command docker-dtr is the `docker dtr` CLI plugin; it also runs standalone.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/docker-dtr/docker-dtr/internal/version"
	dtrplugin "github.com/docker-dtr/docker-dtr/plugin"
	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli-plugins/metadata"
	"github.com/docker/cli/cli-plugins/plugin"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"
)

func main() {
	if plugin.RunningStandalone() {
		os.Exit(runStandalone())
	}
	plugin.Run(func(dockerCli command.Cli) *cobra.Command {
		return dtrplugin.NewRootCmd("dtr", true, dockerCli)
	}, metadata.Metadata{
		SchemaVersion:    "0.1.0",
		Vendor:           "docker-dtr",
		Version:          version.Plugin(),
		ShortDescription: "Back up, verify and restore Docker Trusted Registry",
		URL:              "https://github.com/docker-dtr/docker-dtr",
	})
}

// runStandalone serves `docker-dtr backup …` run directly.
func runStandalone() int {
	dockerCli, err := command.NewDockerCli()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cmd := dtrplugin.NewRootCmd(filepath.Base(os.Args[0]), false, dockerCli)
	err = cmd.ExecuteContext(context.Background())
	if err == nil {
		return 0
	}
	var st cli.StatusError
	if errors.As(err, &st) {
		if st.Status != "" {
			fmt.Fprintln(dockerCli.Err(), st.Status)
		}
		return max(st.StatusCode, 1)
	}
	fmt.Fprintln(dockerCli.Err(), err)
	return 1
}
