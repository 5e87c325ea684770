// Package dtrgen generates a DTR-shaped metadata set of a given size in a
// RethinkDB (the real server a test or benchmark starts), for benchmarks.
// Test-only.
//
// The rows are spread like a real DTR's: dtr2.events and the scanning tables
// (dtr2.scanned_layers, dtr2.scanned_images) hold most of them, the scan
// results being large documents (a few KiB of nested component and
// vulnerability lists); tags, manifests, blobs and repositories are
// mid-size; properties, crons and the notary tables are small. Every document
// is derived from Options.Seed alone: the same seed and row count give
// byte-identical documents.
package dtrgen

import (
	"context"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/rethink"
	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	p "gopkg.in/rethinkdb/rethinkdb-go.v6/ql2"
)

// DefaultRows is the size of the data set when Options.Rows is 0.
const DefaultRows = 1_000_000

// Options size the data set.
type Options struct {
	Rows int   // total rows over every table; default DefaultRows
	Seed int64 // the same seed gives the same documents
	// Writers is the number of concurrent insert queries; default 4.
	Writers int
	// BatchRows and BatchBytes bound one insert; defaults 1000 and 4 MiB.
	BatchRows  int
	BatchBytes int
}

func (o Options) withDefaults() Options {
	if o.Rows <= 0 {
		o.Rows = DefaultRows
	}
	if o.Writers <= 0 {
		o.Writers = 4
	}
	if o.BatchRows <= 0 {
		o.BatchRows = 1000
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = 4 << 20
	}
	return o
}

// Table is one table of the data set and how many rows it gets.
type Table struct {
	DB, Name, PrimaryKey string
	Rows                 int
}

// Ref is the table's rethink.TableRef.
func (t Table) Ref() rethink.TableRef { return rethink.TableRef{DB: t.DB, Table: t.Name} }

// share is a table's part of Options.Rows in parts per 1000; fixed is a
// row count that does not grow with the data (configuration). events gets
// what is left, so the rows add up to Options.Rows exactly.
var layout = []struct {
	db, name, pk string
	share, fixed int
}{
	{"dtr2", "blobs", "id", 80, 0},
	{"dtr2", "events", "id", -1, 0},
	{"dtr2", "manifests", "id", 100, 0},
	{"dtr2", "properties", "id", 0, 6},
	{"dtr2", "repositories", "id", 40, 0},
	{"dtr2", "scanned_images", "id", 100, 0},
	{"dtr2", "scanned_layers", "id", 150, 0},
	{"dtr2", "tags", "id", 120, 0},
	{"jobrunner", "crons", "id", 0, 5},
	{"notaryserver", "changefeed", "id", 3, 0},
	{"notaryserver", "tuf_files", "gun_role_version", 6, 0},
	{"notarysigner", "private_keys", "key_id", 1, 0},
}

// Plan lists the tables and their row counts for a number of rows.
func Plan(rows int) []Table {
	if rows <= 0 {
		rows = DefaultRows
	}
	out := make([]Table, len(layout))
	used, events := 0, -1
	for i, l := range layout {
		n := l.fixed
		if l.share > 0 {
			n = max(rows*l.share/1000, 1)
		}
		if l.share < 0 {
			events = i
		}
		out[i] = Table{DB: l.db, Name: l.name, PrimaryKey: l.pk, Rows: n}
		used += n
	}
	out[events].Rows = max(rows-used, 1)
	return out
}

// Stats is what Generate wrote.
type Stats struct {
	Tables []Table
	Rows   int64
	Bytes  int64 // JSON bytes of the documents
}

// Schema creates the databases, tables, secondary indexes and write hook of
// the data set (those internal/dtrtest.Seed makes) on an empty server.
func Schema(ctx context.Context, s *r.Session) error {
	ro := r.RunOpts{Context: ctx}
	run := func(q r.Term) error { _, err := q.RunWrite(s, ro); return err }
	created := map[string]bool{}
	for _, t := range Plan(0) {
		if !created[t.DB] {
			if err := run(r.DBCreate(t.DB)); err != nil {
				return err
			}
			created[t.DB] = true
		}
		if err := run(r.DB(t.DB).TableCreate(t.Name, r.TableCreateOpts{PrimaryKey: t.PrimaryKey})); err != nil {
			return err
		}
	}
	dtr2 := r.DB("dtr2")
	for _, q := range []r.Term{
		dtr2.Table("repositories").IndexCreateFunc("namespace_name", func(row r.Term) any {
			return []any{row.Field("namespace"), row.Field("name")}
		}),
		dtr2.Table("tags").IndexCreate("repository"),
		dtr2.Table("tags").IndexCreate("digests", r.IndexCreateOpts{Multi: true}),
		dtr2.Table("manifests").IndexCreate("digest"),
		dtr2.Table("events").IndexCreate("published_at"),
		r.DB("notaryserver").Table("tuf_files").IndexCreate("gun"),
		dtr2.Table("tags").SetWriteHook(func(id, oldVal, newVal r.Term) r.Term { return newVal }),
	} {
		if err := run(q); err != nil {
			return err
		}
	}
	return nil
}

