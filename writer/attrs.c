/* SPDX-License-Identifier: MIT */
/*
 * attrs.c - entry attributes and the attribute index, writer side: rich
 * objects, posting arrays, pair slots, and shmreg_writer_set_attrs.
 *
 * How the index works.  Every distinct name=value pair that some entry
 * carries has one slot in the attribute index (shm/layout.h struct
 * shm_pair), found by linear probing from the top bits of the pair's
 * XXH3-64 ("name=value").  The slot points to the pair's posting array, an
 * arena block holding the key hashes of the entries that carry the pair,
 * in no order.  An entry's pairs are indexed in the commit that puts it:
 *
 *   - adding entry hash e to pair p appends e (count + 1) inside a write
 *     section of p's slot; a full array is first copied, in that same
 *     section, into a block of twice the room, whose header is written
 *     under the block's own seq;
 *   - removing e moves the array's last element into e's position and
 *     drops the count, again in one write section of the slot.  The
 *     position comes from the writer's private map (pair, entry) ->
 *     position (struct apos_map), so it is O(1), not a scan;
 *   - an array down to a quarter of its room is copied into a block of
 *     half the size, and a pair whose count reaches 0 loses its slot
 *     (backward shift, under attr_shift_seq, as writer/index.c does for
 *     entries) and its block: churn of attribute values frees what it
 *     used, the index holds only pairs some entry carries, and the
 *     arena bytes of postings stay within 4x of 8 B per (entry, pair);
 *   - every block freed goes to the allocator's FIFO (alloc.c) after the
 *     section that unlinked it has ended.
 *
 * So a pair's array always lists exactly the key hashes of the entries
 * that carry it, each once (refs in the position map counts two keys of
 * one hash); shmreg_find (reader/find.c) copies the array of the rarest
 * pair asked for and checks each entry it names.
 *
 * Nothing here fails inside a commit: attrs_reserve() runs before the
 * commit opens and grows the registry (a handoff) until the arena has bump
 * room for every block the commit may take and the attribute index room
 * for every new pair; the position map is grown there too.  A shrink that
 * finds no block is skipped (the array just stays larger).
 *
 * Bounds.  An update touches at most 2 * SHMREG_ATTRS_MAX pairs; each
 * touch is O(1) apart from a growth or shrink copy (amortised O(1)) and a
 * slot removal (bounded by its cluster, at most attr_cap slots).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "attr_index.h"
#include "hash.h"
#include "internal.h"
#include "lookup.h"
#include "seqcount.h"
#include "validate.h"

#define POST_MIN_BLOCK 64u  /* smallest posting block: room for 4 */

/* ---- the position map (writer heap) ---- */

static size_t apos_home(const struct apos_map *p, uint64_t ph, uint64_t eh)
{
	uint64_t x = (ph ^ (eh * UINT64_C(0x9E3779B97F4A7C15))) *
		     UINT64_C(0xff51afd7ed558ccd);

	return (size_t)(x >> 17) & (p->cap - 1);
}

static struct apos *apos_find(const struct apos_map *p, uint64_t ph,
			      uint64_t eh)
{
	if (!p->cap)
		return NULL;
	/* at most half full: the walk ends at an empty cell */
	for (size_t i = apos_home(p, ph, eh), n = 0; n < p->cap;
	     n++, i = (i + 1) & (p->cap - 1)) {
		struct apos *a = &p->tab[i];

		if (a->refs == 0)
			return NULL;
		if (a->phash == ph && a->ehash == eh)
			return a;
	}
	return NULL;
}

static void apos_put(struct apos_map *p, const struct apos *v)
{
	size_t i = apos_home(p, v->phash, v->ehash);

	while (p->tab[i].refs)
		i = (i + 1) & (p->cap - 1);
	p->tab[i] = *v;
	p->n++;
}

