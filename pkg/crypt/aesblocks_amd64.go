//go:build amd64 && !purego

package crypt

import "golang.org/x/sys/cpu"

var haveAESBlocks = cpu.X86.HasAES

//go:noescape
func encryptBlocksAsm(xk *byte, nr int, dst, src *byte, n int)
