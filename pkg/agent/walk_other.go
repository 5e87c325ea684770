//go:build !linux

package agent

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// dirHandle is a directory by its path: elsewhere than on Linux, where
// the agent never runs in a helper, the walk goes through package os.
type dirHandle struct{ path string }

func openRoot(dir string) (dirHandle, fs.FileInfo, error) {
	info, err := os.Lstat(dir)
	if err != nil {
		return dirHandle{}, nil, err
	}
	if !info.IsDir() {
		return dirHandle{}, nil, notDir(dir, info)
	}
	return dirHandle{path: dir}, info, nil
}

func (d dirHandle) close() {}

func (d dirHandle) names(_ *walker, names []string) ([]string, error) {
	f, err := os.Open(d.path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	more, err := f.Readdirnames(-1)
	return append(names, more...), err
}

func (d dirHandle) lstat(name string) (fs.FileInfo, error) {
	return os.Lstat(filepath.Join(d.path, name))
}

func (d dirHandle) open(name string) (dirHandle, error) {
	return dirHandle{path: filepath.Join(d.path, name)}, nil
}

func (d dirHandle) readlink(name string) (string, error) {
	return os.Readlink(filepath.Join(d.path, name))
}

func openFile(path string) (io.ReadCloser, error) { return os.Open(path) }

// keepStat keeps nothing here: package os's stat is kept whole.
func keepStat(fs.FileInfo, *keptEntry) bool { return false }

func keptStatInfo(*keptEntry, string) fs.FileInfo { panic("no statInfo off Linux") }
