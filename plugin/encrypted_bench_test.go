package plugin

import (
	"bytes"
	"context"
	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/dtrgen"
	"github.com/docker-dtr/docker-dtr/internal/dtrtest"
	"github.com/docker-dtr/docker-dtr/internal/rethinkserver"
	"github.com/docker/cli/cli/command"
)

// BenchmarkEncryptedRestoreVerify measures what an encrypted metadata
// backup costs restore and verify, against the same archive in clear, on
// the real RethinkDB with DTR's mutual TLS (the generated data set,
// DTR_BENCH_ROWS rows, default 100,000):
//
//   - restore-x: `backup restore` of the encrypted backup over the time
//     of the plain one, each into an emptied server (the goal:
//     at most 1.1);
//   - verify-x: `backup verify` of the encrypted backup over the plain
//     verify plus one `gpg -d FILE >/dev/null` of the same file, timed in
//     the same iteration (the goal: at most 1.0);
//
// Every iteration runs each of them, alternating which of a pair goes
// first; ns/op is a whole iteration.
func BenchmarkEncryptedRestoreVerify(b *testing.B) {
	gpg, err := exec.LookPath("gpg")
	if err != nil {
		b.Skip("no gpg: the verify's limit is gpg -d")
	}
	fx, driver := benchServer(b)
	pass, err := filepath.Abs(filepath.Join(cryptTestdata, "passphrase.txt"))
	if err != nil {
		b.Fatal(err)
	}
	plain, sealed := filepath.Join(fx.dir, "backup-metadata.tar"), filepath.Join(fx.dir, "backup-metadata.tar.gpg")
	create := append([]string{"backup", "create", "-q", "--dtr-version", "2.9.4"}, fx.flags()...)
	runBench(b, append(create, "-o", plain)...)
	runBench(b, append(create, "--encrypt", "--passphrase-file", pass, "-o", sealed)...)
	st, err := os.Stat(plain)
	if err != nil {
		b.Fatal(err)
	}
	home, err := os.MkdirTemp("/tmp", "gpg") // gpg-agent's socket path must be short
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(home)
	gpgDecrypt := func() {
		cmd := exec.Command(gpg, "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase-file", pass, "-d", sealed)
		cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
		var errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = io.Discard, &errb
		if err := cmd.Run(); err != nil {
			b.Fatalf("gpg -d: %v: %s", err, errb.String())
		}
	}
	restore := func(file string) func() {
		return func() {
			dtrtest.DropAll(b, driver)
			runBench(b, append([]string{"backup", "restore", "-q", "--dtr-version", "2.9.4", "--passphrase-file", pass, file}, fx.flags()...)...)
		}
	}
	verify := func(file string) func() {
		return func() { runBench(b, "backup", "verify", "-q", "--passphrase-file", pass, file) }
	}

	var restorePlain, restoreSealed, verifyPlain, verifySealed, gpgD time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		timePair(i, restore(plain), restore(sealed), &restorePlain, &restoreSealed)
		timePair(i, verify(plain), verify(sealed), &verifyPlain, &verifySealed)
		gpgD += timeIt(gpgDecrypt)
	}
	b.StopTimer()
	b.ReportMetric(restoreSealed.Seconds()/restorePlain.Seconds(), "restore-x")
	b.ReportMetric(verifySealed.Seconds()/(verifyPlain+gpgD).Seconds(), "verify-x")
	n := float64(b.N)
	b.ReportMetric(restorePlain.Seconds()/n, "restore-plain-s")
	b.ReportMetric(verifyPlain.Seconds()/n, "verify-plain-s")
	b.ReportMetric(verifySealed.Seconds()/n, "verify-enc-s")
	b.ReportMetric(gpgD.Seconds()/n, "gpg-d-s")
	b.ReportMetric(float64(st.Size())/1e6, "archive-MB")
}

// benchServer starts the real RethinkDB with DTR's TLS and fills it with
// DTR_BENCH_ROWS generated rows (100,000 by default): the data of the
// paired metadata benchmarks.
func benchServer(b *testing.B) (fixture, *r.Session) {
	b.Helper()
	rows := 100_000
	if v := os.Getenv("DTR_BENCH_ROWS"); v != "" {
		var err error
		if rows, err = strconv.Atoi(v); err != nil || rows < 100 {
			b.Fatalf("DTR_BENCH_ROWS=%q: expected a number of rows, at least 100", v)
		}
	}
	srv := rethinkserver.Start(b, rethinkserver.Options{TLS: true})
	driver := srv.Connect(b)
	if _, err := dtrgen.Generate(context.Background(), driver, dtrgen.Options{Rows: rows}); err != nil {
		b.Fatal(err)
	}
	return fixture{dir: b.TempDir(), addr: srv.Addr, certs: srv.Certs, driver: driver}, driver
}

// timePair times a and c once each, adding to da and dc, and alternates
// which goes first with the iteration i: a run of ours paired with a run of
// its limit, neither always on the warmer caches.
func timePair(i int, a, c func(), da, dc *time.Duration) {
	if i%2 == 1 {
		*dc += timeIt(c)
		*da += timeIt(a)
		return
	}
	*da += timeIt(a)
	*dc += timeIt(c)
}

func timeIt(f func()) time.Duration {
	start := time.Now()
	f()
	return time.Since(start)
}

// runBench runs a command line as the plugin would, and fails on a
// non-zero exit status.
func runBench(b *testing.B, args ...string) {
	b.Helper()
	var out, errb bytes.Buffer
	dcli, err := command.NewDockerCli(command.WithInputStream(io.NopCloser(strings.NewReader(""))), command.WithOutputStream(&out), command.WithErrorStream(&errb))
	if err != nil {
		b.Fatal(err)
	}
	if code := execute(dcli, &out, &errb, args); code != 0 {
		b.Fatalf("%s: exit %d: %s", strings.Join(args[:2], " "), code, errb.String())
	}
}
