package crypt

import (
	"crypto"
	"crypto/rand"
	"errors"
	"io"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/ProtonMail/go-crypto/openpgp/s2k"
)

// Recipients say who can read a message: exactly one of the two is set.
type Recipients struct {
	// Passphrase encrypts like gpg -c.
	Passphrase []byte
	// Keys encrypt like gpg -e -r (see ReadRecipients); any of their secret
	// keys decrypts.
	Keys openpgp.EntityList
}

// s2kCount is the passphrase stretching of iterated S2K: the maximum
// encodable count, as gpg 2.2 itself picks on current hardware.
const s2kCount = 65011712

// chunkSize bounds what one Write hands to go-crypto, whose partial-length
// writer buffers a whole Write: memory stays flat whatever the caller writes.
const chunkSize = 64 << 10

// cipherFunc is the one cipher written: AES-256, which gpg 2.2 always reads.
const cipherFunc = packet.CipherAES256

// Encrypt starts an OpenPGP message on w and returns the writer for its
// plaintext. Close finishes the message (the MDC) but does not close w; the
// message is not complete without it.
//
// The format is what gpg 2.2 reads: AES-256 in SEIPD v1 with MDC, iterated
// and salted SHA-256 S2K, no compression (backups are streamed and mostly
// compressed already), a binary literal data packet. Memory use does not
// grow with the message.
func Encrypt(w io.Writer, to Recipients) (io.WriteCloser, error) {
	return encryptWith(w, to, s2kCount)
}

// encryptWith is Encrypt with a passphrase stretched count times (tests
// make most of their messages cheaper).
func encryptWith(w io.Writer, to Recipients, count int) (io.WriteCloser, error) {
	if (to.Passphrase != nil) == (len(to.Keys) > 0) {
		return nil, errors.New("crypt: give either a passphrase or recipient keys")
	}
	if to.Passphrase != nil && len(to.Passphrase) == 0 {
		return nil, errors.New("crypt: the passphrase is empty")
	}
	config := &packet.Config{
		DefaultCipher:          cipherFunc,
		DefaultHash:            crypto.SHA256,
		DefaultCompressionAlgo: packet.CompressionNone,
		S2KConfig: &s2k.Config{
			S2KMode:  s2k.IteratedSaltedS2K,
			Hash:     crypto.SHA256,
			S2KCount: count,
		},
	}
	// Check every key before writing anything.
	var keys []openpgp.Key
	now := time.Now()
	for _, e := range to.Keys {
		k, err := encryptionKey(e, now)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}

	sessionKey := make([]byte, cipherFunc.KeySize())
	if _, err := io.ReadFull(rand.Reader, sessionKey); err != nil {
		return nil, err
	}
	// The packets are written one by one rather than with openpgp.Encrypt,
	// which follows the recipients' preferences and may pick AES-128.
	if to.Passphrase != nil {
		// aeadSupported=false: a v4 packet, as gpg 2.2 reads.
		if err := packet.SerializeSymmetricKeyEncryptedAEADReuseKey(w, sessionKey, to.Passphrase, false, config); err != nil {
			return nil, err
		}
	}
	for _, k := range keys {
		if err := packet.SerializeEncryptedKeyAEAD(w, k.PublicKey, cipherFunc, false, sessionKey, config); err != nil {
			return nil, err
		}
	}
	data, err := packet.SerializeSymmetricallyEncrypted(w, cipherFunc, false, packet.CipherSuite{}, sessionKey, config)
	if err != nil {
		return nil, err
	}
	// No file name and no date: they would only leak information.
	lit, err := packet.SerializeLiteral(data, true, "", 0)
	if err != nil {
		return nil, err
	}
	return &chunkWriter{w: lit}, nil
}

// chunkWriter splits writes into chunkSize pieces.
type chunkWriter struct {
	w io.WriteCloser
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), chunkSize)
		m, err := c.w.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

func (c *chunkWriter) Close() error { return c.w.Close() }
