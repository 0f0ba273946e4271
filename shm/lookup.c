/* SPDX-License-Identifier: MIT */
/*
 * lookup.c - lock-free lookup in the index: linear probing over 128-byte
 * slots, each guarded by its own seqcount.
 *
 * How a lookup works.  The key's home slot is shm_home() of its hash.  The
 * probe walks forward from there, slot by slot (wrapping at the end), until
 * it finds the key, meets an empty slot, or has walked SHM_PROBE_LIMIT + 1
 * slots (the writer never places an entry further from home than that).
 * Linear probing keeps this walk inside one or two cache-line pairs for
 * almost every key, and the adjacent-line prefetcher fetches the second
 * line of a slot with the first: a hit on a small entry is one random
 * memory access.
 *
 * Most slots on the walk are not the key: for those only the seqcount, tag
 * and key length are read and validated.  A slot whose tag and length match
 * has its header words copied, its key compared and its value copied in
 * place, and only then is its seqcount re-checked (see inline_match).
 *
 * Why an empty slot ends the walk, and what shift_seq is for.  Deletion is
 * by backward shift (writer/index.c): no tombstones, and the invariant "no
 * empty slot between an entry's home and the entry" always holds between
 * two changes.  During a shift an entry is copied to a slot nearer its home
 * and then its old slot is reused or emptied; a reader walking past both
 * slots at the wrong moments could miss an entry that exists all along.
 * The writer holds the header's shift_seq odd around every shift, and a
 * walk that found nothing checks that shift_seq did not move (and was even)
 * before it answers -ENOENT; otherwise it walks again.  A walk that found
 * the key needs no such check: the slot copy it returns was validated by the
 * slot's own seqcount, so it is a value the entry really had.
 *
 * Bounds.  One walk reads at most min(SHM_PROBE_LIMIT + 1, index_cap) slots
 * (index_cap from the geometry validated against the mapping's size); a
 * walk is repeated at most SHM_SPIN_TRIES + SHM_YIELD_TRIES times; a slot
 * copy is one pass.  Nothing read from the segment can make this loop
 * longer: a crafted segment costs a get at most
 * (SHM_SPIN_TRIES + SHM_YIELD_TRIES) * (SHM_PROBE_LIMIT + 1) slot reads.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>

#include "attr_index.h"
#include "clock.h"
#include "hash.h"
#include "lookup.h"
#include "prefetch.h"
#include "seqcount.h"

void shm_backoff(unsigned attempt)
{
	if (attempt < SHM_SPIN_TRIES) {
		for (unsigned i = 0; i < 8u << (attempt < 4 ? attempt : 4); i++)
			shm_cpu_relax();
	} else {
		sched_yield();
	}
}

/* Word 0 of a slot is {seq, tag}; word 1 is {klen, kind, flags, vlen}. */
struct slot_word1 {
	uint16_t klen;
	uint8_t kind;
	uint8_t flags;
	uint32_t vlen;
};

static inline uint64_t load_word(const struct shm_slot *s, unsigned w)
{
	return atomic_load_explicit((const _Atomic uint64_t *)s + w,
				    SHM_DATA_LOAD_ORDER);
}

static inline uint32_t load_tag(const struct shm_slot *s)
{
	return atomic_load_explicit((const _Atomic uint32_t *)&s->tag,
				    SHM_DATA_LOAD_ORDER);
}

int shm_slot_copy(const struct shm_map *m, uint64_t i, struct shm_slot *out)
{
	const struct shm_slot *s = shm_slot_at(m, i);
	uint32_t s0 = seq_read_begin(&s->seq);

	out->tag = load_tag(s);
	/* words 1..15: everything after {seq, tag} */
	shm_load_words((uint8_t *)out + 8, (const uint8_t *)s + 8,
		       SHM_SLOT_SIZE - 8);
	if (seq_read_retry(&s->seq, s0))
		return -EAGAIN;
	atomic_init(&out->seq, s0);
	return 0;
}

