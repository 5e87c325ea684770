package plugin

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkCompressedCreate measures what zstd costs and saves a metadata
// backup, against the plain archive of the same data made in the same
// iteration, on the real RethinkDB with DTR's mutual TLS (the generated
// data set, DTR_BENCH_ROWS rows, default 100,000):
//
//   - size-x: the .tar.zst's size over the plain archive's (the issue's
//     goal: at most 0.1);
//   - create-speed-x: the plain `backup create`'s time over the .tar.zst
//     one's, a ratio of throughput (the goal: at least 0.9, the
//     compressed backup at most about 11% slower);
//   - verify-speed-x: the same for `backup verify` (no goal);
//   - verify-x: `backup verify` of the .tar.zst over the plain verify
//     plus one `zstd -dc FILE >/dev/null`, a ratio of times as in
//     BenchmarkEncryptedRestoreVerify (no goal; without the zstd command,
//     not reported).
//
// Every iteration runs each of a pair, alternating which goes first;
// ns/op is a whole iteration.
func BenchmarkCompressedCreate(b *testing.B) {
	fx, _ := benchServer(b)
	plain, zst := filepath.Join(fx.dir, "backup-metadata.tar"), filepath.Join(fx.dir, "backup-metadata.tar.zst")
	create := func(file string) func() {
		return func() {
			runBench(b, append([]string{"backup", "create", "-q", "--dtr-version", "2.9.4", "-o", file}, fx.flags()...)...)
		}
	}
	verify := func(file string) func() {
		return func() { runBench(b, "backup", "verify", "-q", file) }
	}
	zstdCmd, _ := exec.LookPath("zstd")
	unzstd := func() {
		if zstdCmd == "" {
			return
		}
		cmd := exec.Command(zstdCmd, "-dc", zst)
		var errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = io.Discard, &errb
		if err := cmd.Run(); err != nil {
			b.Fatalf("zstd -dc: %v: %s", err, errb.String())
		}
	}
	size := func(file string) int64 {
		st, err := os.Stat(file)
		if err != nil {
			b.Fatal(err)
		}
		return st.Size()
	}

	var createPlain, createZst, verifyPlain, verifyZst, zstdD time.Duration
	var plainBytes, zstBytes int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		timePair(i, create(plain), create(zst), &createPlain, &createZst)
		plainBytes, zstBytes = size(plain), size(zst)
		timePair(i, verify(plain), verify(zst), &verifyPlain, &verifyZst)
		zstdD += timeIt(unzstd)
	}
	b.StopTimer()
	b.ReportMetric(float64(zstBytes)/float64(plainBytes), "size-x")
	b.ReportMetric(createPlain.Seconds()/createZst.Seconds(), "create-speed-x")
	b.ReportMetric(verifyPlain.Seconds()/verifyZst.Seconds(), "verify-speed-x")
	if zstdCmd != "" {
		b.ReportMetric(verifyZst.Seconds()/(verifyPlain+zstdD).Seconds(), "verify-x")
		b.ReportMetric(zstdD.Seconds()/float64(b.N), "zstd-d-s")
	}
	n := float64(b.N)
	b.ReportMetric(createPlain.Seconds()/n, "create-plain-s")
	b.ReportMetric(createZst.Seconds()/n, "create-zst-s")
	b.ReportMetric(verifyPlain.Seconds()/n, "verify-plain-s")
	b.ReportMetric(verifyZst.Seconds()/n, "verify-zst-s")
	b.ReportMetric(float64(plainBytes)/1e6, "plain-MB")
	b.ReportMetric(float64(zstBytes)/1e6, "zst-MB")
}