/* Room for @more insertions at a load of at most 1/2. */
static int apos_reserve(struct apos_map *p, size_t more)
{
	struct apos_map q;
	size_t cap = p->cap ? p->cap : 64;

	while ((p->n + more) * 2 > cap)
		cap *= 2;
	if (cap == p->cap)
		return 0;
	q.tab = calloc(cap, sizeof(*q.tab));
	if (!q.tab)
		return -ENOMEM;
	q.cap = cap;
	q.n = 0;
	for (size_t i = 0; i < p->cap; i++)
		if (p->tab[i].refs)
			apos_put(&q, &p->tab[i]);
	free(p->tab);
	*p = q;
	return 0;
}

/* Remove cell @a by backward shift (no tombstones). */
static void apos_del(struct apos_map *p, struct apos *a)
{
	size_t hole = (size_t)(a - p->tab), j = hole;

	for (size_t n = 0; n < p->cap; n++) {
		size_t home;

		j = (j + 1) & (p->cap - 1);
		if (p->tab[j].refs == 0)
			break;
		home = apos_home(p, p->tab[j].phash, p->tab[j].ehash);
		/* may j's cell move back into hole: home cyclically
		 * outside (hole, j]? */
		if (hole <= j ? (home <= hole || home > j)
			      : (home <= hole && home > j)) {
			p->tab[hole] = p->tab[j];
			hole = j;
		}
	}
	memset(&p->tab[hole], 0, sizeof(p->tab[hole]));
	p->n--;
}

void apos_free(struct apos_map *p)
{
	free(p->tab);
	memset(p, 0, sizeof(*p));
}

/* ---- attribute bytes ---- */

/* Encode @n checked attributes as "name\0value\0" pairs into @buf (at
 * least SHM_ATTR_BYTES_MAX bytes); returns the length. */
static uint32_t attrs_encode(const shmreg_attr_t *attrs, uint32_t n,
			     uint8_t *buf)
{
	size_t pos = 0;

	for (uint32_t i = 0; i < n; i++) {
		size_t nl = strlen(attrs[i].name), vl = strlen(attrs[i].value);

		memcpy(buf + pos, attrs[i].name, nl + 1);
		pos += nl + 1;
		memcpy(buf + pos, attrs[i].value, vl + 1);
		pos += vl + 1;
	}
	return (uint32_t)pos;
}

/* Pair hashes an entry may be listed under: its attributes' and its
 * parent's pseudo-pair. */
#define ENTRY_PAIRS (SHMREG_ATTRS_MAX + 1)

/* The distinct pair hashes of well-formed attribute bytes and of the
 * parent pseudo-pair (@plen 0: none), into @out (ENTRY_PAIRS of room);
 * returns how many. */
static unsigned pair_set(const uint8_t *a, uint32_t alen, const void *parent,
			 uint32_t plen, uint64_t *out)
{
	unsigned k = 0;
	size_t pos = 0;

	if (plen)
		out[k++] = shm_parent_hash(parent, plen);
	while (pos < alen && k < ENTRY_PAIRS) {
		const char *name = (const char *)a + pos;
		size_t nl = strlen(name);
		const char *val = name + nl + 1;
		size_t vl = strlen(val);
		uint64_t h = shm_pair_hash(name, nl, val, vl);
		bool dup = false;

		for (unsigned i = 0; i < k; i++)
			dup |= out[i] == h;
		if (!dup)
			out[k++] = h;
		pos += nl + vl + 2;
	}
	return k;
}

