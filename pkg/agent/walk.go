package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"syscall"
)

// walkFunc gets each entry of a walk: its path relative to the walked
// directory ("/"-separated, a directory's ending in "/"), what lstat says
// of it, and a symbolic link's target.
type walkFunc func(rel string, info fs.FileInfo, link string) error

// walk calls fn for dir ("") and everything in it, depth first, each
// directory's entries in lexical order: the order of the archive API's tar,
// which the archive's manifest follows. It follows no link, not even dir.
// An entry gone since its directory was read (a garbage collection, a push
// finishing its upload) is skipped, as the archive API skips it; a
// directory gone since its stat is sent empty. It stops once done is
// closed.
//
// Each directory is read through a descriptor, and its entries are statted
// relative to it (dirfd on Linux): the walk is system calls, and a
// lookup of one name costs the kernel less than one of a whole path.
func walk(dir string, done <-chan struct{}, fn walkFunc) error {
	root, info, err := openRoot(dir)
	if err != nil {
		return err
	}
	defer root.close()
	if err := fn("", info, ""); err != nil {
		return err
	}
	w := walker{fn: fn, done: done}
	return w.dir(root, "", 0)
}

// walker holds what a walk reuses from one directory to the next.
type walker struct {
	fn   walkFunc
	done <-chan struct{}
	// buf is the buffer directories are read with, where that reads bytes.
	buf []byte
	// names holds a name list for each level of the walk, reused.
	names [][]string
}

func (w *walker) dir(d dirHandle, rel string, depth int) error {
	if depth == len(w.names) {
		w.names = append(w.names, nil)
	}
	names, err := d.names(w, w.names[depth][:0])
	if err != nil {
		return err
	}
	slices.Sort(names)
	w.names[depth] = names
	for _, name := range names {
		select {
		case <-w.done:
			return errGone
		default:
		}
		info, err := d.lstat(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		r := rel + name
		t := info.Mode().Type()
		switch {
		case t.IsDir():
			r += "/"
			if err := w.fn(r, info, ""); err != nil {
				return err
			}
			sub, err := d.open(name)
			if gone(err) {
				continue
			}
			if err != nil {
				return err
			}
			err = w.dir(sub, r, depth+1)
			sub.close()
			if err != nil {
				return err
			}
		case t&fs.ModeSymlink != 0:
			link, err := d.readlink(name)
			if gone(err) {
				continue
			}
			if err != nil {
				return err
			}
			if err := w.fn(r, info, link); err != nil {
				return err
			}
		default:
			if err := w.fn(r, info, ""); err != nil {
				return err
			}
		}
	}
	return nil
}

func notDir(dir string, info fs.FileInfo) error {
	return fmt.Errorf("%s is not a directory (%s)", dir, info.Mode().Type())
}

// gone says an entry went, or became another kind of entry, between its
// stat and its open or readlink.
func gone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.EINVAL)
}
