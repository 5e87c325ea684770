package plugin

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/dtrtest"
	"github.com/docker-dtr/docker-dtr/internal/rethinkserver"
	"github.com/docker-dtr/docker-dtr/pkg/atomicfile"
	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

const serverName = rethinkserver.ServerName

type fixture struct {
	dir    string
	addr   string
	certs  *rethinkserver.Certs
	driver *r.Session
}

// flags are the direct connection flags for this server.
func (f fixture) flags() []string {
	return []string{"--rethinkdb-addr", f.addr, "--rethinkdb-ca", f.certs.CA,
		"--rethinkdb-cert", f.certs.ClientCert, "--rethinkdb-key", f.certs.ClientKey,
		"--rethinkdb-server-name", serverName}
}

// newFixture starts a real RethinkDB 2.4 with DTR's mutual TLS (opts.TLS
// is always set) and an empty directory for the command's files.
func newFixture(t *testing.T, opts rethinkserver.Options) fixture {
	t.Helper()
	opts.TLS = true
	srv := rethinkserver.Start(t, opts)
	out := filepath.Join(t.TempDir(), "out")
	assert.NilError(t, os.Mkdir(out, 0o700))
	return fixture{dir: out, addr: srv.Addr, certs: srv.Certs, driver: srv.Connect(t)}
}

func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	assert.NilError(t, err)
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestCLIBackupVerifyInspectRestore(t *testing.T) {
	fx := newFixture(t, rethinkserver.Options{})
	dtrtest.Seed(t, fx.driver)
	before := dtrtest.Snapshot(t, fx.driver)
	backup := filepath.Join(fx.dir, "backup-metadata.tar")

	out, errOut, code := run(t, nil, append([]string{"backup", "create", "--dtr-version", "2.9.4", "--replica-id", "0123456789ab", "-o", backup}, fx.flags()...)...)
	assert.Equal(t, code, 0, errOut)
	assert.Assert(t, is.Regexp(`^`+regexp.QuoteMeta(backup)+`: DTR 2.9.4, rethinkdb at 127.0.0.1:[0-9]+, 12 tables, 391 rows`, out))
	assert.Assert(t, is.Contains(errOut, "dumped dtr2.events: 300 rows"), "progress on stderr")
	st, err := os.Stat(backup)
	assert.NilError(t, err)
	assert.Equal(t, st.Mode().Perm(), os.FileMode(0o600))
	assert.DeepEqual(t, dirEntries(t, fx.dir), []string{"backup-metadata.tar"})

	out, _, code = run(t, nil, "backup", "verify", backup)
	assert.Equal(t, code, 0)
	assert.Assert(t, is.Contains(out, ": verified"))

	out, _, code = run(t, nil, "backup", "inspect", "--format", "json", backup)
	assert.Equal(t, code, 0)
	var rep struct {
		DTRVersion string `json:"dtrVersion"`
		ReplicaID  string `json:"replicaId"`
		Rows       int64  `json:"rows"`
		Tables     []any  `json:"tables"`
	}
	assert.NilError(t, json.Unmarshal([]byte(out), &rep))
	assert.Equal(t, rep.DTRVersion, "2.9.4")
	assert.Equal(t, rep.ReplicaID, "0123456789ab")
	assert.Equal(t, rep.Rows, int64(391))
	assert.Equal(t, len(rep.Tables), 12)

	restoreArgs := append([]string{"backup", "restore", backup, "--dtr-version", "2.9.7", "-q"}, fx.flags()...)

	// Tables exist: refused, nothing changed.
	_, errOut, code = run(t, nil, restoreArgs...)
	assert.Equal(t, code, 1)
	assert.Assert(t, is.Contains(errOut, "refusing to replace 12 existing tables"))
	assert.DeepEqual(t, dtrtest.Snapshot(t, fx.driver), before)

	// Dry run: the plan, nothing changed.
	dtrtest.DropAll(t, fx.driver)
	out, _, code = run(t, nil, append(restoreArgs, "--dry-run")...)
	assert.Equal(t, code, 0)
	assert.Assert(t, is.Contains(out, "create table dtr2.tags: not there now, 60 rows after (primary key id, indexes digests repository, write hook)"))
	assert.Assert(t, is.Contains(out, "create table notarysigner.private_keys: not there now, 1 rows after (primary key key_id)"))
	assert.Assert(t, !strings.Contains(out, "save the"), "nothing to replace, nothing to save")
	assert.Equal(t, len(dtrtest.Snapshot(t, fx.driver)), 0)

	out, errOut, code = run(t, nil, restoreArgs...)
	assert.Equal(t, code, 0, errOut)
	assert.Assert(t, is.Contains(out, "12 tables, 391 rows, row counts and primary keys checked"))
	assert.DeepEqual(t, dtrtest.Snapshot(t, fx.driver), before)

	// --force replaces what is there, after saving it beside the backup.
	_, err = r.DB("dtr2").Table("tags").Delete().RunWrite(fx.driver)
	assert.NilError(t, err)
	out, _, code = run(t, nil, append(restoreArgs, "--dry-run")...)
	assert.Equal(t, code, 0)
	assert.Assert(t, is.Contains(out, "drop and create table dtr2.tags: 0 rows now, 60 rows after"))
	assert.Assert(t, is.Regexp(`save the 12 tables it replaces to .*/safety-metadata-direct-\d{8}T\d{6}Z\.tar`, out))
	_, errOut, code = run(t, nil, append(restoreArgs, "--force")...)
	assert.Equal(t, code, 0, errOut)
	assert.DeepEqual(t, dtrtest.Snapshot(t, fx.driver), before)
	safety := regexp.MustCompile(`safety backup of the 12 tables this restore replaces: (\S+)`).FindStringSubmatch(errOut)
	assert.Assert(t, safety != nil, errOut)
	assert.Equal(t, filepath.Dir(safety[1]), fx.dir)
	st, err = os.Stat(safety[1])
	assert.NilError(t, err)
	assert.Equal(t, st.Mode().Perm(), os.FileMode(0o600))
	out, errOut, code = run(t, nil, "backup", "inspect", safety[1])
	assert.Equal(t, code, 0, errOut)
	assert.Assert(t, is.Contains(out, "dtr2.tags"))
}

