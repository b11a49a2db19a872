//go:build linux && cgo

package pebble

// With cgo, pebble allocates its block caches and memtables with C calloc
// (memory.go). glibc gives a thread its own arena on its first allocation,
// up to eight arenas per core, and Go's threads come and go: a long-running
// process spreads its cache blocks over a dozen arenas whose freed pages
// are seldom returned, and its resident memory creeps up over hours
// (docs/soak.md, "Memory"). Two arenas keep it flat; pebble's allocations
// are few and large, so they hardly contend. The constructor runs before
// the Go runtime starts a thread; a MALLOC_ARENA_MAX in the environment
// still wins.

/*
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((constructor)) static void tapline_malloc_arenas(void) {
#ifdef M_ARENA_MAX
	if (getenv("MALLOC_ARENA_MAX") == NULL) {
		mallopt(M_ARENA_MAX, 2);
	}
#endif
}

// tapline_count_arenas counts the arenas malloc_info reports, -1 when it
// cannot tell.
static int tapline_count_arenas(void) {
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (f == NULL) {
		return -1;
	}
	int rc = malloc_info(0, f);
	fclose(f);
	if (rc != 0 || buf == NULL) {
		free(buf);
		return -1;
	}
	int n = 0;
	for (char *p = buf; (p = strstr(p, "<heap nr=")) != NULL; p++) {
		n++;
	}
	free(buf);
	return n;
}

static void *tapline_alloc_once(void *arg) {
	(void)arg;
	free(malloc(64));
	return NULL;
}

// tapline_alloc_from_threads allocates once from each of n new threads,
// running at once.
static void tapline_alloc_from_threads(int n) {
	pthread_t t[64];
	if (n > 64) {
		n = 64;
	}
	int started = 0;
	for (int i = 0; i < n; i++) {
		if (pthread_create(&t[started], NULL, tapline_alloc_once, NULL) == 0) {
			started++;
		}
	}
	for (int i = 0; i < started; i++) {
		pthread_join(t[i], NULL);
	}
}
*/
import "C"

// MallocArenas returns how many arenas the C allocator has made, and false
// when it cannot tell (no cgo, or not glibc).
func MallocArenas() (int, bool) {
	n := int(C.tapline_count_arenas())
	return n, n >= 0
}

// allocFromThreads allocates with malloc from n new C threads at once:
// each new thread's first allocation is where glibc makes an arena.
func allocFromThreads(n int) {
	C.tapline_alloc_from_threads(C.int(n))
}
