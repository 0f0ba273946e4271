/* SPDX-License-Identifier: MIT */
/* batch_sim.c - a BATCH's dry run: the registry's state under the batch's
 * earlier operations (interface and purpose in batch_sim.h). */
#include <errno.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "batch_sim.h"
#include "hash.h"

/*
 * How it works
 *
 * The overlay is a hash table of nodes, one per key an operation touched
 * (or a tree delete reached): whether the key exists, its mod_rev, and its
 * parent.  A key not in the overlay is as the segment says (shmreg_get on
 * the writer's own reader: the daemon is the only writer and runs this
 * between two commits, so what it reads is the committed state).
 *
 * Parents.  A put records the parent it gives (or none: a put without one
 * makes a root, as the writer does).  An attribute update keeps the parent
 * the entry has; for a key that comes from the segment that parent is not
 * known here (the reader API has no call for it) and need not be: such a
 * node is marked parent_seg and is still found where the segment lists it.
 * The children of P are therefore:
 *   - the segment's children of P (shmreg_children) that are not in the
 *     overlay, or are there as existing and parent_seg;
 *   - the overlay's existing nodes whose recorded parent is P, found
 *     through a second table keyed by the parent's hash: each time a node
 *     gets a parent, a reference {node, generation} goes into P's chain;
 *     a reference whose generation is not the node's current one is stale
 *     (the node got another parent since) and skipped.
 * Every node is thus reported under exactly one parent, as in the writer.
 *
 * Cycles.  The writer refuses a put of K under P when P is K or below it
 * (it walks up from P).  The overlay cannot walk up from a segment key, so
 * the same question is asked downwards: a breadth-first walk of K's
 * subtree looking for P.  Tree deletes use the same walk to collect the
 * subtree, as the writer's tree_remove() does (expired entries are not
 * children for either: shmreg_children skips them as each_child does).
 *
 * Bounds.  A walk visits each node of the subtree once (one parent each)
 * and gives up after entries + overlay + 1 nodes (then the answer is "a
 * cycle": the state is corrupt).  Each visit costs one shmreg_children
 * call, bounded by that node's children, plus its overlay chain.  Memory:
 * one node per touched key, one reference per parent given, in chunks
 * freed with the simulation.
 */

struct node {
	const uint8_t *key;
	const uint8_t *parent;      /* recorded parent (!parent_seg), or NULL */
	uint64_t hash;
	uint64_t mod_rev;
	uint32_t klen, plen;
	uint32_t pgen;              /* bumped on every new parent */
	bool exists;
	bool parent_seg;            /* parent: whatever the segment says */
	struct node *next;
};

struct pref {
	struct node *n;
	uint64_t phash;
	uint32_t gen;
	struct pref *next;
};

struct chunk {
	struct chunk *next;
	size_t used, cap;
	alignas(16) uint8_t data[];
};

struct sim {
	shmreg_t *rd;
	uint64_t rev;
	struct node **tab;
	struct pref **ptab;
	size_t mask;                /* buckets - 1, both tables */
	size_t nnodes;
	struct chunk *mem;
};

#define SIM_CHUNK   (64u << 10)
#define SIM_BUCKETS 64u

static void *sim_alloc(struct sim *s, size_t n)
{
	struct chunk *c = s->mem;

	n = (n + 15) & ~(size_t)15;
	if (!c || c->cap - c->used < n) {
		size_t cap = n > SIM_CHUNK ? n : SIM_CHUNK;

		c = malloc(sizeof(*c) + cap);
		if (!c)
			return NULL;
		c->next = s->mem;
		c->used = 0;
		c->cap = cap;
		s->mem = c;
	}
	c->used += n;
	return c->data + c->used - n;
}

struct sim *sim_new(shmreg_t *rd, uint64_t rev)
{
	struct sim *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->tab = calloc(SIM_BUCKETS, sizeof(*s->tab));
	s->ptab = calloc(SIM_BUCKETS, sizeof(*s->ptab));
	if (!s->tab || !s->ptab) {
		sim_free(s);
		return NULL;
	}
	s->mask = SIM_BUCKETS - 1;
	s->rd = rd;
	s->rev = rev;
	return s;
}

void sim_free(struct sim *s)
{
	if (!s)
		return;
	while (s->mem) {
		struct chunk *c = s->mem;

		s->mem = c->next;
		free(c);
	}
	free(s->tab);
	free(s->ptab);
	free(s);
}

uint64_t sim_revision(const struct sim *s)
{
	return s->rev;
}

static bool same_key(const uint8_t *a, size_t al, const void *b, size_t bl)
{
	return al == bl && memcmp(a, b, al) == 0;
}

static struct node *find(const struct sim *s, const void *key, size_t klen,
			 uint64_t h)
{
	for (struct node *n = s->tab[h & s->mask]; n; n = n->next)
		if (n->hash == h && same_key(n->key, n->klen, key, klen))
			return n;
	return NULL;
}

/* Double both tables once there are more nodes than buckets (chains stay
 * short; a failed growth only makes them longer). */
