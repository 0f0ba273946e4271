/* SPDX-License-Identifier: MIT */
/*
 * list.c - shmreg_list: walk every entry, optionally under a key prefix.
 *
 * How the walk avoids missing or repeating entries that a concurrent delete
 * moves.  Entries move only by backward shift (writer/index.c), and only
 * towards their home slot, which lies in the same cluster (run of occupied
 * slots between two empty ones): an entry never crosses an empty slot.  So
 * the walk goes cluster by cluster, starting just after an empty slot, and
 * reads each whole cluster - slots and the objects they reference - inside
 * one shift_seq window; if a shift happened meanwhile, or an object changed
 * under it, it reads that cluster again before reporting any of it.  A
 * later cluster's entries can never move into a cluster already walked
 * (their homes lie after the empty slot that ended it), so every entry
 * present for the whole walk is reported exactly once, and one changed
 * during the walk at most once, with its old or its new value.
 *
 * Bounds: each cluster is read at most SHM_SPIN_TRIES + SHM_YIELD_TRIES
 * times; a read visits at most index_cap slots; the walk covers the index
 * once.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "lookup.h"
#include "seqcount.h"
#include "validate.h"

/* One entry of the cluster being read: its slot copy and where its key and
 * value start in the walk's byte buffer. */
struct item {
	struct shm_slot slot;
	size_t off;
};

struct walk {
	const struct shm_map *m;
	const uint8_t *prefix;
	size_t plen;
	struct item *items;
	size_t nitems, items_cap;
	uint8_t *bytes;
	size_t nbytes, bytes_cap;
};

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	return reader_grow(p, cap, need, elem, 64);
}

/* Read the entry of @slot, whose copy is *@s, into the walk's buffers if
 * it matches the prefix.  Returns 0, -EAGAIN (changed under us) or
 * -EPROTO/-ENOMEM. */
static int read_entry(struct walk *w, const struct shm_slot *slot,
		      const struct shm_slot *s)
{
	size_t need = w->nbytes + SHMREG_KEY_MAX + s->vlen;
	uint8_t *key;
	int rc;

	if (!shm_slot_sane(w->m, s))
		return -EPROTO;
	if (s->klen < w->plen)
		return 0;
	if (grow((void **)&w->bytes, &w->bytes_cap, need, 1) < 0 ||
	    grow((void **)&w->items, &w->items_cap, w->nitems + 1,
		 sizeof(*w->items)) < 0)
		return -ENOMEM;
	key = w->bytes + w->nbytes;
	rc = shm_entry_read_stable(w->m, slot,
				   atomic_load_explicit(&s->seq,
							memory_order_relaxed),
				   s, key, key + s->klen, s->vlen);
	if (rc < 0)
		return rc;
	if (w->plen && memcmp(key, w->prefix, w->plen) != 0)
		return 0;
	w->items[w->nitems].slot = *s;
	w->items[w->nitems].off = w->nbytes;
	w->nitems++;
	/* the value was copied right after the key: keep them packed */
	w->nbytes += s->klen + s->vlen;
	return 0;
}

/* Read the cluster starting at @start; *@end gets the empty slot ending it
 * (or @stop, the walk's starting point, should an insert have filled it).
 * Returns 0, -EAGAIN (retry this cluster) or another -errno. */
static int read_cluster(struct walk *w, uint64_t start, uint64_t stop,
			uint64_t *end)
{
	const struct shm_map *m = w->m;
	uint64_t cap = m->g.index_cap, i = start;
	uint32_t sh0 = seq_read_begin(&m->hdr->shift_seq);
	int rc;

	w->nitems = 0;
	w->nbytes = 0;
	for (uint64_t n = 0; n < cap && i != stop;
	     n++, i = (i + 1 == cap) ? 0 : i + 1) {
		struct shm_slot s;

		if (shm_slot_copy(m, i, &s) < 0)
			return -EAGAIN;
		if (s.klen == 0)
			break;
		rc = read_entry(w, shm_slot_at(m, i), &s);
		if (rc < 0)
			return rc;
	}
	*end = i;
	/* a shift (writer/index.c) that overlapped the walk fails this, and
	 * so does one in progress when it began (odd sh0): the walk read on
	 * regardless, and its copy is discarded */
	if (seq_read_retry(&m->hdr->shift_seq, sh0))
		return -EAGAIN;
	return 0;
}

/* Find an empty slot to start from; -EAGAIN if none is seen (a full index
 * never happens: the writer keeps it at most 3/4 full). */
static int find_empty(const struct shm_map *m, uint64_t *at)
{
	for (uint64_t i = 0; i < m->g.index_cap; i++) {
		struct shm_slot s;

		if (shm_slot_copy(m, i, &s) == 0 && s.klen == 0) {
			*at = i;
			return 0;
		}
	}
	return -EAGAIN;
}

static ssize_t walk(struct walk *w, shmreg_list_fn fn, void *arg)
{
	const struct shm_map *m = w->m;
	uint64_t cap = m->g.index_cap, first, pos, walked = 0;
	ssize_t reported = 0;
	int rc;

	rc = find_empty(m, &first);
	if (rc < 0)
		return rc;
	pos = first + 1 == cap ? 0 : first + 1;
	while (walked < cap && pos != first) {
		uint64_t end = pos;
		unsigned attempt = 0;

		while ((rc = read_cluster(w, pos, first, &end)) == -EAGAIN) {
			if (++attempt >= SHM_SPIN_TRIES + SHM_YIELD_TRIES)
				return -EAGAIN;
			shm_backoff(attempt);
		}
		if (rc < 0)
			return rc;
		for (size_t k = 0; k < w->nitems; k++) {
			struct item *it = &w->items[k];
			shmreg_info_t info;

			if (shm_expired(&it->slot))
				continue;
			shm_fill_info(&info, &it->slot);
			rc = fn(w->bytes + it->off, it->slot.klen,
				w->bytes + it->off + it->slot.klen,
				it->slot.vlen, &info, arg);
			if (rc < 0)
				return rc; /* fn aborted: its -errno */
			reported++;
			if (rc > 0)
				return reported; /* fn stopped: counted */
		}
		/* advance past the cluster and the empty slot ending it */
		walked += ((end + cap - pos) % cap) + 1;
		if (end == first)
			break;
		pos = end + 1 == cap ? 0 : end + 1;
	}
	return reported;
}

SHMREG_EXPORT ssize_t shmreg_list(shmreg_t *r, const void *prefix, size_t plen,
				  shmreg_list_fn fn, void *arg)
{
	struct walk w = { 0 };
	ssize_t rc;

	if (!r || !fn)
		return -EINVAL;
	rc = shm_check_prefix(prefix, plen);
	if (rc < 0)
		return rc;
	w.m = reader_map(r);
	w.prefix = prefix;
	w.plen = plen;
	rc = walk(&w, fn, arg);
	free(w.items);
	free(w.bytes);
	return rc;
}
