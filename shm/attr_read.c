/* SPDX-License-Identifier: MIT */
/*
 * attr_read.c - lock-free reads of the attribute index: a pair's slot and
 * posting array, an entry's attribute bytes.
 *
 * How a pair is looked up.  The attribute index is a second open-addressing
 * table (32-byte slots, linear probing from the pair hash's top bits,
 * backward-shift deletion, no tombstones), written by writer/attrs.c with
 * the same discipline as the entry index: each slot under its own
 * seqcount, and the header's attr_shift_seq odd around every move of a
 * slot.  A walk from the home slot that meets an empty slot answers
 * "absent" only after attr_shift_seq is seen unchanged and even, as
 * shm/lookup.c does with shift_seq.
 *
 * How a posting array is copied.  The slot's seqcount guards the slot and
 * the first count elements of its array alike (the writer appends and
 * swap-removes inside a write section of the slot), so the reader copies
 * the slot fields and the elements between seq_read_begin() and
 * seq_read_retry() of that one seqcount.  The array's block may also be
 * freed and reused meanwhile: that happens only inside a write section of
 * this slot (growth, shrinking or removal of the pair), and the block's
 * new contents are stored after a later release fence (the write section
 * of its new owner: an object's seq, or a pair slot's), so a copy that read
 * any of them fails the re-check here by the fence-fence argument of
 * seqcount.h.  Until validated, the copied lengths are used only to bound
 * the copy: count * 8 must fit the block, and the block the arena.
 *
 * Bounds.  A walk visits at most min(SHM_PROBE_LIMIT + 1, attr_cap) slots
 * (attr_cap validated with the geometry); it is repeated at most
 * SHM_SPIN_TRIES + SHM_YIELD_TRIES times; a copy is one pass over at most
 * arena_size bytes.  An attribute block is parsed in one pass over at most
 * SHM_ATTR_BYTES_MAX bytes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "attr_index.h"
#include "hash.h"
#include "lookup.h"
#include "seqcount.h"
#include "validate.h"

uint64_t shm_pair_hash(const char *name, size_t nlen, const char *value,
		       size_t vlen)
{
	char buf[SHMREG_ATTR_NAME_MAX + 1 + SHMREG_ATTR_VALUE_MAX];

	if (nlen > SHMREG_ATTR_NAME_MAX)
		nlen = SHMREG_ATTR_NAME_MAX;
	if (vlen > SHMREG_ATTR_VALUE_MAX)
		vlen = SHMREG_ATTR_VALUE_MAX;
	memcpy(buf, name, nlen);
	buf[nlen] = '=';
	memcpy(buf + nlen + 1, value, vlen);
	return shm_hash(buf, nlen + 1 + vlen);
}

uint64_t shm_parent_hash(const void *key, size_t klen)
{
	return XXH3_64bits_withSeed(key, klen, SHM_PARENT_SEED);
}

/* Length of the NUL-terminated string at @p within @room bytes, or
 * SIZE_MAX when no NUL lies inside. */
static size_t str_in(const uint8_t *p, size_t room)
{
	const uint8_t *z = memchr(p, 0, room);

	return z ? (size_t)(z - p) : SIZE_MAX;
}

bool shm_attrs_wellformed(const uint8_t *a, size_t alen, uint32_t nattrs)
{
	size_t pos = 0;

	if (nattrs > SHMREG_ATTRS_MAX || alen > SHM_ATTR_BYTES_MAX)
		return false;
	/* one pass: each pair is consumed, so at most alen bytes are read */
	for (uint32_t i = 0; i < nattrs; i++) {
		size_t n = str_in(a + pos, alen - pos), v;

		if (n == SIZE_MAX || n == 0 || n > SHMREG_ATTR_NAME_MAX ||
		    memchr(a + pos, '=', n))
			return false;
		pos += n + 1;
		v = str_in(a + pos, alen - pos);
		if (v == SIZE_MAX || v > SHMREG_ATTR_VALUE_MAX)
			return false;
		pos += v + 1;
	}
	return pos == alen;
}