static void maybe_grow(struct sim *s)
{
	size_t nb = 2 * (s->mask + 1);
	struct node **t;
	struct pref **pt;

	if (s->nnodes <= s->mask + 1)
		return;
	t = calloc(nb, sizeof(*t));
	pt = calloc(nb, sizeof(*pt));
	if (!t || !pt) {
		free(t);
		free(pt);
		return;
	}
	for (size_t b = 0; b <= s->mask; b++) {
		while (s->tab[b]) {
			struct node *n = s->tab[b];

			s->tab[b] = n->next;
			n->next = t[n->hash & (nb - 1)];
			t[n->hash & (nb - 1)] = n;
		}
		while (s->ptab[b]) {
			struct pref *r = s->ptab[b];

			s->ptab[b] = r->next;
			r->next = pt[r->phash & (nb - 1)];
			pt[r->phash & (nb - 1)] = r;
		}
	}
	free(s->tab);
	free(s->ptab);
	s->tab = t;
	s->ptab = pt;
	s->mask = nb - 1;
}

/* The segment's answer for a key not in the overlay. */
static int seg_state(struct sim *s, const void *key, size_t klen,
		     uint64_t *mod_rev)
{
	shmreg_info_t info;
	ssize_t n = shmreg_get(s->rd, key, klen, NULL, 0, &info);

	if (n == -ENOENT)
		return 0;
	if (n < 0)
		return (int)n;
	*mod_rev = info.mod_rev;
	return 1;
}

/* The node of @key, for an operation's effect; @copy: the key bytes are
 * transient and are copied.  A new node needs nothing from the segment:
 * every effect sets what it changes, and the one that keeps the parent
 * (sim_touch) is only recorded for a key that exists, whose parent is
 * then the segment's (parent_seg). */
static int get_node(struct sim *s, const void *key, size_t klen, bool copy,
		    struct node **out)
{
	uint64_t h = shm_hash(key, klen);
	struct node *n = find(s, key, klen, h);

	if (n) {
		*out = n;
		return 0;
	}
	n = sim_alloc(s, sizeof(*n) + (copy ? klen : 0));
	if (!n)
		return -ENOMEM;
	memset(n, 0, sizeof(*n));
	n->exists = true;
	n->parent_seg = true;
	n->hash = h;
	n->klen = (uint32_t)klen;
	if (copy) {
		memcpy(n + 1, key, klen);
		n->key = (const uint8_t *)(n + 1);
	} else {
		n->key = key;
	}
	n->next = s->tab[h & s->mask];
	s->tab[h & s->mask] = n;
	s->nnodes++;
	maybe_grow(s);
	*out = n;
	return 0;
}

int sim_exists(struct sim *s, const void *key, size_t klen,
	       uint64_t *mod_rev)
{
	struct node *n = find(s, key, klen, shm_hash(key, klen));

	if (!n)
		return seg_state(s, key, klen, mod_rev);
	*mod_rev = n->mod_rev;
	return n->exists;
}