// Generate makes the schema on an empty server and fills it: batches of
// documents go in concurrently with soft durability, then every table is
// synced to disk.
func Generate(ctx context.Context, s *r.Session, opts Options) (Stats, error) {
	opts = opts.withDefaults()
	if err := Schema(ctx, s); err != nil {
		return Stats{}, fmt.Errorf("dtrgen: schema: %w", err)
	}
	plan := Plan(opts.Rows)
	type batch struct {
		t    Table
		term []byte
		n    int
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		once     sync.Once
		firstErr error
		wg       sync.WaitGroup
		mu       sync.Mutex
		st       = Stats{Tables: plan}
	)
	fail := func(err error) { once.Do(func() { firstErr = err; cancel() }) }
	work := make(chan batch, opts.Writers)
	for range opts.Writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				if ctx.Err() != nil {
					continue
				}
				res, err := r.RawQuery(b.term).RunWrite(s, r.RunOpts{Context: ctx, ArrayLimit: 1 << 27})
				if err == nil && (res.Errors > 0 || res.Inserted != b.n) {
					err = fmt.Errorf("inserted %d of %d: %s", res.Inserted, b.n, res.FirstError)
				}
				if err != nil {
					fail(fmt.Errorf("dtrgen: inserting into %s: %w", b.t.Ref(), err))
				}
			}
		}()
	}
	// One producer per table: each table's documents come from its own
	// random stream, so the order the tables are made in does not matter.
	var prod sync.WaitGroup
	for ti, t := range plan {
		prod.Add(1)
		go func() {
			defer prod.Done()
			head := insertHead(t)
			term := append([]byte(nil), head...)
			n, bytes := 0, int64(0)
			flush := func() bool {
				if n == 0 {
					return true
				}
				term = append(term, `]]],{"durability":"soft","conflict":"error"}]`...)
				select {
				case work <- batch{t: t, term: term, n: n}:
				case <-ctx.Done():
					return false
				}
				term, n = append(make([]byte, 0, cap(term)), head...), 0
				return true
			}
			err := tableDocs(opts.Seed, repoRows(plan), ti, t, func(doc []byte) error {
				if n > 0 {
					term = append(term, ',')
				}
				term = rethink.AppendTerm(term, doc)
				n++
				bytes += int64(len(doc))
				if n >= opts.BatchRows || len(term) >= opts.BatchBytes {
					if !flush() {
						return ctx.Err()
					}
				}
				return nil
			})
			if err == nil && !flush() {
				err = ctx.Err()
			}
			if err != nil {
				fail(err)
			}
			mu.Lock()
			st.Rows += int64(t.Rows)
			st.Bytes += bytes
			mu.Unlock()
		}()
	}
	prod.Wait()
	close(work)
	wg.Wait()
	if firstErr != nil {
		return Stats{}, firstErr
	}
	for _, t := range plan {
		if _, err := r.DB(t.DB).Table(t.Name).Sync().RunWrite(s, r.RunOpts{Context: ctx}); err != nil {
			return Stats{}, fmt.Errorf("dtrgen: syncing %s: %w", t.Ref(), err)
		}
	}
	return st, nil
}

func insertHead(t Table) []byte {
	q := func(s string) []byte { return appendString(nil, s) }
	return fmt.Appendf(nil, "[%d,[[%d,[[%d,[%s]],%s]],[%d,[", p.Term_INSERT, p.Term_TABLE, p.Term_DB, q(t.DB), q(t.Name), p.Term_MAKE_ARRAY)
}

