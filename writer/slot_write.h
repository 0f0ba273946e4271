/* SPDX-License-Identifier: MIT */
/*
 * slot_write.h - the one way the writer changes a live index slot: an
 * undo-journaled seqcount write section (the crash-safety argument is in
 * index.c, "Crash safety").  Inline: it is on every put.
 *
 * The record's first word says how a writer taking over restores it
 * (index_undo_restore): its low half (the seqcount's place, unused in the
 * record) is SHM_UNDO_WHOLE, the slot as the record holds it, or
 * SHM_UNDO_KEEP_CREATE, the same but the slot's own create_rev word when
 * that is nonzero (the common put, which does not rewrite that word when
 * it replaces an entry).
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

#define SHM_UNDO_WHOLE       0u
#define SHM_UNDO_KEEP_CREATE 1u

/* Arm the undo record for slot @i: its contents complete before the index
 * (release; pairs with the acquire load in index_undo_restore()), and the
 * index before the slot is made odd (the release fence in front of the
 * caller's seq_write_begin(): undo_arm_for_section()). */
static inline void undo_arm(struct shm_hdr *h, uint64_t i)
{
	atomic_store_explicit(&h->undo_slot, i + 1, memory_order_release);
}

/* Between arming and seq_write_begin() of the armed slot: a writer that
 * dies with the slot odd must have it armed (a taker-over restores only an
 * odd slot), so the arm must be made before the odd store, by the compiler
 * and by a weakly ordered CPU alike.  Its partner is the acquire load of
 * undo_slot in index_undo_restore(), which runs after the dead writer's
 * lock passed to the taker-over (the kernel's release and acquire of the
 * lock order every store the dead writer made before that load). */
static inline void undo_arm_for_section(void)
{
	atomic_thread_fence(memory_order_release);
}

static inline void index_write(struct shmreg_writer *w, uint64_t i,
			       const struct shm_slot *s)
{
	struct shm_hdr *h = w->map.hdr;
	struct shm_slot *dst = shm_slot_at(&w->map, i);

	/* Arm the undo record: the old contents first (restored whole), then
	 * the index.  Only a writer taking over after this one died reads the
	 * record (index_undo_restore), never a reader: a plain copy. */
	shm_copy_fixed((void *)h->undo_data, dst, SHM_SLOT_SIZE);
	atomic_store_explicit((_Atomic uint32_t *)(void *)h->undo_data,
			      SHM_UNDO_WHOLE, memory_order_relaxed);
	undo_arm(h, i);
	undo_arm_for_section();

	seq_write_begin(&dst->seq);
	slot_store(dst, s);
	seq_write_end(&dst->seq);
	/* left armed, as every slot write leaves it: the slot is even now,
	 * and a taker-over restores only an odd one */
}

/*
 * An inline entry with no flags, expiry or owner, for put_common() in
 * writer.c, in steps around the slot's cache miss.
 *
 * inline_image() builds the slot's new contents (all but its seqcount and
 * create_rev) from the caller's buffers straight in the header's undo
 * record, and undo_arm() then arms it for the key's home slot: neither
 * needs anything of the slot, so both run before the probe's load of it,
 * where their instructions retire at once instead of waiting in the
 * reorder window behind that load.  The record is rewritten while it may
 * still be armed for the slot of the put before: that slot is even (its
 * section closed), and a taker-over restores only an odd slot.
 *
 * After the probe, index_replace_image() (the key's own entry) or
 * index_insert_image() (an empty slot) copies the record into the slot.
 * The record holds the slot's new contents instead of its old ones, and a
 * writer taking over after a crash (index_undo_restore) writes either the
 * same way, so the slot reads whole, as the put made it.
 */
static inline void inline_image(struct shm_hdr *h, uint64_t hash,
				uint64_t mod_rev, const void *key, size_t klen,
				const void *val, size_t vlen)
{
	_Atomic uint64_t *word = h->undo_data;
	uint8_t *data = (uint8_t *)word + offsetof(struct shm_slot, data);

	/* the caller's precondition, told to the compiler (whose bounds
	 * checks of the copies below cannot see it) */
	if (klen == 0 || klen + vlen > SHM_SLOT_INLINE)
		__builtin_unreachable();
	/* only a writer taking over after a crash reads the record: relaxed
	 * stores and plain copies; the release store arming it orders them */
	atomic_store_explicit(&word[0],
			      (uint64_t)(uint32_t)hash << 32 |
				      SHM_UNDO_KEEP_CREATE,
			      memory_order_relaxed); /* mode, tag */
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

/* The record armed for @home; the put's slot @i, if another, arms its
 * own (the record is whole already: the release store orders it). */
static inline void undo_rearm(struct shm_hdr *h, uint64_t i, uint64_t home)
{
	if (i != home)
		undo_arm(h, i);
	undo_arm_for_section();
}

/*
 * Replace the same key's inline entry, no expiry, no owner, at slot @i
 * (@dst): only the words that change, from the record.  Those are the
 * lengths, kind and flags, mod_rev, and the data (key bytes rewritten
 * equal, the value, the zero tail).  Tag, create_rev, expiry (0), owner
 * (0) and hash_hi are the slot's already: the probe compared tag and
 * hash_hi and put_common() checked the other two, and create_rev stays.
 * The record's mode (SHM_UNDO_KEEP_CREATE) has a taker-over keep the
 * slot's create_rev, which this never writes.  Seven stores, not eleven:
 * each store waits in the store queue behind the slot's miss, and that
 * queue is what a loop of puts runs out of first.
 */
static inline void index_replace_image(struct shm_hdr *h, uint64_t i,
				       uint64_t home, struct shm_slot *dst)
{
	const uint8_t *rec = (const uint8_t *)h->undo_data;

	undo_rearm(h, i, home);
	seq_write_begin(&dst->seq);
	shm_store_fixed((uint8_t *)dst + 8, rec + 8, 16);
	shm_store_fixed(dst->data, rec + offsetof(struct shm_slot, data),
			SHM_SLOT_INLINE);
	seq_write_end(&dst->seq);
}

/* Insert into the empty slot @i (@dst) with @create_rev: the whole slot,
 * from the record, which gets create_rev and mode SHM_UNDO_WHOLE first. */
static inline void index_insert_image(struct shm_hdr *h, uint64_t i,
				      struct shm_slot *dst, uint64_t hash,
				      uint64_t create_rev)
{
	_Atomic uint64_t *word = (_Atomic uint64_t *)dst;
	const uint8_t *rec = (const uint8_t *)h->undo_data;

	atomic_store_explicit((_Atomic uint32_t *)(void *)h->undo_data,
			      SHM_UNDO_WHOLE, memory_order_relaxed);
	atomic_store_explicit(&h->undo_data[3], create_rev,
			      memory_order_relaxed);
	/* re-armed even for the home slot: the release store orders the
	 * two record stores above before it */
	undo_arm(h, i);
	undo_arm_for_section();

	seq_write_begin(&dst->seq);
	atomic_store_explicit((_Atomic uint32_t *)&dst->tag, (uint32_t)hash,
			      SHM_DATA_STORE_ORDER);
	shm_store_fixed((uint8_t *)dst + 8, rec + 8, 16);
	atomic_store_explicit(&word[3], create_rev, SHM_DATA_STORE_ORDER);
	shm_store_fixed((uint8_t *)dst + 32, rec + 32, SHM_SLOT_SIZE - 32);
	seq_write_end(&dst->seq);
}

#endif /* WRITER_SLOT_WRITE_H */
