/* SPDX-License-Identifier: MIT */
/*
 * kvmap.c - the live entries as encoded PUT records, keyed by key: what a
 * snapshot is computed in, from the previous snapshot and the closed logs.
 *
 * How it works.  Open addressing with linear probing on XXH3-64 of the
 * key, at most half full (doubling), deletion by backward shift (no
 * tombstones, as writer/index.c).  Each cell owns a malloc'ed copy of the
 * entry's latest PUT record, so writing the snapshot is copying records.
 * A probe visits at most the cluster it starts in, and the load limit keeps
 * clusters short on average; keys come from checksummed records the writer
 * made, so a hash flood would need one in the registry first.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "hash.h"
#include "persist.h"

struct kcell {
	uint64_t hash;
	uint8_t *rec;        /* NULL: empty */
	uint32_t size;
	uint8_t state;       /* kvmap_write: 0 new, 1 written, 2 dropped,
	                      * 3 on the current path */
};

struct kvmap {
	struct kcell *tab;
	uint64_t cap, n;
};

uint64_t kvmap_count(const struct kvmap *m)
{
	return m->n;
}

static int kv_alloc(struct kvmap *m, uint64_t entries)
{
	uint64_t cap = 16;

	while (cap < 2 * entries + 2)
		cap <<= 1;
	m->tab = calloc(cap, sizeof(*m->tab));
	if (!m->tab)
		return -ENOMEM;
	m->cap = cap;
	return 0;
}

struct kvmap *kvmap_new(uint64_t entries)
{
	struct kvmap *m = calloc(1, sizeof(*m));

	if (m && kv_alloc(m, entries) < 0) {
		free(m);
		return NULL;
	}
	return m;
}

void kvmap_free(struct kvmap *m)
{
	if (!m)
		return;
	for (uint64_t i = 0; i < m->cap; i++)
		free(m->tab[i].rec);
	free(m->tab);
	free(m);
}

static bool same_key(const struct kcell *c, uint64_t hash, const void *key,
		     uint32_t klen)
{
	struct prec r;

	if (c->hash != hash)
		return false;
	/* the cell's record was checked when it was stored */
	prec_fields(c->rec, &r);
	return r.klen == klen && !memcmp(r.key, key, klen);
}

/* The cell of @key, or the empty cell where it would go. */
static uint64_t find(const struct kvmap *m, uint64_t hash, const void *key,
		     uint32_t klen)
{
	uint64_t mask = m->cap - 1, i = hash & mask;

	while (m->tab[i].rec && !same_key(&m->tab[i], hash, key, klen))
		i = (i + 1) & mask;
	return i;
}

static int grow(struct kvmap *m)
{
	struct kvmap big = { 0 };
	int rc = kv_alloc(&big, m->cap);

	if (rc < 0)
		return rc;
	for (uint64_t i = 0; i < m->cap; i++) {
		uint64_t j;

		if (!m->tab[i].rec)
			continue;
		j = m->tab[i].hash & (big.cap - 1);
		while (big.tab[j].rec)
			j = (j + 1) & (big.cap - 1);
		big.tab[j] = m->tab[i];
	}
	free(m->tab);
	m->tab = big.tab;
	m->cap = big.cap;
	return 0;
}

static void remove_at(struct kvmap *m, uint64_t i)
{
	uint64_t mask = m->cap - 1, j = i;

	free(m->tab[i].rec);
	m->tab[i].rec = NULL;
	m->n--;
	/* backward shift: pull up every later cell of the cluster whose
	 * home is not in (i, j] */
	for (;;) {
		uint64_t home;

		j = (j + 1) & mask;
		if (!m->tab[j].rec)
			return;
		home = m->tab[j].hash & mask;
		if (((j - home) & mask) >= ((j - i) & mask)) {
			m->tab[i] = m->tab[j];
			m->tab[j].rec = NULL;
			i = j;
		}
	}
}

static int kv_begin(void *ctx, uint64_t entries, uint64_t bytes)
{
	struct kvmap *m = ctx;

	(void)bytes;
	while (m->cap < 2 * entries + 2)
		if (grow(m) < 0)
			return -ENOMEM;
	return 0;
}

static int kv_apply(void *ctx, const struct prec *r, const uint8_t *raw,
		    size_t size)
{
	struct kvmap *m = ctx;
	uint64_t hash = shm_hash(r->key, r->klen), i;
	uint8_t *copy;

	i = find(m, hash, r->key, r->klen);
	if (r->op == PREC_DEL) {
		if (m->tab[i].rec)
			remove_at(m, i);
		return 0;
	}
	copy = malloc(size);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, raw, size);
	if (m->tab[i].rec) {
		free(m->tab[i].rec);
	} else {
		if (2 * (m->n + 1) > m->cap) {
			if (grow(m) < 0) {
				free(copy);
				return -ENOMEM;
			}
			i = find(m, hash, r->key, r->klen);
		}
		m->n++;
	}
	m->tab[i].hash = hash;
	m->tab[i].rec = copy;
	m->tab[i].size = (uint32_t)size;
	return 0;
}

struct psink kvmap_sink(struct kvmap *m)
{
	return (struct psink){ .ctx = m, .begin = kv_begin, .apply = kv_apply };
}

/* ---- writing a snapshot ---- */

struct wbuf {
	int fd;
	uint8_t *p;
	size_t len, cap;
	int err;
};

static void wb_out(struct wbuf *b, const uint8_t *p, size_t n)
{
	while (n && !b->err) {
		ssize_t r = write(b->fd, p, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			b->err = r < 0 ? -errno : -EIO;
			return;
		}
		p += r;
		n -= (size_t)r;
	}
}

