package crypt

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// maxKeyFile bounds what is read from a key file.
const maxKeyFile = 16 << 20

// ReadRecipients reads public keys to encrypt to from an armored
// (gpg --export -a) or binary key file. It refuses the whole file if any key
// cannot be used by gpg 2.2 to decrypt (no valid encryption subkey, expired,
// revoked, v6), with an error naming the file and the key (ErrUnusableKey).
func ReadRecipients(path string) (openpgp.EntityList, error) {
	el, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	for _, e := range el {
		if _, err := encryptionKey(e, now); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	return el, nil
}

// ReadIdentity reads secret keys from an armored (gpg --export-secret-keys -a)
// or binary key file, for Secrets.Identities. A file with only public keys
// gets ErrNoSecretKey. Protected decryption keys are opened at once when
// passphrase is not nil (it is then called once, and only if such a key is
// protected; a wrong one gets ErrWrongPassphrase); with a nil passphrase they
// stay protected and Decrypt asks Secrets.Passphrase when it needs one.
func ReadIdentity(path string, passphrase func() ([]byte, error)) (openpgp.EntityList, error) {
	el, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	var secret openpgp.EntityList
	protected := false
	for _, e := range el {
		for _, k := range privateKeys(e) {
			protected = protected || (k.Encrypted && k.PubKeyAlgo.CanEncrypt())
		}
		if len(privateKeys(e)) > 0 {
			secret = append(secret, e)
		}
	}
	if len(secret) == 0 {
		return nil, fmt.Errorf("%s: %w: it holds only public keys; a secret key is needed (export it with gpg --export-secret-keys)", path, ErrNoSecretKey)
	}
	if !protected || passphrase == nil {
		return secret, nil
	}
	pass, err := passphrase()
	if err != nil {
		return nil, err
	}
	for _, e := range secret {
		for _, k := range privateKeys(e) {
			// Signing keys are of no use here, and each opening costs a
			// deliberately slow key derivation.
			if !k.PubKeyAlgo.CanEncrypt() {
				continue
			}
			if k.Encrypted && k.Decrypt(pass) != nil {
				return nil, fmt.Errorf("%s: %w for secret key %s", path, ErrWrongPassphrase, KeyID(k.KeyId))
			}
		}
	}
	return secret, nil
}

// privateKeys lists the usable secret keys of an entity: gpg exports stubs
// ("dummy" keys) for secret keys it does not hold.
func privateKeys(e *openpgp.Entity) []*packet.PrivateKey {
	var keys []*packet.PrivateKey
	if e.PrivateKey != nil && !e.PrivateKey.Dummy() {
		keys = append(keys, e.PrivateKey)
	}
	for _, s := range e.Subkeys {
		if s.PrivateKey != nil && !s.PrivateKey.Dummy() {
			keys = append(keys, s.PrivateKey)
		}
	}
	return keys
}

// readKeyFile reads every key of a binary file or of every armored block of a
// text file (several exports may have been concatenated).
func readKeyFile(path string) (openpgp.EntityList, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("%s: too large for a key file", path)
	}
	var el openpgp.EntityList
	if blocks := armorBlocks(data); blocks != nil {
		for _, b := range blocks {
			keys, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(b))
			if err != nil {
				return nil, fmt.Errorf("%s: not a readable OpenPGP key file: %v", path, err)
			}
			el = append(el, keys...)
		}
	} else {
		el, err = openpgp.ReadKeyRing(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%s: not a readable OpenPGP key file: %v", path, err)
		}
	}
	if len(el) == 0 {
		return nil, fmt.Errorf("%s: no OpenPGP key in it", path)
	}
	return el, nil
}

// armorBlocks splits text at each "-----BEGIN PGP " line, or returns nil when
// there is none (a binary file).
func armorBlocks(data []byte) [][]byte {
	marker := []byte("-----BEGIN PGP ")
	var starts []int
	for i := 0; i < len(data); {
		j := bytes.Index(data[i:], marker)
		if j < 0 {
			break
		}
		if at := i + j; at == 0 || data[at-1] == '\n' {
			starts = append(starts, at)
		}
		i += j + len(marker)
	}
	if len(starts) == 0 {
		return nil
	}
	blocks := make([][]byte, len(starts))
	for i, s := range starts {
		end := len(data)
		if i+1 < len(starts) {
			end = starts[i+1]
		}
		blocks[i] = data[s:end]
	}
	return blocks
}

// encryptionKey picks the key that a message to e is encrypted to, or says
// why there is none gpg 2.2 could decrypt with.
func encryptionKey(e *openpgp.Entity, now time.Time) (openpgp.Key, error) {
	name := ""
	if id := e.PrimaryIdentity(); id != nil {
		name = fmt.Sprintf(" (%s)", id.Name)
	}
	fail := func(format string, args ...any) (openpgp.Key, error) {
		return openpgp.Key{}, fmt.Errorf("key %s%s: %w: %s", KeyID(e.PrimaryKey.KeyId), name, ErrUnusableKey, fmt.Sprintf(format, args...))
	}
	if v := e.PrimaryKey.Version; v != 4 {
		return fail("it is a v%d key, which gpg 2.2 cannot use", v)
	}
	if e.Revoked(now) {
		return fail("it is revoked")
	}
	sig, ident := e.PrimarySelfSignature()
	if sig == nil {
		return fail("it has no valid self-signature")
	}
	if e.PrimaryKey.KeyExpired(sig, now) {
		return fail("it expired on %s", expiry(e.PrimaryKey, sig))
	}
	if sig.SigExpired(now) {
		return fail("its self-signature expired")
	}
	if ident != nil && ident.Revoked(now) {
		return fail("its user ID is revoked")
	}
	k, ok := e.EncryptionKey(now)
	if !ok {
		return fail("it has no valid encryption subkey (none, or all expired or revoked)")
	}
	if k.PublicKey.Version != 4 {
		return fail("its encryption key is a v%d key, which gpg 2.2 cannot use", k.PublicKey.Version)
	}
	switch k.PublicKey.PubKeyAlgo {
	case packet.PubKeyAlgoRSA, packet.PubKeyAlgoRSAEncryptOnly, packet.PubKeyAlgoElGamal, packet.PubKeyAlgoECDH:
	default:
		return fail("its encryption key uses algorithm %d, which gpg 2.2 cannot decrypt", k.PublicKey.PubKeyAlgo)
	}
	return k, nil
}

func expiry(pk *packet.PublicKey, sig *packet.Signature) string {
	if sig.KeyLifetimeSecs == nil {
		return "an unknown date"
	}
	return pk.CreationTime.Add(time.Duration(*sig.KeyLifetimeSecs) * time.Second).UTC().Format(time.DateOnly)
}

// EncryptionKeyID is the id of the key a message to e is encrypted to, or
// why none can be (ErrUnusableKey): what a message sealed for an identity
// read by ReadIdentity names.
func EncryptionKeyID(e *openpgp.Entity) (uint64, error) {
	k, err := encryptionKey(e, time.Now())
	if err != nil {
		return 0, err
	}
	return k.PublicKey.KeyId, nil
}
