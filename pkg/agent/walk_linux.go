package agent

import (
	"io"
	"io/fs"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// dirHandle is an open directory: its entries are read with getdents and
// statted with fstatat relative to it, a name's lookup rather than a
// path's.
type dirHandle struct {
	fd   int
	path string // for errors
}

// direntBuf is the getdents buffer: a registry's largest directories (a
// repository's _layers/sha256, one directory a blob) come in one call.
const direntBuf = 256 << 10

func openRoot(dir string) (dirHandle, fs.FileInfo, error) {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return dirHandle{}, nil, &fs.PathError{Op: "lstat", Path: dir, Err: err}
	}
	info := newStatInfo(filepath.Base(dir), &st)
	if !info.IsDir() {
		return dirHandle{}, nil, notDir(dir, info)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return dirHandle{}, nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	return dirHandle{fd: fd, path: dir}, info, nil
}

func (d dirHandle) close() { unix.Close(d.fd) }

// names appends the directory's entries to names, unsorted.
func (d dirHandle) names(w *walker, names []string) ([]string, error) {
	if w.buf == nil {
		w.buf = make([]byte, direntBuf)
	}
	for {
		n, err := unix.Getdents(d.fd, w.buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "readdirent", Path: d.path, Err: err}
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(w.buf[:n], -1, names)
	}
}

func (d dirHandle) lstat(name string) (fs.FileInfo, error) {
	var st unix.Stat_t
	for {
		err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "lstat", Path: d.path + "/" + name, Err: err}
		}
		return newStatInfo(name, &st), nil
	}
}

func (d dirHandle) open(name string) (dirHandle, error) {
	for {
		fd, err := unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return dirHandle{}, &fs.PathError{Op: "open", Path: d.path + "/" + name, Err: err}
		}
		return dirHandle{fd: fd, path: d.path + "/" + name}, nil
	}
}

func (d dirHandle) readlink(name string) (string, error) {
	for size := 256; ; size *= 2 {
		b := make([]byte, size)
		n, err := unix.Readlinkat(d.fd, name, b)
		if err == unix.EINTR {
			size /= 2
			continue
		}
		if err != nil {
			return "", &fs.PathError{Op: "readlink", Path: d.path + "/" + name, Err: err}
		}
		if n < size {
			return string(b[:n]), nil
		}
	}
}

// openFile opens a file to send. It follows no link (one that became a
// link since its stat is not read through it), and does not block on one
// that became a fifo.
func openFile(path string) (io.ReadCloser, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		return fdFile(fd), nil
	}
}

// fdFile reads a file with plain read calls: opening an os.File costs
// five system calls more (it tries the poller and gives up), a third of
// a sent link file's.
type fdFile int

func (f fdFile) Read(p []byte) (int, error) {
	for {
		n, err := unix.Read(int(f), p)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return 0, err
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

func (f fdFile) Close() error { return unix.Close(int(f)) }

// statInfo is an lstat's answer as os.Lstat gives it: tar.FileInfoHeader
// reads the owner from Sys, a *syscall.Stat_t.
type statInfo struct {
	name string
	st   syscall.Stat_t
}

func newStatInfo(name string, st *unix.Stat_t) *statInfo {
	return &statInfo{name: name, st: syscall.Stat_t{
		Dev: st.Dev, Ino: st.Ino, Nlink: st.Nlink, Mode: st.Mode, Uid: st.Uid, Gid: st.Gid,
		Rdev: st.Rdev, Size: st.Size, Blksize: st.Blksize, Blocks: st.Blocks,
		Atim: syscall.Timespec(st.Atim), Mtim: syscall.Timespec(st.Mtim), Ctim: syscall.Timespec(st.Ctim),
	}}
}

// Uname and Gname make statInfo a tar.FileInfoNames: the owner's and
// group's names, from a cache that keeps misses (names_linux.go).
func (s *statInfo) Uname() (string, error) { return userName(s.st.Uid), nil }
func (s *statInfo) Gname() (string, error) { return groupName(s.st.Gid), nil }

func (s *statInfo) Name() string       { return s.name }
func (s *statInfo) Size() int64        { return s.st.Size }
func (s *statInfo) IsDir() bool        { return s.Mode().IsDir() }
func (s *statInfo) Sys() any           { return &s.st }
func (s *statInfo) ModTime() time.Time { return time.Unix(s.st.Mtim.Unix()) }

// Mode is os.Lstat's mode for the stat.
func (s *statInfo) Mode() fs.FileMode {
	m := fs.FileMode(s.st.Mode & 0o777)
	switch s.st.Mode & unix.S_IFMT {
	case unix.S_IFBLK:
		m |= fs.ModeDevice
	case unix.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFDIR:
		m |= fs.ModeDir
	case unix.S_IFIFO:
		m |= fs.ModeNamedPipe
	case unix.S_IFLNK:
		m |= fs.ModeSymlink
	case unix.S_IFSOCK:
		m |= fs.ModeSocket
	}
	if s.st.Mode&unix.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if s.st.Mode&unix.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if s.st.Mode&unix.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// keepStat puts what the tar header reads of a statInfo into e.
func keepStat(info fs.FileInfo, e *keptEntry) bool {
	s, ok := info.(*statInfo)
	if !ok {
		return false
	}
	e.kind, e.mode, e.uid, e.gid = keptStat, s.st.Mode, s.st.Uid, s.st.Gid
	e.size, e.rdev = s.st.Size, s.st.Rdev
	e.mtime, _ = s.st.Mtim.Unix()
	return true
}

// keptStatInfo is the statInfo e was kept from, as far as a header reads it.
func keptStatInfo(e *keptEntry, name string) fs.FileInfo {
	return &statInfo{name: name, st: syscall.Stat_t{
		Mode: e.mode, Uid: e.uid, Gid: e.gid, Size: e.size, Rdev: e.rdev,
		Mtim: syscall.NsecToTimespec(e.mtime * int64(time.Second)),
	}}
}