int attrs_of_slot(const struct shm_map *m, const struct shm_slot *s,
		  const uint8_t **a, uint32_t *alen, uint32_t *nattrs,
		  const uint8_t **parent, uint32_t *plen)
{
	struct shm_ext_ref ref;
	const struct shm_rich *r;
	uint64_t data;

	*a = *parent = NULL;
	*alen = *nattrs = *plen = 0;
	if (s->kind != SHM_KIND_RICH)
		return 0;
	memcpy(&ref, s->data, sizeof(ref));
	data = SHM_OBJ_HDR + SHM_RICH_HDR + (uint64_t)s->klen + s->vlen;
	if (ref.obj_off % SHM_OBJ_ALIGN || ref.obj_size < data ||
	    !shm_in_arena(&m->g, ref.obj_off, ref.obj_size))
		return -EPROTO;
	r = (const struct shm_rich *)(m->base + ref.obj_off + SHM_OBJ_HDR);
	if (r->alen > ref.obj_size - data || r->plen > SHMREG_KEY_MAX ||
	    r->plen > ref.obj_size - data - r->alen ||
	    (r->nattrs == 0 && (r->alen || !r->plen)) ||
	    !shm_attrs_wellformed(m->base + ref.obj_off + data, r->alen,
				  r->nattrs))
		return -EPROTO;
	*a = m->base + ref.obj_off + data;
	*alen = r->alen;
	*nattrs = r->nattrs;
	*parent = *a + r->alen;
	*plen = r->plen;
	return 0;
}

int attrs_entry_build_raw(struct shmreg_writer *w, struct shm_slot *s,
			  const void *key, size_t klen, const void *val,
			  size_t vlen, uint64_t hash, const uint8_t *enc,
			  uint32_t alen, uint32_t nattrs, const void *parent,
			  uint32_t plen)
{
	struct shm_ext_ref ref;
	struct shm_obj *o;
	uint64_t off, size;
	uint8_t *data;
	int rc;

	s->tag = shm_tag(hash);
	s->hash_hi = shm_hash_hi(hash);
	s->klen = (uint16_t)klen;
	s->vlen = (uint32_t)vlen;
	memset(s->data, 0, sizeof(s->data));
	size = alloc_class_size(SHM_OBJ_HDR + SHM_RICH_HDR + klen + vlen +
				alen + plen);
	if (!size)
		return -E2BIG;
	rc = alloc_block(&w->alloc, &w->map.g, size, &off);
	if (rc < 0)
		return rc;
	o = (struct shm_obj *)(w->map.base + off);
	data = (uint8_t *)o + SHM_OBJ_HDR + SHM_RICH_HDR;
	/* a reused block may have a slow reader: its seq sends it back */
	seq_write_begin(&o->seq);
	struct {
		struct shm_obj o;
		struct shm_rich r;
	} h = { .o = { .klen = (uint32_t)klen, .vlen = (uint32_t)vlen,
		       .mod_rev = s->mod_rev, .hash = hash },
		.r = { .alen = alen, .nattrs = nattrs, .plen = plen } };
	shm_store_words((uint8_t *)o + 8, (uint8_t *)&h + 8,
			SHM_OBJ_HDR + SHM_RICH_HDR - 8);
	shm_store_wide(data, key, klen);
	if (vlen)
		shm_store_wide(data + klen, val, vlen);
	shm_store_wide(data + klen + vlen, enc, alen);
	if (plen)
		shm_store_wide(data + klen + vlen + alen, parent, plen);
	seq_write_end(&o->seq);
	s->kind = SHM_KIND_RICH;
	ref.obj_off = off;
	ref.obj_size = size;
	memcpy(s->data, &ref, sizeof(ref));
	w->arena_live += size;
	return 0;
}

int attrs_entry_build(struct shmreg_writer *w, struct shm_slot *s,
		      const void *key, size_t klen, const void *val,
		      size_t vlen, uint64_t hash,
		      const shmreg_put_opts_t *opts)
{
	uint8_t enc[SHM_ATTR_BYTES_MAX];
	uint32_t alen = attrs_encode(opts->attrs, opts->nattrs, enc);

	return attrs_entry_build_raw(w, s, key, klen, val, vlen, hash, enc,
				     alen, opts->nattrs, opts->parent,
				     (uint32_t)opts->parent_len);
}

/* ---- pair slots ---- */

/* The slot of pair @ph, or -1 and in *@free_slot the empty slot where it
 * would go (UINT64_MAX: none within SHM_PROBE_LIMIT). */
