//go:build !amd64 || purego

package crypt

const haveAESBlocks = false

func encryptBlocksAsm(xk *byte, nr int, dst, src *byte, n int) {
	panic("crypt: no AES assembly on this platform")
}
