/* SPDX-License-Identifier: MIT */
/* get.c - shmreg_get and shmreg_revision: the lock-free read path. */
#include <errno.h>

#include "internal.h"
#include "hash.h"
#include "liveness.h"
#include "lookup.h"
#include "validate.h"

/* A lookup that found nothing on a mapping that another thread has since
 * replaced (state no longer OPEN/CLOSED) must be redone on the new one. */
static bool map_replaced(const struct shm_map *m)
{
	uint32_t st = atomic_load_explicit(&m->hdr->state, memory_order_acquire);

	return st != SHM_STATE_OPEN && st != SHM_STATE_CLOSED;
}


ssize_t reader_get(shmreg_t *r, const void *key, size_t klen, uint64_t hash,
		   void *buf, size_t cap, shmreg_info_t *info)
{
	struct shm_slot slot;
	ssize_t rc = -EAGAIN;

	/* Bound: one pass per segment handoff seen during this call; more
	 * than a few in one call means something is wrong with the name. */
	for (int pass = 0; pass < 8; pass++) {
		struct shm_map *m = reader_map(r);

		rc = shm_lookup(m, key, klen, hash, buf, cap, &slot);
		if (rc >= 0) {
			if (shm_expired(&slot))
				return -ENOENT;
			if (info)
				shm_fill_info(info, &slot);
			return rc;
		}
		if (rc == -ENOENT && map_replaced(m) &&
		    !(r->flags & SHMREG_OPEN_NOFOLLOW))
			continue;
		if (rc == -EAGAIN && shm_writer_gone(r->path))
			return -EOWNERDEAD;
		return rc;
	}
	return rc;
}

SHMREG_EXPORT ssize_t shmreg_get(shmreg_t *r, const void *key, size_t klen,
				 void *buf, size_t cap, shmreg_info_t *info)
{
	int rc;

	if (!r || (!buf && cap))
		return -EINVAL;
	rc = shm_check_key(key, klen);
	if (rc < 0)
		return rc;

	/* pairs with the release store in reader_follow() */
	struct shm_map *m = atomic_load_explicit(&r->map, memory_order_acquire);
	uint32_t st = atomic_load_explicit(&m->hdr->state, memory_order_acquire);
	uint64_t hash = shm_hash(key, klen);

	if (st == SHM_STATE_OPEN || st == SHM_STATE_CLOSED) {
		/* two inlined copies: the one without info (most gets) keeps
		 * nothing of the entry's metadata in registers or on the
		 * stack */
		ssize_t n = info ? shm_lookup_fast(m, key, klen, hash, buf, cap,
						   info)
				 : shm_lookup_fast(m, key, klen, hash, buf, cap,
						   NULL);

		if (n >= 0)
			return n;
	}
	return reader_get(r, key, klen, hash, buf, cap, info);
}

SHMREG_EXPORT uint64_t shmreg_revision(shmreg_t *r)
{
	if (!r)
		return 0;
	/* pairs with the release store of the revision in the writer's
	 * commit: everything the commit wrote is visible after this load */
	return atomic_load_explicit(&reader_map(r)->hdr->revision,
				    memory_order_acquire);
}
