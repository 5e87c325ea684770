package crypt

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/ProtonMail/go-crypto/openpgp/s2k"
)

// cheapS2K makes most of the tests' messages cheap; the production count
// is checked in gpg's listing by TestGPGReadsOurPassphraseMessage.
const cheapS2K = 65536

// The production settings, which TestGPGReadsOurPassphraseMessage checks
// in gpg's listing.
func TestProductionSettings(t *testing.T) {
	if s2kCount != 65011712 || cipherFunc != packet.CipherAES256 {
		t.Errorf("S2K count %d, cipher %d", s2kCount, cipherFunc)
	}
}

// --- fixtures (testdata/gen.sh) ---

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fixturePass(t testing.TB) []byte {
	return bytes.TrimRight(fixture(t, "passphrase.txt"), "\n")
}

func identity(t testing.TB, name string) openpgp.EntityList {
	t.Helper()
	el, err := ReadIdentity(filepath.Join("testdata", name), nil)
	if err != nil {
		t.Fatal(err)
	}
	return el
}

func recipients(t testing.TB, names ...string) openpgp.EntityList {
	t.Helper()
	var all openpgp.EntityList
	for _, n := range names {
		el, err := ReadRecipients(filepath.Join("testdata", n))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, el...)
	}
	return all
}

// passOnce returns a Passphrase func that fails the test if called twice.
func passOnce(t testing.TB, pass []byte, calls *int) func() ([]byte, error) {
	return func() ([]byte, error) {
		*calls++
		if *calls > 1 {
			t.Errorf("passphrase asked %d times", *calls)
		}
		return pass, nil
	}
}

// --- helpers ---

func encrypt(t testing.TB, plain []byte, to Recipients) []byte {
	t.Helper()
	return encryptCount(t, plain, to, cheapS2K)
}