static void wb_flush(struct wbuf *b)
{
	wb_out(b, b->p, b->len);
	b->len = 0;
}

static void wb_put(struct wbuf *b, const void *src, size_t n)
{
	if (b->len + n > b->cap)
		wb_flush(b);
	if (n > b->cap) {
		wb_out(b, src, n); /* larger than the buffer: straight out */
		return;
	}
	memcpy(b->p + b->len, src, n);
	b->len += n;
}

/*
 * Then the rest, parents first: for an entry not yet written (it has a
 * parent: the roots are written or dropped), walk up its parent chain
 * (marking the path) to the first ancestor that is written or has no
 * parent, then write the path top-down.  A chain that reaches a missing
 * or dropped parent, or itself (impossible from a consistent history, but
 * the bytes are only checksummed, not proven), is dropped whole.  Each
 * cell is on one path once, so this is O(entries) lookups in all.
 */
static int write_path(struct kvmap *m, uint64_t start, struct wbuf *b,
		      uint64_t *path_buf, uint64_t *written, int64_t now)
{
	uint64_t depth = 0, i = start;
	uint8_t verdict = 1;

	for (;;) {
		struct prec r;
		uint64_t h, j;

		m->tab[i].state = 3;
		path_buf[depth++] = i;
		prec_fields(m->tab[i].rec, &r); /* checked when stored */
		if (r.expires_at && r.expires_at <= now) {
			verdict = 2; /* expired: it and what hangs below */
			break;
		}
		if (!r.plen)
			break;
		h = shm_hash(r.parent, r.plen);
		j = find(m, h, r.parent, r.plen);
		if (!m->tab[j].rec || m->tab[j].state >= 2) {
			verdict = 2;
			break;
		}
		if (m->tab[j].state == 1)
			break;
		i = j;
	}
	while (depth-- > 0) {
		uint64_t c = path_buf[depth];

		m->tab[c].state = verdict;
		if (verdict == 1) {
			wb_put(b, m->tab[c].rec, m->tab[c].size);
			(*written)++;
		}
	}
	return b->err;
}

/* Where a root (an entry without a parent) goes in a version 2 snapshot:
 * sorted by hash, then key (docs/format.md, "Snapshot file"). */
struct root {
	uint64_t hash, cell;
	const struct kvmap *m;
};

/* Key order for roots of one hash (two keys share an XXH3-64): length,
 * then bytes.  psnap_order_cmp() is the same rule for the reader. */
static int cmp_root(const void *a, const void *b)
{
	const struct root *x = a, *y = b;
	struct prec rx, ry;

	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	prec_fields(x->m->tab[x->cell].rec, &rx);
	prec_fields(y->m->tab[y->cell].rec, &ry);
	return psnap_order_cmp(x->hash, rx.key, rx.klen, y->hash, ry.key,
			       ry.klen);
}

/* Section one of a version 2 snapshot: every live root, in (hash, key)
 * order, so that recovery fills the segment's index front to back (a
 * slot's home is its hash's top bits, whatever the index size).  Expired
 * roots are marked dropped, and their subtrees with them (write_path). */
static int write_roots(struct kvmap *m, struct wbuf *b, uint64_t *written,
		       int64_t now)
{
	struct root *v = malloc((m->n + 1) * sizeof(*v));
	uint64_t n = 0;

	if (!v)
		return -ENOMEM;
	for (uint64_t i = 0; i < m->cap; i++) {
		struct prec r;

		if (!m->tab[i].rec)
			continue;
		prec_fields(m->tab[i].rec, &r); /* checked when stored */
		if (r.plen)
			continue;
		if (r.expires_at && r.expires_at <= now) {
			m->tab[i].state = 2;
			continue;
		}
		v[n++] = (struct root){ m->tab[i].hash, i, m };
	}
	qsort(v, n, sizeof(*v), cmp_root);
	for (uint64_t k = 0; k < n && !b->err; k++) {
		struct kcell *c = &m->tab[v[k].cell];

		c->state = 1;
		wb_put(b, c->rec, c->size);
		(*written)++;
	}
	free(v);
	return b->err;
}

int64_t kvmap_write(struct kvmap *m, int fd, uint64_t seq, uint64_t rev)
{
	uint8_t hdr[PSNAP_HDR], tr[PSNAP_TRAILER];
	struct wbuf b = { .fd = fd, .cap = 1u << 20 };
	uint64_t written = 0;
	int64_t now = shm_realtime_ns();
	uint64_t *path;
	int rc = 0;

	b.p = malloc(b.cap);
	path = malloc((m->n + 1) * sizeof(*path));
	if (!b.p || !path) {
		free(b.p);
		free(path);
		return -ENOMEM;
	}
	/* the count is only known at the end: the header is rewritten */
	psnap_header(hdr, seq, rev, 0);
	wb_put(&b, hdr, sizeof(hdr));
	/* the roots in hash order, then the entries with a parent, each
	 * after its parent */
	rc = write_roots(m, &b, &written, now);
	for (uint64_t i = 0; rc == 0 && i < m->cap; i++)
		if (m->tab[i].rec && m->tab[i].state == 0)
			rc = write_path(m, i, &b, path, &written, now);
	psnap_header(hdr, seq, rev, written);
	psnap_trailer(tr, hdr, written);
	wb_put(&b, tr, sizeof(tr));
	wb_flush(&b);
	free(b.p);
	free(path);
	if (rc < 0)
		return rc;
	if (b.err)
		return b.err;
	if (pwrite(fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr))
		return -EIO;
	return (int64_t)written;
}
