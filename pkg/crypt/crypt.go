// Package crypt encrypts and decrypts backups as OpenPGP messages that gpg 2.2 reads and writes.
//
// Messages are written in the RFC 4880 format every gpg since 2.1 reads: a
// passphrase (SKESK v4, iterated and salted SHA-256 S2K) or public-key
// (PKESK v3) session-key packet, then AES-256 in a SEIPD v1 packet with an MDC,
// holding one uncompressed binary literal data packet. No AEAD packets, no v6
// keys, no Argon2: gpg 2.2 reads none of them.
//
// Reading accepts what gpg 2.2 writes with -c, -e and -a (compressed or not,
// signed or not: signatures are not checked) and what Encrypt writes.
// Failures are reported as the sentinel errors below so that callers can tell
// a wrong passphrase from a damaged file; no error holds a secret.
//
// Typical use:
//
//	if crypt.IsEncrypted(first512Bytes) {
//		info, err := crypt.Inspect(f) // info.Symmetric, info.KeyIDs
//		...
//		plain, err := crypt.Decrypt(f2, crypt.Secrets{Passphrase: ask, Identities: ids})
//		// read plain to io.EOF; any error means: discard what was read
//	}
package crypt

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Errors returned by Decrypt, Inspect, ReadRecipients and ReadIdentity.
// Test for them with errors.Is: most are wrapped with details.
var (
	// ErrNotEncrypted: the input is not an encrypted OpenPGP message at all
	// (a plain tar, an unencrypted OpenPGP message, a key file, ...).
	ErrNotEncrypted = errors.New("not an encrypted OpenPGP message")
	// ErrUnsupported: an OpenPGP message using a feature this package does
	// not read, such as the AEAD packets of gpg 2.3+ or RFC 9580.
	ErrUnsupported = errors.New("unsupported OpenPGP message")
	// ErrNeedPassphrase: a passphrase is needed but Secrets.Passphrase is nil.
	ErrNeedPassphrase = errors.New("a passphrase is needed")
	// ErrWrongPassphrase: the passphrase opens neither the message nor a
	// protected secret key. It is told by the check bytes at the start of
	// the encrypted data, as gpg does, so a change to those 18 bytes reads
	// as a wrong passphrase too.
	ErrWrongPassphrase = errors.New("wrong passphrase")
	// ErrNoKey: the message is encrypted to public keys whose secret keys
	// were not given. Decrypt returns it as a *NoKeyError.
	ErrNoKey = errors.New("no matching secret key")
	// ErrTampered: the integrity check (MDC) failed, or the decrypted data
	// did not parse: the file was modified or damaged. Any plaintext read
	// before this error must be discarded.
	ErrTampered = errors.New("integrity check failed: the encrypted data was modified or damaged")
	// ErrTruncated: the data stops before the message is complete: the
	// file was cut short.
	// Any plaintext read before this error must be discarded.
	ErrTruncated = errors.New("the encrypted data ends early: the file is truncated")
	// ErrUnusableKey: a recipient key cannot be used to encrypt (no valid
	// encryption subkey, expired, revoked, or not readable by gpg 2.2).
	ErrUnusableKey = errors.New("key cannot be used for encryption")
	// ErrNoSecretKey: an identity file holds no secret key.
	ErrNoSecretKey = errors.New("no secret key")
)

// NoKeyError is returned by Decrypt when the message is encrypted to public
// keys and none of the given identities holds one of their secret keys.
// errors.Is(err, ErrNoKey) is true for it.
type NoKeyError struct {
	// KeyIDs the message is encrypted to; 0 stands for a hidden recipient.
	KeyIDs []uint64
	// NoIdentity is true when no identity was given at all.
	NoIdentity bool
}

func (e *NoKeyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "encrypted to %s", keyList(e.KeyIDs))
	if e.NoIdentity {
		b.WriteString("; a secret key is needed: give it with --identity-file")
	} else {
		b.WriteString(", but the given identities hold none of their secret keys; give the matching secret key with --identity-file")
	}
	return b.String()
}

// Is makes errors.Is(err, ErrNoKey) true.
func (e *NoKeyError) Is(target error) bool { return target == ErrNoKey }

// KeyID formats a key id the way gpg prints it in its long form.
func KeyID(id uint64) string {
	if id == 0 {
		return "a hidden recipient"
	}
	return fmt.Sprintf("0x%016X", id)
}

func keyList(ids []uint64) string {
	if len(ids) == 0 {
		return "no key"
	}
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = KeyID(id)
	}
	if len(ids) == 1 {
		return "key " + s[0]
	}
	return "keys " + strings.Join(s, ", ")
}

