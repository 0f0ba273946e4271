/* SPDX-License-Identifier: MIT */
/*
 * tree.c - parent/child trees: the parent check of a put, the children
 * of an entry, and removal of a whole subtree in one commit.
 *
 * How trees are kept.  An entry put with opts.parent is a rich entry whose
 * object holds the parent's key (shm/layout.h struct shm_rich), and it is
 * listed in the attribute index under the parent's pseudo-pair (the
 * XXH3-64 of the parent key with SHM_PARENT_SEED; writer/attrs.c keeps it
 * exactly as an attribute pair).  So the children of P are the entries
 * named by P's pseudo-pair's posting array whose own parent key is P: found
 * in O(children), without a scan, and updated in the commit of every put
 * and delete like any posting.  Re-putting a child with another parent
 * moves it from one list to the other in that put's commit; its own
 * children keep naming it, so the whole subtree moves.
 *
 * Invariants the writer keeps: a parent exists when a child is put under
 * it (-ENOENT), no entry is its own ancestor (-ELOOP: the check walks up
 * from the new parent), and an entry with children is not deleted alone
 * (-ENOTEMPTY; shmreg_writer_del_tree takes the subtree).  Expired
 * children do not count for -ENOTEMPTY (readers no longer see them), but
 * a subtree removal takes them too, expired or not, with their own
 * descendants; and an entry removed because it expired takes its subtree
 * with it (writer/expire.c), so no entry outlives its parent's removal.
 *
 * How a subtree is removed.  Breadth first and iteratively (no recursion,
 * so no depth limit): the keys are collected into one heap list, each
 * node's children appended as it is visited, then removed in reverse
 * order (leaves before their parents) inside one commit, each with its
 * own revision and delete event (an expired descendant too: watchers
 * learn that every removed key is gone).  Collection reads only the
 * writer's own segment (bounds-checked: it may be adopted) and changes
 * nothing, so running out of memory there changes nothing either.
 *
 * Bounds.  The parent check walks at most entries + 1 ancestors.  The
 * collection visits each node of the subtree once (a node has one parent,
 * so one list names it) and stops at entries nodes; each visit walks its
 * children's probe paths, at most SHM_PROBE_LIMIT + 1 slots each.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "attr_index.h"
#include "hash.h"
#include "internal.h"
#include "commit.h"
#include "lookup.h"
#include "validate.h"

/* The key bytes of a rich slot of the writer's segment, or NULL. */
static const uint8_t *rich_key(const struct shm_map *m,
			       const struct shm_slot *s)
{
	struct shm_ext_ref ref;

	memcpy(&ref, s->data, sizeof(ref));
	if (!shm_in_arena(&m->g, ref.obj_off, SHM_OBJ_HDR + SHM_RICH_HDR +
						      (uint64_t)s->klen))
		return NULL;
	return m->base + ref.obj_off + SHM_OBJ_HDR + SHM_RICH_HDR;
}

/* The parent key of @key's entry: 1 and it in *@p, *@plen; 0 when it has
 * none (a root); -ENOENT when it is absent or expired; -EPROTO. */
static int parent_of(struct shmreg_writer *w, const void *key, size_t klen,
		     const uint8_t **p, uint32_t *plen)
{
	struct shm_slot s;
	const uint8_t *a;
	uint32_t alen, na;

	if (index_find(w, key, klen, shm_hash(key, klen), &s) < 0 ||
	    shm_expired(&s))
		return -ENOENT;
	if (attrs_of_slot(&w->map, &s, &a, &alen, &na, p, plen) < 0)
		return -EPROTO;
	return *plen ? 1 : 0;
}

