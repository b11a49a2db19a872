//go:build !(linux && cgo)

package pebble

// MallocArenas returns how many arenas the C allocator has made, and false
// when it cannot tell (no cgo, or not glibc).
func MallocArenas() (int, bool) { return 0, false }

func allocFromThreads(int) {}
