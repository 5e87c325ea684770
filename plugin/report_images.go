package plugin

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/crosscheck"
	"github.com/docker-dtr/docker-dtr/pkg/human"
	"github.com/docker-dtr/docker-dtr/pkg/imagearchive"
)

func printImageReport(w io.Writer, name string, rep *imagearchive.Report) {
	verdict := "verified"
	switch {
	case !rep.OK():
		verdict = "INVALID"
	case !rep.FullRead:
		verdict = "not verified (inspect reads only the manifest; run 'backup verify')"
	}
	fmt.Fprintf(w, "%s: %s\n", name, verdict)
	if rep.ContentDir != "" {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  Kind\t%s\n", rep.Kind)
		fmt.Fprintf(tw, "  DTR version\t%s\n", rep.DTRVersion)
		fmt.Fprintf(tw, "  Replica\t%s (node %s)\n", rep.ReplicaID, rep.Node)
		if rep.Storage != "" {
			fmt.Fprintf(tw, "  Storage\t%s\n", rep.Storage)
		} else {
			fmt.Fprintf(tw, "  Volume\t%s\n", rep.Volume)
		}
		if rep.Started != nil && rep.Finished != nil {
			fmt.Fprintf(tw, "  Created\t%s (took %s)\n", rep.Started.UTC().Format(time.RFC3339), rep.Finished.Sub(*rep.Started).Round(time.Second))
		}
		if rep.Tool != "" {
			fmt.Fprintf(tw, "  Tool\t%s\n", rep.Tool)
		}
		if rep.Incremental() {
			fmt.Fprintf(tw, "  Incremental\tdepends on %s (%s)\n", human.Plural(len(rep.DependsOn), "backup"), dependencyNames(rep.DependsOn))
			fmt.Fprintf(tw, "  Files\t%d held, %s; %d listed, %s\n", rep.Files, human.Bytes(rep.Bytes), rep.Files+rep.OmittedBlobs, human.Bytes(rep.Bytes+rep.OmittedBytes))
			fmt.Fprintf(tw, "  Blobs\t%d held; %d listed, %d of them (%s) held by earlier backups\n", rep.Blobs, rep.Blobs+rep.OmittedBlobs, rep.OmittedBlobs, human.Bytes(rep.OmittedBytes))
		} else {
			fmt.Fprintf(tw, "  Files\t%d, %s\n", rep.Files, human.Bytes(rep.Bytes))
			fmt.Fprintf(tw, "  Blobs\t%d\n", rep.Blobs)
		}
		if rep.UploadFiles > 0 {
			fmt.Fprintf(tw, "  Left out\t%s in unfinished uploads, %s\n", human.Plural(int(rep.UploadFiles), "file"), human.Bytes(rep.UploadBytes))
		}
		for _, b := range rep.CorruptBlobs {
			fmt.Fprintf(tw, "  Corrupt in the registry\t%s\n", b)
		}
		fmt.Fprintf(tw, "  Archive\t%s\n", human.Bytes(rep.Size))
		if rep.ManifestSHA256 != "" {
			fmt.Fprintf(tw, "  Manifest\tsha256:%s\n", rep.ManifestSHA256)
		}
		for _, d := range rep.DependsOn {
			fmt.Fprintf(tw, "  Depends on\t%s (manifest sha256:%s, created %s, replica %s, volume %s)\n", orUnnamed(d.File), d.ManifestSHA256, d.Created.UTC().Format(time.RFC3339), d.ReplicaID, d.Volume)
		}
		for _, c := range rep.Chain {
			if c.Path != "" {
				fmt.Fprintf(tw, "  Earlier backup\t%s: found, lists the %d blobs (%s) this one needs from it\n", c.Path, c.Blobs, human.Bytes(c.Bytes))
			}
		}
		if len(rep.Chain) > 0 && rep.OK() {
			fmt.Fprintf(tw, "  Chain\tcomplete; the earlier backups' contents were not read: verify each of them\n")
		}
		tw.Flush()
	}
	printProblems(w, rep.Problems, rep.ProblemsOmitted)
}

func printCrossCheck(w io.Writer, metadata string, c *crosscheck.Result) {
	fmt.Fprintf(w, "\nCross-check with %s: %d digests referenced by %d documents of the %v tables\n",
		metadata, c.Referenced, c.DocumentsWithDigests, c.TablesFound)
	if c.OK() {
		fmt.Fprintln(w, "  every referenced blob is in the image backup")
	} else {
		fmt.Fprintf(w, "  %s missing from the image backup:\n", human.Plural(len(c.Missing)+c.MissingOmitted, "blob"))
		for _, m := range c.Missing {
			fmt.Fprintf(w, "    %s (referenced by %v)\n", m.Digest, m.By)
		}
		if c.MissingOmitted > 0 {
			fmt.Fprintf(w, "    … and %d more\n", c.MissingOmitted)
		}
	}
	if c.UnreferencedCount > 0 {
		fmt.Fprintf(w, "  %s in the image backup that no metadata references (garbage collection will remove them)\n", human.Plural(c.UnreferencedCount, "blob"))
	}
}

// dependencyNames lists the earlier backups by their file hints.
func dependencyNames(deps []imagearchive.Dependency) string {
	names := make([]string, len(deps))
	for i, d := range deps {
		names[i] = orUnnamed(d.File)
	}
	return strings.Join(names, ", ")
}

func orUnnamed(file string) string {
	if file == "" {
		return "(unnamed)"
	}
	return file
}
