package zstdstream

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// sample is tar-like: repeated JSON with some noise, a few MiB, so that
// the encoder and decoder run over many blocks.
func sample() []byte {
	var b bytes.Buffer
	rnd := rand.New(rand.NewSource(1))
	for b.Len() < 3<<20 {
		b.WriteString(`{"id":"`)
		for range 16 {
			b.WriteByte("0123456789abcdef"[rnd.Intn(16)])
		}
		b.WriteString(`","namespace":"engineering","visibility":"private"}` + "\n")
	}
	return b.Bytes()
}

func compress(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func decompress(data []byte) ([]byte, error) {
	r, err := NewReader(bytes.NewReader(data), "f.tar.zst", nil)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func TestIsCompressed(t *testing.T) {
	for _, tc := range []struct {
		prefix []byte
		want   bool
	}{
		{[]byte{0x28, 0xb5, 0x2f, 0xfd, 0x04}, true},
		{[]byte{0x28, 0xb5, 0x2f}, false},                   // too short to tell
		{[]byte("dtr-backup-v2.9.4/\x00\x00"), false},       // a tar
		{[]byte{0xc3, 0x04, 0x09, 0x03}, false},             // OpenPGP (SKESK)
		{[]byte("-----BEGIN PGP MESSAGE-----"), false},      // armored
		{[]byte{0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0}, false}, // a skippable frame: not ours
	} {
		if got := IsCompressed(tc.prefix); got != tc.want {
			t.Errorf("IsCompressed(%x) = %v, want %v", tc.prefix, got, tc.want)
		}
	}
	if !IsCompressed(compress(t, []byte("x"))) {
		t.Fatal("the writer's stream is not recognised")
	}
}

func TestDetectKeepsTheStream(t *testing.T) {
	data := sample()
	for _, in := range [][]byte{compress(t, data), data, []byte("ab"), nil} {
		r, compressed, err := Detect(bytes.NewReader(in))
		if err != nil {
			t.Fatal(err)
		}
		if compressed != IsCompressed(in) {
			t.Fatalf("Detect says %v for %x…", compressed, in[:min(4, len(in))])
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, in) {
			t.Fatalf("Detect's reader read %d bytes (%v), want the %d given", len(got), err, len(in))
		}
	}
	broken := errors.New("disk gone")
	if _, _, err := Detect(io.MultiReader(strings.NewReader("a"), errReader{broken})); !errors.Is(err, broken) {
		t.Fatalf("Detect over a failing reader: %v", err)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestRoundTripAndDamage(t *testing.T) {
	data := sample()
	z := compress(t, data)
	if len(z)*5 > len(data) {
		t.Fatalf("%d bytes compressed to %d: no compression", len(data), len(z))
	}
	got, err := decompress(z)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("round trip: %d bytes, %v", len(got), err)
	}

	// Cut anywhere inside the stream: truncated, the file named.
	for _, n := range []int{5, len(z) / 3, len(z) - 1} {
		_, err := decompress(z[:n])
		if !errors.Is(err, ErrTruncated) || !strings.HasPrefix(err.Error(), "f.tar.zst: ") {
			t.Fatalf("cut at %d of %d: %v", n, len(z), err)
		}
	}
	// A changed byte: the block does not decode, or the checksum at the
	// end does not match; never the data read as good.
	for _, at := range []int{len(z) / 2, len(z) - 2} {
		bad := append([]byte(nil), z...)
		bad[at] ^= 0x10
		got, err := decompress(bad)
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTruncated) {
			t.Fatalf("byte %d changed: %d bytes read, err %v", at, len(got), err)
		}
		if !strings.HasPrefix(err.Error(), "f.tar.zst: ") {
			t.Fatalf("the error does not name the file: %v", err)
		}
	}
}

// An error of what the decoder reads (a decryption that failed) is the
// reader's error, not a claim about the zstd stream.
func TestSourceErrorPassesThrough(t *testing.T) {
	z := compress(t, sample())
	tampered := errors.New("cannot decrypt f: integrity check failed")
	r, err := NewReader(io.MultiReader(bytes.NewReader(z[:len(z)/2]), errReader{tampered}), "f", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := io.ReadAll(r); err != tampered {
		t.Fatalf("got %v, want the source's error as it is", err)
	}
}

// Abort leaves the stream without its end, so that what a failed backup
// wrote to standard output never reads as whole.
func TestAbortWritesNoEnd(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(sample())
	w.Abort()
	if _, err := decompress(buf.Bytes()); err == nil {
		t.Fatal("an aborted stream decompressed without error")
	}
}

// The zstd command reads what NewWriter writes, and NewReader what it
// writes: the user without the plugin has 'zstd -dc'.
func TestZstdCommandInterop(t *testing.T) {
	if _, err := exec.LookPath("zstd"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("zstd is required in CI (Debian's zstd)")
		}
		t.Skip("no zstd")
	}
	data := sample()
	cmd := exec.Command("zstd", "-dc")
	cmd.Stdin = bytes.NewReader(compress(t, data))
	out, err := cmd.Output()
	if err != nil || !bytes.Equal(out, data) {
		t.Fatalf("zstd -dc read %d bytes of %d: %v", len(out), len(data), err)
	}
	cmd = exec.Command("zstd", "-c", "-19")
	cmd.Stdin = bytes.NewReader(data)
	z, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := decompress(z); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("reading zstd -19's stream: %d bytes, %v", len(got), err)
	}
}

// Whatever the bytes, reading them ends in io.EOF or in one of the two
// errors, naming the file; it never panics.
func FuzzReader(f *testing.F) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf)
	w.Write([]byte(strings.Repeat("dtr-backup-v2.9.4/rethink/repositories/0\x00", 40)))
	w.Close()
	f.Add(buf.Bytes())
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd})
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x90, 0x01, 0x00, 0x00}) // a window over MaxWindow
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := decompress(data)
		if err == nil {
			return
		}
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTruncated) {
			t.Fatalf("error %v is neither ErrCorrupt nor ErrTruncated", err)
		}
		if !strings.HasPrefix(err.Error(), "f.tar.zst: ") || strings.Contains(err.Error(), "\n") {
			t.Fatalf("error %q is not one line naming the file", err)
		}
	})
}

// A frame that asks for a window over MaxWindow is refused before the
// decoder allocates it.
func TestRefusesAHugeWindow(t *testing.T) {
	// Frame header: magic, descriptor 0 (a window descriptor follows, no
	// checksum), window descriptor 0x90: 2^(10+18), 256 MiB, which the
	// library's own default (512 MiB) would take.
	_, err := decompress([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x90, 0x01, 0x00, 0x00})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "window") {
		t.Fatalf("a 256 MiB window: %v", err)
	}
}