int tree_check_parent(struct shmreg_writer *w, const void *key, size_t klen,
		      const void *parent, size_t plen)
{
	uint8_t cur[SHMREG_KEY_MAX];
	size_t clen = plen;

	memcpy(cur, parent, plen);
	/* walk up from the new parent: meeting @key means a cycle */
	for (uint64_t n = 0; n <= w->entries; n++) {
		const uint8_t *p;
		uint32_t pl;
		int rc;

		if (clen == klen && memcmp(cur, key, klen) == 0)
			return -ELOOP;
		rc = parent_of(w, cur, clen, &p, &pl);
		if (rc == -ENOENT)
			return n == 0 ? -ENOENT : 0; /* the chain ends */
		if (rc <= 0)
			return rc; /* 0: a root; -EPROTO */
		memcpy(cur, p, pl);
		clen = pl;
	}
	return -ELOOP; /* longer than the registry: a cycle already */
}

/* Call @fn for each child of @key (its key bytes, in the segment) until
 * it returns nonzero; returns that, or 0.  Expired children only when
 * @expired_too. */
typedef int (*child_fn)(void *ctx, const uint8_t *ckey, size_t cklen);

static int each_child(struct shmreg_writer *w, const void *key, size_t klen,
		      bool expired_too, child_fn fn, void *ctx)
{
	const struct shm_map *m = &w->map;
	const struct shm_pair *p = attrs_pair(m, shm_parent_hash(key, klen));
	uint64_t bound = m->g.index_cap <= SHM_PROBE_LIMIT ?
				 m->g.index_cap : SHM_PROBE_LIMIT + 1;

	if (!p || p->arr_off % SHM_OBJ_ALIGN ||
	    !shm_in_arena(&m->g, p->arr_off, p->arr_size) ||
	    p->count > (p->arr_size - SHM_OBJ_HDR) / 8)
		return 0;
	for (uint32_t k = 0; k < p->count; k++) {
		const _Atomic uint64_t *e = (const _Atomic uint64_t *)
			(m->base + p->arr_off) + SHM_POST_FIRST;
		uint64_t eh = atomic_load_explicit(&e[k], memory_order_relaxed);
		uint64_t i = shm_home(&m->g, eh);

		for (uint64_t d = 0; d < bound; d++, i = shm_next(&m->g, i)) {
			const struct shm_slot *s = shm_slot_at(m, i);
			const uint8_t *a, *par, *ck;
			uint32_t alen, na, pl;
			int rc;

			if (s->klen == 0)
				break;
			if (s->tag != shm_tag(eh) ||
			    s->hash_hi != shm_hash_hi(eh) ||
			    s->kind != SHM_KIND_RICH ||
			    (!expired_too && shm_expired(s)) ||
			    attrs_of_slot(m, s, &a, &alen, &na, &par,
					  &pl) < 0 ||
			    pl != klen || memcmp(par, key, klen) != 0)
				continue;
			ck = rich_key(m, s);
			if (!ck)
				continue;
			rc = fn(ctx, ck, s->klen);
			if (rc)
				return rc;
		}
	}
	return 0;
}

static int stop_at_first(void *ctx, const uint8_t *ckey, size_t cklen)
{
	(void)ctx;
	(void)ckey;
	(void)cklen;
	return 1;
}

bool tree_has_children(struct shmreg_writer *w, const void *key,
		       size_t klen)
{
	/* no pair at all (a registry without attributes or parents): no
	 * probe of the attribute index on every delete */
	if (w->attr_pairs == 0)
		return false;
	return each_child(w, key, klen, false, stop_at_first, NULL) != 0;
}

/* The subtree's keys, breadth first: key i is bytes[off[i]..+len[i]). */
struct keylist {
	uint8_t *bytes;
	size_t nbytes, bytes_cap;
	size_t *off;
	uint16_t *len;
	size_t n, cap;
	uint64_t limit;            /* at most this many (the entries) */
};

