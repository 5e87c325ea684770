package agent

import (
	"os"

	"golang.org/x/sys/unix"
)

// pipeSize is what the agent asks of its stdout pipe: the most an
// unprivileged process gets (fs.pipe-max-size's default).
const pipeSize = 1 << 20

// growPipe enlarges w's pipe, if w is one, from the kernel's 64 KiB: a
// send's or a dump's 256 KiB writes then wake the engine's reader of the
// container's stdout once, not four times, on the core they may share.
// Best effort.
func growPipe(w any) {
	if f, ok := w.(*os.File); ok {
		unix.FcntlInt(f.Fd(), unix.F_SETPIPE_SZ, pipeSize)
	}
}