// Documents calls fn with every document of the data set, table by table in
// Plan order, as the JSON Generate inserts (TIME and BINARY as
// $reql_type$ pseudo-types). doc is only valid during the call.
func Documents(opts Options, fn func(t Table, doc []byte) error) error {
	opts = opts.withDefaults()
	plan := Plan(opts.Rows)
	for ti, t := range plan {
		if err := tableDocs(opts.Seed, repoRows(plan), ti, t, func(doc []byte) error { return fn(t, doc) }); err != nil {
			return err
		}
	}
	return nil
}

// gen builds one table's documents from its own random stream.
type gen struct {
	seed  uint64
	rng   *rand.Rand
	repos int // rows of dtr2.repositories, which the other tables refer to
	b     []byte
	first bool // no comma before the next member or element
}

func tableDocs(seed int64, repos, ti int, t Table, fn func([]byte) error) error {
	g := &gen{seed: uint64(seed), rng: rand.New(rand.NewPCG(uint64(seed), uint64(ti)+1)), repos: repos}
	mk := docMakers[t.Name]
	if mk == nil {
		return fmt.Errorf("dtrgen: no documents for %s", t.Name)
	}
	for i := range t.Rows {
		g.b = g.b[:0]
		g.first = true
		mk(g, i, t.Rows)
		if err := fn(g.b); err != nil {
			return err
		}
	}
	return nil
}

// --- a small JSON writer: members come out in the order written ---

func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

func (g *gen) sep() {
	if !g.first {
		g.b = append(g.b, ',')
	}
	g.first = false
}

func (g *gen) key(k string) {
	g.sep()
	g.b = appendString(g.b, k)
	g.b = append(g.b, ':')
	g.first = true
}

func (g *gen) open(c byte)  { g.sep(); g.b = append(g.b, c); g.first = true }
func (g *gen) close(c byte) { g.b = append(g.b, c); g.first = false }
func (g *gen) str(s string) { g.sep(); g.b = appendString(g.b, s) }
func (g *gen) int(n int64)  { g.sep(); g.b = strconv.AppendInt(g.b, n, 10) }
func (g *gen) num(f float64) {
	g.sep()
	g.b = strconv.AppendFloat(g.b, f, 'g', -1, 64)
}

func (g *gen) bool(v bool) { g.sep(); g.b = strconv.AppendBool(g.b, v) }
func (g *gen) null()       { g.sep(); g.b = append(g.b, "null"...) }

// time writes a TIME pseudo-type with millisecond precision.
func (g *gen) time(t time.Time) {
	g.open('{')
	g.key("$reql_type$")
	g.str("TIME")
	g.key("epoch_time")
	g.num(float64(t.UnixMilli()) / 1000)
	g.key("timezone")
	g.str("+00:00")
	g.close('}')
}

func (g *gen) binary(data []byte) {
	g.open('{')
	g.key("$reql_type$")
	g.str("BINARY")
	g.key("data")
	g.str(base64.StdEncoding.EncodeToString(data))
	g.close('}')
}

func (g *gen) kv(k, v string)       { g.key(k); g.str(v) }
func (g *gen) ki(k string, v int64) { g.key(k); g.int(v) }

// --- identities shared between tables, derived from the seed alone ---

func mix(x uint64) uint64 { // splitmix64
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func (g *gen) hash(kind string, i int) uint64 {
	h := g.seed
	for j := 0; j < len(kind); j++ {
		h = mix(h ^ uint64(kind[j]))
	}
	return mix(h ^ uint64(i))
}

func (g *gen) uuid(kind string, i int) string {
	a, b := g.hash(kind, i), g.hash(kind+"/2", i)
	return fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x", a>>32, (a>>16)&0xffff, a&0xfff, 0x8000|(b>>48)&0x3fff, b&0xffffffffffff)
}

func (g *gen) digest(kind string, i int) string {
	return fmt.Sprintf("sha256:%016x%016x%016x%016x", g.hash(kind, i), g.hash(kind+"/b", i), g.hash(kind+"/c", i), g.hash(kind+"/d", i))
}

var base = time.Date(2019, 3, 1, 0, 0, 0, 0, time.UTC)

func (g *gen) when(span time.Duration) time.Time {
	return base.Add(time.Duration(g.rng.Int64N(int64(span/time.Millisecond))) * time.Millisecond)
}

const year = 365 * 24 * time.Hour

var namespaces = []string{"engineering", "ops", "platform", "data", "security", "web", "mobile", "qa", "infra", "ml", "payments", "search"}
var apps = []string{"api", "web", "worker", "frontend", "backend", "gateway", "auth", "billing", "cache", "db", "scheduler", "notifier", "indexer", "proxy"}

func repoRows(plan []Table) int {
	for _, t := range plan {
		if t.Name == "repositories" {
			return t.Rows
		}
	}
	return 1
}

// repoName is repository i's namespace and name.

func repoName(i int) (string, string) {
	return namespaces[i%len(namespaces)], fmt.Sprintf("%s-%d", apps[(i/len(namespaces))%len(apps)], i)
}

var words = []string{"buffer", "overflow", "in", "the", "parser", "allows", "remote", "attackers", "to", "cause",
	"a", "denial", "of", "service", "via", "crafted", "input", "heap", "use-after-free", "when", "handling",
	"certificate", "validation", "integer", "signed", "function", "memory", "corruption", "library", "request"}

func (g *gen) sentence(n int) string {
	b := make([]byte, 0, n*8)
	for i := range n {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, words[g.rng.IntN(len(words))]...)
	}
	return string(b)
}

