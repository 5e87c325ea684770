package plugin

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"github.com/docker-dtr/docker-dtr/pkg/backupfile"
	"github.com/docker-dtr/docker-dtr/pkg/crosscheck"
	"github.com/docker-dtr/docker-dtr/pkg/exitcode"
	"github.com/docker-dtr/docker-dtr/pkg/human"
	"github.com/docker-dtr/docker-dtr/pkg/imagearchive"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
	"github.com/docker-dtr/docker-dtr/pkg/verify"
	"github.com/docker/cli/cli/command"
)

// reportArchive opens a backup of either kind, has the verify engine read
// all of it (o.Full: verify) or its manifest (inspect), prints the report
// and fails when it found problems. An encrypted backup is decrypted as
// it is read: no plaintext reaches a file.
func reportArchive(dockerCli command.Cli, prog *progress.Printer, file, format string, o verify.Options, dec decryptOptions) error {
	opts := dec.openOptions(dockerCli, prog)
	in, err := backupfile.Open(file, opts)
	if err != nil {
		return err
	}
	defer in.Close()
	o.Progress = prog
	o.Decrypt = chainDecrypter(dockerCli, dec, in, prog)
	o.Open = func(path string) (*backupfile.Input, error) {
		// --metadata's backup, read as a stream too.
		opts := dec.openOptions(dockerCli, progress.New(dockerCli.Err(), false))
		return backupfile.Open(path, opts)
	}
	name := displayName(file)
	res, err := verify.RunInput(in, name, o)
	if err != nil {
		return err
	}
	switch {
	case res.Metadata != nil:
		if err := printReport(dockerCli.Out(), name, res.Metadata, format); err != nil {
			return err
		}
	case format == "json":
		if err := writeJSON(dockerCli, struct {
			File string `json:"file"`
			*imagearchive.Report
			CrossCheck *crosscheck.Result `json:"crossCheck,omitempty"`
		}{name, res.Images, res.CrossCheck}); err != nil {
			return err
		}
	default:
		printImageReport(dockerCli.Out(), name, res.Images)
		if res.CrossCheck != nil {
			printCrossCheck(dockerCli.Out(), o.Metadata, res.CrossCheck)
		}
	}
	return res.Err()
}

// printReport writes a verify or inspect report for people, or as JSON.
func printReport(w io.Writer, name string, rep *archive.Report, format string) error {
	if format == "json" {
		return encodeJSON(w, struct {
			File string `json:"file"`
			*archive.Report
		}{name, rep})
	}
	fmt.Fprintf(w, "%s: %s\n", name, verdict(rep))
	if rep.Kind != "" {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  Kind\t%s\n", rep.Kind)
		fmt.Fprintf(tw, "  DTR version\t%s\n", rep.DTRVersion)
		if rep.ReplicaID != "" {
			fmt.Fprintf(tw, "  Replica\t%s\n", rep.ReplicaID)
		}
		if rep.Started != nil && rep.Finished != nil {
			fmt.Fprintf(tw, "  Created\t%s (took %s)\n", rep.Started.UTC().Format(time.RFC3339), rep.Finished.Sub(*rep.Started).Round(time.Second))
		}
		if rep.Tool != "" {
			fmt.Fprintf(tw, "  Tool\t%s\n", rep.Tool)
		}
		if o := rep.Outdated; o != nil {
			fmt.Fprintf(tw, "  Outdated\t%s read from RethinkDB server %s without their majority (--allow-outdated): %s\n",
				human.Plural(len(o.Tables), "table"), o.Server, human.List(o.Tables, 5))
		}
		fmt.Fprintf(tw, "  Tables\t%d\n", len(rep.Tables))
		for _, x := range rep.Excluded {
			fmt.Fprintf(tw, "  Excluded\t%s.%s (%s)\n", x.DB, x.Table, x.Reason)
		}
		fmt.Fprintf(tw, "  Rows\t%d\n", rep.Rows)
		fmt.Fprintf(tw, "  Documents\t%s\n", human.Bytes(rep.Bytes))
		fmt.Fprintf(tw, "  Archive\t%s, %d entries\n", human.Bytes(rep.Size), rep.Entries)
		tw.Flush()
		if len(rep.Tables) > 0 {
			fmt.Fprintln(w)
			tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "  TABLE\tROWS\tBYTES")
			for _, t := range rep.Tables {
				fmt.Fprintf(tw, "  %s\t%d\t%s\n", t.FullName(), t.Rows, human.Bytes(t.Bytes))
			}
			tw.Flush()
		}
	}
	printProblems(w, rep.Problems, rep.ProblemsOmitted)
	return nil
}

// printProblems lists what verify found, if anything.
func printProblems(w io.Writer, problems []archive.Problem, omitted int) {
	if len(problems)+omitted == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s:\n", human.Plural(len(problems)+omitted, "problem"))
	for _, p := range problems {
		fmt.Fprintf(w, "  %s\n", p)
	}
	if omitted > 0 {
		fmt.Fprintf(w, "  … and %d more\n", omitted)
	}
}

func verdict(rep *archive.Report) string {
	switch {
	case !rep.OK():
		return "INVALID"
	case !rep.FullRead:
		return "not verified (inspect reads only the manifest; run 'backup verify')"
	case rep.Kind == archive.KindOfficial:
		return "structure and documents valid; a docker/dtr backup has no manifest, so its completeness cannot be verified"
	case rep.Outdated != nil:
		return "verified, OUTDATED (taken without DTR's majority: the last writes may be missing)"
	default:
		return "verified"
	}
}

func checkFormat(format string) error {
	switch strings.ToLower(format) {
	case "", "pretty", "json":
		return nil
	}
	return exitcode.UsageError(fmt.Errorf("--format %q: expected json (or nothing for the human-readable summary)", format))
}