bool shm_attrs_have(const uint8_t *a, size_t alen, const char *name,
		    size_t nlen, const char *value, size_t vlen)
{
	size_t pos = 0;

	/* well-formed (checked by the caller): every string ends inside */
	while (pos < alen) {
		size_t n = strlen((const char *)a + pos);
		size_t v = strlen((const char *)a + pos + n + 1);

		if (n == nlen && v == vlen && memcmp(a + pos, name, n) == 0 &&
		    memcmp(a + pos + n + 1, value, v) == 0)
			return true;
		pos += n + v + 2;
	}
	return false;
}

/* Is the (stable) object header @o the one slot copy @s points at: the
 * same version of the same entry?  Decides between "changed after the slot
 * was copied" (retry) and "corrupt" in shm_rich_read. */
static bool rich_is_version(const struct shm_obj *o, const struct shm_slot *s)
{
	return o->mod_rev == s->mod_rev && o->klen == s->klen &&
	       o->vlen == s->vlen && shm_tag(o->hash) == s->tag;
}

int shm_rich_read(const struct shm_map *m, const struct shm_slot *s,
		  void *key, void *val, size_t vcap, void *buf, size_t cap,
		  uint32_t *alen, void *parent, uint32_t *plen)
{
	struct {
		struct shm_obj o;
		struct shm_rich r;
	} h;
	struct shm_ext_ref ref;
	const uint8_t *o;
	uint64_t data, need;
	size_t n, an;
	uint32_t s0;

	if (s->kind != SHM_KIND_RICH || !shm_slot_sane(m, s))
		return -EPROTO;
	memcpy(&ref, s->data, sizeof(ref));
	o = m->base + ref.obj_off;
	data = ref.obj_off + SHM_OBJ_HDR + SHM_RICH_HDR;
	s0 = seq_read_begin((const _Atomic uint32_t *)o);
	shm_load_words((uint8_t *)&h + 8, o + 8,
		       SHM_OBJ_HDR + SHM_RICH_HDR - 8);
	/* lengths from the (not yet validated) copy only bound the copies:
	 * the slot's klen and vlen fit the block (shm_slot_sane), and the
	 * attribute bytes must fit what is left of it */
	need = SHM_OBJ_HDR + SHM_RICH_HDR + (uint64_t)s->klen + s->vlen +
	       h.r.alen + h.r.plen;
	if (need > ref.obj_size || h.r.alen > SHM_ATTR_BYTES_MAX ||
	    h.r.plen > SHMREG_KEY_MAX) {
		if (seq_read_retry((const _Atomic uint32_t *)o, s0))
			return -EAGAIN;
		/* lengths that do not fit are corruption only in this
		 * version of this entry: a reader descheduled after its slot
		 * copy can find the block freed and reused (the quarantine
		 * bounds that by time, not by readers), and is then behind a
		 * change, not looking at a corrupt segment */
		return rich_is_version(&h.o, s) ? -EPROTO : -EAGAIN;
	}
	an = h.r.alen < cap ? h.r.alen : cap;
	n = s->vlen < vcap ? s->vlen : vcap;
	if (key)
		shm_copy_wide(key, m->base + data, s->klen);
	if (val && n)
		shm_copy_wide(val, m->base + data + s->klen, n);
	if (an)
		shm_copy_wide(buf, m->base + data + s->klen + s->vlen, an);
	if (parent && h.r.plen)
		shm_copy_wide(parent, m->base + data + s->klen + s->vlen +
					      h.r.alen, h.r.plen);
	if (seq_read_retry((const _Atomic uint32_t *)o, s0))
		return -EAGAIN;
	/* a stable object that is not this version of this entry: freed and
	 * reused after the slot copy was taken */
	if (!rich_is_version(&h.o, s))
		return -EAGAIN;
	if (h.r.nattrs > SHMREG_ATTRS_MAX ||
	    (h.r.nattrs == 0 && (h.r.alen || !h.r.plen)) ||
	    (an == h.r.alen && !shm_attrs_wellformed(buf, an, h.r.nattrs)))
		return -EPROTO;
	*alen = h.r.alen;
	if (plen)
		*plen = h.r.plen;
	return 0;
}

enum pair_result { PAIR_FOUND, PAIR_ABSENT, PAIR_RETRY, PAIR_CORRUPT,
		   PAIR_NOMEM };