var components = []string{"openssl", "libc6", "zlib1g", "libssl1.1", "bash", "coreutils", "curl", "libcurl4", "libxml2",
	"busybox", "musl", "apk-tools", "ncurses", "sqlite", "expat", "libgcrypt20", "gnupg", "tar", "perl", "python3.7",
	"libpng16", "libjpeg-turbo", "krb5", "openldap", "systemd", "util-linux", "glib2", "pcre", "bzip2", "xz-utils"}

// vulns writes a list of vulnerabilities (a few hundred bytes each).
func (g *gen) vulns(n int) {
	g.open('[')
	for range n {
		g.open('{')
		g.key("vuln")
		g.open('{')
		g.kv("cve", fmt.Sprintf("CVE-%d-%05d", 2010+g.rng.IntN(10), g.rng.IntN(30000)))
		g.key("cvss")
		g.num(float64(g.rng.IntN(100)) / 10)
		g.kv("summary", g.sentence(12+g.rng.IntN(20)))
		g.close('}')
		g.key("exclude")
		g.bool(g.rng.IntN(20) == 0)
		g.close('}')
	}
	g.close(']')
}

// components writes a scan's components with their vulnerabilities.
func (g *gen) components(n int) {
	g.open('[')
	for range n {
		g.open('{')
		g.kv("component", components[g.rng.IntN(len(components))])
		g.kv("version", fmt.Sprintf("%d.%d.%d-r%d", g.rng.IntN(4), g.rng.IntN(20), g.rng.IntN(30), g.rng.IntN(5)))
		g.kv("license", []string{"MIT", "GPL-2.0", "Apache-2.0", "BSD-3-Clause", "LGPL-2.1"}[g.rng.IntN(5)])
		g.ki("fullpath", 0)
		g.key("vulns")
		g.vulns(g.rng.IntN(4))
		g.close('}')
	}
	g.close(']')
}

