package plugin

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"github.com/docker-dtr/docker-dtr/pkg/imagearchive"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/pflag"
)

// progressOptions are --progress and its -q/--quiet alias, as buildx and
// compose spell them.
type progressOptions struct {
	mode  progressMode
	quiet bool
}

// progressMode is --progress's value, checked as the flag is parsed so that
// a bad one is a usage error (exit 2) naming the flag.
type progressMode string

var progressModes = []string{"auto", "tty", "plain", "quiet"}

func (m *progressMode) String() string {
	if *m == "" {
		return "auto"
	}
	return string(*m)
}

func (m *progressMode) Set(s string) error {
	for _, v := range progressModes {
		if strings.EqualFold(s, v) {
			*m = progressMode(v)
			return nil
		}
	}
	return fmt.Errorf("expected %s", strings.Join(progressModes, ", "))
}

func (m *progressMode) Type() string { return "string" }

func (o *progressOptions) addFlags(flags *pflag.FlagSet) {
	flags.Var(&o.mode, "progress", `Progress on standard error: "auto" (tty on a terminal, else plain), "tty", "plain" or "quiet"`)
	flags.BoolVarP(&o.quiet, "quiet", "q", false, `Print no progress (same as --progress quiet); warnings still print`)
}

// resolve turns auto into tty or plain by what standard error is.
func (o progressOptions) resolve(dockerCli command.Cli) progress.Mode {
	switch {
	case o.quiet || o.mode == "quiet":
		return progress.Quiet
	case o.mode == "tty":
		return progress.TTY
	case o.mode == "plain":
		return progress.Plain
	case dockerCli.Err().IsTerminal():
		return progress.TTY
	}
	return progress.Plain
}

// printer is the progress printer on standard error. Defer its Close, so
// that an unfinished phase line ends before an error is printed.
func (o progressOptions) printer(ctx context.Context, dockerCli command.Cli) *progress.Printer {
	p := progress.NewMode(dockerCli.Err(), o.resolve(dockerCli))
	if iv, ok := ctx.Value(frameIntervals{}).([2]time.Duration); ok {
		p.SetIntervals(iv[0], iv[1])
	}
	return p
}

// frameIntervals is the context key of how often a command run in that
// context redraws a phase: on a terminal, and as plain lines. Tests make
// phases drawn faster with it; nothing else sets it.
type frameIntervals struct{}

// createSummary is backup create --format json.
type createSummary struct {
	File      string `json:"file"`
	Target    string `json:"target"`
	Rows      int64  `json:"rows"`
	Bytes     int64  `json:"bytes"`
	Encrypted bool   `json:"encrypted"`
	// Compression is "zstd" for a compressed backup; Size is the file's
	// size, compressed or not.
	Compression string `json:"compression,omitempty"`
	Size        int64  `json:"size"`
	*archive.Manifest
}

// imagesSummary is backup images --format json.
type imagesSummary struct {
	File      string `json:"file"`
	Encrypted bool   `json:"encrypted"`
	*imagearchive.Manifest
}
