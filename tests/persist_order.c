/* SPDX-License-Identifier: MIT */
/* Description: a snapshot lists its roots in hash order (version 2) and
 * recovery bulk-loads them: after a restart with the segment removed the
 * registry equals the one before, entry by entry (value, mod_rev,
 * create_rev, deadline, attributes, children), and the generator's model
 * (expired entries gone).  Crafted snapshots whose checksums all hold but
 * whose records are out of order (two roots swapped, a child before the
 * roots, a root twice) are refused with a line naming the file, offset and
 * "records out of order": recovery falls back to the logs and loads the
 * same contents, or, with nothing to fall back to, refuses with -EBADMSG.
 * A version 1 snapshot (parents first, roots in any order) still loads
 * exactly. */
#include <fcntl.h>
#include <time.h>

#include "hash.h"
#include "persist_common.h"

#define ROOTS    6000u
#define DIRS     100u
#define KIDS     4u      /* per dir, each with one grandchild */

/* ---- the generator's model ---- */

struct mroot {
	uint32_t seq;   /* value tv_build(seq); 0: absent */
	uint16_t vlen;
	bool ttl_long;  /* a deadline an hour ahead */
	bool ttl_short; /* expired before the restart */
};

static struct mroot roots[ROOTS];

static void rname(unsigned i, char *b)
{
	snprintf(b, 16, "r%05u", i);
}

/* ---- a dump of the whole registry through the public API ---- */

struct dump {
	char **line;
	size_t n, cap;
};

struct dctx {
	shmreg_t *r;
	struct dump *d;
};

static void hex(char *out, const void *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", ((const uint8_t *)p)[i]);
	out[2 * n] = 0;
}

static int child_fn(const void *k, size_t kl, const void *v, size_t vl,
		    const shmreg_info_t *i, void *arg)
{
	(void)v, (void)vl, (void)i;
	(*(uint64_t *)arg) += shm_hash(k, kl); /* order-free */
	return 0;
}

static int dump_fn(const void *k, size_t kl, const void *v, size_t vl,
		   const shmreg_info_t *info, void *arg)
{
	struct dctx *c = arg;
	uint8_t attrs[4096];
	char *l = malloc(2 * kl + 2 * vl + 2 * sizeof(attrs) + 200);
	ssize_t an = shmreg_get_attrs(c->r, k, kl, attrs, sizeof(attrs));
	uint64_t kids = 0;
	size_t o;

	TC_CHECK(l && an >= 0, "dump: %zd", an);
	TC_CHECK(shmreg_children(c->r, k, kl, child_fn, &kids) >= 0,
		 "children");
	hex(l, k, kl);
	o = strlen(l);
	l[o++] = ' ';
	hex(l + o, v, vl);
	o = strlen(l);
	o += (size_t)sprintf(l + o, " %llu %llu %lld %u ",
			     (unsigned long long)info->mod_rev,
			     (unsigned long long)info->create_rev,
			     (long long)info->expires_at_ns, info->vlen);
	hex(l + o, attrs, (size_t)an);
	o = strlen(l);
	sprintf(l + o, " %016llx", (unsigned long long)kids);
	if (c->d->n == c->d->cap) {
		c->d->cap = c->d->cap ? 2 * c->d->cap : 1024;
		c->d->line = realloc(c->d->line, c->d->cap * sizeof(char *));
		TC_CHECK(c->d->line, "realloc");
	}
	c->d->line[c->d->n++] = l;
	return 0;
}

static int cmp_line(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void dump_take(struct dump *d)
{
	shmreg_t *r;
	struct dctx c = { .d = d };

	memset(d, 0, sizeof(*d));
	TC_EQ(shmreg_open("reg", 0, &r), 0, "reader");
	c.r = r;
	TC_CHECK(shmreg_list(r, "", 0, dump_fn, &c) >= 0, "list");
	qsort(d->line, d->n, sizeof(char *), cmp_line);
	shmreg_close(r);
}

static void dump_free(struct dump *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->line[i]);
	free(d->line);
}

static void dump_same(const struct dump *want, const char *what)
{
	struct dump got;

	dump_take(&got);
	TC_EQ(got.n, want->n, what);
	for (size_t i = 0; i < got.n; i++)
		TC_CHECK(!strcmp(got.line[i], want->line[i]),
			 "%s: entry %zu differs:\n got %.200s\nwant %.200s",
			 what, i, got.line[i], want->line[i]);
	dump_free(&got);
}

