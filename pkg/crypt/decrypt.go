package crypt

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"encoding/binary"
	"fmt"
	"io"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// Secrets are what Decrypt may use to open a message.
type Secrets struct {
	// Passphrase is called at most once per Decrypt, and only when the
	// message is encrypted with a passphrase or the matching identity key is
	// protected by one; the same passphrase is tried on both. It may be nil.
	Passphrase func() ([]byte, error)
	// Identities hold secret keys (see ReadIdentity). Protected keys are
	// opened with a copy, so the list is not changed.
	Identities openpgp.EntityList
}

// maxKeyPackets bounds the session-key packets read before the data: each
// passphrase packet may cost a deliberately slow key derivation.
const maxKeyPackets = 64

// head is the start of a message: its session-key packets and the header of
// its encrypted data packet.
type head struct {
	info    Info
	skesks  []*packet.SymmetricKeyEncrypted
	pkesks  []*packet.EncryptedKey
	skipped []string // session-key packets that cannot be used, and why
	data    *packet.SymmetricallyEncrypted
	prefix  []byte // first bytes of the encrypted data, for the quick check

	raw *errReader // the caller's reader: tells I/O errors apart
	src *eofReader // the binary packet stream: tells truncation apart
}

// Decrypt reads an encrypted OpenPGP message from r (binary or armored) and
// returns its plaintext. The plaintext is not authenticated until the end:
// the integrity check (MDC) result comes as the error at the end of the
// stream, so callers must read to io.EOF and treat any other error as fatal,
// discarding what they read. Errors: ErrNotEncrypted, ErrUnsupported,
// ErrNeedPassphrase, ErrWrongPassphrase, *NoKeyError (ErrNoKey), ErrTampered,
// ErrTruncated, an I/O error from r, or the error of s.Passphrase (say, the
// user cancelled).
func Decrypt(r io.Reader, s Secrets) (io.Reader, error) {
	plain, _, err := DecryptOpened(r, s)
	return plain, err
}

// Opened says which of the Secrets opened a message, so that a caller can
// seal another file (a restore's safety backup) for the same secret.
type Opened struct {
	// Passphrase is true when the message's own passphrase opened it.
	Passphrase bool
	// Identity is the identity whose secret key opened it, when
	// Passphrase is false.
	Identity *openpgp.Entity
}

// DecryptOpened is Decrypt that also says which secret opened the message.
func DecryptOpened(r io.Reader, s Secrets) (io.Reader, Opened, error) {
	return decryptOpened(r, s, mdcChunk)
}

// decryptOpened is DecryptOpened with mdcReader decrypting chunk bytes at a
// time, or, with chunk 0, go-crypto's reader (the tests compare the two).
func decryptOpened(r io.Reader, s Secrets, chunk int) (io.Reader, Opened, error) {
	h, err := readHead(r)
	if err != nil {
		return nil, Opened{}, err
	}
	cf, key, opened, err := h.sessionKey(s)
	if err != nil {
		return nil, Opened{}, err
	}
	var rc io.ReadCloser
	if m := newMDCReader(h.data.Contents, cf, key, chunk); m != nil {
		rc = m
	} else if rc, err = h.data.Decrypt(cf, key); err != nil {
		return nil, Opened{}, h.bodyErr(err)
	}
	// The decrypted stream is an unencrypted message (maybe compressed, maybe
	// signed): go-crypto parses it. Signatures are not checked: backups are
	// protected by the MDC, not by signatures.
	md, err := openpgp.ReadMessage(rc, nil, nil, nil)
	if err != nil {
		return nil, Opened{}, h.bodyErr(err)
	}
	return &plainReader{h: h, body: md.UnverifiedBody, mdc: rc}, opened, nil
}

// plainReader checks the MDC when the literal data ends and maps errors.
type plainReader struct {
	h    *head
	body io.Reader
	mdc  io.Closer
	err  error
}

func (p *plainReader) Read(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	n, err := p.body.Read(b)
	switch {
	case err == io.EOF:
		// Close reads what follows the literal data and checks the MDC.
		if err := p.mdc.Close(); err != nil {
			p.err = p.h.bodyErr(err)
		} else {
			p.err = io.EOF
		}
	case err != nil:
		p.err = p.h.bodyErr(err)
	}
	return n, p.err
}

// bodyErr maps any failure past the session key: the key is right (or passed
// the quick check), so bad data means the file was cut or changed.
func (h *head) bodyErr(err error) error {
	if h.raw.err != nil {
		return fmt.Errorf("reading the encrypted data: %w", h.raw.err)
	}
	if h.src.eof {
		return ErrTruncated
	}
	return ErrTampered
}

