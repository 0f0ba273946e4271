/* SPDX-License-Identifier: MIT */
/*
 * ring.c - append to the change ring: the last ring_events changes
 * {rev, op, key}, so a watcher reads everything since revision R without
 * scanning the index.
 *
 * How it works.  Record R sits at index R mod ring_events and is overwritten
 * ring_events revisions later.  Its key goes to a separate byte ring at the
 * monotonic position key_pos (never wrapping: a key that would cross the end
 * starts again at the beginning).  Reader side: shm/ring_read.c.
 *
 * Ordering (the seqcount pattern twice):
 *  - key bytes: store ring_key_reserved past the bytes about to be reused
 *    (relaxed), release fence, write the bytes.  A reader copies a key, then
 *    acquire fence, then loads ring_key_reserved: if its copy read a byte of
 *    ours, it sees the new reservation and knows the key was overwritten.
 *  - record: store rev = 0 (relaxed), release fence, write the fields, store
 *    rev = R (release).  The reader checks rev == R before and after.
 */
#include "internal.h"
#include "seqcount.h"

void ring_append(struct shmreg_writer *w, uint64_t rev, uint32_t op,
		 const void *key, size_t klen, uint64_t hash)
{
	struct shm_map *m = &w->map;
	struct shm_hdr *h = m->hdr;
	struct shm_ring_rec *r = shm_ring_at(m, rev);
	uint64_t kb = m->g.ring_key_bytes;
	uint64_t pos = w->key_reserved;

	if ((pos & (kb - 1)) + klen > kb)
		pos = (pos + kb - 1) & ~(kb - 1); /* start of the next lap */
	w->key_reserved = pos + klen;
	atomic_store_explicit(&h->ring_key_reserved, w->key_reserved,
			      memory_order_relaxed);
	/* pairs with the acquire fence after the key copy in ring_read.c */
	shm_fence_release();
	shm_store_wide(m->base + m->g.ring_key_off + (pos & (kb - 1)), key, klen);

	atomic_store_explicit(&r->rev, 0, memory_order_relaxed);
	/* pairs with the acquire fence before the rev re-check in
	 * ring_read.c */
	shm_fence_release();
	atomic_store_explicit((_Atomic uint32_t *)&r->op, op, SHM_DATA_STORE_ORDER);
	atomic_store_explicit((_Atomic uint32_t *)&r->klen, (uint32_t)klen,
			      SHM_DATA_STORE_ORDER);
	atomic_store_explicit((_Atomic uint64_t *)&r->key_pos, pos,
			      SHM_DATA_STORE_ORDER);
	atomic_store_explicit((_Atomic uint64_t *)&r->hash, hash,
			      SHM_DATA_STORE_ORDER);
	/* pairs with the acquire load of rev in ring_read.c */
	atomic_store_explicit(&r->rev, rev, memory_order_release);
}
