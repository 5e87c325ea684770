package agent

import (
	"os/user"
	"strconv"
	"sync"
)

// The tar header of a sent entry names its owner and group, as
// archive/tar's FileInfoHeader looks them up. It caches only the names
// it finds: in a helper whose image has no /etc/passwd (or lacks the
// owner's uid), every header would read, or fail to open, /etc/passwd
// and /etc/group again, two to four system calls for each of a
// registry's hundreds of thousands of entries. statInfo answers from
// this cache, which keeps the misses too (as "", what archive/tar
// leaves for them).
var names = struct {
	sync.Mutex
	users, groups map[uint32]string
}{users: map[uint32]string{}, groups: map[uint32]string{}}

func userName(uid uint32) string {
	return cachedName(names.users, uid, func(id string) (string, error) {
		u, err := user.LookupId(id)
		if err != nil {
			return "", err
		}
		return u.Username, nil
	})
}

func groupName(gid uint32) string {
	return cachedName(names.groups, gid, func(id string) (string, error) {
		g, err := user.LookupGroupId(id)
		if err != nil {
			return "", err
		}
		return g.Name, nil
	})
}

func cachedName(cache map[uint32]string, id uint32, lookup func(string) (string, error)) string {
	names.Lock()
	defer names.Unlock()
	name, ok := cache[id]
	if !ok {
		name, _ = lookup(strconv.FormatUint(uint64(id), 10))
		cache[id] = name
	}
	return name
}