static int64_t pair_find(const struct shm_map *m, uint64_t ph,
			 uint64_t *free_slot)
{
	uint64_t i = shm_pair_home(&m->g, ph);
	uint64_t bound = m->g.attr_cap <= SHM_PROBE_LIMIT ? m->g.attr_cap
							  : SHM_PROBE_LIMIT + 1;

	*free_slot = UINT64_MAX;
	for (uint64_t d = 0; d < bound; d++, i = shm_pair_next(&m->g, i)) {
		const struct shm_pair *p = shm_pair_at(m, i);

		if (p->count == 0) {
			*free_slot = i;
			return -1;
		}
		if (p->hash == ph)
			return (int64_t)i;
	}
	return -1;
}

/* Store the fields of slot @p (inside the caller's write section of it). */
static void pair_store(struct shm_pair *p, const struct shm_pair *v)
{
	atomic_store_explicit((_Atomic uint32_t *)&p->count, v->count,
			      SHM_DATA_STORE_ORDER);
	shm_store_words(&p->hash, &v->hash, 24);
}

static inline _Atomic uint64_t *post_elems(const struct shm_map *m,
					   uint64_t arr_off)
{
	return (_Atomic uint64_t *)(m->base + arr_off) + SHM_POST_FIRST;
}

static inline uint64_t post_room(uint64_t arr_size)
{
	return (arr_size - SHM_OBJ_HDR) / 8;
}

/* Take a block of @size for pair @ph's array and write its header under
 * the block's own seq (a reader of its previous object retries). */
static int post_block(struct shmreg_writer *w, uint64_t ph, uint64_t size,
		      uint64_t *off)
{
	struct shm_obj *o;
	int rc = alloc_block(&w->alloc, &w->map.g, size, off);

	if (rc < 0)
		return rc;
	o = (struct shm_obj *)(w->map.base + *off);
	seq_write_begin(&o->seq);
	struct shm_obj oh = { .hash = ph };
	shm_store_words((uint8_t *)o + 8, (uint8_t *)&oh + 8, SHM_OBJ_HDR - 8);
	seq_write_end(&o->seq);
	w->arena_live += size;
	return 0;
}

static void post_free(struct shmreg_writer *w, uint64_t off, uint64_t size)
{
	w->arena_live -= size;
	(void)alloc_release(&w->alloc, off, size);
}

/* Copy @n elements into a new block of @size; the caller holds the
 * pair's write section.  Returns 0 or -ENOSPC (nothing changed). */
static int post_move(struct shmreg_writer *w, struct shm_pair *c, uint64_t n,
		     uint64_t size)
{
	uint64_t off;
	int rc = post_block(w, c->hash, size, &off);

	if (rc < 0)
		return rc;
	shm_store_wide((void *)post_elems(&w->map, off),
		       (const void *)post_elems(&w->map, c->arr_off), n * 8);
	c->arr_off = off;
	c->arr_size = size;
	return 0;
}

int attrs_copy_index(struct shmreg_writer *w, const struct shm_map *src)
{
	for (uint64_t i = 0; i < src->g.attr_cap; i++) {
		const struct shm_pair *p = shm_pair_at(src, i);
		struct shm_pair c, *d;
		uint64_t free_slot;
		int rc;

		if (p->count == 0)
			continue;
		memcpy(&c, p, sizeof(c));
		/* one slot per pair hash in the source, and the new index
		 * is at least as large: a full probe path is a hash flood */
		if (pair_find(&w->map, c.hash, &free_slot) >= 0 ||
		    free_slot == UINT64_MAX)
			return -ENOSPC;
		/* the same block size, the elements in the same order: the
		 * position map (w->apos) stays exact */
		rc = post_block(w, c.hash, p->arr_size, &c.arr_off);
		if (rc < 0)
			return rc;
		shm_store_wide((void *)post_elems(&w->map, c.arr_off),
			       (const void *)post_elems(src, p->arr_off),
			       (size_t)c.count * 8);
		d = shm_pair_at(&w->map, free_slot);
		seq_write_begin(&d->seq);
		pair_store(d, &c);
		seq_write_end(&d->seq);
		w->attr_pairs++;
	}
	return 0;
}

