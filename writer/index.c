/* SPDX-License-Identifier: MIT */
/*
 * index.c - the writer's side of the index: find, write, and delete by
 * backward shift, each slot write journaled for crash recovery.
 *
 * How deletion works (backward shift, no tombstones).  Removing the entry
 * at slot i leaves a hole.  Walking on from i, the first entry whose home
 * lies at or before the hole (cyclically) can move into it: it is copied
 * there, and its old slot becomes the hole.  The walk goes on until it
 * meets an empty slot; then the last hole is emptied.  Afterwards every
 * entry again has no empty slot between its home and itself, so lookups
 * stay as short as if the deleted entries had never been inserted: churn
 * does not degrade the index (no tombstones to accumulate).  The walk is
 * bounded by the cluster's length, and never longer than the index.
 *
 * While entries move, a reader walking past both the old and the new slot
 * of one of them could miss it; the writer therefore holds shift_seq odd
 * around the moves, and a reader that found nothing re-checks it (see
 * shm/lookup.c).  A delete that moves nothing needs no shift_seq: emptying
 * a slot that no entry's probe path crosses cuts no path.
 *
 * Crash safety.  Every slot write first puts whole contents for the slot
 * into the header's undo record - its old contents, or the common put's new
 * ones (slot_write.h) - and arms it (release), then writes the slot under
 * its seqcount.  No slot write disarms it (a store fewer on every put):
 * the next write rewrites it while it is still armed for this one's slot,
 * which is even by then.  A
 * writer that takes over after a crash writes an armed record into its
 * slot only if that slot is odd (index_undo_restore), so the slot that was
 * being written reads whole, as it was before or as the put made it, and
 * any other slot stays as it is.
 */
#include <errno.h>
#include <string.h>

#include "attr_index.h"
#include "internal.h"
#include "prefetch.h"
#include "slot_write.h"
#include "hash.h"
#include "seqcount.h"

/* The key bytes of a slot, or NULL when an extern reference leaves the
 * arena.  The writer's own slots always pass; the check is for a segment
 * adopted in place (writer/adopt.c), whose bytes the writer did not write
 * itself and so never follows unchecked. */
const uint8_t *index_slot_key(const struct shm_map *m,
			      const struct shm_slot *s)
{
	struct shm_ext_ref ref;

	if (s->kind == SHM_KIND_INLINE)
		return s->klen <= SHM_SLOT_INLINE ? s->data : NULL;
	memcpy(&ref, s->data, sizeof(ref));
	if (!shm_in_arena(&m->g, ref.obj_off,
			  shm_obj_key_off(s->kind) + (uint64_t)s->klen))
		return NULL;
	return m->base + ref.obj_off + shm_obj_key_off(s->kind);
}

/* Slots a walk from a home may visit (see SHM_PROBE_LIMIT). */
static inline uint64_t walk_bound(const struct shm_map *m)
{
	return m->g.index_cap <= SHM_PROBE_LIMIT ? m->g.index_cap
						 : SHM_PROBE_LIMIT + 1;
}

int64_t index_lookup(struct shmreg_writer *w, const void *key, size_t klen,
		     uint64_t hash, struct shm_slot *copy, uint64_t *free_slot)
{
	const struct shm_map *m = &w->map;
	uint64_t i = shm_home(&m->g, hash), bound = walk_bound(m);

	/* both lines of the home slot at once: the second one (the value)
	 * is read by the undo journal and written by the put */
	shm_prefetch((const uint8_t *)shm_slot_at(m, i) + SHM_LINE);
	*free_slot = UINT64_MAX;
	for (uint64_t d = 0; d < bound; d++, i = shm_next(&m->g, i)) {
		const struct shm_slot *s = shm_slot_at(m, i);
		const uint8_t *k;

		if (s->klen == 0) {
			*free_slot = i;
			return -1;
		}
		if (slot_hash(s) != hash || s->klen != klen)
			continue;
		k = index_slot_key(m, s);
		if (k && (klen <= SHM_SLOT_INLINE ? shm_small_eq(k, key, klen)
						   : memcmp(k, key, klen) == 0)) {
			/* the header words and an extern reference: all that
			 * callers read of an old entry (not its inline data) */
			if (copy)
				memcpy((uint8_t *)copy + 4, (const uint8_t *)s + 4,
				       SHM_LINE - 4);
			return (int64_t)i;
		}
	}
	return -1;
}

