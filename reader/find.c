/* SPDX-License-Identifier: MIT */
/*
 * find.c - shmreg_find, shmreg_children and shmreg_get_attrs: entries by
 * attribute or by parent, and an entry's attributes.  (Children are the
 * entries listed under the parent's pseudo-pair, writer/tree.c: the same
 * walk, kept when the object's parent key is the one asked for.)
 *
 * How a find works.
 *
 *   1. Each pair asked for is looked up in the attribute index
 *      (shm/attr_read.c) for its count; a pair no entry carries ends the
 *      call at once (AND).  The pair with the smallest count is the one
 *      whose posting array is copied, whole, inside one read section of
 *      its slot: the key hashes of every entry that carried it at one
 *      instant.
 *   2. The copy is sorted and duplicates dropped, so each key hash is
 *      visited once, whatever the segment says.
 *   3. For each key hash, its probe path in the entry index is walked
 *      (as shm/lookup.c does) inside one shift_seq window, and every
 *      entry on it with that whole hash, with attributes, is read whole
 *      - key, value and attribute bytes of one validated version of its
 *      object - and kept only if those attribute bytes carry every pair
 *      asked for.  A shift (writer/index.c) that overlapped the walk,
 *      which could show one entry in two slots, sends the walk round
 *      again before anything of it is reported; entries found on one
 *      walk are also compared by key, so a segment that holds one key
 *      twice still reports it once.
 *   4. What was kept is passed to fn: so an entry is reported only with a
 *      value from a version of it that carried every pair, and at most
 *      once per call (one key has one hash, visited once).
 *
 * Not a snapshot: an entry put or removed during the call may be missed
 * or reported (with its old or its new value); shmreg_read_begin/validate
 * tell the caller whether the registry changed meanwhile.
 *
 * Cost and bounds.  Step 1 is nmatch pair lookups; step 3 visits the
 * entries of the rarest pair, each a walk of at most min(SHM_PROBE_LIMIT
 * + 1, index_cap) slots repeated at most SHM_SPIN_TRIES + SHM_YIELD_TRIES
 * times; the posting copy holds at most arena_size / 8 elements (its
 * block is inside the validated arena).  Nothing grows with the rest of
 * the registry.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "attr_index.h"
#include "hash.h"
#include "internal.h"
#include "liveness.h"
#include "lookup.h"
#include "seqcount.h"
#include "validate.h"

/* One entry kept by a walk: its slot copy and where its key (then value)
 * starts in the find's byte buffer. */
struct hit {
	struct shm_slot slot;
	size_t off;
};

struct find {
	const struct shm_map *m;
	const shmreg_attr_t *match;   /* find: the pairs */
	unsigned nmatch;
	const uint8_t *pkey;          /* children: the parent's key */
	size_t pklen;
	uint8_t parent[SHMREG_KEY_MAX];
	size_t nlen[SHMREG_ATTRS_MAX], vlen[SHMREG_ATTRS_MAX];
	uint8_t attrs[SHM_ATTR_BYTES_MAX];
	struct hit *hits;
	size_t nhits, hits_cap;
	uint8_t *bytes;
	size_t nbytes, bytes_cap;
};

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	return reader_grow(p, cap, need, elem, 16);
}

static bool carries_all(const struct find *f, uint32_t alen)
{
	for (unsigned i = 0; i < f->nmatch; i++)
		if (!shm_attrs_have(f->attrs, alen, f->match[i].name,
				    f->nlen[i], f->match[i].value, f->vlen[i]))
			return false;
	return true;
}

/* Has this walk already kept the key at @off (@klen bytes)? */
static bool kept(const struct find *f, size_t off, size_t klen)
{
	for (size_t k = 0; k < f->nhits; k++)
		if (f->hits[k].slot.klen == klen &&
		    memcmp(f->bytes + f->hits[k].off, f->bytes + off,
			   klen) == 0)
			return true;
	return false;
}