// headErr maps a failure while reading the packets before the data.
func (h *head) headErr(err error) error {
	if h.raw.err != nil {
		return fmt.Errorf("reading the encrypted data: %w", h.raw.err)
	}
	if err == io.EOF || err == io.ErrUnexpectedEOF || h.src.eof {
		return ErrTruncated
	}
	return ErrTampered
}

func readHead(r io.Reader) (*head, error) {
	h := &head{raw: &errReader{r: r}}
	br := bufio.NewReaderSize(h.raw, 64<<10)
	start, _ := br.Peek(64)
	if h.raw.err != nil {
		return nil, fmt.Errorf("reading the encrypted data: %w", h.raw.err)
	}
	if len(start) == 0 {
		return nil, fmt.Errorf("%w: the input is empty", ErrNotEncrypted)
	}
	var bin io.Reader = br
	h.src = &eofReader{r: br}
	if bytes.HasPrefix(bytes.TrimLeft(start, " \t\r\n"), []byte("-----BEGIN PGP ")) {
		block, err := armor.Decode(br)
		if err != nil {
			return nil, h.headErr(err)
		}
		if block.Type != openpgp.MessageType {
			return nil, fmt.Errorf("%w: the input is an ASCII-armored %s", ErrNotEncrypted, block.Type)
		}
		h.info.Armored = true
		bin = block.Body
	}
	h.src = &eofReader{r: bin}

	for n := 0; ; n++ {
		tag, length, hdr, err := readPacketHeader(h.src)
		if n == 0 {
			if err == io.EOF {
				return nil, fmt.Errorf("%w: the input is empty", ErrNotEncrypted)
			}
			if err == errInvalidHeader {
				return nil, fmt.Errorf("%w: the input is not OpenPGP data", ErrNotEncrypted)
			}
			if err == nil {
				if err := checkFirstTag(tag); err != nil {
					return nil, err
				}
			}
		}
		if err != nil {
			return nil, h.headErr(err)
		}
		switch tag {
		case tagPKESK, tagSKESK, tagMarker, tagPadding:
			if n >= maxKeyPackets {
				return nil, fmt.Errorf("%w: more than %d session-key packets", ErrUnsupported, maxKeyPackets)
			}
			if length < 0 || length > maxKeyPacket {
				return nil, ErrTampered
			}
			body := make([]byte, length)
			if _, err := io.ReadFull(h.src, body); err != nil {
				return nil, h.headErr(err)
			}
			switch tag {
			case tagPKESK:
				h.addPKESK(hdr, body)
			case tagSKESK:
				h.addSKESK(hdr, body)
			}
		case tagSEIPD:
			if err := h.openData(hdr, length); err != nil {
				return nil, err
			}
			return h, nil
		case tagAEAD:
			return nil, fmt.Errorf("%w: the data is AEAD-encrypted (OCB), as gpg 2.3 and later may write; gpg 2.2 cannot read it either: re-encrypt it with gpg --rfc4880", ErrUnsupported)
		case tagSED:
			return nil, fmt.Errorf("%w: the data has no integrity protection (no MDC), refusing to decrypt it", ErrUnsupported)
		default:
			return nil, ErrTampered
		}
	}
}

// checkFirstTag says what the input is when it is not an encrypted message.
// Encrypted data with no session-key packet before it cannot be opened with
// a passphrase or key; like IsEncrypted, take it for something else.
func checkFirstTag(tag byte) error {
	switch tag {
	case tagPKESK, tagSKESK, tagMarker, tagPadding:
		return nil
	case tagCompr, tagLiteral, tagOnePass, tagSig:
		return fmt.Errorf("%w: the input is an OpenPGP message that is not encrypted", ErrNotEncrypted)
	case tagPubKey, tagSecKey, tagPubSubkey, tagSecSubkey, tagUserID:
		return fmt.Errorf("%w: the input is an OpenPGP key, not a message", ErrNotEncrypted)
	}
	return fmt.Errorf("%w: the input is not OpenPGP data", ErrNotEncrypted)
}

func (h *head) addPKESK(hdr, body []byte) {
	if len(body) < 10 || body[0] != 3 {
		if len(body) > 0 && body[0] == 6 {
			h.skipped = append(h.skipped, "a v6 public-key session packet (RFC 9580), which gpg 2.2 cannot read either")
		} else {
			h.skipped = append(h.skipped, "a public-key session packet of an unknown version")
		}
		return
	}
	id := binary.BigEndian.Uint64(body[1:9])
	h.info.KeyIDs = append(h.info.KeyIDs, id)
	p, err := packet.Read(bytes.NewReader(append(hdr, body...)))
	if err != nil {
		h.skipped = append(h.skipped, fmt.Sprintf("the session key for %s: %v", KeyID(id), err))
		return
	}
	if ek, ok := p.(*packet.EncryptedKey); ok {
		h.pkesks = append(h.pkesks, ek)
	}
}

