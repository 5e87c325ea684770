package crypt

import (
	"bytes"
	"io"
	"os"
	"testing"
	"time"
)

const benchSize = 64 << 20

// onlyWriter and onlyReader hide WriterTo/ReaderFrom, so that the baseline
// copies through a buffer as the encrypted paths do.
type onlyWriter struct{ io.Writer }
type onlyReader struct{ io.Reader }

// copyBaseline times a plain io.Copy of data (the best of three), for the
// ratio.
func copyBaseline(data []byte) time.Duration {
	best := time.Duration(1<<63 - 1)
	for range 3 {
		start := time.Now()
		io.Copy(onlyWriter{io.Discard}, onlyReader{bytes.NewReader(data)})
		best = min(best, time.Since(start))
	}
	return best
}

// report adds the plain copy's speed and how many times slower than it the
// benchmarked path is.
func report(b *testing.B, copyTime time.Duration) {
	perOp := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(float64(benchSize)/copyTime.Seconds()/1e6, "copy-MB/s")
	b.ReportMetric(perOp/copyTime.Seconds(), "x-copy-time")
}

// The S2K count is the tests' cheap one: these measure the stream, not the
// passphrase stretching (which costs a fixed ~0.1-0.3 s per message).
func BenchmarkEncrypt(b *testing.B) {
	data := payload(benchSize, 10)
	b.SetBytes(benchSize)
	copyTime := copyBaseline(data)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w, err := encryptWith(io.Discard, Recipients{Passphrase: []byte("bench")}, cheapS2K)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(w, onlyReader{bytes.NewReader(data)}); err != nil {
			b.Fatal(err)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	report(b, copyTime)
}

func BenchmarkDecrypt(b *testing.B) {
	data := payload(benchSize, 11)
	msg := encrypt(b, data, Recipients{Passphrase: []byte("bench")})
	b.SetBytes(benchSize)
	copyTime := copyBaseline(data)
	pass := func() ([]byte, error) { return []byte("bench"), nil }
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := Decrypt(bytes.NewReader(msg), Secrets{Passphrase: pass})
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(onlyWriter{io.Discard}, r); err != nil || n != benchSize {
			b.Fatal(n, err)
		}
	}
	b.StopTimer()
	report(b, copyTime)
}

// BenchmarkDecryptVsGPG times, on the same file, our Decrypt, go-crypto's
// reader (what Decrypt used before mdcReader) and `gpg -d FILE >/dev/null`,
// alternating which goes first; x-gpg-time is ours/gpg's (below 1: faster).
func BenchmarkDecryptVsGPG(b *testing.B) {
	const size = 2 * benchSize
	g := newGPG(b, true)
	pass := []byte("bench")
	pf := g.file("pass", pass)
	file := g.file("msg.gpg", encrypt(b, payload(size, 12), Recipients{Passphrase: pass}))
	s := Secrets{Passphrase: func() ([]byte, error) { return pass, nil }}
	ours := func(chunk int) time.Duration {
		start := time.Now()
		f, err := os.Open(file)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		r, _, err := decryptOpened(f, s, chunk)
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(onlyWriter{io.Discard}, r); err != nil || n != size {
			b.Fatal(n, err)
		}
		return time.Since(start)
	}
	gpg := func() time.Duration {
		start := time.Now()
		g.run("--passphrase-file", pf, "-d", "-o", "/dev/null", file)
		return time.Since(start)
	}
	var tOurs, tGo, tGPG time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			tOurs += ours(mdcChunk)
			tGPG += gpg()
		} else {
			tGPG += gpg()
			tOurs += ours(mdcChunk)
		}
		tGo += ours(0)
	}
	b.StopTimer()
	mbs := func(d time.Duration) float64 { return float64(size) * float64(b.N) / d.Seconds() / 1e6 }
	b.ReportMetric(mbs(tOurs), "ours-MB/s")
	b.ReportMetric(mbs(tGPG), "gpg-MB/s")
	b.ReportMetric(mbs(tGo), "gocrypto-MB/s")
	b.ReportMetric(tOurs.Seconds()/tGPG.Seconds(), "x-gpg-time")
	b.ReportMetric(0, "ns/op")
}