/* @n gets the recorded parent @parent (NULL: none). */
static int set_parent(struct sim *s, struct node *n, const void *parent,
		      size_t plen)
{
	struct pref *r;

	n->parent_seg = false;
	n->parent = parent;
	n->plen = parent ? (uint32_t)plen : 0;
	n->pgen++;
	if (!parent)
		return 0;
	r = sim_alloc(s, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->n = n;
	r->gen = n->pgen;
	r->phash = shm_hash(parent, plen);
	r->next = s->ptab[r->phash & s->mask];
	s->ptab[r->phash & s->mask] = r;
	return 0;
}

/* ---- children ---- */

/* Return nonzero to stop (> 0) or abort (< 0). */
typedef int (*child_fn)(void *ctx, const void *key, size_t klen);

struct seg_walk {
	struct sim *s;
	child_fn fn;
	void *ctx;
	int stop;
};

static int seg_child(const void *key, size_t klen, const void *val,
		     size_t vlen, const shmreg_info_t *info, void *arg)
{
	struct seg_walk *w = arg;
	struct node *n = find(w->s, key, klen, shm_hash(key, klen));

	(void)val;
	(void)vlen;
	(void)info;
	if (n && !(n->exists && n->parent_seg))
		return 0; /* gone, or its parent is the overlay's to say */
	w->stop = w->fn(w->ctx, key, klen);
	return w->stop;
}

static int each_child(struct sim *s, const void *key, size_t klen,
		      child_fn fn, void *ctx)
{
	struct seg_walk w = { .s = s, .fn = fn, .ctx = ctx };
	uint64_t ph = shm_hash(key, klen);
	ssize_t n = shmreg_children(s->rd, key, klen, seg_child, &w);

	if (w.stop)
		return w.stop;
	if (n < 0)
		return (int)n;
	for (struct pref *r = s->ptab[ph & s->mask]; r; r = r->next) {
		struct node *c = r->n;
		int rc;

		if (r->phash != ph || r->gen != c->pgen || !c->exists ||
		    c->parent_seg || !same_key(c->parent, c->plen, key, klen))
			continue;
		rc = fn(ctx, c->key, c->klen);
		if (rc)
			return rc;
	}
	return 0;
}

static int stop_first(void *ctx, const void *key, size_t klen)
{
	(void)ctx;
	(void)key;
	(void)klen;
	return 1;
}

int sim_has_children(struct sim *s, const void *key, size_t klen)
{
	int rc = each_child(s, key, klen, stop_first, NULL);

	return rc < 0 ? rc : rc > 0;
}

/* ---- subtree walks ---- */

/* Keys in visiting order: key i is bytes[off[i] .. + len[i]). */
struct keyq {
	uint8_t *bytes;
	size_t nbytes, bytes_cap;
	size_t *off;
	uint32_t *len;
	size_t n, cap;
	size_t limit;
	const void *want;           /* sim_below: stop when this is met */
	size_t wlen;
};

static int keyq_add(void *ctx, const void *key, size_t klen)
{
	struct keyq *q = ctx;

	if (q->want && same_key(key, klen, q->want, q->wlen))
		return 1;
	if (q->n >= q->limit)
		return 1; /* more nodes than exist: a cycle, i.e. corrupt */
	if (q->n == q->cap) {
		size_t nc = q->cap ? 2 * q->cap : 64;
		size_t *o = realloc(q->off, nc * sizeof(*o));

		if (!o)
			return -ENOMEM;
		q->off = o;
		uint32_t *l = realloc(q->len, nc * sizeof(*l));

		if (!l)
			return -ENOMEM;
		q->len = l;
		q->cap = nc;
	}
	if (q->nbytes + klen > q->bytes_cap) {
		size_t nc = q->bytes_cap ? 2 * q->bytes_cap : 4096;
		uint8_t *b;

		while (nc < q->nbytes + klen)
			nc *= 2;
		b = realloc(q->bytes, nc);
		if (!b)
			return -ENOMEM;
		q->bytes = b;
		q->bytes_cap = nc;
	}
	memcpy(q->bytes + q->nbytes, key, klen);
	q->off[q->n] = q->nbytes;
	q->len[q->n] = (uint32_t)klen;
	q->nbytes += klen;
	q->n++;
	return 0;
}

static void keyq_free(struct keyq *q)
{
	free(q->bytes);
	free(q->off);
	free(q->len);
}

/* Breadth first from @key (which goes first in @q): > 0 when stopped
 * (q->want met, or over the bound), 0 when the whole subtree is in @q. */
static int walk(struct sim *s, const void *key, size_t klen, struct keyq *q)
{
	shmreg_stats_t st;
	int rc;

	if (shmreg_stats(s->rd, &st) < 0)
		st.entries = 0;
	q->limit = st.entries + s->nnodes + 1;
	rc = keyq_add(q, key, klen);
	for (size_t i = 0; rc == 0 && i < q->n; i++) {
		uint8_t node[SHMREG_KEY_MAX];
		size_t nl = q->len[i];

		/* a copy: adding may move the queue's bytes */
		memcpy(node, q->bytes + q->off[i], nl);
		rc = each_child(s, node, nl, keyq_add, q);
	}
	return rc;
}

int sim_below(struct sim *s, const void *key, size_t klen, const void *node,
	      size_t nlen)
{
	struct keyq q = { .want = node, .wlen = nlen };
	int rc = walk(s, key, klen, &q);

	keyq_free(&q);
	return rc < 0 ? rc : rc > 0;
}

/* ---- effects ---- */

int sim_put(struct sim *s, const void *key, size_t klen, const void *parent,
	    size_t plen)
{
	struct node *n;
	int rc = get_node(s, key, klen, false, &n);

	if (rc < 0)
		return rc;
	n->exists = true;
	n->mod_rev = ++s->rev;
	return set_parent(s, n, parent, plen);
}

int sim_touch(struct sim *s, const void *key, size_t klen)
{
	struct node *n;
	int rc = get_node(s, key, klen, false, &n);

	if (rc < 0)
		return rc;
	n->mod_rev = ++s->rev;
	return 0;
}

int sim_del(struct sim *s, const void *key, size_t klen)
{
	struct node *n;
	int rc = get_node(s, key, klen, false, &n);

	if (rc < 0)
		return rc;
	n->exists = false;
	s->rev++;
	return set_parent(s, n, NULL, 0);
}

int64_t sim_del_tree(struct sim *s, const void *key, size_t klen)
{
	struct keyq q = { 0 };
	int rc = walk(s, key, klen, &q);

	if (rc > 0)
		rc = -ELOOP; /* over the bound: the tree is not a tree */
	for (size_t i = 0; rc == 0 && i < q.n; i++) {
		struct node *n;

		rc = get_node(s, q.bytes + q.off[i], q.len[i], true, &n);
		if (rc == 0) {
			n->exists = false;
			rc = set_parent(s, n, NULL, 0);
		}
	}
	if (rc == 0)
		s->rev += q.n;
	keyq_free(&q);
	return rc < 0 ? rc : (int64_t)q.n;
}
