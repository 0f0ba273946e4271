/* SPDX-License-Identifier: MIT */
/*
 * ring.h - append to the change ring: the last ring_events changes
 * {rev, op, key}, so a watcher reads everything since revision R without
 * scanning the index.
 *
 * How it works.  Record R sits at index R mod ring_events and is overwritten
 * ring_events revisions later.  Its key goes to a separate byte ring at the
 * monotonic position key_pos (never wrapping: a key that would cross the end
 * starts again at the beginning).  Reader side: shm/ring_read.c.
 *
 * Ordering (the seqcount pattern twice, with the helpers and their argument
 * in shm/seqcount.h):
 *  - key bytes: move ring_key_reserved past the bytes about to be reused
 *    (seq_reserve_write), then write the bytes.  A reader copies a key,
 *    then loads ring_key_reserved (seq_reserve_read): if its copy read a
 *    byte of ours, it sees the new reservation and knows the key was
 *    overwritten.
 *  - record: rev = 0 (seq_rev_write_begin), write the fields, rev = R
 *    (seq_rev_write_end).  The reader checks rev == R before and after
 *    (seq_rev_read_begin, seq_rev_read_check).
 *
 * Readers read record R only after an acquire load of a revision >= R
 * (reader/watch.c, copy_ring() in handoff.c), so a record may be written
 * before the commit's other stores, and for a commit that then does not
 * happen: the common put does both (put_common() in writer.c has the
 * argument).  A record is never rewritten back to an older revision: a
 * reader whose rev check straddled such a rewrite would take fields of two
 * records for one.
 */
#ifndef WRITER_RING_H
#define WRITER_RING_H

#include "internal.h"
#include "seqcount.h"

/* Inline: it is on every commit, between one put's cache miss and the
 * next one's (see put_common() in writer.c). */
static inline void ring_append(struct shmreg_writer *w, uint64_t rev, uint32_t op,
		 const void *key, size_t klen, uint64_t hash)
{
	struct shm_map *m = &w->map;
	struct shm_hdr *h = m->hdr;
	struct shm_ring_rec *r = shm_ring_at(m, rev);
	uint64_t kb = m->g.ring_key_bytes;
	uint64_t pos = w->key_reserved;

	/* a held revision (revision.c): several changes share it, so its
	 * record names none of them */
	if (w->hold_rev && rev == w->hold_rev) {
		op = SHM_OP_MANY;
		klen = 0;
	}
	if ((pos & (kb - 1)) + klen > kb)
		pos = (pos + kb - 1) & ~(kb - 1); /* start of the next lap */
	w->key_reserved = pos + klen;
	seq_reserve_write(&h->ring_key_reserved, w->key_reserved);
	shm_small_store(m->base + m->g.ring_key_off + (pos & (kb - 1)), key,
			klen);

	seq_rev_write_begin(&r->rev);
	atomic_store_explicit((_Atomic uint32_t *)&r->op, op, SHM_DATA_STORE_ORDER);
	atomic_store_explicit((_Atomic uint32_t *)&r->klen, (uint32_t)klen,
			      SHM_DATA_STORE_ORDER);
	atomic_store_explicit((_Atomic uint64_t *)&r->key_pos, pos,
			      SHM_DATA_STORE_ORDER);
	atomic_store_explicit((_Atomic uint64_t *)&r->hash, hash,
			      SHM_DATA_STORE_ORDER);
	seq_rev_write_end(&r->rev, rev);
}

#endif /* WRITER_RING_H */
