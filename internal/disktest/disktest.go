// Package disktest gives tests a small filesystem to fill: a tmpfs mounted
// on a fresh directory, and a file that leaves only so much of it free.
package disktest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// Small mounts a tmpfs of mib MiB on a fresh directory, unmounted at
// cleanup (register what must close before the unmount after calling it),
// and returns the directory. It skips the test where mounting is not
// permitted (not root, or no tmpfs).
func Small(t *testing.T, mib int) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm", mib), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs (%v: %s): the disk-full tests need root", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

// Fill writes a file in dir until only about leave bytes are free and
// returns its path: removing it gives the space back.
func Fill(t *testing.T, dir string, leave int64) string {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	path := filepath.Join(dir, "filler")
	if err := os.WriteFile(path, make([]byte, max(free-leave, 0)), 0o600); err != nil {
		t.Fatalf("fill the disk: %v", err)
	}
	return path
}