func (h *head) addSKESK(hdr, body []byte) {
	h.info.Symmetric = true
	if len(body) < 1 || body[0] != 4 {
		h.skipped = append(h.skipped, "a passphrase packet of version 5 or 6 (AEAD, RFC 9580), which gpg 2.2 cannot read either")
		return
	}
	// Refuse Argon2 before go-crypto runs it: a crafted memory parameter
	// could ask for terabytes. gpg 2.2 does not know it either.
	if len(body) >= 3 && body[2] == 4 {
		h.skipped = append(h.skipped, "a passphrase packet using Argon2 (RFC 9580), which gpg 2.2 cannot read either")
		return
	}
	p, err := packet.Read(bytes.NewReader(append(hdr, body...)))
	if err != nil {
		h.skipped = append(h.skipped, fmt.Sprintf("a passphrase packet: %v", err))
		return
	}
	if ske, ok := p.(*packet.SymmetricKeyEncrypted); ok {
		h.skesks = append(h.skesks, ske)
	}
}

// openData reads the header of the SEIPD packet and the prefix of its data.
func (h *head) openData(hdr []byte, length int64) error {
	if length == 0 {
		return ErrTampered
	}
	var v [1]byte
	if _, err := io.ReadFull(h.src, v[:]); err != nil {
		return h.headErr(err)
	}
	if v[0] == 2 {
		return fmt.Errorf("%w: the data is AEAD-encrypted (SEIPD v2, RFC 9580), which gpg 2.2 cannot read either: re-encrypt it with gpg --rfc4880", ErrUnsupported)
	}
	if v[0] != 1 {
		return fmt.Errorf("%w: encrypted data packet of unknown version %d", ErrUnsupported, v[0])
	}
	if len(h.skesks)+len(h.pkesks)+len(h.skipped) == 0 {
		return fmt.Errorf("%w: the message has no session-key packet", ErrUnsupported)
	}
	p, err := packet.Read(io.MultiReader(bytes.NewReader(hdr), bytes.NewReader(v[:]), h.src))
	if err != nil {
		return h.headErr(err)
	}
	se, ok := p.(*packet.SymmetricallyEncrypted)
	if !ok {
		return ErrTampered
	}
	// The prefix is a block of random bytes whose last two repeat: the
	// "quick check" that tells a wrong passphrase from damaged data, which
	// go-crypto does not do. 18 bytes cover 16-byte blocks; every valid
	// message is longer (it ends with a 22-byte MDC packet).
	h.prefix = make([]byte, 18)
	if _, err := io.ReadFull(se.Contents, h.prefix); err != nil {
		return h.headErr(err)
	}
	se.Contents = io.MultiReader(bytes.NewReader(h.prefix), se.Contents)
	h.data = se
	return nil
}

type keyCandidate struct {
	ek  *packet.EncryptedKey
	key openpgp.Key
}