/* Remove the (now empty) pair slot @i by backward shift. */
static void pair_remove(struct shmreg_writer *w, uint64_t i)
{
	struct shm_map *m = &w->map;
	struct shm_hdr *h = m->hdr;
	struct shm_pair empty = { 0 };
	uint64_t hole = i, j = i;
	bool shifting = false;

	for (uint64_t n = 0; n < m->g.attr_cap; n++) {
		struct shm_pair *s;
		uint64_t home;

		j = shm_pair_next(&m->g, j);
		s = shm_pair_at(m, j);
		if (s->count == 0)
			break;
		home = shm_pair_home(&m->g, s->hash);
		if (!(hole <= j ? (home <= hole || home > j)
				: (home <= hole && home > j)))
			continue;
		if (!shifting) {
			/* orders this before the moves; pairs with the
			 * acquire fence of seq_read_retry() after a reader's
			 * walk (shm/attr_read.c shm_pair_read) */
			seq_write_begin(&h->attr_shift_seq);
			shifting = true;
		}
		struct shm_pair *d = shm_pair_at(m, hole);
		seq_write_begin(&d->seq);
		pair_store(d, s);
		seq_write_end(&d->seq);
		hole = j;
	}
	struct shm_pair *d = shm_pair_at(m, hole);
	seq_write_begin(&d->seq);
	pair_store(d, &empty);
	seq_write_end(&d->seq);
	if (shifting)
		seq_write_end(&h->attr_shift_seq);
	w->attr_pairs--;
}

/* Add entry hash @eh to pair @ph.  Growth was reserved by attrs_reserve()
 * (or, in a handoff, by the new segment's size). */
static int post_add(struct shmreg_writer *w, uint64_t ph, uint64_t eh)
{
	struct shm_map *m = &w->map;
	struct apos *a = apos_find(&w->apos, ph, eh);
	struct shm_pair c, *p;
	uint64_t free_slot, old_off = 0, old_size = 0;
	int64_t at;
	int rc;

	if (a) {
		a->refs++; /* another key of the same hash */
		return 0;
	}
	rc = apos_reserve(&w->apos, 1);
	if (rc < 0)
		return rc;
	at = pair_find(m, ph, &free_slot);
	if (at < 0) {
		if (free_slot == UINT64_MAX)
			return -ENOSPC;
		c = (struct shm_pair){ .hash = ph };
		rc = post_block(w, ph, POST_MIN_BLOCK, &c.arr_off);
		if (rc < 0)
			return rc;
		c.arr_size = POST_MIN_BLOCK;
		at = (int64_t)free_slot;
		w->attr_pairs++;
	} else {
		memcpy(&c, shm_pair_at(m, (uint64_t)at), sizeof(c));
	}
	p = shm_pair_at(m, (uint64_t)at);
	/* one section covers the move to a larger block and the append */
	seq_write_begin(&p->seq);
	if (c.count == post_room(c.arr_size)) {
		old_off = c.arr_off;
		old_size = c.arr_size;
		rc = post_move(w, &c, c.count,
			       alloc_class_size(SHM_OBJ_HDR + 16 * c.count));
		if (rc < 0) {
			old_off = 0;
			seq_write_end(&p->seq);
			return rc;
		}
	}
	atomic_store_explicit(&post_elems(m, c.arr_off)[c.count], eh,
			      SHM_DATA_STORE_ORDER);
	c.count++;
	pair_store(p, &c);
	seq_write_end(&p->seq);
	if (old_off)
		post_free(w, old_off, old_size);
	apos_put(&w->apos, &(struct apos){ .phash = ph, .ehash = eh,
					   .pos = c.count - 1, .refs = 1 });
	return 0;
}