// Info tells how a message is encrypted, from its session-key packets.
type Info struct {
	// Armored is true for ASCII-armored input (gpg -a).
	Armored bool
	// Symmetric is true when a passphrase can decrypt the message (gpg -c).
	Symmetric bool
	// KeyIDs are the public (sub)keys the message is encrypted to; 0 stands
	// for a hidden recipient (gpg --throw-keyids).
	KeyIDs []uint64
}

// String says how the message is encrypted, e.g. for a prompt or an error.
func (i Info) String() string {
	var parts []string
	if i.Symmetric {
		parts = append(parts, "with a passphrase")
	}
	if len(i.KeyIDs) > 0 {
		parts = append(parts, "to "+keyList(i.KeyIDs))
	}
	if len(parts) == 0 {
		return "encrypted"
	}
	return "encrypted " + strings.Join(parts, " and ")
}

// Inspect reads the session-key packets at the start of r (stopping at the
// encrypted data) and tells how the message is encrypted, so that a caller
// can ask for a passphrase or an identity file before decrypting; it needs
// no secret. r is consumed: open the file again for Decrypt. Errors:
// ErrNotEncrypted, ErrUnsupported (e.g. AEAD), ErrTruncated, ErrTampered, or
// an I/O error from r.
func Inspect(r io.Reader) (Info, error) {
	m, err := readHead(r)
	if err != nil {
		return Info{}, err
	}
	return m.info, nil
}

var armorMessage = []byte("-----BEGIN PGP MESSAGE-----")

// IsEncrypted reports whether prefix, the first bytes of a file (512 are
// plenty), starts an encrypted OpenPGP message: ASCII armor of type
// "PGP MESSAGE", or binary session-key packets (tag 1 or 3, old or new
// format) with plausible contents. A tar archive is never taken for one.
func IsEncrypted(prefix []byte) bool {
	if isTar(prefix) {
		return false
	}
	if bytes.HasPrefix(bytes.TrimLeft(prefix, " \t\r\n"), armorMessage) {
		return true
	}
	return looksLikeKeyPackets(prefix)
}

// isTar spots a POSIX or GNU tar header: its magic sits at offset 257.
func isTar(b []byte) bool {
	return len(b) >= 262 && string(b[257:262]) == "ustar"
}

// looksLikeKeyPackets walks the packets in b: one or more session-key packets
// (checked down to their fixed fields) followed by encrypted data, as far as b
// goes. Checking the contents, not just the first tag byte, keeps random or
// compressed data from passing.
func looksLikeKeyPackets(b []byte) bool {
	sawKey := false
	for len(b) > 0 {
		tag, length, n, st := parseHeader(b)
		switch st {
		case headerInvalid:
			return false
		case headerShort:
			// A header cut by the end of the prefix: judge by what came before.
			return sawKey
		}
		switch tag {
		case tagPKESK, tagSKESK, tagMarker:
		case tagSEIPD, tagSED, tagAEAD:
			return sawKey
		default:
			return false
		}
		if length < 0 || length > maxKeyPacket {
			return false // session-key packets have a definite, small length
		}
		body := b[n:]
		if int64(len(body)) > length {
			body = body[:length]
		}
		if !sawKey && len(body) < min(int(length), 10) {
			return false // too little of the first packet to judge
		}
		if !plausibleKeyPacket(tag, length, body) {
			return false
		}
		if tag != tagMarker {
			sawKey = true
		}
		if int64(len(b)-n) <= length {
			return sawKey // the prefix ends inside this packet
		}
		b = b[n+int(length):]
	}
	return sawKey
}

// plausibleKeyPacket checks the fixed fields of a session-key packet; body may
// be cut short by the end of the prefix.
func plausibleKeyPacket(tag byte, length int64, body []byte) bool {
	switch tag {
	case tagMarker:
		return length == 3 && bytes.HasPrefix([]byte("PGP"), body)
	case tagPKESK:
		// v3: version, 8-byte key id, algorithm, then the encrypted key.
		if length < 12 {
			return false
		}
		if len(body) >= 1 && body[0] != 3 && body[0] != 6 {
			return false
		}
		if len(body) >= 10 && body[0] == 3 && !knownPubKeyAlgo(body[9]) {
			return false
		}
	case tagSKESK:
		// v4: version, cipher, S2K specifier (mode, hash, ...).
		if length < 4 {
			return false
		}
		if len(body) >= 1 && body[0] != 4 && body[0] != 5 && body[0] != 6 {
			return false
		}
		if len(body) >= 3 && body[0] == 4 {
			if body[1] == 0 || body[1] > 13 {
				return false
			}
			switch body[2] {
			case 0, 1, 3, 4:
			default:
				return false
			}
		}
	}
	return true
}

func knownPubKeyAlgo(a byte) bool {
	switch a {
	case 1, 2, 16, 18, 20, 25, 26, 35, 36:
		return true
	}
	return false
}