// encryptCount is encrypt with a passphrase stretched count times.
func encryptCount(t testing.TB, plain []byte, to Recipients, count int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := encryptWith(&buf, to, count)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(w, bytes.NewReader(plain)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// decrypt reads a whole message: the error is Decrypt's or the one at the
// end of the stream.
func decrypt(msg []byte, s Secrets) ([]byte, error) {
	r, err := Decrypt(bytes.NewReader(msg), s)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

func mustDecrypt(t *testing.T, msg []byte, s Secrets, want []byte) {
	t.Helper()
	got, err := decrypt(msg, s)
	if err != nil {
		t.Fatalf("decrypt: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("plaintext differs: got %d bytes, want %d", len(got), len(want))
	}
}

func wantErr(t *testing.T, msg []byte, s Secrets, want error) {
	t.Helper()
	got, err := decrypt(msg, s)
	if !errors.Is(err, want) {
		t.Fatalf("got error %v (and %d bytes), want %v", err, len(got), want)
	}
}

// payload makes test data: half random (incompressible), half text.
func payload(n int, seed int64) []byte {
	b := make([]byte, n)
	rnd := rand.New(rand.NewSource(seed))
	rnd.Read(b[:n/2])
	for i := n / 2; i < n; i++ {
		b[i] = "backup line\n"[i%12]
	}
	return b
}

// --- ours → ours ---

func TestRoundTripPassphrase(t *testing.T) {
	pass := []byte("round trip")
	for _, n := range []int{0, 1, 100, 511, 512, 513, 4096, 70000, 1<<20 + 3} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			plain := payload(n, int64(n))
			msg := encrypt(t, plain, Recipients{Passphrase: pass})
			if !IsEncrypted(msg) {
				t.Error("IsEncrypted is false for our message")
			}
			calls := 0
			mustDecrypt(t, msg, Secrets{Passphrase: passOnce(t, pass, &calls)}, plain)
			if calls != 1 {
				t.Errorf("passphrase asked %d times", calls)
			}
		})
	}
}

func TestRoundTripKeys(t *testing.T) {
	plain := payload(200000, 1)
	msg := encrypt(t, plain, Recipients{Keys: recipients(t, "ecc-pub.asc", "rsa-pub.asc")})
	for _, id := range []string{"ecc-sec.asc", "rsa-sec.asc"} {
		t.Run(id, func(t *testing.T) {
			// No passphrase: an unprotected key must not ask for one.
			mustDecrypt(t, msg, Secrets{Identities: identity(t, id)}, plain)
		})
	}
	info, err := Inspect(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	if info.Symmetric || len(info.KeyIDs) != 2 || info.Armored {
		t.Errorf("Inspect = %+v", info)
	}
}

// A Write of any size must not be buffered whole.
func TestEncryptLargeWrite(t *testing.T) {
	plain := payload(3<<20, 2)
	var buf bytes.Buffer
	w, err := encryptWith(&buf, Recipients{Passphrase: []byte("x")}, cheapS2K)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := w.Write(plain); n != len(plain) || err != nil {
		t.Fatal(n, err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	mustDecrypt(t, buf.Bytes(), Secrets{Passphrase: func() ([]byte, error) { return []byte("x"), nil }}, plain)
}

func TestEncryptArguments(t *testing.T) {
	keys := recipients(t, "ecc-pub.asc")
	for name, to := range map[string]Recipients{
		"neither":          {},
		"both":             {Passphrase: []byte("p"), Keys: keys},
		"empty passphrase": {Passphrase: []byte{}},
	} {
		if _, err := Encrypt(io.Discard, to); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// --- gpg-made fixtures, no gpg needed ---

func TestDecryptFixtures(t *testing.T) {
	plain := fixture(t, "plain.txt")
	pass := fixturePass(t)
	all := append(append(identity(t, "ecc-sec.asc"), identity(t, "rsa-sec.asc")...), identity(t, "protected-sec.asc")...)
	for _, tc := range []struct {
		file      string
		symmetric bool
		armored   bool
		keys      int
	}{
		{"sym-aes256.gpg", true, false, 0},
		{"sym-aes128.gpg", true, false, 0},
		{"sym-uncompressed.gpg", true, false, 0},
		{"sym-armored.asc", true, true, 0},
		{"to-ecc.gpg", false, false, 1},
		{"to-rsa.gpg", false, false, 1},
		{"to-protected.asc", false, true, 1},
		{"to-ecc-and-rsa.gpg", false, false, 2},
		{"signed-to-ecc.gpg", false, false, 1},
		{"to-hidden.gpg", false, false, 1},
		{"ours-sym.gpg", true, false, 0},
		{"ours-to-ecc-rsa.gpg", false, false, 2},
	} {
		t.Run(tc.file, func(t *testing.T) {
			msg := fixture(t, tc.file)
			if !IsEncrypted(msg) {
				t.Error("IsEncrypted is false")
			}
			info, err := Inspect(bytes.NewReader(msg))
			if err != nil {
				t.Fatal(err)
			}
			if info.Symmetric != tc.symmetric || info.Armored != tc.armored || len(info.KeyIDs) != tc.keys {
				t.Errorf("Inspect = %+v (%s)", info, info)
			}
			calls := 0
			mustDecrypt(t, msg, Secrets{Passphrase: passOnce(t, pass, &calls), Identities: all}, plain)
			if !tc.symmetric && !strings.Contains(tc.file, "protected") && calls != 0 {
				t.Errorf("passphrase asked for a message to an unprotected key")
			}
		})
	}
}

func TestProtectedIdentity(t *testing.T) {
	plain := fixture(t, "plain.txt")
	pass := fixturePass(t)
	msg := fixture(t, "to-protected.asc")
	path := filepath.Join("testdata", "protected-sec.asc")

	// Lazily: the key stays protected until Decrypt needs it.
	ids, err := ReadIdentity(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	mustDecrypt(t, msg, Secrets{Passphrase: passOnce(t, pass, &calls), Identities: ids}, plain)
	if calls != 1 {
		t.Errorf("passphrase asked %d times", calls)
	}
	if len(privateKeys(ids[0])) == 0 || !privateKeys(ids[0])[1].Encrypted {
		t.Error("Decrypt changed the caller's identity")
	}
	wantErr(t, msg, Secrets{Identities: ids}, ErrNeedPassphrase)
	calls = 0
	wantErr(t, msg, Secrets{Passphrase: passOnce(t, []byte("wrong"), &calls), Identities: ids}, ErrWrongPassphrase)

	// Eagerly, in ReadIdentity.
	calls = 0
	ids, err = ReadIdentity(path, passOnce(t, pass, &calls))
	if err != nil || calls != 1 {
		t.Fatal(err, calls)
	}
	mustDecrypt(t, msg, Secrets{Identities: ids}, plain)
	calls = 0
	if _, err := ReadIdentity(path, passOnce(t, []byte("wrong"), &calls)); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("ReadIdentity with a wrong passphrase: %v", err)
	}
	// An unprotected key never asks.
	if _, err := ReadIdentity(filepath.Join("testdata", "ecc-sec.asc"), func() ([]byte, error) {
		t.Error("passphrase asked for an unprotected key")
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestReadIdentityPublicOnly(t *testing.T) {
	_, err := ReadIdentity(filepath.Join("testdata", "ecc-pub.asc"), nil)
	if !errors.Is(err, ErrNoSecretKey) || !strings.Contains(err.Error(), "ecc-pub.asc") {
		t.Fatalf("got %v", err)
	}
	t.Log(err)
}

func TestReadKeyFileErrors(t *testing.T) {
	for _, name := range []string{"sym-aes256.gpg", "sym-armored.asc", "plain.txt", "missing.asc"} {
		path := filepath.Join("testdata", name)
		if _, err := ReadRecipients(path); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("ReadRecipients(%s): %v", name, err)
		}
		if _, err := ReadIdentity(path, nil); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("ReadIdentity(%s): %v", name, err)
		}
	}
	// Several armored exports in one file.
	both := append(fixture(t, "ecc-pub.asc"), fixture(t, "rsa-pub.asc")...)
	path := filepath.Join(t.TempDir(), "both.asc")
	if err := os.WriteFile(path, both, 0o600); err != nil {
		t.Fatal(err)
	}
	el, err := ReadRecipients(path)
	if err != nil || len(el) != 2 {
		t.Fatalf("got %d keys, %v", len(el), err)
	}
}

// Keys that cannot encrypt are refused with the file and the key named.
func TestReadRecipientsUnusable(t *testing.T) {
	past := time.Now().Add(-48 * time.Hour)
	newEntity := func(c *packet.Config) *openpgp.Entity {
		if c.Algorithm == 0 {
			c.Algorithm = packet.PubKeyAlgoEdDSA
		}
		e, err := openpgp.NewEntity("Unusable", "", "u@example.com", c)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	expired := newEntity(&packet.Config{Time: func() time.Time { return past }, KeyLifetimeSecs: 3600})
	revoked := newEntity(&packet.Config{})
	if err := revoked.RevokeKey(packet.KeyCompromised, "test", nil); err != nil {
		t.Fatal(err)
	}
	signOnly := newEntity(&packet.Config{})
	signOnly.Subkeys = nil
	subRevoked := newEntity(&packet.Config{})
	if err := subRevoked.RevokeSubkey(&subRevoked.Subkeys[0], packet.KeySuperseded, "test", nil); err != nil {
		t.Fatal(err)
	}
	v6 := newEntity(&packet.Config{V6Keys: true, Algorithm: packet.PubKeyAlgoEd25519})
	x25519 := newEntity(&packet.Config{Algorithm: packet.PubKeyAlgoEd25519})

	for name, e := range map[string]*openpgp.Entity{
		"expired": expired, "revoked": revoked, "sign-only": signOnly,
		"subkey-revoked": subRevoked, "v6": v6, "x25519": x25519,
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), name+".gpg")
			var buf bytes.Buffer
			if err := e.Serialize(&buf); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := ReadRecipients(path)
			if !errors.Is(err, ErrUnusableKey) {
				t.Fatalf("got %v", err)
			}
			if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, KeyID(e.PrimaryKey.KeyId)) {
				t.Errorf("error does not name the file and key: %s", msg)
			}
			t.Log(err)
			if _, err := Encrypt(io.Discard, Recipients{Keys: openpgp.EntityList{e}}); !errors.Is(err, ErrUnusableKey) {
				t.Errorf("Encrypt: %v", err)
			}
		})
	}
}

// --- errors ---

func TestWrongPassphrase(t *testing.T) {
	plain := []byte("some backup")
	msgs := map[string][]byte{
		"ours":          encrypt(t, plain, Recipients{Passphrase: []byte("right")}),
		"gpg-aes256":    fixture(t, "sym-aes256.gpg"),
		"gpg-aes128":    fixture(t, "sym-aes128.gpg"),
		"gpg-armored":   fixture(t, "sym-armored.asc"),
		"gpg-plain-lit": fixture(t, "sym-uncompressed.gpg"),
	}
	for name, msg := range msgs {
		t.Run(name, func(t *testing.T) {
			// Many wrong passphrases: each must be told as such, never
			// as damage and never by asking again.
			for i := 0; i < 200; i++ {
				calls := 0
				wantErr(t, msg, Secrets{Passphrase: passOnce(t, []byte(fmt.Sprint("wrong", i)), &calls)}, ErrWrongPassphrase)
				if calls != 1 {
					t.Fatalf("passphrase asked %d times", calls)
				}
			}
			wantErr(t, msg, Secrets{}, ErrNeedPassphrase)
			wantErr(t, msg, Secrets{Identities: identity(t, "ecc-sec.asc")}, ErrNeedPassphrase)
		})
	}
	// The prompt's own error (say, cancelled) comes back as is.
	cancelled := errors.New("cancelled")
	_, err := decrypt(msgs["ours"], Secrets{Passphrase: func() ([]byte, error) { return nil, cancelled }})
	if !errors.Is(err, cancelled) {
		t.Errorf("got %v", err)
	}
}

func TestNoMatchingKey(t *testing.T) {
	msg := fixture(t, "to-ecc.gpg")
	subkey := recipients(t, "ecc-pub.asc")[0].Subkeys[0].PublicKey.KeyId
	for name, s := range map[string]Secrets{
		"other key":   {Identities: identity(t, "rsa-sec.asc")},
		"no identity": {Passphrase: func() ([]byte, error) { t.Error("passphrase asked"); return nil, nil }},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := decrypt(msg, s)
			var nk *NoKeyError
			if !errors.As(err, &nk) || !errors.Is(err, ErrNoKey) {
				t.Fatalf("got %v", err)
			}
			if len(nk.KeyIDs) != 1 || nk.KeyIDs[0] != subkey || nk.NoIdentity != (s.Identities == nil) {
				t.Errorf("got %+v", nk)
			}
			if m := err.Error(); !strings.Contains(m, KeyID(subkey)) || !strings.Contains(m, "--identity-file") {
				t.Errorf("message: %s", m)
			}
			t.Log(err)
		})
	}
}

// tamperCases are messages with their secrets and where their encrypted
// data starts (past the session-key packets and the SEIPD header).
func tamperCases(t *testing.T) map[string]struct {
	msg   []byte
	s     Secrets
	plain []byte
} {
	pass := fixturePass(t)
	big := payload(1<<20, 3)
	ps := Secrets{Passphrase: func() ([]byte, error) { return pass, nil }}
	ks := Secrets{Identities: identity(t, "ecc-sec.asc")}
	plain := fixture(t, "plain.txt")
	return map[string]struct {
		msg   []byte
		s     Secrets
		plain []byte
	}{
		"ours-small":           {encrypt(t, []byte("0123456789abcdef0123456789"), Recipients{Passphrase: pass}), ps, []byte("0123456789abcdef0123456789")},
		"ours-big":             {encrypt(t, big, Recipients{Passphrase: pass}), ps, big},
		"ours-key":             {encrypt(t, big, Recipients{Keys: recipients(t, "ecc-pub.asc")}), ks, big},
		"gpg-sym-compressed":   {fixture(t, "sym-aes256.gpg"), ps, plain},
		"gpg-sym-uncompressed": {fixture(t, "sym-uncompressed.gpg"), ps, plain},
		"gpg-key":              {fixture(t, "to-ecc.gpg"), ks, plain},
	}
}

func TestTampered(t *testing.T) {
	for name, tc := range tamperCases(t) {
		t.Run(name, func(t *testing.T) {
			mustDecrypt(t, tc.msg, tc.s, tc.plain)
			// A byte in the middle, and others over the second half. The
			// first 18 bytes of the data are its random prefix: a change
			// there reads as a wrong key, as with gpg.
			data := dataOffset(t, tc.msg) + 18
			for _, at := range []int{max(len(tc.msg)/2, data), len(tc.msg) * 3 / 4, len(tc.msg) - 21, len(tc.msg) - 1} {
				if isLengthByte(tc.msg, at) {
					continue
				}
				for _, flip := range []byte{0x01, 0x80, 0xff} {
					bad := bytes.Clone(tc.msg)
					bad[at] ^= flip
					got, err := decrypt(bad, tc.s)
					if !errors.Is(err, ErrTampered) {
						t.Fatalf("byte %d of %d ^ %#x: got %v (and %d bytes)", at, len(tc.msg), flip, err, len(got))
					}
				}
			}
		})
	}
}

// dataOffset tells where the content of the SEIPD packet starts, past its
// header and version byte.
func dataOffset(t *testing.T, msg []byte) int {
	i := 0
	for i < len(msg) {
		tag, length, n, st := parseHeader(msg[i:])
		if st != headerOK {
			break
		}
		if tag == tagSEIPD {
			return i + n + 1
		}
		i += n + int(length)
	}
	t.Fatal("no SEIPD packet")
	return 0
}

// isLengthByte tells the partial body length bytes of the SEIPD packet:
// changing one makes the message look truncated, not tampered.
func isLengthByte(msg []byte, at int) bool {
	i := 0
	for i < len(msg) {
		tag, length, n, st := parseHeader(msg[i:])
		if st != headerOK {
			return false
		}
		if tag != tagSEIPD {
			i += n + int(length)
			continue
		}
		for j := i + 1; j < len(msg); {
			l := msg[j]
			if at >= j && at < j+headerSize([]byte{0xc0, l})-1 {
				return true
			}
			if l < 224 || l == 255 {
				return false // the last chunk
			}
			j += 1 + 1<<(l&0x1f)
		}
		return false
	}
	return false
}

// Every single-byte change of a small message fails, or at worst leaves the
// plaintext as it was (the 0x40 prefix of a Curve25519 point in the session
// key packet is not checked); the data itself admits no change.
func TestTamperedEveryByte(t *testing.T) {
	pass := fixturePass(t)
	ps := Secrets{Passphrase: func() ([]byte, error) { return pass, nil }}
	small := []byte("a small backup")
	for name, tc := range map[string]struct {
		msg   []byte
		s     Secrets
		plain []byte
	}{
		"ours":     {encrypt(t, small, Recipients{Passphrase: pass}), ps, small},
		"ours-key": {encrypt(t, small, Recipients{Keys: recipients(t, "ecc-pub.asc")}), Secrets{Identities: identity(t, "ecc-sec.asc")}, small},
		"gpg-sym":  {fixture(t, "sym-aes256.gpg"), ps, fixture(t, "plain.txt")},
		"gpg-key":  {fixture(t, "to-ecc.gpg"), Secrets{Identities: identity(t, "ecc-sec.asc")}, fixture(t, "plain.txt")},
	} {
		t.Run(name, func(t *testing.T) {
			data := dataOffset(t, tc.msg)
			harmless := 0
			for at := range tc.msg {
				bad := bytes.Clone(tc.msg)
				bad[at] ^= 0x10
				got, err := decrypt(bad, tc.s)
				if err != nil {
					continue
				}
				if at >= data || !bytes.Equal(got, tc.plain) {
					t.Fatalf("byte %d changed: decrypted %d bytes without error", at, len(got))
				}
				t.Logf("byte %d (%#x) changed harmlessly", at, tc.msg[at])
				harmless++
			}
			t.Logf("%d of %d changes rejected; %d in the key packets left the plaintext as it was", len(tc.msg)-harmless, len(tc.msg), harmless)
		})
	}
}

func TestTruncated(t *testing.T) {
	for name, tc := range tamperCases(t) {
		t.Run(name, func(t *testing.T) {
			var cuts []int
			for n := 1; n < len(tc.msg); n++ {
				// Every length of small messages; of big ones, every
				// length over the headers and the end, and a sample.
				if len(tc.msg) < 4096 || n < 300 || n > len(tc.msg)-30 || n%(len(tc.msg)/16) == 0 {
					cuts = append(cuts, n)
				}
			}
			cuts = append(cuts, len(tc.msg)/2)
			for _, n := range cuts {
				got, err := decrypt(tc.msg[:n], tc.s)
				if !errors.Is(err, ErrTruncated) {
					t.Fatalf("cut at %d of %d: got %v (and %d bytes)", n, len(tc.msg), err, len(got))
				}
			}
		})
	}
	// Armored: cut inside the base64 text.
	msg := fixture(t, "sym-armored.asc")
	pass := fixturePass(t)
	s := Secrets{Passphrase: func() ([]byte, error) { return pass, nil }}
	body := bytes.Index(msg, []byte("\n\n")) + 2
	end := bytes.LastIndex(msg, []byte("\n="))
	for _, n := range []int{body - 5, body + 3, (body + end) / 2, end - 1} {
		if _, err := decrypt(msg[:n], s); !errors.Is(err, ErrTruncated) {
			t.Errorf("armored cut at %d of %d: got %v", n, len(msg), err)
		}
	}
}

func TestNotEncrypted(t *testing.T) {
	var signed bytes.Buffer
	w, err := openpgp.Sign(&signed, identity(t, "ecc-sec.asc")[0], nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("signed, not encrypted"))
	w.Close()
	for name, in := range map[string][]byte{
		"empty":       nil,
		"tar":         tarFile(t),
		"gzip":        gzipFile(t),
		"text":        []byte("hello world\n"),
		"random":      payload(1000, 9)[:500],
		"public key":  fixture(t, "ecc-pub.asc"),
		"binary key":  dearmor(t, fixture(t, "rsa-pub.asc")),
		"signed only": signed.Bytes(),
	} {
		t.Run(name, func(t *testing.T) {
			if IsEncrypted(in) {
				t.Error("IsEncrypted is true")
			}
			wantErr(t, in, Secrets{}, ErrNotEncrypted)
			if _, err := Inspect(bytes.NewReader(in)); !errors.Is(err, ErrNotEncrypted) {
				t.Errorf("Inspect: %v", err)
			}
		})
	}
}

func dearmor(t *testing.T, b []byte) []byte {
	el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	el[0].Serialize(&buf)
	return buf.Bytes()
}

func TestUnsupported(t *testing.T) {
	pass := []byte("p")
	// An AEAD (SEIPD v2) message, as RFC 9580 tools write.
	var aead bytes.Buffer
	w, err := openpgp.SymmetricallyEncrypt(&aead, pass, nil, &packet.Config{
		AEADConfig: &packet.AEADConfig{},
		S2KConfig:  &s2k.Config{S2KMode: s2k.IteratedSaltedS2K, S2KCount: 65536},
	})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("x"))
	w.Close()

	// Our session-key packet followed by other kinds of encrypted data.
	ours := encrypt(t, []byte("x"), Recipients{Passphrase: pass})
	_, skLen, skHdr, _ := parseHeader(ours)
	sk := ours[:skHdr+int(skLen)]
	ocb := append(bytes.Clone(sk), 0xd4, 5, 1, 9, 2, 16, 0) // tag 20 (OCB), as gpg 2.4 may write
	sed := append(bytes.Clone(sk), 0xc9, 4, 1, 2, 3, 4)     // tag 9: no MDC

	// A v4 passphrase packet using Argon2.
	var argon bytes.Buffer
	err = packet.SerializeSymmetricKeyEncryptedAEADReuseKey(&argon, make([]byte, 32), pass, false, &packet.Config{
		DefaultCipher: packet.CipherAES256,
		S2KConfig: &s2k.Config{S2KMode: s2k.Argon2S2K, Argon2Config: &s2k.Argon2Config{
			NumberOfPasses: 1, DegreeOfParallelism: 1, Memory: 64,
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	argon.Write(ours[skHdr+int(skLen):])

	for name, msg := range map[string][]byte{"seipd-v2": aead.Bytes(), "ocb": ocb, "sed": sed, "argon2": argon.Bytes()} {
		t.Run(name, func(t *testing.T) {
			if !IsEncrypted(msg) {
				t.Error("IsEncrypted is false")
			}
			_, err := decrypt(msg, Secrets{Passphrase: func() ([]byte, error) {
				t.Error("passphrase asked for an unsupported message")
				return pass, nil
			}})
			if !errors.Is(err, ErrUnsupported) {
				t.Fatalf("got %v", err)
			}
			t.Log(err)
		})
	}
}

// An I/O error is not damage.
func TestReadError(t *testing.T) {
	msg := encrypt(t, payload(100000, 4), Recipients{Passphrase: []byte("p")})
	boom := errors.New("disk on fire")
	r := io.MultiReader(bytes.NewReader(msg[:50000]), iotestErrReader{boom})
	pt, err := Decrypt(r, Secrets{Passphrase: func() ([]byte, error) { return []byte("p"), nil }})
	if err == nil {
		_, err = io.ReadAll(pt)
	}
	if !errors.Is(err, boom) || errors.Is(err, ErrTampered) || errors.Is(err, ErrTruncated) {
		t.Fatalf("got %v", err)
	}
}

type iotestErrReader struct{ err error }

func (r iotestErrReader) Read([]byte) (int, error) { return 0, r.err }

// --- IsEncrypted ---

func tarFile(t *testing.T) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	// A name starting with bytes that read as a session-key packet header.
	for _, name := range []string{"backup/metadata.json", "\xc3\x0c\x04\x09\x03rest", "\x8c\x0d\x04\x09\x03\x08"} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: 3, Format: tar.FormatPAX})
		tw.Write([]byte("abc"))
	}
	tw.Close()
	return buf.Bytes()
}