/* ---- the model against the registry ---- */

static void model_check(void)
{
	uint8_t buf[512];
	char k[16];
	shmreg_info_t info;
	shmreg_t *r;
	uint64_t live = 0;

	TC_EQ(shmreg_open("reg", 0, &r), 0, "reader");
	for (unsigned i = 0; i < ROOTS; i++) {
		ssize_t n;
		uint64_t seq;

		rname(i, k);
		n = shmreg_get(r, k, strlen(k), buf, sizeof(buf), &info);
		if (!roots[i].seq || roots[i].ttl_short) {
			TC_EQ(n, -ENOENT, k);
			continue;
		}
		live++;
		TC_EQ(n, roots[i].vlen, k);
		TC_CHECK(tv_check(buf, (size_t)n, k, strlen(k), &seq) == 0 &&
			 seq == roots[i].seq, "%s: value", k);
		TC_CHECK(roots[i].ttl_long ? info.expires_at_ns > 0
					   : info.expires_at_ns == 0,
			 "%s: deadline %lld", k, (long long)info.expires_at_ns);
	}
	for (unsigned d = 0; d < DIRS; d++) {
		char dn[16];
		uint64_t h = 0, want = 0;

		snprintf(dn, sizeof(dn), "d%03u", d);
		TC_EQ(shmreg_children(r, dn, strlen(dn), child_fn, &h), KIDS,
		      dn);
		for (unsigned c = 0; c < KIDS; c++) {
			char cn[32];

			snprintf(cn, sizeof(cn), "d%03u/c%u", d, c);
			want += shm_hash(cn, strlen(cn));
		}
		TC_EQ(h, want, dn);
	}
	TC_CHECK(live > ROOTS / 2, "live %llu", (unsigned long long)live);
	shmreg_close(r);
}

/* ---- the history ---- */

static void put_root(shmreg_writer_t *w, unsigned i, uint32_t seq,
		     const shmreg_put_opts_t *o)
{
	uint8_t v[512];
	char k[16];

	rname(i, k);
	roots[i].seq = seq;
	/* inline (key + value <= 80 bytes) and not; >= 16: carries seq */
	roots[i].vlen = (uint16_t)(16 + (seq * 37u) % 300u);
	tv_build(v, roots[i].vlen, k, strlen(k), seq);
	TC_CHECK(shmreg_writer_put(w, k, strlen(k), v, roots[i].vlen, o) > 0,
		 "put %s", k);
}

