// Package crosscheck compares a metadata backup with an image backup: every
// layer and manifest digest that the metadata's manifests, blobs and tags
// tables reference must be a blob in the image archive. It is the check
// operators ask for before they trust a pair of backups.
package crosscheck

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/docker-dtr/docker-dtr/pkg/archive"
)

// Tables are the metadata tables whose documents name blobs.
var Tables = []string{"manifests", "blobs", "tags"}

const maxListed = 1000

// Missing is a referenced digest the image archive does not hold.
type Missing struct {
	Digest string `json:"digest"`
	// By names what refers to it: repository:tag where the document says,
	// else the table and the document's id.
	By []string `json:"by"`
}

// Result is the outcome of the cross-check.
type Result struct {
	Referenced           int       `json:"referenced"`
	Missing              []Missing `json:"missing"`
	MissingOmitted       int       `json:"missingOmitted,omitempty"`
	Unreferenced         []string  `json:"unreferenced"`
	UnreferencedCount    int       `json:"unreferencedCount"`
	TablesFound          []string  `json:"tablesFound"`
	DocumentsWithDigests int       `json:"documentsWithDigests"`
}

// OK says nothing referenced is missing; unreferenced blobs are normal (a
// garbage collection not yet run) and only reported.
func (r *Result) OK() bool { return len(r.Missing) == 0 && r.MissingOmitted == 0 }

var digestRe = regexp.MustCompile(`^sha256:([0-9a-f]{64})$`)

// Check reads the documents of a verified metadata archive and looks up
// every sha256 digest they hold among blobs (hex digests of the image
// archive). Digests are found wherever they sit in a document, so the check
// does not depend on the exact schema of a DTR version.
func Check(meta *os.File, rep *archive.Report, blobs map[string]bool) (*Result, error) {
	if _, err := meta.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return check(meta, rep, blobs)
}

// CheckFrom is Check of the archive a pass of open reads (an encrypted
// backup decrypted as it is read, with no plaintext file), read to its
// end, where a stream's own checks come: its error is the error, and no
// result comes before it.
func CheckFrom(open archive.Source, rep *archive.Report, blobs map[string]bool) (*Result, error) {
	rc, err := open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	res, err := check(rc, rep, blobs)
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return nil, err
	}
	return res, nil
}

func check(meta io.Reader, rep *archive.Report, blobs map[string]bool) (*Result, error) {
	wanted := map[string]bool{}
	for _, t := range Tables {
		wanted[t] = true
	}
	res := &Result{Missing: []Missing{}, Unreferenced: []string{}, TablesFound: []string{}}
	found := map[string]bool{}
	referenced := map[string]bool{}
	missing := map[string]*Missing{}
	var order []string
	rd := archive.NewReader(meta, rep.VersionDir)
	for {
		dir, doc, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		t, ok := rep.Table(dir)
		if !ok || !wanted[t.Name] {
			continue
		}
		found[t.Name] = true
		var v any
		if err := json.Unmarshal(doc, &v); err != nil {
			return nil, fmt.Errorf("%s: %w", t.Name, err)
		}
		digests := map[string]bool{}
		collect(v, digests)
		if len(digests) == 0 {
			continue
		}
		res.DocumentsWithDigests++
		by := describe(t.Name, v)
		for d := range digests {
			referenced[d] = true
			if blobs[d] {
				continue
			}
			m := missing[d]
			if m == nil {
				if len(missing) >= maxListed {
					res.MissingOmitted++
					continue
				}
				m = &Missing{Digest: "sha256:" + d}
				missing[d] = m
				order = append(order, d)
			}
			if len(m.By) < 10 && !slices.Contains(m.By, by) {
				m.By = append(m.By, by)
			}
		}
	}
	res.Referenced = len(referenced)
	for _, d := range order {
		res.Missing = append(res.Missing, *missing[d])
	}
	for d := range blobs {
		if !referenced[d] {
			res.UnreferencedCount++
			if len(res.Unreferenced) < maxListed {
				res.Unreferenced = append(res.Unreferenced, "sha256:"+d)
			}
		}
	}
	sort.Strings(res.Unreferenced)
	for _, t := range Tables {
		if found[t] {
			res.TablesFound = append(res.TablesFound, t)
		}
	}
	return res, nil
}

// collect gathers the hex of every sha256 digest string in v.
func collect(v any, into map[string]bool) {
	switch x := v.(type) {
	case string:
		if m := digestRe.FindStringSubmatch(x); m != nil {
			into[m[1]] = true
		}
	case []any:
		for _, e := range x {
			collect(e, into)
		}
	case map[string]any:
		for _, e := range x {
			collect(e, into)
		}
	}
}

// describe names a document for people: repository:tag for tags, the
// repository for manifests, else table and id.
func describe(table string, v any) string {
	doc, _ := v.(map[string]any)
	str := func(keys ...string) string {
		for _, k := range keys {
			if s, ok := doc[k].(string); ok && s != "" {
				return s
			}
		}
		return ""
	}
	repo := str("repository", "repo", "namespace_repo")
	if ns := str("namespace"); ns != "" && repo != "" && !strings.Contains(repo, "/") {
		repo = ns + "/" + repo
	}
	switch tag := str("tag", "name"); {
	case table == "tags" && repo != "" && tag != "":
		return repo + ":" + tag
	case repo != "":
		return table + " of " + repo
	}
	id := str("id", "pk", "digest")
	if id == "" {
		return table
	}
	return table + " " + id
}