// A load that fails part way puts back what it replaced, from the safety
// backup, and says so.
func TestCLIRestoreRollsBack(t *testing.T) {
	fx := newFixture(t, rethinkserver.Options{})
	dtrtest.Seed(t, fx.driver)
	before := dtrtest.Snapshot(t, fx.driver)
	// Verify does not work out the length RethinkDB gives an array key that
	// holds a number; the server refuses this one after the table was
	// dropped and created.
	bad := filepath.Join(fx.dir, "official.tar")
	writeOfficial(t, bad, map[string][]string{"properties": {`{"id":"x"}`, `{"id":[1,"` + strings.Repeat("k", 110) + `"]}`}})
	safetyDir := t.TempDir()
	_, errOut, code := run(t, nil, append([]string{"backup", "restore", bad, "--dtr-version", "2.9.4", "--force", "--safety-dir", safetyDir}, fx.flags()...)...)
	assert.Equal(t, code, 1, errOut)
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	last := lines[len(lines)-1]
	assert.Assert(t, is.Contains(last, "restore of "+bad+" failed, and the tables it replaced were put back from the safety backup "+safetyDir), errOut)
	assert.Assert(t, is.Contains(last, "Primary key too long"))
	assert.DeepEqual(t, dtrtest.Snapshot(t, fx.driver), before)

	// Without a safety backup it warns, and cannot put anything back.
	_, errOut, code = run(t, nil, append([]string{"backup", "restore", bad, "--dtr-version", "2.9.4", "--force", "--no-safety-backup"}, fx.flags()...)...)
	assert.Equal(t, code, 1, errOut)
	assert.Assert(t, is.Contains(errOut, "warning: no safety backup (--no-safety-backup): if this restore fails, what it replaces (1 table) is lost"))
	assert.Equal(t, len(dirEntries(t, fx.dir)), 1, "no safety backup written: %v", dirEntries(t, fx.dir))
}

// writeOfficial writes an archive in docker/dtr backup's format.
func writeOfficial(t *testing.T, path string, docs map[string][]string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name, body string, typ byte) {
		assert.NilError(t, tw.WriteHeader(&tar.Header{Name: name, Typeflag: typ, Mode: 0o600, Size: int64(len(body))}))
		_, err := tw.Write([]byte(body))
		assert.NilError(t, err)
	}
	v := "dtr-backup-v2.9.4-online/"
	add(v, "", tar.TypeDir)
	add(v+"rethink/", "", tar.TypeDir)
	for _, table := range slices.Sorted(maps.Keys(docs)) {
		add(v+"rethink/"+table+"/", "", tar.TypeDir)
		for i, d := range docs[table] {
			add(fmt.Sprintf("%srethink/%s/%d", v, table, i), d, tar.TypeReg)
		}
	}
	assert.NilError(t, tw.Close())
	assert.NilError(t, os.WriteFile(path, buf.Bytes(), 0o600))
}