var docMakers = map[string]func(g *gen, i, rows int){
	"blobs": func(g *gen, i, rows int) {
		g.open('{')
		g.kv("id", g.digest("blob", i))
		g.ki("size", 1000+g.rng.Int64N(200<<20))
		g.kv("mediaType", "application/vnd.docker.image.rootfs.diff.tar.gzip")
		g.key("created_at")
		g.time(g.when(3 * year))
		g.key("repositories")
		g.open('[')
		for range 1 + g.rng.IntN(3) {
			g.str(g.uuid("repo", g.rng.IntN(g.repos)))
		}
		g.close(']')
		g.kv("location", "filesystem")
		g.close('}')
	},
	"events": func(g *gen, i, rows int) {
		types := []string{"TAG_PUSH", "TAG_PULL", "TAG_DELETE", "SCAN_COMPLETED", "SCAN_FAILED", "REPO_CREATED", "PROMOTION", "MIRROR"}
		ri := g.rng.IntN(g.repos)
		ns, name := repoName(ri)
		g.open('{')
		g.kv("id", g.uuid("event", i))
		g.kv("type", types[g.rng.IntN(len(types))])
		g.key("published_at")
		g.time(base.Add(time.Duration(i)*3*time.Second + time.Duration(g.rng.IntN(3000))*time.Millisecond))
		g.key("actor")
		g.open('{')
		g.kv("id", g.uuid("user", g.rng.IntN(200)))
		g.kv("name", fmt.Sprintf("user%d", g.rng.IntN(200)))
		g.close('}')
		g.key("object")
		g.open('{')
		g.kv("type", "TAG")
		g.kv("id", g.uuid("repo", ri))
		g.kv("name", ns+"/"+name+":"+strconv.Itoa(g.rng.IntN(50)))
		g.key("payload")
		g.open('{')
		g.kv("digest", g.digest("manifest", g.rng.IntN(1<<20)))
		g.kv("os", "linux")
		g.kv("architecture", "amd64")
		g.close('}')
		g.close('}')
		g.kv("remote_addr", fmt.Sprintf("10.%d.%d.%d", g.rng.IntN(256), g.rng.IntN(256), g.rng.IntN(256)))
		g.kv("user_agent", "docker/20.10.24 go/go1.19.9 git-commit/5d6db84 kernel/5.15 os/linux arch/amd64")
		g.close('}')
	},
	"manifests": func(g *gen, i, rows int) {
		ri := g.rng.IntN(g.repos)
		ns, name := repoName(ri)
		d := g.digest("manifest", i)
		g.open('{')
		g.kv("id", ns+"/"+name+"@"+d)
		g.kv("digest", d)
		g.kv("repository", g.uuid("repo", ri))
		g.kv("mediaType", "application/vnd.docker.distribution.manifest.v2+json")
		g.kv("configDigest", g.digest("config", i))
		g.kv("os", "linux")
		g.kv("architecture", "amd64")
		g.key("layers")
		g.open('[')
		for l := range 2 + g.rng.IntN(8) {
			g.open('{')
			g.kv("digest", g.digest("layer", i*16+l))
			g.ki("size", g.rng.Int64N(100<<20))
			g.kv("mediaType", "application/vnd.docker.image.rootfs.diff.tar.gzip")
			g.close('}')
		}
		g.close(']')
		g.key("created_at")
		g.time(g.when(3 * year))
		g.ki("size", g.rng.Int64N(1<<30))
		g.close('}')
	},
	"properties": func(g *gen, i, rows int) {
		g.open('{')
		ids := []string{"ha.json", "registry.json", "settings.json", "scanner.json", "gc.json", "license.json"}
		g.kv("id", ids[i%len(ids)]+suffix(i/len(ids)))
		g.key("value")
		g.open('{')
		g.ki("replicaCount", 3)
		g.kv("storage", "filesystem")
		g.kv("rootdirectory", "/storage")
		g.key("loadBalancerHTTPPort")
		g.int(80)
		g.close('}')
		g.close('}')
	},
	"repositories": func(g *gen, i, rows int) {
		ns, name := repoName(i)
		g.open('{')
		g.kv("id", g.uuid("repo", i))
		g.kv("namespace", ns)
		g.kv("name", name)
		g.kv("namespaceAccountID", g.uuid("account", i%len(namespaces)))
		g.kv("visibility", []string{"public", "private"}[g.rng.IntN(2)])
		g.kv("shortDescription", g.sentence(6))
		g.kv("longDescription", g.sentence(20+g.rng.IntN(40)))
		g.key("scanOnPush")
		g.bool(g.rng.IntN(2) == 0)
		g.key("immutableTags")
		g.bool(g.rng.IntN(5) == 0)
		g.key("enableManifestLists")
		g.bool(false)
		g.key("tagLimit")
		g.int(0)
		g.key("created_at")
		g.time(g.when(3 * year))
		g.close('}')
	},
	"scanned_images": func(g *gen, i, rows int) {
		ri := g.rng.IntN(g.repos)
		ns, name := repoName(ri)
		g.open('{')
		g.kv("id", g.digest("manifest", i))
		g.kv("namespace", ns)
		g.kv("reponame", name)
		g.kv("tag", "v"+strconv.Itoa(g.rng.IntN(50)))
		g.key("check_completed_at")
		g.time(g.when(3 * year))
		g.kv("scanner_version", "2.9.4")
		g.key("layers")
		g.open('[')
		for l := range 3 + g.rng.IntN(6) {
			g.open('{')
			g.kv("sha256sum", g.digest("layer", i*16+l))
			g.key("components")
			g.components(g.rng.IntN(3))
			g.close('}')
		}
		g.close(']')
		g.key("summary")
		g.open('{')
		g.ki("critical", g.rng.Int64N(5))
		g.ki("major", g.rng.Int64N(20))
		g.ki("minor", g.rng.Int64N(40))
		g.close('}')
		g.close('}')
	},
	"scanned_layers": func(g *gen, i, rows int) {
		g.open('{')
		g.kv("id", g.digest("layer", i))
		g.key("scanned_at")
		g.time(g.when(3 * year))
		g.kv("scanner_version", "2.9.4")
		g.key("components")
		g.components(2 + g.rng.IntN(6))
		g.key("binaries")
		g.open('[')
		for range g.rng.IntN(4) {
			g.str("/usr/bin/" + components[g.rng.IntN(len(components))])
		}
		g.close(']')
		g.close('}')
	},
	"tags": func(g *gen, i, rows int) {
		ri := g.rng.IntN(g.repos)
		ns, name := repoName(ri)
		d := g.digest("manifest", i)
		g.open('{')
		g.kv("id", g.uuid("repo", ri)+":v"+strconv.Itoa(i))
		g.kv("repository", g.uuid("repo", ri))
		g.kv("name", "v"+strconv.Itoa(i))
		g.kv("digest", d)
		g.key("digests")
		g.open('[')
		g.str(d)
		if g.rng.IntN(3) == 0 {
			g.str(g.digest("manifest", i+rows))
		}
		g.close(']')
		g.kv("author", fmt.Sprintf("user%d", g.rng.IntN(200)))
		g.kv("fullName", ns+"/"+name+":v"+strconv.Itoa(i))
		g.key("created_at")
		g.time(g.when(3 * year))
		g.key("updated_at")
		g.time(g.when(3 * year))
		g.key("hashMismatch")
		g.bool(false)
		g.close('}')
	},
	"crons": func(g *gen, i, rows int) {
		actions := []string{"onlinegc", "poll_mirror", "update_vuln_db", "tag_prune", "scan_all"}
		g.open('{')
		g.kv("id", g.uuid("cron", i))
		g.kv("action", actions[i%len(actions)])
		g.kv("schedule", fmt.Sprintf("0 %d * * *", i%24))
		g.key("retries")
		g.int(3)
		g.key("capacityMap")
		g.open('{')
		g.ki("onlinegc", 1)
		g.close('}')
		g.close('}')
	},
	"changefeed": func(g *gen, i, rows int) {
		ri := g.rng.IntN(g.repos)
		ns, name := repoName(ri)
		g.open('{')
		g.kv("id", g.uuid("changefeed", i))
		g.kv("gun", "dtr.example.com/"+ns+"/"+name)
		g.ki("version", g.rng.Int64N(100))
		g.kv("sha256", g.digest("tuf", i)[7:])
		g.kv("category", "update")
		g.key("created_at")
		g.time(g.when(3 * year))
		g.close('}')
	},
	"tuf_files": func(g *gen, i, rows int) {
		ri := g.rng.IntN(g.repos)
		ns, name := repoName(ri)
		gun := "dtr.example.com/" + ns + "/" + name
		role := []string{"root", "targets", "snapshot", "timestamp"}[i%4]
		g.open('{')
		g.kv("gun_role_version", fmt.Sprintf("%s_%s_%d", gun, role, i))
		g.kv("gun", gun)
		g.kv("role", role)
		g.ki("version", int64(i))
		g.kv("sha256", g.digest("tuf", i)[7:])
		data := make([]byte, 300+g.rng.IntN(1200))
		for j := range data {
			data[j] = byte(g.rng.Uint32())
		}
		g.key("data")
		g.binary(data)
		g.key("created_at")
		g.time(g.when(3 * year))
		g.close('}')
	},
	"private_keys": func(g *gen, i, rows int) {
		key := make([]byte, 121)
		for j := range key {
			key[j] = byte(g.rng.Uint32())
		}
		g.open('{')
		g.kv("key_id", g.digest("key", i)[7:])
		g.kv("algorithm", "ecdsa")
		g.kv("keywrap_alg", "PBES2-HS256+A128KW")
		g.kv("encryption_alg", "A256GCM")
		g.kv("passphrase_alias", "timestamp_1")
		g.key("private")
		g.binary(key)
		g.kv("public", base64.StdEncoding.EncodeToString(key[:64]))
		g.key("created_at")
		g.time(g.when(3 * year))
		g.close('}')
	},
}

func suffix(n int) string {
	if n == 0 {
		return ""
	}
	return "." + strconv.Itoa(n)
}