func gzipFile(t *testing.T) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(tarFile(t))
	zw.Close()
	return buf.Bytes()
}

func TestIsEncrypted(t *testing.T) {
	tf := tarFile(t)
	// Tars whose first name is crafted to look like packets.
	for _, name := range []string{"\xc3\x0c\x04\x09\x03rest", "\x8c\x0d\x04\x09\x03\x08\x01\x02\x03\x04\x05\x06\x07\x08\x60"} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: 1})
		tw.Write([]byte("x"))
		tw.Close()
		if IsEncrypted(buf.Bytes()[:512]) {
			t.Errorf("tar with name %q taken for a message", name)
		}
	}
	for _, in := range [][]byte{nil, {}, tf, tf[:512], gzipFile(t), []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n"), {0x8c}, {0xc3, 0x0d}} {
		if IsEncrypted(in) {
			t.Errorf("IsEncrypted(% x...) is true", in[:min(len(in), 8)])
		}
	}
	// Random data: rarely a plausible packet sequence.
	rnd := rand.New(rand.NewSource(1))
	hits := 0
	for i := 0; i < 100000; i++ {
		b := make([]byte, 512)
		rnd.Read(b)
		if IsEncrypted(b) {
			hits++
		}
	}
	if hits > 10 {
		t.Errorf("%d of 100000 random prefixes taken for messages", hits)
	}
	ours := encrypt(t, []byte("x"), Recipients{Passphrase: []byte("p")})
	for _, in := range [][]byte{ours, ours[:12], fixture(t, "to-rsa.gpg")[:512], fixture(t, "to-ecc-and-rsa.gpg")[:20],
		fixture(t, "sym-armored.asc"), append([]byte("\n  \r\n"), fixture(t, "to-protected.asc")...)} {
		if !IsEncrypted(in) {
			t.Errorf("IsEncrypted(% x...) is false", in[:8])
		}
	}
}

