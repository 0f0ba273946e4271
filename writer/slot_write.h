/* SPDX-License-Identifier: MIT */
/*
 * slot_write.h - the one way the writer changes a live index slot: an
 * undo-journaled seqcount write section (the crash-safety argument is in
 * index.c, "Crash safety").  Inline: it is on every put.
 */
#ifndef WRITER_SLOT_WRITE_H
#define WRITER_SLOT_WRITE_H

#include <stddef.h>
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

/*
 * An inline entry with no flags, expiry or owner, for put_common() in
 * writer.c, in two steps around the slot's cache miss.  inline_image()
 * builds the slot's new contents (all but its seqcount and create_rev)
 * from the caller's buffers straight in the header's undo record, which is
 * free between slot writes (disarmed); it needs nothing of the slot, so it
 * runs before the probe's load of it, where its instructions retire at
 * once instead of waiting in the reorder window behind that load.
 * index_write_image() then adds create_rev (the one word that comes from
 * the old slot), arms the record and copies it into the slot: the record
 * holds the slot's new contents instead of its old ones, and a writer
 * taking over after a crash (index_undo_restore) writes either the same
 * way, so the slot reads whole, as the put made it.
 */
static inline void inline_image(struct shmreg_writer *w, uint64_t hash,
				uint64_t mod_rev, const void *key, size_t klen,
				const void *val, size_t vlen)
{
	_Atomic uint64_t *word = w->map.hdr->undo_data;
	uint8_t *data = (uint8_t *)word + offsetof(struct shm_slot, data);

	/* the caller's precondition, told to the compiler (whose bounds
	 * checks of the copies below cannot see it) */
	if (klen == 0 || klen + vlen > SHM_SLOT_INLINE)
		__builtin_unreachable();
	/* only a writer taking over after a crash reads the record: relaxed
	 * stores and plain copies; the release store arming it orders them */
	atomic_store_explicit(&word[0], (uint64_t)(uint32_t)hash << 32,
			      memory_order_relaxed); /* seq (unused), tag */
	atomic_store_explicit(&word[1],
			      (uint64_t)klen |
				      (uint64_t)SHM_KIND_INLINE << 16 |
				      (uint64_t)vlen << 32,
			      memory_order_relaxed);
	atomic_store_explicit(&word[2], mod_rev, memory_order_relaxed);
	atomic_store_explicit(&word[4], 0, memory_order_relaxed);
	atomic_store_explicit(&word[5], hash & UINT64_C(0xffffffff00000000),
			      memory_order_relaxed);
	/* the segment is readable by others: the unused tail is zeros */
	shm_zero_fixed(data, SHM_SLOT_INLINE);
	shm_small_copy(data, key, klen);
	if (vlen)
		shm_small_copy(data + klen, val, vlen);
}

static inline void index_write_image(struct shmreg_writer *w, uint64_t i,
				     struct shm_slot *dst, uint64_t hash,
				     uint64_t create_rev)
{
	struct shm_hdr *h = w->map.hdr;
	_Atomic uint64_t *word = (_Atomic uint64_t *)dst;
	const uint8_t *rec = (const uint8_t *)h->undo_data;

	atomic_store_explicit(&h->undo_data[3], create_rev,
			      memory_order_relaxed);
	/* the record whole before it is armed; pairs with the acquire load
	 * in index_undo_restore() */
	atomic_store_explicit(&h->undo_slot, i + 1, memory_order_release);

	seq_write_begin(&dst->seq);
	atomic_store_explicit((_Atomic uint32_t *)&dst->tag, (uint32_t)hash,
			      SHM_DATA_STORE_ORDER);
	shm_store_fixed((uint8_t *)dst + 8, rec + 8, 16);
	atomic_store_explicit(&word[3], create_rev, SHM_DATA_STORE_ORDER);
	shm_store_fixed((uint8_t *)dst + 32, rec + 32, SHM_SLOT_SIZE - 32);
	seq_write_end(&dst->seq);

	atomic_store_explicit(&h->undo_slot, 0, memory_order_release);
}

#endif /* WRITER_SLOT_WRITE_H */