/* The history; in @ref the registry as the writer left it. */
static void write_history(struct dump *ref)
{
	shmreg_writer_t *w;
	shmreg_attr_t a = { "tier", "gold" };
	uint32_t seq = 1;
	int64_t short_deadline;
	struct timespec ts;

	TC_EQ(pt_open("reg", SHMREG_DURABILITY_BATCH, 0, &w), 0, "open");
	for (unsigned i = 0; i < ROOTS; i++) {
		shmreg_put_opts_t o = { 0 };

		if (i % 7 == 1) {
			o.attrs = &a; /* a root the put path takes */
			o.nattrs = 1;
		}
		if (i % 11 == 2) {
			o.ttl_ns = 3600 * INT64_C(1000000000);
			roots[i].ttl_long = true;
		}
		if (i % 13 == 3) {
			o.ttl_ns = 200 * INT64_C(1000000);
			roots[i].ttl_short = true;
		}
		put_root(w, i, seq++, &o);
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	short_deadline = ts.tv_sec * INT64_C(1000000000) + ts.tv_nsec +
			 200 * INT64_C(1000000);
	/* updates (create_rev < mod_rev) and deletes */
	for (unsigned i = 0; i < ROOTS; i += 5)
		if (!roots[i].ttl_short && !roots[i].ttl_long && i % 7 != 1)
			put_root(w, i, seq++, NULL);
	for (unsigned i = 4; i < ROOTS; i += 9) {
		char k[16];

		if (roots[i].ttl_short)
			continue; /* may have expired by now */
		rname(i, k);
		TC_CHECK(shmreg_writer_del(w, k, strlen(k)) > 0, "del %s", k);
		roots[i].seq = 0;
	}
	/* trees: dirs, children with attributes, grandchildren */
	for (unsigned d = 0; d < DIRS; d++) {
		char dn[16];

		snprintf(dn, sizeof(dn), "d%03u", d);
		TC_CHECK(shmreg_writer_put(w, dn, strlen(dn), "dir", 3, NULL) > 0,
			 "dir");
		for (unsigned c = 0; c < KIDS; c++) {
			char cn[32], gn[40];
			shmreg_put_opts_t o = { .parent = dn,
						.parent_len = strlen(dn),
						.attrs = &a, .nattrs = c & 1 };

			snprintf(cn, sizeof(cn), "%s/c%u", dn, c);
			TC_CHECK(shmreg_writer_put(w, cn, strlen(cn), "kid", 3,
						   &o) > 0, "child");
			snprintf(gn, sizeof(gn), "%s/g", cn);
			o = (shmreg_put_opts_t){ .parent = cn,
						 .parent_len = strlen(cn) };
			TC_CHECK(shmreg_writer_put(w, gn, strlen(gn), "g", 1,
						   &o) > 0, "grandchild");
		}
	}
	TC_EQ(shmreg_writer_snapshot(w), 0, "snapshot");
	/* the short deadlines pass (the snapshot holds those entries, the
	 * registry no longer shows them) */
	for (;;) {
		clock_gettime(CLOCK_REALTIME, &ts);
		if (ts.tv_sec * INT64_C(1000000000) + ts.tv_nsec >
		    short_deadline)
			break;
		nanosleep(&(struct timespec){ .tv_nsec = 10000000 }, NULL);
	}
	dump_take(ref);
	shmreg_writer_close(w); /* waits for the snapshot */
}

/* ---- the snapshot file ---- */

struct rec {
	size_t off, size;
	uint16_t plen;
};

static uint8_t *snap;
static size_t snap_len;
static struct rec *recs;
static size_t nrecs, nroots;

static uint32_t rd32_(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint16_t rd16_(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return v;
}

/* Read snap.SEQ and split it into records (docs/format.md). */
static void snap_parse(unsigned long long seq)
{
	char p[4096];
	int fd = open(pt_file(p, "reg", "snap", seq), O_RDONLY);
	uint64_t last = 0;

	TC_CHECK(fd >= 0, "open %s", p);
	snap_len = (size_t)pt_size(p);
	snap = malloc(snap_len);
	recs = calloc(snap_len / 56 + 1, sizeof(*recs));
	TC_CHECK(snap && recs, "malloc");
	TC_EQ(read(fd, snap, snap_len), (ssize_t)snap_len, "read");
	close(fd);
	TC_EQ(rd32_(snap + 4), 2, "snapshot version");
	for (size_t o = 48; o < snap_len - 24;) {
		struct rec *r = &recs[nrecs++];
		uint16_t klen = rd16_(snap + o + 44);
		uint64_t h = shm_hash(snap + o + 56, klen);

		r->off = o;
		r->size = (rd32_(snap + o + 4) + 7u) & ~7u;
		r->plen = rd16_(snap + o + 46);
		if (!r->plen) {
			/* the roots first, ascending */
			TC_CHECK(nroots == nrecs - 1, "a root after a child");
			TC_CHECK(!nroots || h > last, "roots out of order at %zu",
				 o);
			last = h;
			nroots++;
		}
		o += r->size;
	}
	TC_CHECK(nroots > ROOTS / 2 && nrecs > nroots, "%zu roots of %zu",
		 nroots, nrecs);
}

/* snap.SEQ with its records in the order @perm (indexes into recs). */
static void snap_write(unsigned long long seq, const size_t *perm,
		       uint32_t version)
{
	char p[4096];
	uint8_t *out = malloc(snap_len);
	size_t o = 48;

	TC_CHECK(out, "malloc");
	memcpy(out, snap, 48);
	for (size_t i = 0; i < nrecs; i++) {
		memcpy(out + o, snap + recs[perm[i]].off, recs[perm[i]].size);
		o += recs[perm[i]].size;
	}
	memcpy(out + o, snap + o, 24);
	if (version != rd32_(snap + 4)) {
		/* a version 1 header: its check, and the trailer's, anew */
		uint64_t check;

		memcpy(out + 4, &version, 4);
		check = XXH3_64bits(out, 40);
		memcpy(out + 40, &check, 8);
		check = XXH3_64bits_withSeed(out + o, 16, check);
		memcpy(out + o + 16, &check, 8);
	}
	tc_write_file(pt_file(p, "reg", "snap", seq), out, snap_len);
	free(out);
}

/* Reopen after a reboot, what recovery prints in @err; the writer is
 * closed again, the segment stays at the name (for dump_take). */
static int reopen(char *err, size_t cap)
{
	shmreg_writer_t *w;
	int rc;

	pt_drop_segment("reg");
	rc = pt_open_captured("reg", SHMREG_DURABILITY_BATCH, 0, &w, err, cap);
	if (rc == 0)
		shmreg_writer_close(w);
	return rc;
}

/* The line of a snapshot refused for its order. */
static void expect_refused(const char *err, unsigned long long seq)
{
	char want[64];

	snprintf(want, sizeof(want), "snap.%016llx: corrupt at offset", seq);
	TC_CHECK(strstr(err, want) && strstr(err, "records out of order"),
		 "stderr: %s", err);
}

/* @perm: the records in file order with @a and @b swapped (@b SIZE_MAX:
 * record @a replaced by a copy of the one before it). */
static void perm_swap(size_t *perm, size_t a, size_t b)
{
	for (size_t i = 0; i < nrecs; i++)
		perm[i] = i;
	if (b == SIZE_MAX) {
		perm[a] = a - 1;
	} else {
		perm[a] = b;
		perm[b] = a;
	}
}

/* snap.SEQ so reordered: refused, and the logs rebuild the reference. */
static void refused_fallback(unsigned long long seq, size_t *perm, size_t a,
			     size_t b, const struct dump *ref, const char *what)
{
	char err[4096];

	perm_swap(perm, a, b);
	snap_write(seq, perm, 2);
	TC_EQ(reopen(err, sizeof(err)), 0, what);
	expect_refused(err, seq);
	dump_same(ref, what);
}

int main(void)
{
	struct dump ref;
	unsigned long long seq;
	size_t *perm;
	char err[4096];
	size_t i;

	tc_init("persist_order", 300);
	write_history(&ref);
	seq = pt_last("reg", "snap");
	TC_CHECK(seq >= 2, "no snapshot");
	snap_parse(seq);
	/* the logs alone (the snapshot set aside) rebuild the same: the
	 * fallback the crafted cases below rely on */
	{
		char p[4096], q[4200];

		pt_file(p, "reg", "snap", seq);
		snprintf(q, sizeof(q), "%s.aside", p);
		TC_EQ(rename(p, q), 0, "set the snapshot aside");
		TC_EQ(reopen(err, sizeof(err)), 0, "open from the logs");
		dump_same(&ref, "logs only");
		TC_EQ(rename(q, p), 0, "the snapshot back");
	}

	/* the hash-ordered load */
	TC_EQ(reopen(err, sizeof(err)), 0, "open from the snapshot");
	TC_CHECK(!strstr(err, "corrupt"), "stderr: %s", err);
	dump_same(&ref, "snapshot load");
	model_check();

	perm = malloc(nrecs * sizeof(*perm));
	TC_CHECK(perm, "malloc");

	/* two roots swapped */
	refused_fallback(seq, perm, 10, 11, &ref, "swapped roots");
	/* a child before the last root */
	refused_fallback(seq, perm, nroots - 1, nroots, &ref, "child first");
	/* a root twice (two neighbours of one size: the file stays whole) */
	for (i = 1; i < nroots && recs[i].size != recs[i - 1].size; i++)
		;
	TC_CHECK(i < nroots, "no two roots of one size");
	refused_fallback(seq, perm, i, SIZE_MAX, &ref, "duplicate root");

	/* version 1: parents first, the roots in reverse order */
	for (i = 0; i < nrecs; i++)
		perm[i] = i < nroots ? nroots - 1 - i : i;
	snap_write(seq, perm, 1);
	TC_EQ(reopen(err, sizeof(err)), 0, "version 1");
	TC_CHECK(!strstr(err, "corrupt"), "stderr: %s", err);
	dump_same(&ref, "version 1");

	/* out of order with nothing to fall back to: refused */
	{
		char p[4096];

		perm_swap(perm, 10, 11);
		snap_write(seq, perm, 2);
		for (unsigned long long s = 1; s < seq; s++) {
			unlink(pt_file(p, "reg", "log", s));
			unlink(pt_file(p, "reg", "snap", s));
		}
		TC_EQ(reopen(err, sizeof(err)), -EBADMSG, "no fallback");
		expect_refused(err, seq);
		TC_CHECK(strstr(err, "log.0000000000000001 is missing"),
			 "stderr: %s", err);
	}
	free(perm);
	free(recs);
	free(snap);
	dump_free(&ref);
	return 0;
}
