// Command cmd regenerates docs/reference from the command tree: `make docs`,
// or `go run ./internal/refdocs/cmd -o docs/reference`.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/docker-dtr/docker-dtr/internal/refdocs"
	"github.com/docker-dtr/docker-dtr/plugin"
)

func main() {
	out := flag.String("o", "docs/reference", "Directory to write the pages into")
	flag.Parse()
	// The tree as the Docker CLI shows it; no Docker client is needed to
	// describe it.
	if err := refdocs.Write(plugin.NewRootCmd("dtr", true, nil), *out); err != nil {
		fmt.Fprintln(os.Stderr, "refdocs:", err)
		os.Exit(1)
	}
}
