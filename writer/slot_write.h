/* SPDX-License-Identifier: MIT */
/*
 * slot_write.h - the one way the writer changes a live index slot: an
 * undo-journaled seqcount write section (the crash-safety argument is in
 * index.c, "Crash safety").  Inline: it is on every put.
 */
#ifndef WRITER_SLOT_WRITE_H
#define WRITER_SLOT_WRITE_H

#include <string.h>

#include "internal.h"
#include "seqcount.h"

/* Store a slot's contents (everything but its seqcount) inside the caller's
 * write section: a wide copy under the argument of shm_store_wide() (readers
 * act on nothing they read before their seqcount check validates it).  Four
 * vector stores instead of sixteen word stores: this is on every put. */
static inline void slot_store(struct shm_slot *dst, const struct shm_slot *src)
{
	atomic_store_explicit((_Atomic uint32_t *)&dst->tag, src->tag,
			      SHM_DATA_STORE_ORDER);
	shm_store_fixed((uint8_t *)dst + 8, (const uint8_t *)src + 8,
			SHM_SLOT_SIZE - 8);
}

static inline void index_write(struct shmreg_writer *w, uint64_t i,
			       const struct shm_slot *s)
{
	struct shm_hdr *h = w->map.hdr;
	struct shm_slot *dst = shm_slot_at(&w->map, i);

	/* Arm the undo record: the old contents first, then the index with
	 * release, so a recovering writer that sees it armed sees the data.
	 * Only a writer taking over after this one died reads the record
	 * (index_undo_restore), never a reader: a plain copy. */
	shm_copy_fixed((void *)h->undo_data, dst, SHM_SLOT_SIZE);
	atomic_store_explicit(&h->undo_slot, i + 1, memory_order_release);

	seq_write_begin(&dst->seq);
	slot_store(dst, s);
	seq_write_end(&dst->seq);

	atomic_store_explicit(&h->undo_slot, 0, memory_order_release);
}

#endif /* WRITER_SLOT_WRITE_H */