// sessionKey finds the session key, asking for the passphrase only if needed.
func (h *head) sessionKey(s Secrets) (packet.CipherFunction, []byte, Opened, error) {
	var protected []keyCandidate
	keyFailed := false // a secret key opened but its session key did not check out
	for _, ek := range h.pkesks {
		for _, k := range keysFor(s.Identities, ek.KeyId) {
			if k.PrivateKey == nil || k.PrivateKey.Dummy() {
				continue
			}
			if k.PrivateKey.Encrypted {
				protected = append(protected, keyCandidate{ek, k})
				continue
			}
			if cf, key, ok := h.tryPKESK(ek, k.PrivateKey); ok {
				return cf, key, Opened{Identity: k.Entity}, nil
			}
			keyFailed = true
		}
	}
	if len(h.skesks) == 0 && len(protected) == 0 {
		switch {
		case keyFailed:
			return 0, nil, Opened{}, ErrTampered
		case len(h.pkesks) == 0 && len(h.skipped) > 0:
			return 0, nil, Opened{}, fmt.Errorf("%w: it holds %s", ErrUnsupported, strings.Join(h.skipped, "; "))
		}
		return 0, nil, Opened{}, &NoKeyError{KeyIDs: h.info.KeyIDs, NoIdentity: len(s.Identities) == 0}
	}
	if s.Passphrase == nil {
		if len(h.skesks) > 0 {
			return 0, nil, Opened{}, fmt.Errorf("%w: the data is encrypted with a passphrase", ErrNeedPassphrase)
		}
		return 0, nil, Opened{}, fmt.Errorf("%w: secret key %s is protected by one", ErrNeedPassphrase, KeyID(protected[0].key.PublicKey.KeyId))
	}
	pass, err := s.Passphrase()
	if err != nil {
		return 0, nil, Opened{}, err
	}
	opened := false
	// Each key is opened once (a hidden recipient matches every key), on a
	// copy: the caller's key stays as it was.
	copies := map[*packet.PrivateKey]*packet.PrivateKey{}
	for _, c := range protected {
		priv, seen := copies[c.key.PrivateKey]
		if !seen {
			p := *c.key.PrivateKey
			if p.Decrypt(pass) == nil {
				priv = &p
			}
			copies[c.key.PrivateKey] = priv
		}
		if priv == nil {
			continue
		}
		opened = true
		if cf, key, ok := h.tryPKESK(c.ek, priv); ok {
			return cf, key, Opened{Identity: c.key.Entity}, nil
		}
		keyFailed = true
	}
	for _, ske := range h.skesks {
		key, cf, err := ske.Decrypt(pass)
		if err != nil {
			continue // a wrong passphrase mostly yields an invalid cipher byte
		}
		if h.quickCheck(cf, key) {
			return cf, key, Opened{Passphrase: true}, nil
		}
	}
	if keyFailed {
		return 0, nil, Opened{}, ErrTampered
	}
	if len(h.skesks) == 0 && !opened {
		return 0, nil, Opened{}, fmt.Errorf("%w for secret key %s", ErrWrongPassphrase, KeyID(protected[0].key.PublicKey.KeyId))
	}
	return 0, nil, Opened{}, ErrWrongPassphrase
}

// keysFor returns the keys that may open a session key packet; id 0 is a
// hidden recipient, which any decryption key may be.
func keysFor(el openpgp.EntityList, id uint64) []openpgp.Key {
	if id == 0 {
		return el.DecryptionKeys()
	}
	return el.KeysById(id)
}

func (h *head) tryPKESK(ek *packet.EncryptedKey, priv *packet.PrivateKey) (packet.CipherFunction, []byte, bool) {
	if ek.Decrypt(priv, nil) != nil {
		return 0, nil, false
	}
	if !h.quickCheck(ek.CipherFunc, ek.Key) {
		return 0, nil, false
	}
	return ek.CipherFunc, ek.Key, true
}

// quickCheck decrypts the prefix of the data (RFC 4880 section 5.7): with the
// right key its last two bytes repeat the two before. A wrong key passes with
// probability 2^-16, and is then caught by the MDC. CAST5, whose cipher
// go-crypto keeps private, is left to the MDC.
func (h *head) quickCheck(cf packet.CipherFunction, key []byte) bool {
	if !cf.IsSupported() || len(key) != cf.KeySize() {
		return false
	}
	block := stdBlock(cf, key)
	if block == nil {
		return true
	}
	bs := block.BlockSize()
	c := h.prefix[:bs+2]
	// OpenPGP CFB: the first block is XORed with E(0), the two check bytes
	// with E(first ciphertext block).
	k0 := make([]byte, bs)
	block.Encrypt(k0, k0)
	k1 := make([]byte, bs)
	block.Encrypt(k1, c[:bs])
	return c[bs-2]^k0[bs-2] == c[bs]^k1[0] && c[bs-1]^k0[bs-1] == c[bs+1]^k1[1]
}

// stdBlock is the block cipher of cf from the standard library, or nil for
// the ciphers go-crypto keeps private (CAST5 and older ones).
func stdBlock(cf packet.CipherFunction, key []byte) cipher.Block {
	if len(key) != cf.KeySize() {
		return nil
	}
	var block cipher.Block
	var err error
	switch cf {
	case packet.CipherAES128, packet.CipherAES192, packet.CipherAES256:
		block, err = aes.NewCipher(key)
	case packet.Cipher3DES:
		block, err = des.NewTripleDESCipher(key)
	}
	if err != nil {
		return nil
	}
	return block
}

// errReader records the first error other than EOF from the caller's reader,
// so that an I/O error is reported as such, not as damage.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

// eofReader records that the packet stream ran out. Packets have lengths, so
// a complete message is read without touching its end: running out means the
// message was cut short.
type eofReader struct {
	r   io.Reader
	eof bool
}

func (e *eofReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		e.eof = true
	}
	return n, err
}