func TestCLIBackupToStdoutAndRestoreFromStdin(t *testing.T) {
	fx := newFixture(t, rethinkserver.Options{})
	dtrtest.Seed(t, fx.driver)
	before := dtrtest.Snapshot(t, fx.driver)
	tarball, errOut, code := run(t, nil, append([]string{"backup", "create", "--dtr-version", "2.9.4", "-o", "-"}, fx.flags()...)...)
	assert.Equal(t, code, 0, errOut)
	assert.Assert(t, strings.HasPrefix(tarball, "dtr-backup-v2.9.4/"))
	assert.Assert(t, is.Contains(errOut, "standard output: DTR 2.9.4"), "summary goes to stderr when stdout is the archive")

	dtrtest.DropAll(t, fx.driver)
	_, errOut, code = run(t, strings.NewReader(tarball), append([]string{"backup", "restore", "-", "--dtr-version", "2.9.4"}, fx.flags()...)...)
	assert.Equal(t, code, 0, errOut)
	assert.DeepEqual(t, dtrtest.Snapshot(t, fx.driver), before)
}

func TestCLIRestoreRefusesBeforeChangingAnything(t *testing.T) {
	fx := newFixture(t, rethinkserver.Options{})
	dtrtest.Seed(t, fx.driver)
	backup := filepath.Join(fx.dir, "backup.tar")
	_, errOut, code := run(t, nil, append([]string{"backup", "create", "--dtr-version", "2.9.4", "-o", backup, "-q"}, fx.flags()...)...)
	assert.Equal(t, code, 0, errOut)
	dtrtest.DropAll(t, fx.driver)

	// another major.minor
	_, errOut, code = run(t, nil, append([]string{"backup", "restore", backup, "--dtr-version", "2.8.0"}, fx.flags()...)...)
	assert.Equal(t, code, 1)
	assert.Assert(t, is.Contains(errOut, "is a backup of DTR 2.9.4, the target is DTR 2.8.0"))

	// a damaged document
	b, err := os.ReadFile(backup)
	assert.NilError(t, err)
	i := bytes.Index(b, []byte(`"ha.json"`))
	b[i+2] = 'X'
	assert.NilError(t, os.WriteFile(backup, b, 0o600))
	_, errOut, code = run(t, nil, append([]string{"backup", "restore", backup, "--dtr-version", "2.9.4", "--force"}, fx.flags()...)...)
	assert.Equal(t, code, 1)
	assert.Assert(t, is.Contains(errOut, "SHA-256 does not match"))
	assert.Assert(t, is.Contains(errOut, "it did not verify (1 problem, listed above); nothing was changed"))
	assert.Equal(t, len(dtrtest.Snapshot(t, fx.driver)), 0, "no database was created")
}

func TestCLIConnectionErrors(t *testing.T) {
	fx := newFixture(t, rethinkserver.Options{Password: "s3cret"})
	other, err := rethinkserver.NewCerts(t.TempDir(), serverName)
	assert.NilError(t, err)
	wrongPW := filepath.Join(t.TempDir(), "pw")
	assert.NilError(t, os.WriteFile(wrongPW, []byte("not-it\n"), 0o600))
	rightPW := filepath.Join(t.TempDir(), "pw-right")
	assert.NilError(t, os.WriteFile(rightPW, []byte("s3cret\n"), 0o600))
	out := filepath.Join(fx.dir, "backup.tar")
	base := []string{"backup", "create", "--dtr-version", "2.9.4", "-o", out, "--rethinkdb-addr", fx.addr, "--rethinkdb-server-name", serverName}

	cases := []struct {
		name  string
		flags []string
		want  string
	}{
		{"wrong password", []string{"--rethinkdb-ca", fx.certs.CA, "--rethinkdb-cert", fx.certs.ClientCert, "--rethinkdb-key", fx.certs.ClientKey, "--rethinkdb-password-file", wrongPW},
			"refused the credentials (Wrong password): check --rethinkdb-password-file"},
		{"client certificate of another CA", []string{"--rethinkdb-ca", fx.certs.CA, "--rethinkdb-cert", other.ClientCert, "--rethinkdb-key", other.ClientKey, "--rethinkdb-password-file", rightPW},
			"rejected the client certificate"},
		{"server certificate of another CA", []string{"--rethinkdb-ca", other.CA, "--rethinkdb-cert", fx.certs.ClientCert, "--rethinkdb-key", fx.certs.ClientKey, "--rethinkdb-password-file", rightPW},
			"the server certificate does not verify"},
		{"no TLS", []string{"--rethinkdb-password-file", rightPW}, "the server may require TLS (DTR's does): give --rethinkdb-ca"},
		{"missing password file", []string{"--rethinkdb-ca", fx.certs.CA, "--rethinkdb-cert", fx.certs.ClientCert, "--rethinkdb-key", fx.certs.ClientKey, "--rethinkdb-password-file", "/nonexistent/pw"},
			"--rethinkdb-password-file: open /nonexistent/pw"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := run(t, nil, append(base, tc.flags...)...)
			t.Log(errOut)
			assert.Equal(t, code, 1)
			assert.Assert(t, is.Contains(errOut, tc.want))
			assert.Equal(t, strings.Count(strings.TrimSpace(errOut), "\n"), 0, "one line: %q", errOut)
			assert.Assert(t, !strings.Contains(errOut, "s3cret") && !strings.Contains(errOut, "not-it"), "no password in messages")
			assert.Equal(t, len(dirEntries(t, fx.dir)), 0, "nothing written")
		})
	}

	// and the right one works
	_, errOut, code := run(t, nil, append(base, "-q", "--rethinkdb-ca", fx.certs.CA, "--rethinkdb-cert", fx.certs.ClientCert, "--rethinkdb-key", fx.certs.ClientKey, "--rethinkdb-password-file", rightPW)...)
	assert.Equal(t, code, 0, errOut)
}