static inline uint64_t pair_walk_bound(const struct shm_map *m)
{
	return m->g.attr_cap <= SHM_PROBE_LIMIT ? m->g.attr_cap
						: SHM_PROBE_LIMIT + 1;
}

/* The posting block of a pair slot copy: does it fit the arena, and its
 * elements the block? */
static bool post_sane(const struct shm_map *m, const struct shm_pair *p)
{
	return p->arr_off % SHM_OBJ_ALIGN == 0 && p->arr_size >= SHM_OBJ_HDR &&
	       shm_in_arena(&m->g, p->arr_off, p->arr_size) &&
	       p->count <= (p->arr_size - SHM_OBJ_HDR) / 8;
}

/* One walk from the pair's home. */
static enum pair_result pair_probe(const struct shm_map *m, uint64_t hash,
				   struct shm_pair *out, uint64_t **post,
				   size_t *post_cap)
{
	uint64_t bound = pair_walk_bound(m), i = shm_pair_home(&m->g, hash);

	for (uint64_t d = 0; d < bound; d++, i = shm_pair_next(&m->g, i)) {
		const struct shm_pair *p = shm_pair_at(m, i);
		uint32_t s0 = seq_read_begin(&p->seq);
		struct shm_pair c;

		c.count = atomic_load_explicit(
			(const _Atomic uint32_t *)&p->count,
			SHM_DATA_LOAD_ORDER);
		shm_load_words(&c.hash, &p->hash, 24);
		if (c.count == 0 || c.hash != hash) {
			if (seq_read_retry(&p->seq, s0))
				return PAIR_RETRY;
			if (c.count == 0)
				return PAIR_ABSENT;
			continue;
		}
		if (!post_sane(m, &c)) {
			if (seq_read_retry(&p->seq, s0))
				return PAIR_RETRY;
			return PAIR_CORRUPT;
		}
		if (post) {
			size_t need = (size_t)c.count * 8;

			if (need > *post_cap) {
				uint64_t *q = realloc(*post, need);

				if (!q)
					return PAIR_NOMEM;
				*post = q;
				*post_cap = need;
			}
			if (need)
				shm_copy_wide(*post, m->base + c.arr_off +
							     SHM_OBJ_HDR,
					      need);
		}
		if (seq_read_retry(&p->seq, s0))
			return PAIR_RETRY;
		*out = c;
		return PAIR_FOUND;
	}
	return PAIR_ABSENT;
}

int shm_pair_read(const struct shm_map *m, uint64_t hash,
		  struct shm_pair *out, uint64_t **post)
{
	const struct shm_hdr *h = m->hdr;
	size_t post_cap = 0;
	unsigned corrupt = 0;

	if (post)
		*post = NULL;
	for (unsigned attempt = 0; attempt < SHM_SPIN_TRIES + SHM_YIELD_TRIES;
	     attempt++) {
		/* pairs with the release store closing a shift of the
		 * attribute index in writer/attrs.c (pair_remove) */
		uint32_t sh0 = seq_read_begin(&h->attr_shift_seq);

		switch (pair_probe(m, hash, out, post, &post_cap)) {
		case PAIR_FOUND:
			return 0;
		case PAIR_ABSENT:
			/* a shift overlapping the walk may have hidden the
			 * pair being moved; the acquire fence of
			 * seq_read_retry() pairs with the release fence of
			 * seq_write_begin() opening the shift */
			if (!seq_read_retry(&h->attr_shift_seq, sh0))
				goto absent;
			break;
		case PAIR_CORRUPT:
			if (++corrupt > 2)
				goto corrupt;
			break;
		case PAIR_NOMEM:
			if (post) {
				free(*post);
				*post = NULL;
			}
			return -ENOMEM;
		case PAIR_RETRY:
			break;
		}
		shm_backoff(attempt);
	}
	if (post) {
		free(*post);
		*post = NULL;
	}
	return -EAGAIN;
absent:
	if (post) {
		free(*post);
		*post = NULL;
	}
	return -ENOENT;
corrupt:
	if (post) {
		free(*post);
		*post = NULL;
	}
	return -EPROTO;
}