/* One walk of key hash @eh's probe path.  Returns 0, -EAGAIN (something
 * changed under it: walk again), -EPROTO or -ENOMEM. */
static int walk_once(struct find *f, uint64_t eh)
{
	const struct shm_map *m = f->m;
	uint64_t bound = m->g.index_cap <= SHM_PROBE_LIMIT ?
				 m->g.index_cap : SHM_PROBE_LIMIT + 1;
	uint64_t i = shm_home(&m->g, eh);

	f->nhits = f->nbytes = 0;
	for (uint64_t d = 0; d < bound; d++, i = shm_next(&m->g, i)) {
		struct shm_slot s;
		uint32_t alen;
		size_t off;
		int rc;

		if (shm_slot_copy(m, i, &s) < 0)
			return -EAGAIN;
		if (s.klen == 0)
			break;
		if (s.tag != shm_tag(eh) || s.hash_hi != shm_hash_hi(eh) ||
		    s.kind != SHM_KIND_RICH)
			continue;
		if (!shm_slot_sane(m, &s))
			return -EPROTO;
		off = f->nbytes;
		if (grow((void **)&f->bytes, &f->bytes_cap,
			 off + s.klen + (size_t)s.vlen, 1) < 0 ||
		    grow((void **)&f->hits, &f->hits_cap, f->nhits + 1,
			 sizeof(*f->hits)) < 0)
			return -ENOMEM;
		uint32_t plen;

		rc = shm_rich_read(m, &s, f->bytes + off,
				   f->bytes + off + s.klen, s.vlen, f->attrs,
				   sizeof(f->attrs), &alen, f->parent, &plen);
		if (rc < 0)
			return rc;
		if (f->pkey ? plen != f->pklen ||
				      memcmp(f->parent, f->pkey, plen) != 0
			    : !carries_all(f, alen))
			continue;
		if (kept(f, off, s.klen))
			continue;
		f->hits[f->nhits].slot = s;
		f->hits[f->nhits].off = off;
		f->nhits++;
		f->nbytes += s.klen + (size_t)s.vlen;
	}
	return 0;
}

/* The entries of key hash @eh that carry every pair, from one walk that
 * no shift overlapped. */
