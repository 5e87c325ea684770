package archive

import (
	"fmt"
	"time"
	"unicode/utf8"
)

// Kind says who wrote an archive.
type Kind string

const (
	// KindPlugin is an archive written by docker-dtr, with definitions and manifest.
	KindPlugin Kind = "docker-dtr"
	// KindOfficial is an archive written by `docker/dtr backup`: documents only.
	KindOfficial Kind = "docker/dtr backup"
)

const (
	// maxProblems bounds the problems kept in a report; the rest are counted.
	maxProblems = 1000
	// maxProblemText bounds an entry name or message kept in a problem: tar
	// names can be a MiB long, and a thousand of them would be a GiB.
	maxProblemText = 1024
)

// Problem is one thing wrong with an archive, and where it was found.
type Problem struct {
	Entry   string `json:"entry,omitempty"`
	Message string `json:"message"`
}

func (p Problem) String() string {
	if p.Entry == "" {
		return p.Message
	}
	return p.Entry + ": " + p.Message
}

// Report is what verify or inspect learned of an archive.
type Report struct {
	Kind       Kind         `json:"kind"`
	DTRVersion string       `json:"dtrVersion"`
	ReplicaID  string       `json:"replicaId,omitempty"`
	Tool       string       `json:"tool,omitempty"`
	Started    *time.Time   `json:"started,omitempty"`
	Finished   *time.Time   `json:"finished,omitempty"`
	Tables     []TableStats `json:"tables"`
	Excluded   []Exclusion  `json:"excluded"`
	// Outdated says the backup was read from a cluster that had lost its
	// majority (--allow-outdated), and which tables.
	Outdated *Outdated `json:"outdated,omitempty"`
	Rows     int64     `json:"rows"`
	Bytes    int64     `json:"bytes"`
	Entries  int64     `json:"entries"`
	Size     int64     `json:"size"`
	// FullRead is true when every entry was read and checked (verify), false
	// when only headers and the manifest were (inspect).
	FullRead bool `json:"fullRead"`
	// Verified is true only for a fully read docker-dtr archive without problems:
	// official backups have no checksums to verify against.
	Verified        bool      `json:"verified"`
	Problems        []Problem `json:"problems"`
	ProblemsOmitted int       `json:"problemsOmitted,omitempty"`

	// Definitions of a docker-dtr archive, for restore; not part of the summary.
	Definitions *Definitions `json:"-"`
	// VersionDir is the archive's top directory, as written.
	VersionDir string `json:"-"`
}

// OK reports whether no problem was found.
func (r *Report) OK() bool { return len(r.Problems) == 0 && r.ProblemsOmitted == 0 }

func (r *Report) addProblem(entry, format string, args ...any) {
	if len(r.Problems) >= maxProblems {
		r.ProblemsOmitted++
		return
	}
	r.Problems = append(r.Problems, NewProblem(entry, fmt.Sprintf(format, args...)))
}

// NewProblem makes a problem, shortening an entry name or message too long
// to be useful.
func NewProblem(entry, message string) Problem {
	return Problem{Entry: shorten(entry), Message: shorten(message)}
}

func shorten(s string) string {
	if len(s) <= maxProblemText {
		return s
	}
	cut := maxProblemText
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("… (%d bytes)", len(s))
}

// Table returns the definition of a table directory, for docker-dtr archives
// from the definitions, for official ones by DTR's own naming rules.
func (r *Report) Table(dir string) (Table, bool) {
	if r.Definitions != nil {
		for _, t := range r.Definitions.Tables {
			if t.Dir == dir {
				return t, true
			}
		}
		return Table{}, false
	}
	return OfficialTable(dir)
}

func (r *Report) fromManifest(m *Manifest) {
	r.Kind = KindPlugin
	r.DTRVersion, r.ReplicaID, r.Tool = m.DTRVersion, m.ReplicaID, m.Tool
	started, finished := m.Started, m.Finished
	r.Started, r.Finished = &started, &finished
	r.Tables, r.Excluded, r.Outdated = m.Tables, m.Excluded, m.Outdated
	r.Rows, r.Bytes = m.Rows()
	r.Entries = m.Entries + 1
}
