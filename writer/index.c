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
 * bounded by the cluster's length (at most max_probe + 1 slots).
 *
 * While entries move, a reader walking past both the old and the new slot
 * of one of them could miss it; the writer therefore holds shift_seq odd
 * around the moves, and a reader that found nothing re-checks it (see
 * shm/lookup.c).  A delete that moves nothing needs no shift_seq: emptying
 * a slot that no entry's probe path crosses cuts no path.
 *
 * Crash safety.  Every slot write first copies the slot's old contents into
 * the header's undo record and arms it (release), then writes the slot
 * under its seqcount, then disarms.  A writer that takes over after a crash
 * restores an armed record (index_undo_restore), so the slot that was being
 * written reads as it was before.
 */
#include <string.h>

#include "internal.h"
#include "hash.h"
#include "seqcount.h"

static inline uint64_t next_slot(const struct shm_map *m, uint64_t i)
{
	return i + 1 == m->g.index_cap ? 0 : i + 1;
}

/* The key bytes of a slot the writer itself wrote (trusted). */
static const uint8_t *slot_key(const struct shm_map *m,
			       const struct shm_slot *s)
{
	struct shm_ext_ref ref;

	if (s->kind == SHM_KIND_INLINE)
		return s->data;
	memcpy(&ref, s->data, sizeof(ref));
	return m->base + ref.obj_off + SHM_OBJ_HDR;
}

int64_t index_find(struct shmreg_writer *w, const void *key, size_t klen,
		   uint64_t hash, struct shm_slot *copy)
{
	const struct shm_map *m = &w->map;
	uint64_t i = shm_home(hash, m->g.index_cap);
	uint64_t limit = atomic_load_explicit(&m->hdr->max_probe,
					      memory_order_relaxed);
	uint32_t tag = shm_tag(hash);

	/* the writer's own segment: max_probe is its own bookkeeping */
	for (uint64_t d = 0; d <= limit && d < m->g.index_cap;
	     d++, i = next_slot(m, i)) {
		const struct shm_slot *s = shm_slot_at(m, i);

		if (s->klen == 0)
			return -1;
		if (s->tag == tag && s->klen == klen &&
		    memcmp(slot_key(m, s), key, klen) == 0) {
			if (copy)
				memcpy((uint8_t *)copy + 4, (const uint8_t *)s + 4,
				       SHM_SLOT_SIZE - 4);
			return (int64_t)i;
		}
	}
	return -1;
}

uint64_t index_free_slot(struct shmreg_writer *w, uint64_t hash,
			 uint64_t *dist)
{
	const struct shm_map *m = &w->map;
	uint64_t i = shm_home(hash, m->g.index_cap), d = 0;

	/* terminates: the index is never more than 3/4 full */
	while (shm_slot_at(m, i)->klen != 0) {
		i = next_slot(m, i);
		d++;
	}
	*dist = d;
	return i;
}

static void slot_store(struct shm_slot *dst, const struct shm_slot *src)
{
	atomic_store_explicit((_Atomic uint32_t *)&dst->tag, src->tag,
			      SHM_DATA_STORE_ORDER);
	shm_store_words((uint8_t *)dst + 8, (const uint8_t *)src + 8,
			SHM_SLOT_SIZE - 8);
}

void index_write(struct shmreg_writer *w, uint64_t i, const struct shm_slot *s)
{
	struct shm_hdr *h = w->map.hdr;
	struct shm_slot *dst = shm_slot_at(&w->map, i);

	/* arm the undo record: the old contents first, then the index with
	 * release so a recovering writer that sees it armed sees the data */
	shm_store_words((void *)h->undo_data, dst, SHM_SLOT_SIZE);
	atomic_store_explicit(&h->undo_slot, i + 1, memory_order_release);

	seq_write_begin(&dst->seq);
	slot_store(dst, s);
	seq_write_end(&dst->seq);

	atomic_store_explicit(&h->undo_slot, 0, memory_order_release);
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

	/* bounded by the cluster: at most max_probe + 1 slots follow i
	 * before an empty one (never more than index_cap) */
	for (uint64_t n = 0; n < m->g.index_cap; n++) {
		const struct shm_slot *s;
		uint64_t home;

		j = next_slot(m, j);
		s = shm_slot_at(m, j);
		if (s->klen == 0)
			break;
		if (s->kind == SHM_KIND_INLINE)
			home = shm_home(shm_hash(s->data, s->klen), m->g.index_cap);
		else {
			struct shm_ext_ref ref;
			const struct shm_obj *o;

			memcpy(&ref, s->data, sizeof(ref));
			o = (const struct shm_obj *)(m->base + ref.obj_off);
			home = shm_home(o->hash, m->g.index_cap);
		}
		if (!can_move(home, hole, j))
			continue;
		if (!shifting) {
			/* the release fence orders this before the moves;
			 * pairs with the acquire fence after a reader's
			 * walk (shm/lookup.c, reader/list.c) */
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
	uint64_t armed = atomic_load_explicit(&h->undo_slot,
					      memory_order_acquire);
	struct shm_slot old, *dst;
	uint32_t seq;

	if (armed == 0 || armed > m->g.index_cap)
		return;
	dst = shm_slot_at(m, armed - 1);
	memcpy(&old, (const void *)h->undo_data, SHM_SLOT_SIZE);
	seq = atomic_load_explicit(&dst->seq, memory_order_relaxed);
	/* Odd: the writer died inside the section; close it with the old
	 * contents.  Even: it died after closing it; write the old contents
	 * in a section of our own.  Either way readers see old, whole. */
	if (!(seq & 1))
		seq_write_begin(&dst->seq);
	slot_store(dst, &old);
	seq_write_end(&dst->seq);
	atomic_store_explicit(&h->undo_slot, 0, memory_order_release);
}