static int keylist_add(void *ctx, const uint8_t *key, size_t klen)
{
	struct keylist *l = ctx;

	if (l->n >= l->limit)
		return 0; /* more nodes than entries: a corrupt tree */
	if (l->n == l->cap) {
		size_t nc = l->cap ? 2 * l->cap : 64;
		size_t *o = realloc(l->off, nc * sizeof(*o));

		if (!o)
			return -ENOMEM;
		l->off = o;
		uint16_t *n = realloc(l->len, nc * sizeof(*n));

		if (!n)
			return -ENOMEM;
		l->len = n;
		l->cap = nc;
	}
	if (l->nbytes + klen > l->bytes_cap) {
		size_t nc = l->bytes_cap ? 2 * l->bytes_cap : 4096;
		uint8_t *b;

		while (nc < l->nbytes + klen)
			nc *= 2;
		b = realloc(l->bytes, nc);
		if (!b)
			return -ENOMEM;
		l->bytes = b;
		l->bytes_cap = nc;
	}
	memcpy(l->bytes + l->nbytes, key, klen);
	l->off[l->n] = l->nbytes;
	l->len[l->n] = (uint16_t)klen;
	l->nbytes += klen;
	l->n++;
	return 0;
}

static void keylist_free(struct keylist *l)
{
	free(l->bytes);
	free(l->off);
	free(l->len);
}

int64_t tree_remove(struct shmreg_writer *w, const void *key, size_t klen)
{
	struct keylist l = { .limit = w->entries + 1 };
	int64_t removed = 0;
	int rc = keylist_add(&l, key, klen);

	/* breadth first: l.n grows as children are appended */
	for (size_t i = 0; rc == 0 && i < l.n; i++) {
		uint8_t node[SHMREG_KEY_MAX];
		size_t nl = l.len[i];

		/* a copy: appending may move the list's bytes */
		memcpy(node, l.bytes + l.off[i], nl);
		rc = each_child(w, node, nl, true, keylist_add, &l);
	}
	if (rc < 0) {
		keylist_free(&l);
		return rc;
	}
	commit_begin(w);
	for (size_t i = l.n; i-- > 0;) {
		const uint8_t *k = l.bytes + l.off[i];
		uint64_t hash = shm_hash(k, l.len[i]);
		struct shm_slot old;
		int64_t at = index_find(w, k, l.len[i], hash, &old);

		if (at < 0)
			continue;
		remove_at(w, (uint64_t)at, &old, k, l.len[i], hash,
			  writer_next_rev(w));
		removed++;
	}
	commit_end(w, 0);
	keylist_free(&l);
	return removed;
}

int64_t tree_remove_entry(struct shmreg_writer *w, const void *key,
			  size_t klen)
{
	uint64_t hash = shm_hash(key, klen);
	struct shm_slot old;
	int64_t at, n;

	/* a leaf (always, without a pair in the registry) goes alone: no
	 * subtree to collect */
	if (w->attr_pairs &&
	    each_child(w, key, klen, true, stop_at_first, NULL) != 0) {
		n = tree_remove(w, key, klen);
		if (n > 0)
			return n;
		/* -ENOMEM collecting the subtree: at least the entry goes */
	}
	at = index_find(w, key, klen, hash, &old);
	if (at < 0)
		return 0;
	remove_at(w, (uint64_t)at, &old, key, klen, hash, writer_next_rev(w));
	return 1;
}

SHMREG_EXPORT int64_t shmreg_writer_del_tree(shmreg_writer_t *w,
					     const void *key, size_t klen)
{
	struct shm_slot old;
	int64_t at;
	int rc;

	if (!w)
		return -EINVAL;
	rc = shm_check_key(key, klen);
	if (rc < 0)
		return rc;
	at = index_find(w, key, klen, shm_hash(key, klen), &old);
	if (at < 0 || shm_expired(&old))
		return -ENOENT;
	/* persistence: room for the records (a large subtree may log past
	 * the reservation's slack; see writer/persist/log_write.c) */
	if (w->plog && (rc = persist_admit(w, prec_size(klen, 0, 0, 0))) < 0)
		return rc;
	int64_t n = tree_remove(w, key, klen);

	return w->plog && n > 0 ? persist_result(w, n) : n;
}
