//go:build linux || darwin

package main

import (
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// lockHolder returns the id of the process holding pebble's lock on the
// database in dir (its LOCK file), 0 when no other process holds it.
func lockHolder(dir string) int {
	f, err := os.Open(filepath.Join(dir, "LOCK"))
	if err != nil {
		return 0
	}
	defer f.Close()
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	if err := unix.FcntlFlock(f.Fd(), unix.F_GETLK, &lk); err != nil || lk.Type == unix.F_UNLCK {
		return 0
	}
	return int(lk.Pid)
}