bool shm_slot_sane(const struct shm_map *m, const struct shm_slot *s)
{
	if (s->klen == 0 || s->klen > SHMREG_KEY_MAX ||
	    s->vlen > SHMREG_VALUE_MAX)
		return false;
	if (s->kind == SHM_KIND_INLINE)
		return (uint32_t)s->klen + s->vlen <= SHM_SLOT_INLINE;
	if (s->kind == SHM_KIND_EXTERN || s->kind == SHM_KIND_RICH) {
		struct shm_ext_ref ref;

		memcpy(&ref, s->data, sizeof(ref));
		return (ref.obj_off % SHM_OBJ_ALIGN) == 0 &&
		       ref.obj_size >= shm_obj_key_off(s->kind) + s->klen +
					       (uint64_t)s->vlen &&
		       shm_in_arena(&m->g, ref.obj_off, ref.obj_size);
	}
	return false;
}

int shm_entry_read(const struct shm_map *m, const struct shm_slot *s,
		   void *key, void *buf, size_t cap)
{
	size_t n = s->vlen < cap ? s->vlen : cap;

	if (!shm_slot_sane(m, s))
		return -EPROTO;
	if (s->kind == SHM_KIND_INLINE) {
		/* the slot copy is private and validated: plain copies */
		memcpy(key, s->data, s->klen);
		if (n)
			memcpy(buf, s->data + s->klen, n);
		return 0;
	}

	struct shm_ext_ref ref;
	struct shm_obj oh;
	const struct shm_obj *o;
	uint32_t s0;

	memcpy(&ref, s->data, sizeof(ref));
	o = (const struct shm_obj *)(m->base + ref.obj_off);
	s0 = seq_read_begin(&o->seq);
	shm_load_words((uint8_t *)&oh + 8, (const uint8_t *)o + 8,
		       SHM_OBJ_HDR - 8);
	/* The slot said where the object is and how long its key and value
	 * are; the block is inside the arena (shm_slot_sane), so these copies
	 * stay in bounds whatever the object's own header says. */
	shm_copy_wide(key, (const uint8_t *)o + shm_obj_key_off(s->kind),
		      s->klen);
	if (n)
		shm_copy_wide(buf, (const uint8_t *)o + shm_obj_key_off(s->kind) +
					   s->klen, n);
	if (seq_read_retry(&o->seq, s0))
		return -EAGAIN;
	/* A stable object that is not this version of this entry was freed
	 * and reused after the slot copy was taken: the entry has changed. */
	if (oh.mod_rev != s->mod_rev || oh.klen != s->klen || oh.vlen != s->vlen ||
	    shm_tag(oh.hash) != s->tag)
		return -EAGAIN;
	return 0;
}

int shm_entry_read_stable(const struct shm_map *m,
			  const struct shm_slot *slot, uint32_t s0,
			  const struct shm_slot *s, void *key, void *buf,
			  size_t cap)
{
	int rc = shm_entry_read(m, s, key, buf, cap);

	/* seq_read_retry()'s acquire fence orders the object's loads above
	 * before this reload of the slot's seqcount; it pairs with the
	 * writer's release fence opening the slot's next write */
	if (rc == -EAGAIN && !seq_read_retry(&slot->seq, s0))
		return -EPROTO;
	return rc;
}

bool shm_deadline_passed(int64_t deadline_ns)
{
	return shm_realtime_ns() >= deadline_ns;
}

void shm_fill_info(shmreg_info_t *info, const struct shm_slot *s)
{
	info->mod_rev = s->mod_rev;
	info->create_rev = s->create_rev;
	info->expires_at_ns = s->expires_at_ns;
	info->owner_pid = s->owner_pid;
	info->flags = s->flags;
	info->vlen = s->vlen;
}

enum probe_result { PROBE_FOUND, PROBE_ABSENT, PROBE_RETRY, PROBE_CORRUPT };

/*
 * Compare and copy an inline entry straight out of the slot: the key is
 * compared and the value copied in place (shm_copy_wide's argument: nothing
 * read is acted upon before the caller validates the slot's seqcount), so a
 * hit costs the slot's two cache lines and no intermediate copy.  Returns 1
 * when the key matches, 0 when not, -1 when the lengths make no sense.
 */
static int inline_match(const struct shm_slot *s, const struct shm_slot *hdr,
			const void *key, size_t klen, void *buf, size_t cap)
{
	size_t n = hdr->vlen < cap ? hdr->vlen : cap;
	int same;

	if (klen + hdr->vlen > SHM_SLOT_INLINE)
		return -1;
	same = shm_small_eq(s->data, key, klen);
	if (same && n)
		shm_small_copy(buf, s->data + klen, n);
	return same;
}

/* Slots one walk may visit: the writer's hard limit, or the whole index
 * when that is smaller. */