int64_t index_find(struct shmreg_writer *w, const void *key, size_t klen,
		   uint64_t hash, struct shm_slot *copy)
{
	uint64_t free_slot;

	return index_lookup(w, key, klen, hash, copy, &free_slot);
}

int64_t index_find_deadline(struct shmreg_writer *w, uint64_t hash,
			    int64_t lo, int64_t hi)
{
	const struct shm_map *m = &w->map;
	uint64_t i = shm_home(&m->g, hash), bound = walk_bound(m);

	for (uint64_t d = 0; d < bound; d++, i = shm_next(&m->g, i)) {
		const struct shm_slot *s = shm_slot_at(m, i);

		if (s->klen == 0)
			break;
		if (slot_hash(s) == hash && s->expires_at_ns != 0 &&
		    s->expires_at_ns >= lo && s->expires_at_ns <= hi)
			return (int64_t)i;
	}
	return -1;
}

int index_free_slot(struct shmreg_writer *w, uint64_t hash, uint64_t *slot)
{
	const struct shm_map *m = &w->map;
	uint64_t i = shm_home(&m->g, hash), bound = walk_bound(m);

	for (uint64_t d = 0; d < bound; d++, i = shm_next(&m->g, i)) {
		if (shm_slot_at(m, i)->klen == 0) {
			*slot = i;
			return 0;
		}
	}
	/* SHM_PROBE_LIMIT taken slots after the home: a cluster that only
	 * a hash flood builds at a load of at most 3/4 */
	return -ENOSPC;
}

/* May the entry whose home is @home, now at @j, move back into @hole? Yes
 * when the hole lies cyclically within [home, j). */
static bool can_move(uint64_t home, uint64_t hole, uint64_t j)
{
	if (hole <= j)
		return home <= hole || home > j;
	return home <= hole && home > j;
}

void index_remove(struct shmreg_writer *w, uint64_t i)
{
	struct shm_map *m = &w->map;
	struct shm_hdr *h = m->hdr;
	struct shm_slot empty;
	uint64_t hole = i, j = i;
	bool shifting = false;

	/* bounded by the cluster: the walk ends at the first empty slot after
	 * i, and never visits more than the index (the load limit keeps a
	 * quarter of it empty) */
	for (uint64_t n = 0; n < m->g.index_cap; n++) {
		const struct shm_slot *s;

		j = shm_next(&m->g, j);
		s = shm_slot_at(m, j);
		if (s->klen == 0)
			break;
		if (!can_move(shm_home(&m->g, slot_hash(s)), hole, j))
			continue;
		if (!shifting) {
			/* the release fence orders this before the moves;
			 * pairs with the acquire fence of seq_read_retry()
			 * after a reader's walk (shm/lookup.c, reader/list.c) */
			seq_write_begin(&h->shift_seq);
			shifting = true;
		}
		index_write(w, hole, s);
		hole = j;
	}
	memset(&empty, 0, sizeof(empty));
	index_write(w, hole, &empty);
	if (shifting)
		seq_write_end(&h->shift_seq);
}

void index_undo_restore(struct shm_map *m)
{
	struct shm_hdr *h = m->hdr;
	/* pairs with the release store of undo_arm() (slot_write.h) */
	uint64_t armed = atomic_load_explicit(&h->undo_slot,
					      memory_order_acquire);
	struct shm_slot rec, *dst;
	uint32_t mode;

	if (armed == 0 || armed > m->g.index_cap)
		return;
	dst = shm_slot_at(m, armed - 1);
	memcpy(&rec, (const void *)h->undo_data, SHM_SLOT_SIZE);
	mode = atomic_load_explicit(&rec.seq, memory_order_relaxed);
	/* Odd: the writer died inside the section; close it with the
	 * record's contents.  Even: the slot is whole (its section closed,
	 * or never opened: the record may already hold the next put's
	 * image), and stays as it is. */
	if (atomic_load_explicit(&dst->seq, memory_order_relaxed) & 1) {
		/* the common put's replace never wrote the slot's create_rev
		 * (slot_write.h); zero only in a slot that was empty */
		if (mode == SHM_UNDO_KEEP_CREATE && dst->create_rev != 0)
			rec.create_rev = dst->create_rev;
		slot_store(dst, &rec);
		seq_write_end(&dst->seq);
	}
	atomic_store_explicit(&h->undo_slot, 0, memory_order_release);
}