func TestInfoString(t *testing.T) {
	for _, tc := range []struct {
		info Info
		want string
	}{
		{Info{Symmetric: true}, "encrypted with a passphrase"},
		{Info{KeyIDs: []uint64{0x0408E45E3D6CF05A}}, "encrypted to key 0x0408E45E3D6CF05A"},
		{Info{KeyIDs: []uint64{1, 0}}, "encrypted to keys 0x0000000000000001, a hidden recipient"},
	} {
		if got := tc.info.String(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

// --- streaming ---

// Memory must not grow with the message: 48 MiB through Encrypt and Decrypt
// with the heap sampled along the way.
func TestStreamingMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	const size = 48 << 20
	chunk := payload(1<<20, 5)
	var peak uint64
	sample := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
	}
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)

	pr, pw := io.Pipe()
	go func() {
		w, err := encryptWith(pw, Recipients{Passphrase: []byte("p")}, cheapS2K)
		if err != nil {
			pw.CloseWithError(err)
			return
		}
		for i := 0; i < size/len(chunk); i++ {
			if _, err := w.Write(chunk); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(w.Close())
	}()
	pt, err := Decrypt(pr, Secrets{Passphrase: func() ([]byte, error) { return []byte("p"), nil }})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	total := 0
	for {
		n, err := io.ReadFull(pt, buf)
		total += n
		if n > 0 && !bytes.Equal(buf[:n], chunk[:n]) {
			t.Fatal("plaintext differs")
		}
		sample()
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if total != size {
		t.Fatalf("read %d bytes, want %d", total, size)
	}
	grew := int64(peak) - int64(base.HeapInuse)
	t.Logf("heap in use grew by at most %.1f MiB for %d MiB", float64(grew)/(1<<20), size>>20)
	if grew > 16<<20 {
		t.Errorf("heap grew by %d MiB", grew>>20)
	}
}

// --- with the real gpg ---

type gpgHome struct {
	t   testing.TB
	dir string
}

// newGPG makes a throwaway GNUPGHOME. Its path is short: gpg-agent's socket
// lives in it, and socket paths are limited to about 100 bytes. With
// cheapKeys, gpg-agent protects secret keys with a low S2K count instead of
// the ~65M iterations it calibrates; the format is the same.
func newGPG(t testing.TB, cheapKeys bool) *gpgHome {
	t.Helper()
	if _, err := exec.LookPath("gpg"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("gpg is not installed, and CI must test against it")
		}
		t.Skip("gpg is not installed")
	}
	parent := "/tmp"
	if _, err := os.Stat(parent); err != nil {
		parent = ""
	}
	dir, err := os.MkdirTemp(parent, "gpgt")
	if err != nil {
		t.Fatal(err)
	}
	g := &gpgHome{t: t, dir: dir}
	t.Cleanup(func() {
		cmd := exec.Command("gpgconf", "--kill", "gpg-agent")
		cmd.Env = g.env()
		cmd.Run()
		os.RemoveAll(dir)
	})
	if cheapKeys {
		g.file("gpg-agent.conf", []byte("s2k-count 65536\n"))
	}
	return g
}

func (g *gpgHome) env() []string {
	return append(os.Environ(), "GNUPGHOME="+g.dir, "LC_ALL=C", "LANGUAGE=")
}

// try runs gpg in batch mode, passphrases coming from files (loopback).
func (g *gpgHome) try(args ...string) (stdout, stderr []byte, err error) {
	base := []string{"--homedir", g.dir, "--batch", "--yes", "--no-tty", "--pinentry-mode", "loopback", "--trust-model", "always"}
	cmd := exec.Command("gpg", append(base, args...)...)
	cmd.Env = g.env()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.Bytes(), errb.Bytes(), err
}

func (g *gpgHome) run(args ...string) []byte {
	g.t.Helper()
	out, stderr, err := g.try(args...)
	if err != nil {
		g.t.Fatalf("gpg %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return out
}

func (g *gpgHome) file(name string, data []byte) string {
	g.t.Helper()
	p := filepath.Join(g.dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		g.t.Fatal(err)
	}
	return p
}

var tagRe = regexp.MustCompile(`(?m)^# off=\d+ ctb=[0-9a-f]+ tag=(\d+)`)

// packetTags lists the packets gpg --list-packets shows.
func packetTags(listing []byte) string {
	var tags []string
	for _, m := range tagRe.FindAllSubmatch(listing, -1) {
		tags = append(tags, string(m[1]))
	}
	return strings.Join(tags, ",")
}

// sessionCipher is the cipher gpg --show-session-key reports ("9:..." is AES-256).
var sessionCipher = regexp.MustCompile(`session key: '(\d+):`)

func checkAES256(t *testing.T, stderr []byte) {
	t.Helper()
	m := sessionCipher.FindSubmatch(stderr)
	if m == nil || string(m[1]) != "9" {
		t.Errorf("gpg does not report cipher 9 (AES-256):\n%s", stderr)
	}
}

// gpg reads what we write with a passphrase, at the production S2K setting,
// and the packets are the gpg 2.2 ones: no AEAD, no compression, AES-256.
func TestGPGReadsOurPassphraseMessage(t *testing.T) {
	g := newGPG(t, true)
	plain := payload(3<<20, 6)
	pass := []byte("our passphrase")
	msg := g.file("ours.gpg", encryptCount(t, plain, Recipients{Passphrase: pass}, s2kCount))
	pf := g.file("pass", pass)

	out, stderr, err := g.try("--passphrase-file", pf, "--show-session-key", "-d", msg)
	if err != nil {
		t.Fatalf("gpg -d: %v\n%s", err, stderr)
	}
	if !bytes.Equal(out, plain) {
		t.Fatalf("gpg decrypted %d bytes, want %d identical ones", len(out), len(plain))
	}
	checkAES256(t, stderr)
	listing := g.run("--passphrase-file", pf, "--list-packets", msg)
	t.Logf("gpg --list-packets:\n%s", listing)
	if tags := packetTags(listing); tags != "3,18,11" {
		t.Errorf("packets %s, want SKESK, SEIPD, literal (3,18,11): no AEAD (20), no compression (8)", tags)
	}
	for _, want := range []string{"version 4, cipher 9, aead 0,s2k 3, hash 8", "count 65011712", "mdc_method: 2", "mode b"} {
		if !bytes.Contains(listing, []byte(want)) {
			t.Errorf("listing lacks %q", want)
		}
	}
	// And gpg refuses what we refuse.
	bad := bytes.Clone(encryptCount(t, plain[:1000], Recipients{Passphrase: pass}, s2kCount))
	bad[len(bad)/2] ^= 1
	if _, stderr, err := g.try("--passphrase-file", pf, "-d", g.file("bad.gpg", bad)); err == nil {
		t.Errorf("gpg accepted a tampered message:\n%s", stderr)
	}
}

// Keys made by gpg, both ways: our Encrypt to the exported public key and
// gpg -d; gpg -e -r and our Decrypt with the exported secret key. Keys:
// ed25519/cv25519 without and with a passphrase, made here, and RSA-3072
// (made by gpg with testdata/gen.sh: RSA generation is slow).
func TestGPGKeys(t *testing.T) {
	g := newGPG(t, true)
	keyPass := []byte("key passphrase")
	pf := g.file("key-pass", keyPass)
	plain := payload(2<<20, 7)
	in := g.file("plain", plain)

	g.run("--passphrase", "", "--quick-gen-key", "Live ECC <ecc@example.net>", "future-default", "default", "never")
	g.run("--passphrase-file", pf, "--quick-gen-key", "Live Protected <prot@example.net>", "future-default", "default", "never")
	g.run("--import", filepath.Join("testdata", "rsa-sec.asc"))

	for _, k := range []struct {
		uid       string
		protected bool
	}{
		{"ecc@example.net", false},
		{"prot@example.net", true},
		{"rsa@example.com", false},
	} {
		t.Run(k.uid, func(t *testing.T) {
			pub := g.file("pub.asc", g.run("--export", "-a", k.uid))
			sec := g.file("sec.asc", g.run("--passphrase-file", pf, "--export-secret-keys", "-a", k.uid))

			// Ours → gpg.
			keys, err := ReadRecipients(pub)
			if err != nil {
				t.Fatal(err)
			}
			ours := g.file("ours.gpg", encrypt(t, plain, Recipients{Keys: keys}))
			out, stderr, err := g.try("--passphrase-file", pf, "--show-session-key", "-d", ours)
			if err != nil {
				t.Fatalf("gpg -d: %v\n%s", err, stderr)
			}
			if !bytes.Equal(out, plain) {
				t.Fatal("gpg decrypted different bytes")
			}
			checkAES256(t, stderr)
			if tags := packetTags(g.run("--list-packets", ours)); tags != "1,18,11" {
				t.Errorf("packets %s, want PKESK, SEIPD, literal (1,18,11)", tags)
			}

			// gpg → ours, the identity opened lazily by Decrypt.
			theirs := filepath.Join(g.dir, "theirs.gpg")
			g.run("-e", "-r", k.uid, "-o", theirs, in)
			msg, err := os.ReadFile(theirs)
			if err != nil {
				t.Fatal(err)
			}
			ids, err := ReadIdentity(sec, nil)
			if err != nil {
				t.Fatal(err)
			}
			calls := 0
			mustDecrypt(t, msg, Secrets{Identities: ids, Passphrase: passOnce(t, keyPass, &calls)}, plain)
			if (calls == 1) != k.protected {
				t.Errorf("passphrase asked %d times", calls)
			}
			if k.protected {
				calls = 0
				wantErr(t, msg, Secrets{Identities: ids, Passphrase: passOnce(t, []byte("nope"), &calls)}, ErrWrongPassphrase)
			}
			// Someone else's key: say which key is needed.
			_, err = decrypt(msg, Secrets{Identities: identity(t, "ecc-sec.asc")})
			var nk *NoKeyError
			if !errors.As(err, &nk) || !strings.Contains(err.Error(), KeyID(keys[0].Subkeys[0].PublicKey.KeyId)) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

// We read what gpg -c writes: with its defaults (AES-256, compressed, its own
// S2K count), with AES-128, armored; and its error cases.
func TestGPGSymmetric(t *testing.T) {
	g := newGPG(t, false)
	pass := []byte("gpg passphrase")
	pf := g.file("pass", pass)
	plain := payload(3<<20, 8)
	in := g.file("plain", plain)
	ps := Secrets{Passphrase: func() ([]byte, error) { return pass, nil }}
	fast := []string{"--s2k-count", "65536"}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"default", nil},
		{"aes128", append([]string{"--cipher-algo", "AES128"}, fast...)},
		{"armored", append([]string{"-a"}, fast...)},
		{"uncompressed", append([]string{"--compress-algo", "none"}, fast...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(g.dir, "sym-"+tc.name)
			g.run(append(append([]string{"--passphrase-file", pf, "-o", out}, tc.args...), "-c", in)...)
			msg, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if !IsEncrypted(msg) {
				t.Error("IsEncrypted is false")
			}
			mustDecrypt(t, msg, ps, plain)
			if tc.name == "default" {
				return // its S2K is slow: the error cases use the others
			}
			calls := 0
			wantErr(t, msg, Secrets{Passphrase: passOnce(t, []byte("not it"), &calls)}, ErrWrongPassphrase)
			if tc.name != "armored" {
				bad := bytes.Clone(msg)
				bad[len(bad)/2] ^= 0x20
				wantErr(t, bad, ps, ErrTampered)
				for _, n := range []int{len(msg) / 2, len(msg) - 22, len(msg) - 1} {
					wantErr(t, msg[:n], ps, ErrTruncated)
				}
			}
		})
	}
}

// TestWriteFixtures writes testdata/ours-*.gpg, our own messages that seed
// the fuzzer and are decrypted by TestDecryptFixtures.
func TestWriteFixtures(t *testing.T) {
	if os.Getenv("CRYPT_WRITE_FIXTURES") != "1" {
		t.Skip("set CRYPT_WRITE_FIXTURES=1 to rewrite testdata/ours-*.gpg")
	}
	plain := fixture(t, "plain.txt")
	for name, to := range map[string]Recipients{
		"ours-sym.gpg":        {Passphrase: fixturePass(t)},
		"ours-to-ecc-rsa.gpg": {Keys: recipients(t, "ecc-pub.asc", "rsa-pub.asc")},
	} {
		if err := os.WriteFile(filepath.Join("testdata", name), encrypt(t, plain, to), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// DecryptOpened names the secret that opened a message, and a message
// sealed for that identity (EncryptionKeyID's key) opens with it again.
func TestDecryptOpened(t *testing.T) {
	plain := payload(1000, 7)
	pass := []byte("opened")
	both := encrypt(t, plain, Recipients{Passphrase: pass})
	r, o, err := DecryptOpened(bytes.NewReader(both), Secrets{Passphrase: func() ([]byte, error) { return pass, nil }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(r); err != nil {
		t.Fatal(err)
	}
	if !o.Passphrase || o.Identity != nil {
		t.Errorf("a passphrase message: Opened = %+v", o)
	}
	for _, name := range []string{"ecc-sec.asc", "rsa-sec.asc"} {
		msg := encrypt(t, plain, Recipients{Keys: recipients(t, "ecc-pub.asc", "rsa-pub.asc")})
		ids := identity(t, name)
		_, o, err := DecryptOpened(bytes.NewReader(msg), Secrets{Identities: ids})
		if err != nil {
			t.Fatal(err)
		}
		if o.Passphrase || o.Identity != ids[0] {
			t.Fatalf("%s: Opened = %+v", name, o)
		}
		id, err := EncryptionKeyID(o.Identity)
		if err != nil {
			t.Fatal(err)
		}
		again := encrypt(t, plain, Recipients{Keys: openpgp.EntityList{o.Identity}})
		info, err := Inspect(bytes.NewReader(again))
		if err != nil || len(info.KeyIDs) != 1 || info.KeyIDs[0] != id {
			t.Errorf("%s: sealed for the identity: %+v, %v; want key %s", name, info, err, KeyID(id))
		}
		mustDecrypt(t, again, Secrets{Identities: ids}, plain)
		wantErr(t, again, Secrets{Identities: identity(t, map[string]string{"ecc-sec.asc": "rsa-sec.asc", "rsa-sec.asc": "ecc-sec.asc"}[name])}, ErrNoKey)
	}
	// A failure opens nothing.
	if _, o, err := DecryptOpened(bytes.NewReader(both), Secrets{Passphrase: func() ([]byte, error) { return []byte("no"), nil }}); err == nil || o.Passphrase || o.Identity != nil {
		t.Errorf("a wrong passphrase: %+v, %v", o, err)
	}
}