static inline uint64_t walk_bound(const struct shm_map *m)
{
	return m->g.index_cap <= SHM_PROBE_LIMIT ? m->g.index_cap
						 : SHM_PROBE_LIMIT + 1;
}

/* One walk from the key's home.  On PROBE_FOUND, *out holds a validated copy
 * of the matching slot's header words (not its data) and @buf the value. */
static enum probe_result probe(const struct shm_map *m, const void *key,
			       size_t klen, uint64_t hash, void *buf,
			       size_t cap, struct shm_slot *out)
{
	uint64_t bound = walk_bound(m);
	uint64_t i = shm_home(&m->g, hash);
	uint32_t tag = shm_tag(hash);

	/* The home slot's second line (its value) with the first: see
	 * shm_lookup_fast() in lookup.h. */
	shm_prefetch((const uint8_t *)shm_slot_at(m, i) + SHM_LINE);
	for (uint64_t d = 0; d < bound; d++, i = shm_next(&m->g, i)) {
		const struct shm_slot *s = shm_slot_at(m, i);
		uint32_t s0 = seq_read_begin(&s->seq);
		uint64_t w1 = load_word(s, 1);
		uint32_t t = load_tag(s);
		struct slot_word1 f;
		int same;

		memcpy(&f, &w1, sizeof(f));
		if (f.klen == 0 || t != tag || f.klen != klen) {
			/* not the key (or empty): validate what was read */
			if (seq_read_retry(&s->seq, s0))
				return PROBE_RETRY;
			if (f.klen == 0)
				return PROBE_ABSENT;
			continue;
		}
		/* header words 1..5 and, for an extern entry, the reference */
		shm_load_words((uint8_t *)out + 8, (const uint8_t *)s + 8,
			       offsetof(struct shm_slot, data) - 8);
		if (f.kind == SHM_KIND_INLINE) {
			same = inline_match(s, out, key, klen, buf, cap);
			if (seq_read_retry(&s->seq, s0))
				return PROBE_RETRY;
			if (same < 0)
				return PROBE_CORRUPT;
		} else {
			uint8_t keybuf[SHMREG_KEY_MAX];

			shm_load_words(out->data, s->data,
				       sizeof(struct shm_ext_ref));
			if (seq_read_retry(&s->seq, s0))
				return PROBE_RETRY;
			out->tag = t;
			int rc = shm_entry_read_stable(m, s, s0, out, keybuf,
						       buf, cap);
			if (rc == -EAGAIN)
				return PROBE_RETRY;
			if (rc < 0)
				return PROBE_CORRUPT;
			same = memcmp(keybuf, key, klen) == 0;
		}
		if (same) {
			out->tag = t;
			return PROBE_FOUND;
		}
	}
	return PROBE_ABSENT;
}

ssize_t shm_lookup(const struct shm_map *m, const void *key, size_t klen,
		   uint64_t hash, void *buf, size_t cap, struct shm_slot *slot)
{
	const struct shm_hdr *h = m->hdr;
	struct shm_slot copy;
	struct shm_slot *out = slot ? slot : &copy;
	unsigned corrupt = 0;

	for (unsigned attempt = 0; attempt < SHM_SPIN_TRIES + SHM_YIELD_TRIES;
	     attempt++) {
		/* shift_seq guards the walk as a whole: pairs with the
		 * release store of seq_write_end() closing a shift in
		 * index_remove() (a shift finished before this load is
		 * fully visible to the walk) */
		uint32_t sh0 = seq_read_begin(&h->shift_seq);

		switch (probe(m, key, klen, hash, buf, cap, out)) {
		case PROBE_FOUND:
			return out->vlen;
		case PROBE_ABSENT:
			/* an odd shift_seq, or one that moved, means a shift
			 * overlapped the walk, which may then have missed an
			 * entry being moved: walk again.  (The acquire fence
			 * in seq_read_retry() pairs with the release fence
			 * of seq_write_begin() opening the shift.) */
			if (!seq_read_retry(&h->shift_seq, sh0))
				return -ENOENT;
			break;
		case PROBE_CORRUPT:
			/* A validated copy that makes no sense: the bytes
			 * were written that way.  Give a racing writer a
			 * couple of chances before calling it corrupt. */
			if (++corrupt > 2)
				return -EPROTO;
			break;
		case PROBE_RETRY:
			break;
		}
		shm_backoff(attempt);
	}
	return -EAGAIN;
}
