package archive

import (
	"encoding/binary"
	"math/bits"
)

// validJSON is json.Valid, faster: data is exactly one JSON value, with
// optional white space around it. Like encoding/json's scanner it takes any
// byte of 0x20 or more in a string (invalid UTF-8 included, which decoding
// replaces) and refuses nesting deeper than 10,000. FuzzValidJSON compares
// the two.
func validJSON(data []byte) bool {
	const maxDepth = 10000
	var stack [maxDepth/64 + 1]uint64 // one bit per open container: 1 for an object
	depth := 0
	i := skipSpace(data, 0)
	for {
		// a value
		if i >= len(data) {
			return false
		}
		switch c := data[i]; c {
		case '{', '[':
			if depth == maxDepth {
				return false
			}
			if c == '{' {
				stack[depth/64] |= 1 << (depth % 64)
			} else {
				stack[depth/64] &^= 1 << (depth % 64)
			}
			depth++
			i = skipSpace(data, i+1)
			if i >= len(data) {
				return false
			}
			if c == '{' {
				if data[i] == '}' {
					i++
					depth--
					goto after
				}
				if i = objectKey(data, i); i < 0 {
					return false
				}
				continue
			}
			if data[i] == ']' {
				i++
				depth--
				goto after
			}
			continue
		case '"':
			if i = skipString(data, i); i < 0 {
				return false
			}
		case 't':
			if !hasPrefixAt(data, i, "true") {
				return false
			}
			i += 4
		case 'f':
			if !hasPrefixAt(data, i, "false") {
				return false
			}
			i += 5
		case 'n':
			if !hasPrefixAt(data, i, "null") {
				return false
			}
			i += 4
		default:
			if i = skipNumber(data, i); i < 0 {
				return false
			}
		}
	after:
		// after a value: a separator, a close, or the end
		for {
			i = skipSpace(data, i)
			if depth == 0 {
				return i == len(data)
			}
			if i >= len(data) {
				return false
			}
			object := stack[(depth-1)/64]&(1<<((depth-1)%64)) != 0
			c := data[i]
			if c == ',' {
				i = skipSpace(data, i+1)
				if object {
					if i = objectKey(data, i); i < 0 {
						return false
					}
				}
				break
			}
			if (object && c == '}') || (!object && c == ']') {
				i++
				depth--
				continue
			}
			return false
		}
	}
}

// objectKey reads `"key" :` and the white space after it.
func objectKey(data []byte, i int) int {
	if i >= len(data) || data[i] != '"' {
		return -1
	}
	if i = skipString(data, i); i < 0 {
		return -1
	}
	i = skipSpace(data, i)
	if i >= len(data) || data[i] != ':' {
		return -1
	}
	return skipSpace(data, i+1)
}

func hasPrefixAt(data []byte, i int, lit string) bool {
	return len(data)-i >= len(lit) && string(data[i:i+len(lit)]) == lit
}

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString reads the string that starts at data[i] and returns the index
// after its closing quote, or -1.
func skipString(data []byte, i int) int {
	i++
	for {
		// eight bytes at a time while none is a quote, a backslash or a
		// control character
		for len(data)-i >= 8 {
			x := binary.LittleEndian.Uint64(data[i:])
			const ones, highs = 0x0101010101010101, 0x8080808080808080
			q := x ^ (ones * '"')
			b := x ^ (ones * '\\')
			m := ((x - ones*0x20) | (q - ones) | (b - ones)) &^ x & highs
			if m != 0 {
				i += bits.TrailingZeros64(m) / 8
				break
			}
			i += 8
		}
		if i >= len(data) {
			return -1
		}
		c := data[i]
		switch {
		case c == '"':
			return i + 1
		case c == '\\':
			if i+1 >= len(data) {
				return -1
			}
			switch data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if len(data)-i < 6 || !isHex(data[i+2]) || !isHex(data[i+3]) || !isHex(data[i+4]) || !isHex(data[i+5]) {
					return -1
				}
				i += 6
			default:
				return -1
			}
		case c < 0x20:
			return -1
		default:
			i++
		}
	}
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// skipNumber reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func skipNumber(data []byte, i int) int {
	if i < len(data) && data[i] == '-' {
		i++
	}
	switch {
	case i >= len(data):
		return -1
	case data[i] == '0':
		i++
	case '1' <= data[i] && data[i] <= '9':
		i = skipDigits(data, i+1)
	default:
		return -1
	}
	if i < len(data) && data[i] == '.' {
		j := skipDigits(data, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		j := skipDigits(data, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

func skipDigits(data []byte, i int) int {
	for i < len(data) && '0' <= data[i] && data[i] <= '9' {
		i++
	}
	return i
}