/* Remove entry hash @eh from pair @ph. */
static void post_del(struct shmreg_writer *w, uint64_t ph, uint64_t eh)
{
	struct shm_map *m = &w->map;
	struct apos *a = apos_find(&w->apos, ph, eh);
	struct shm_pair c, *p;
	uint64_t free_slot, last, pos, old_off = 0, old_size = 0;
	int64_t at;

	if (!a || --a->refs)
		return;
	pos = a->pos;
	apos_del(&w->apos, a);
	at = pair_find(m, ph, &free_slot);
	if (at < 0)
		return; /* cannot happen: the map and the index agree */
	p = shm_pair_at(m, (uint64_t)at);
	memcpy(&c, p, sizeof(c));
	if (c.count <= 1) {
		pair_remove(w, (uint64_t)at);
		post_free(w, c.arr_off, c.arr_size);
		return;
	}
	last = c.count - 1;
	seq_write_begin(&p->seq);
	if (pos != last) {
		_Atomic uint64_t *e = post_elems(m, c.arr_off);
		uint64_t moved = atomic_load_explicit(&e[last],
						      memory_order_relaxed);
		struct apos *ma = apos_find(&w->apos, ph, moved);

		atomic_store_explicit(&e[pos], moved, SHM_DATA_STORE_ORDER);
		if (ma)
			ma->pos = (uint32_t)pos;
	}
	c.count--;
	/* a quarter full: half the block (skipped when no block is free) */
	if (c.arr_size > POST_MIN_BLOCK &&
	    c.count * 4 <= post_room(c.arr_size)) {
		old_off = c.arr_off;
		old_size = c.arr_size;
		if (post_move(w, &c, c.count,
			      alloc_class_size(SHM_OBJ_HDR + 16 * c.count)) < 0)
			old_off = 0;
	}
	pair_store(p, &c);
	seq_write_end(&p->seq);
	if (old_off)
		post_free(w, old_off, old_size);
}

/* The pair hashes a slot of the writer's segment is listed under. */
static unsigned slot_pairs(const struct shm_map *m, const struct shm_slot *s,
			   uint64_t *out)
{
	const uint8_t *a, *parent;
	uint32_t alen, nattrs, plen;

	if (attrs_of_slot(m, s, &a, &alen, &nattrs, &parent, &plen) < 0 || !a)
		return 0;
	return pair_set(a, alen, parent, plen, out);
}

const struct shm_pair *attrs_pair(const struct shm_map *m, uint64_t ph)
{
	uint64_t free_slot;
	int64_t at = pair_find(m, ph, &free_slot);

	return at < 0 ? NULL : shm_pair_at(m, (uint64_t)at);
}

void attrs_update(struct shmreg_writer *w, const struct shm_slot *old,
		  const struct shm_slot *new, uint64_t ehash)
{
	uint64_t po[ENTRY_PAIRS], pn[ENTRY_PAIRS];
	unsigned no = 0, nn = 0;

	if (old)
		no = slot_pairs(&w->map, old, po);
	if (new)
		nn = slot_pairs(&w->map, new, pn);
	/* additions first: they take the blocks attrs_reserve() made room
	 * for, before a removal's optional shrink could take that room */
	for (unsigned j = 0; j < nn; j++) {
		bool had = false;

		for (unsigned i = 0; i < no; i++)
			had |= po[i] == pn[j];
		/* reserved by attrs_reserve(): cannot fail */
		if (!had)
			(void)post_add(w, pn[j], ehash);
	}
	for (unsigned i = 0; i < no; i++) {
		bool kept = false;

		for (unsigned j = 0; j < nn; j++)
			kept |= po[i] == pn[j];
		if (!kept)
			post_del(w, po[i], ehash);
	}
}

uint64_t attr_cap_for(uint64_t pairs)
{
	uint64_t cap = 8;

	while (cap < (UINT64_C(1) << 32) &&
	       pairs * SHM_LOAD_DEN > cap * SHM_LOAD_NUM)
		cap <<= 1;
	return cap;
}