static int walk_hash(struct find *f, uint64_t eh)
{
	const struct shm_hdr *h = f->m->hdr;

	for (unsigned attempt = 0; attempt < SHM_SPIN_TRIES + SHM_YIELD_TRIES;
	     attempt++) {
		/* pairs with the release store closing a shift in
		 * index_remove() (writer/index.c) */
		uint32_t sh0 = seq_read_begin(&h->shift_seq);
		int rc = walk_once(f, eh);

		/* pairs with the release fence opening a shift */
		if (rc == 0 && !seq_read_retry(&h->shift_seq, sh0))
			return 0;
		if (rc < 0 && rc != -EAGAIN)
			return rc;
		shm_backoff(attempt);
	}
	return -EAGAIN;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static ssize_t find_run(struct find *f, shmreg_list_fn fn, void *arg)
{
	uint64_t ph[SHMREG_ATTRS_MAX + 1], *post = NULL;
	struct shm_pair p;
	unsigned best = 0;
	uint64_t best_count = UINT64_MAX;
	ssize_t reported = 0;
	size_t n = 0;
	int rc;

	/* children: the parent's pseudo-pair is the only list to read */
	if (f->pkey)
		ph[0] = shm_parent_hash(f->pkey, f->pklen);
	for (unsigned i = 0; i < f->nmatch; i++) {
		ph[i] = shm_pair_hash(f->match[i].name, f->nlen[i],
				      f->match[i].value, f->vlen[i]);
		rc = shm_pair_read(f->m, ph[i], &p, NULL);
		if (rc == -ENOENT)
			return 0; /* no entry carries this pair */
		if (rc < 0)
			return rc;
		if (p.count < best_count) {
			best_count = p.count;
			best = i;
		}
	}
	rc = shm_pair_read(f->m, ph[best], &p, &post);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	qsort(post, p.count, sizeof(*post), cmp_u64);
	for (size_t k = 0; k < p.count; k++)
		if (k == 0 || post[k] != post[n - 1])
			post[n++] = post[k];
	for (size_t k = 0; k < n; k++) {
		rc = walk_hash(f, post[k]);
		if (rc < 0) {
			reported = rc;
			goto out;
		}
		for (size_t j = 0; j < f->nhits; j++) {
			struct hit *it = &f->hits[j];
			shmreg_info_t info;

			if (shm_expired(&it->slot))
				continue;
			shm_fill_info(&info, &it->slot);
			rc = fn(f->bytes + it->off, it->slot.klen,
				f->bytes + it->off + it->slot.klen,
				it->slot.vlen, &info, arg);
			if (rc < 0) {
				reported = rc; /* fn aborted: its -errno */
				goto out;
			}
			reported++;
			if (rc > 0)
				goto out; /* fn stopped: counted */
		}
	}
out:
	free(post);
	return reported;
}

/* Run the walk that @f describes (a pair match or a parent key) on @r's
 * current mapping, then free @f and its buffers. */
static ssize_t find_once(shmreg_t *r, struct find *f, shmreg_list_fn fn,
			 void *arg)
{
	ssize_t rc;

	f->m = reader_map(r);
	rc = find_run(f, fn, arg);
	free(f->hits);
	free(f->bytes);
	free(f);
	return rc;
}

SHMREG_EXPORT ssize_t shmreg_find(shmreg_t *r, const shmreg_attr_t *match,
				  unsigned nmatch, shmreg_list_fn fn, void *arg)
{
	struct find *f;
	ssize_t rc;

	if (!r || !fn || !match || nmatch == 0)
		return -EINVAL;
	rc = shm_check_attrs(match, nmatch);
	if (rc < 0)
		return rc;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->match = match;
	f->nmatch = nmatch;
	for (unsigned i = 0; i < nmatch; i++) {
		f->nlen[i] = strlen(match[i].name);
		f->vlen[i] = strlen(match[i].value);
	}
	return find_once(r, f, fn, arg);
}

SHMREG_EXPORT ssize_t shmreg_children(shmreg_t *r, const void *key,
				      size_t klen, shmreg_list_fn fn,
				      void *arg)
{
	struct find *f;
	ssize_t rc;

	if (!r || !fn)
		return -EINVAL;
	rc = shm_check_key(key, klen);
	if (rc < 0)
		return rc;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->pkey = key;
	f->pklen = klen;
	return find_once(r, f, fn, arg);
}

SHMREG_EXPORT ssize_t shmreg_get_attrs(shmreg_t *r, const void *key,
				       size_t klen, void *buf, size_t cap)
{
	const struct shm_map *m;
	uint64_t hash;
	int rc;

	if (!r || (!buf && cap))
		return -EINVAL;
	rc = shm_check_key(key, klen);
	if (rc < 0)
		return rc;
	hash = shm_hash(key, klen);
	m = reader_map(r);
	for (unsigned attempt = 0; attempt < SHM_SPIN_TRIES + SHM_YIELD_TRIES;
	     attempt++) {
		struct shm_slot slot;
		uint32_t alen;
		ssize_t n = shm_lookup(m, key, klen, hash, NULL, 0, &slot);

		if (n == -EAGAIN && shm_writer_gone(r->path))
			return -EOWNERDEAD;
		if (n < 0)
			return n;
		if (shm_expired(&slot))
			return -ENOENT;
		if (slot.kind != SHM_KIND_RICH)
			return 0; /* no attributes */
		/* the object may have been replaced since the slot copy:
		 * shm_rich_read checks it is this version, else look again */
		rc = shm_rich_read(m, &slot, NULL, NULL, 0, buf, cap, &alen,
				   NULL, NULL);
		if (rc == 0)
			return alen;
		if (rc != -EAGAIN)
			return rc;
		shm_backoff(attempt);
	}
	return -EAGAIN;
}