// The server killed (SIGKILL) while a dump is under way: the backup fails
// and leaves nothing. 20 MB of documents, about twenty server batches of
// 1 MB: when the file passes 1 MiB, the dump holds a few batches at most
// (the driver's and its 4 MiB read-ahead) and must ask for more.
func TestCLIServerGoneMidDump(t *testing.T) {
	srv := rethinkserver.Start(t, rethinkserver.Options{})
	driver := srv.Connect(t)
	_, err := r.DBCreate("dtr2").RunWrite(driver)
	assert.NilError(t, err)
	_, err = r.DB("dtr2").TableCreate("events").RunWrite(driver)
	assert.NilError(t, err)
	for start := 0; start < 20_000; start += 5000 {
		batch := make([]any, 0, 5000)
		for i := start; i < start+5000; i++ {
			batch = append(batch, map[string]any{"id": fmt.Sprintf("event-%06d", i), "payload": strings.Repeat("p", 1000)})
		}
		_, err := r.DB("dtr2").Table("events").Insert(batch, r.InsertOpts{Durability: "soft"}).RunWrite(driver)
		assert.NilError(t, err)
	}

	dir := t.TempDir()
	out := filepath.Join(dir, "backup.tar")
	type result struct {
		errOut string
		code   int
	}
	done := make(chan result, 1)
	go func() {
		_, errOut, code := run(t, nil, "backup", "create", "--dtr-version", "2.9.4", "-o", out, "--rethinkdb-addr", srv.Addr)
		done <- result{errOut, code}
	}()
	// Kill the server once the dump is well under way.
	deadline := time.Now().Add(60 * time.Second)
	for killed := false; !killed; {
		assert.Assert(t, time.Now().Before(deadline), "the dump never got under way")
		for _, name := range dirEntries(t, dir) {
			if st, err := os.Stat(filepath.Join(dir, name)); err == nil && st.Size() > 1<<20 {
				srv.Kill()
				killed = true
			}
		}
		time.Sleep(time.Millisecond)
	}
	res := <-done
	t.Log(res.errOut)
	assert.Equal(t, res.code, 1)
	assert.Assert(t, is.Contains(res.errOut, "backup failed, "+out+" was not written"))
	assert.Equal(t, len(dirEntries(t, dir)), 0, "no file and no temporary file left")
}

// backup create removes the temporary file a killed run left beside its
// output, and says so on stderr (not with -q); a running backup's is kept.
func TestCLICreateRemovesAKilledRunsTemporaryFile(t *testing.T) {
	fx := newFixture(t, rethinkserver.Options{})
	dtrtest.Seed(t, fx.driver)
	killed := filepath.Join(fx.dir, ".backup-metadata.tar.tmp-123")
	assert.NilError(t, os.WriteFile(killed, []byte("left by a killed backup"), 0o600))
	running, err := atomicfile.Create(filepath.Join(fx.dir, "running.tar"))
	assert.NilError(t, err)
	defer running.Abort()
	backup := filepath.Join(fx.dir, "backup-metadata.tar")
	_, errOut, code := run(t, nil, append([]string{"backup", "create", "--dtr-version", "2.9.4", "-o", backup}, fx.flags()...)...)
	assert.Equal(t, code, 0, errOut)
	assert.Assert(t, is.Contains(errOut, "removed "+killed+", the temporary file of a backup that was killed"))
	assert.DeepEqual(t, dirEntries(t, fx.dir), []string{filepath.Base(running.Name()), "backup-metadata.tar"})

	assert.NilError(t, os.WriteFile(killed, []byte("left by a killed backup"), 0o600))
	_, errOut, code = run(t, nil, append([]string{"backup", "create", "--dtr-version", "2.9.4", "-q", "-o", backup}, fx.flags()...)...)
	assert.Equal(t, code, 0, errOut)
	assert.Equal(t, errOut, "", "-q says nothing")
	assert.DeepEqual(t, dirEntries(t, fx.dir), []string{filepath.Base(running.Name()), "backup-metadata.tar"})
}