int attrs_reserve(struct shmreg_writer *w, size_t klen, size_t vlen,
		  const shmreg_put_opts_t *opts)
{
	uint8_t enc[SHM_ATTR_BYTES_MAX];
	uint64_t ph[ENTRY_PAIRS], need, fresh = 0;
	uint32_t alen = attrs_encode(opts->attrs, opts->nattrs, enc);
	unsigned np = pair_set(enc, alen, opts->parent,
			       (uint32_t)opts->parent_len, ph);
	bool probe_full = false;
	int rc;

	need = alloc_class_size(SHM_OBJ_HDR + SHM_RICH_HDR + klen + vlen +
				alen + opts->parent_len);
	for (unsigned i = 0; i < np; i++) {
		uint64_t free_slot;
		int64_t at = pair_find(&w->map, ph[i], &free_slot);
		uint64_t count = 0;

		if (at < 0) {
			fresh++;
			probe_full |= free_slot == UINT64_MAX;
		} else {
			count = shm_pair_at(&w->map, (uint64_t)at)->count;
		}
		need += alloc_class_size(SHM_OBJ_HDR + 16 * (count + 1)) +
			POST_MIN_BLOCK;
	}
	rc = apos_reserve(&w->apos, np);
	if (rc < 0)
		return rc;
	uint64_t cap = w->map.g.attr_cap;
	uint64_t want = attr_cap_for(w->attr_pairs + fresh);

	if (want < cap)
		want = cap;
	if (probe_full && want == cap)
		want = 2 * cap; /* a flooded cluster: spread it */
	/* Growing the pair index is a handoff, a copy of the whole registry:
	 * grow it fourfold, so that loading P distinct pairs costs log4(P)
	 * copies, not log2(P) (measured: most of the load time of a million
	 * entries carrying 100,000 distinct pairs). */
	if (want > cap && want < 4 * cap)
		want = 4 * cap;
	if (want == cap && w->alloc.size - w->alloc.bump >= need)
		return 0;
	uint64_t arena = 2 * (w->arena_live + need);

	if (arena < w->map.g.arena_size)
		arena = w->map.g.arena_size;
	if (w->attr_cap_min < want)
		w->attr_cap_min = want;
	return handoff(w, &w->map, w->map.g.index_cap, arena);
}

/* ---- adoption ---- */

int attrs_adopt(struct shmreg_writer *w)
{
	const struct shm_map *m = &w->map;
	uint64_t pairs = 0;
	int rc = -EAGAIN;

	apos_free(&w->apos);
	/* pass 1: every posting element and its position, refs 1 standing
	 * for "listed"; bounded by attr_cap and the elements the blocks
	 * hold */
	for (uint64_t i = 0; i < m->g.attr_cap; i++) {
		const struct shm_pair *p = shm_pair_at(m, i);

		if (p->count == 0)
			continue;
		pairs++;
		if (p->arr_off % SHM_OBJ_ALIGN || p->arr_size < SHM_OBJ_HDR ||
		    !shm_in_arena(&m->g, p->arr_off, p->arr_size) ||
		    p->count > post_room(p->arr_size))
			goto fail;
		if (apos_reserve(&w->apos, p->count) < 0) {
			rc = -ENOMEM;
			goto fail;
		}
		for (uint32_t k = 0; k < p->count; k++) {
			uint64_t eh = atomic_load_explicit(
				&post_elems(m, p->arr_off)[k],
				memory_order_relaxed);

			if (apos_find(&w->apos, p->hash, eh))
				goto fail; /* listed twice */
			apos_put(&w->apos, &(struct apos){
				.phash = p->hash, .ehash = eh, .pos = k,
				.refs = 1 });
		}
	}
	if (pairs != atomic_load_explicit(&m->hdr->attr_pairs,
					  memory_order_relaxed))
		goto fail;
	/* pass 2: every entry claims its pairs (bounded by index_cap) */
	for (uint64_t i = 0; i < m->g.index_cap; i++) {
		const struct shm_slot *s = shm_slot_at(m, i);
		uint64_t ph[ENTRY_PAIRS];
		const uint8_t *a, *parent;
		uint32_t alen, nattrs, plen;
		unsigned np;

		if (s->klen == 0 || s->kind != SHM_KIND_RICH)
			continue;
		if (attrs_of_slot(m, s, &a, &alen, &nattrs, &parent, &plen) < 0)
			goto fail;
		np = pair_set(a, alen, parent, plen, ph);
		for (unsigned k = 0; k < np; k++) {
			struct apos *c = apos_find(
				&w->apos, ph[k],
				(uint64_t)s->hash_hi << 32 | s->tag);

			if (!c)
				goto fail; /* an entry missing from a pair */
			c->refs++;
		}
	}
	/* pass 3: every element claimed; refs back to the claims */
	for (size_t i = 0; i < w->apos.cap; i++) {
		struct apos *c = &w->apos.tab[i];

		if (c->refs == 1)
			goto fail; /* a posting no entry carries */
		if (c->refs)
			c->refs--;
	}
	w->attr_pairs = pairs;
	return 0;
fail:
	apos_free(&w->apos);
	return rc;
}

