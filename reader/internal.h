/* SPDX-License-Identifier: MIT */
/*
 * internal.h - the reader handle, shared by the files of libshmreg.
 */
#ifndef READER_INTERNAL_H
#define READER_INTERNAL_H

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* This is the library: shmreg.h gives it the inline get's parts, not the
 * inline definition of shmreg_get (reader/get.c defines the real one). */
#define SHMREG__LIBRARY 1
#include "shmreg.h"
#include "geometry.h"

#if !SHMREG_INLINE_GET
/* The inline get's fallback (reader/get.c), which shmreg_inline.h
 * declares where it is included: exported by every build. */
ssize_t shmreg__get_rest(shmreg_t *r, const void *key, size_t klen, void *buf,
			 size_t cap);
#endif

#define SHMREG_EXPORT __attribute__((visibility("default")))

/*
 * A reader handle.  The current mapping is swapped atomically when a handoff
 * is followed; a replaced mapping's address range is overlaid with zero
 * pages (releasing the retired file's memory at once) and its shm_map kept
 * until shmreg_close(), so a thread still inside a call on it reads zeros,
 * which never validate as an entry (see reader/map.c).
 */
struct shmreg {
	_Atomic(struct shm_map *) map;  /* current mapping */
	int flags;                      /* SHMREG_OPEN_* */
	_Atomic int follow_lock;        /* pid of the process following, 0 */
	_Atomic int64_t follow_after;   /* CLOCK_MONOTONIC ns before which a
	                                 * retired segment still at the name is
	                                 * not looked up again */
	struct retired_map *retired;    /* replaced mappings, under the lock */
	bool follow_link;               /* opened by absolute path: a symlink
	                                 * there is followed (reader/map.c) */
	char path[PATH_MAX];            /* segment file path */
};

/* The mapping to read now: the current one, after following a handoff if it
 * was retired.  Never NULL for an open handle. */
struct shm_map *reader_map(shmreg_t *r);

/* The caller saw @seen retired (or replaced): follow to the segment the
 * name holds now.  Returns the new current map (or @seen when there is
 * nothing newer, or following is disabled). */
struct shm_map *reader_follow(shmreg_t *r, struct shm_map *seen);

/* The same without the throttle: for a key missing from a retired
 * segment @seen.  The writer puts nothing after retiring a segment until
 * its successor is at the name, so a successor the throttle would hide
 * may hold the key (a reader that had looked just before the rename, and
 * answered from the retired segment, would deny a put that returned
 * before its call began).  Returns @seen only while the name still holds
 * it (or NOFOLLOW, or the look failed). */
struct shm_map *reader_follow_now(shmreg_t *r, struct shm_map *seen);

/* shmreg_get with the key's hash already computed (await reuses it). */
ssize_t reader_get(shmreg_t *r, const void *key, size_t klen, uint64_t hash,
		   void *buf, size_t cap, shmreg_info_t *info);

/* Make the array *@p of *@cap elements of @elem bytes hold @need: double
 * (from @first) until it does.  0 or -ENOMEM (the array unchanged). */
static inline int reader_grow(void **p, size_t *cap, size_t need, size_t elem,
			      size_t first)
{
	size_t nc = *cap ? *cap : first;
	void *q;

	if (need <= *cap)
		return 0;
	while (nc < need)
		nc *= 2;
	q = realloc(*p, nc * elem);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = nc;
	return 0;
}

/* Writer state for stats and waits: SHMREG_STATE_OPEN, _CLOSED or _DEAD. */
int reader_writer_state(shmreg_t *r, const struct shm_map *m);

#endif /* READER_INTERNAL_H */
