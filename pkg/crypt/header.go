package crypt

import "io"

// OpenPGP packet tags (RFC 4880 section 4.3, RFC 9580 section 5).
const (
	tagPKESK     = 1  // public-key encrypted session key
	tagSig       = 2  // signature
	tagSKESK     = 3  // symmetric-key (passphrase) encrypted session key
	tagOnePass   = 4  // one-pass signature
	tagSecKey    = 5  // secret key
	tagPubKey    = 6  // public key
	tagSecSubkey = 7  // secret subkey
	tagCompr     = 8  // compressed data
	tagSED       = 9  // encrypted data without integrity protection
	tagMarker    = 10 // marker ("PGP"), ignored
	tagLiteral   = 11 // literal data
	tagUserID    = 13 // user id
	tagPubSubkey = 14 // public subkey
	tagSEIPD     = 18 // integrity-protected encrypted data (v1: MDC, v2: AEAD)
	tagAEAD      = 20 // OCB/EAX encrypted data of gpg 2.3+ (LibrePGP)
	tagPadding   = 21 // padding, ignored
)

// maxKeyPacket bounds a session-key packet: an RSA-16384 PKESK is about 2 KiB,
// the largest post-quantum ones under 2 KiB.
const maxKeyPacket = 16 << 10

type headerStatus int

const (
	headerOK      headerStatus = iota
	headerShort                // b ends inside the header
	headerInvalid              // not a packet header
)

// parseHeader parses the packet header at the start of b. length is -1 for a
// partial (new format) or indeterminate (old format) length; n is the size of
// the header.
func parseHeader(b []byte) (tag byte, length int64, n int, st headerStatus) {
	if len(b) == 0 {
		return 0, 0, 0, headerShort
	}
	b0 := b[0]
	if b0&0x80 == 0 {
		return 0, 0, 0, headerInvalid
	}
	if b0&0x40 == 0 { // old format: tag in bits 5-2, length type in bits 1-0
		tag = (b0 >> 2) & 0x0f
		lt := b0 & 3
		if lt == 3 {
			return tag, -1, 1, headerOK
		}
		size := 1 << lt
		if len(b) < 1+size {
			return 0, 0, 0, headerShort
		}
		for _, c := range b[1 : 1+size] {
			length = length<<8 | int64(c)
		}
		return tag, length, 1 + size, headerOK
	}
	tag = b0 & 0x3f
	if len(b) < 2 {
		return 0, 0, 0, headerShort
	}
	switch l := b[1]; {
	case l < 192:
		return tag, int64(l), 2, headerOK
	case l < 224:
		if len(b) < 3 {
			return 0, 0, 0, headerShort
		}
		return tag, (int64(l)-192)<<8 + int64(b[2]) + 192, 3, headerOK
	case l < 255:
		return tag, -1, 2, headerOK // partial body length
	default:
		if len(b) < 6 {
			return 0, 0, 0, headerShort
		}
		return tag, int64(b[2])<<24 | int64(b[3])<<16 | int64(b[4])<<8 | int64(b[5]), 6, headerOK
	}
}

// headerSize tells how many bytes the header that starts with b0 (and, for
// the new format, b1) takes.
func headerSize(b []byte) int {
	if b[0]&0x40 == 0 {
		if lt := b[0] & 3; lt != 3 {
			return 1 + 1<<lt
		}
		return 1
	}
	if len(b) < 2 {
		return 2
	}
	switch l := b[1]; {
	case l < 192, l >= 224 && l < 255:
		return 2
	case l < 224:
		return 3
	default:
		return 6
	}
}

// readPacketHeader reads one packet header from r, a byte at a time so that
// nothing past it is consumed, and returns its raw bytes too.
func readPacketHeader(r io.Reader) (tag byte, length int64, raw []byte, err error) {
	raw = make([]byte, 1, 6)
	if _, err = io.ReadFull(r, raw); err != nil {
		return 0, 0, nil, err // io.EOF: no more packets
	}
	if raw[0]&0x80 == 0 {
		return 0, 0, raw, errInvalidHeader
	}
	for len(raw) < headerSize(raw) {
		var c [1]byte
		if _, err = io.ReadFull(r, c[:]); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, 0, raw, err
		}
		raw = append(raw, c[0])
	}
	tag, length, _, _ = parseHeader(raw)
	return tag, length, raw, nil
}

type invalidHeaderError struct{}

func (invalidHeaderError) Error() string { return "invalid OpenPGP packet header" }

var errInvalidHeader error = invalidHeaderError{}