/* ---- the public call ---- */

SHMREG_EXPORT int64_t shmreg_writer_set_attrs(shmreg_writer_t *w,
					      const void *key, size_t klen,
					      const shmreg_attr_t *attrs,
					      uint32_t nattrs)
{
	struct shm_slot old;
	shmreg_put_opts_t opts = { 0 };
	const uint8_t *v, *a, *parent;
	uint8_t pkey[SHMREG_KEY_MAX];
	uint32_t alen, na, plen;
	uint64_t hash;
	int64_t at, rc;
	void *val = NULL;

	if (!w)
		return -EINVAL;
	rc = shm_check_key(key, klen);
	if (rc == 0)
		rc = shm_check_attrs(attrs, nattrs);
	if (rc < 0)
		return rc;
	hash = shm_hash(key, klen);
	at = index_find(w, key, klen, hash, &old);
	if (at < 0 || shm_expired(&old))
		return -ENOENT;
	/* the value, out of the writer's own segment (bounds-checked: the
	 * segment may have been adopted), copied because the put may hand
	 * off to a new segment before it reads it */
	if (old.kind == SHM_KIND_INLINE) {
		if ((size_t)old.klen + old.vlen > SHM_SLOT_INLINE)
			return -EPROTO;
		v = shm_slot_at(&w->map, (uint64_t)at)->data + klen;
	} else {
		struct shm_ext_ref ref;
		uint64_t off = shm_obj_key_off(old.kind);

		memcpy(&ref, old.data, sizeof(ref));
		if (ref.obj_size < off + klen + old.vlen ||
		    !shm_in_arena(&w->map.g, ref.obj_off, ref.obj_size))
			return -EPROTO;
		v = w->map.base + ref.obj_off + off + klen;
	}
	if (old.vlen) {
		val = malloc(old.vlen);
		if (!val)
			return -ENOMEM;
		memcpy(val, v, old.vlen);
	}
	/* the parent stays (copied: the put may hand off) */
	if (attrs_of_slot(&w->map, &old, &a, &alen, &na, &parent, &plen) < 0)
		return -EPROTO;
	if (plen) {
		memcpy(pkey, parent, plen);
		opts.parent = pkey;
		opts.parent_len = plen;
	}
	opts.owner_pid = old.owner_pid;
	opts.flags = old.flags;
	opts.attrs = attrs;
	opts.nattrs = nattrs;
	w->keep_expiry = true;
	w->keep_expires_at = old.expires_at_ns;
	rc = shmreg_writer_put(w, key, klen, val, old.vlen, &opts);
	w->keep_expiry = false;
	free(val);
	return rc;
}
