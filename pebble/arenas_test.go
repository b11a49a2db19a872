package pebble

import "testing"

// TestMallocArenasBounded allocates from 16 new C threads at once, each of
// which glibc would give an arena of its own: the process stays at the two
// arenas arenas_cgo.go allows.
func TestMallocArenasBounded(t *testing.T) {
	if _, ok := MallocArenas(); !ok {
		t.Skip("no cgo or no glibc: pebble allocates in the Go heap")
	}
	allocFromThreads(16)
	n, _ := MallocArenas()
	if n < 1 || n > 2 {
		t.Fatalf("%d malloc arenas after allocating from 16 threads, want at most 2", n)
	}
}
