//go:build amd64 && !purego

#include "textflag.h"

// func encryptBlocksAsm(xk *byte, nr int, dst, src *byte, n int)
// dst[i] = AES(src[i]) for n 16-byte blocks: eight at a time, their rounds
// interleaved, then one at a time.
TEXT ·encryptBlocksAsm(SB), NOSPLIT, $0-40
	MOVQ xk+0(FP), AX
	MOVQ nr+8(FP), CX
	MOVQ dst+16(FP), DI
	MOVQ src+24(FP), SI
	MOVQ n+32(FP), DX

eight:
	CMPQ DX, $8
	JB   one
	MOVUPS (AX), X8
	MOVUPS 0(SI), X0
	MOVUPS 16(SI), X1
	MOVUPS 32(SI), X2
	MOVUPS 48(SI), X3
	MOVUPS 64(SI), X4
	MOVUPS 80(SI), X5
	MOVUPS 96(SI), X6
	MOVUPS 112(SI), X7
	PXOR   X8, X0
	PXOR   X8, X1
	PXOR   X8, X2
	PXOR   X8, X3
	PXOR   X8, X4
	PXOR   X8, X5
	PXOR   X8, X6
	PXOR   X8, X7
	LEAQ   16(AX), R8
	LEAQ   -1(CX), R9

round8:
	MOVUPS (R8), X8
	AESENC X8, X0
	AESENC X8, X1
	AESENC X8, X2
	AESENC X8, X3
	AESENC X8, X4
	AESENC X8, X5
	AESENC X8, X6
	AESENC X8, X7
	ADDQ   $16, R8
	DECQ   R9
	JNZ    round8
	MOVUPS (R8), X8
	AESENCLAST X8, X0
	AESENCLAST X8, X1
	AESENCLAST X8, X2
	AESENCLAST X8, X3
	AESENCLAST X8, X4
	AESENCLAST X8, X5
	AESENCLAST X8, X6
	AESENCLAST X8, X7
	MOVUPS X0, 0(DI)
	MOVUPS X1, 16(DI)
	MOVUPS X2, 32(DI)
	MOVUPS X3, 48(DI)
	MOVUPS X4, 64(DI)
	MOVUPS X5, 80(DI)
	MOVUPS X6, 96(DI)
	MOVUPS X7, 112(DI)
	ADDQ   $128, SI
	ADDQ   $128, DI
	SUBQ   $8, DX
	JMP    eight

one:
	TESTQ DX, DX
	JZ    done
	MOVUPS (AX), X8
	MOVUPS (SI), X0
	PXOR   X8, X0
	LEAQ   16(AX), R8
	LEAQ   -1(CX), R9

round1:
	MOVUPS (R8), X8
	AESENC X8, X0
	ADDQ   $16, R8
	DECQ   R9
	JNZ    round1
	MOVUPS (R8), X8
	AESENCLAST X8, X0
	MOVUPS X0, (DI)
	ADDQ   $16, SI
	ADDQ   $16, DI
	DECQ   DX
	JMP    one

done:
	RET
