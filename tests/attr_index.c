/* Description: the attribute index under churn against a reference model:
 * after every change shmreg_find equals the model exactly (and
 * shmreg_get_attrs the entry's attributes), while two reader processes
 * check that every find result carries the pairs asked for and that,
 * inside validated snapshots, get_attrs agrees with the value; then churn
 * of one attribute value must not grow the segment, deleting everything
 * leaves no pair, posting or arena byte behind, and the index survives an
 * in-place adoption and a takeover after a writer that died. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmreg.h"
#include "shmreg_writer.h"
#include "../writer/internal.h"
#include "common/tc.h"

#define NKEYS     256
#define NATTRS    8           /* model attributes per entry, at most */
#define STEPS     6000
#define NREADERS  2
#define MIN_READS 250 /* finds and validated snapshots per reader */

static const char *const zones[] = { "a", "b", "c", "d" };
static const char *const caps[] = { "gpu", "inference", "train", "store" };
static const char *const health[] = { "ok", "bad" };

/* The model: each key's attributes; an entry's value is its attributes
 * as "name=value;" text (plus padding that sends some out of line), so a
 * reader can check a validated copy against the pairs it asked for. */
struct mentry {
	bool live;
	unsigned n;
	char name[NATTRS][16], value[NATTRS][16];
};

static struct mentry model[NKEYS];

struct shared {
	_Atomic int stop;
	_Atomic unsigned long finds[NREADERS], results[NREADERS];
	_Atomic unsigned long snaps[NREADERS], bad[NREADERS];
};

static void key_of(unsigned i, char *k)
{
	snprintf(k, 32, "svc/%04u", i);
}

static size_t value_of(const struct mentry *e, unsigned i, char *buf)
{
	size_t n = 0;

	for (unsigned a = 0; a < e->n; a++)
		n += (size_t)sprintf(buf + n, "%s=%s;", e->name[a],
				     e->value[a]);
	/* every third entry out of line */
	if (i % 3 == 0) {
		memset(buf + n, '.', 120);
		n += 120;
	}
	buf[n] = 0;
	return n;
}

static void random_attrs(struct mentry *e, uint64_t *rs)
{
	e->n = 0;
	strcpy(e->name[e->n], "zone");
	strcpy(e->value[e->n++], zones[tc_range(rs, 0, 3)]);
	for (unsigned c = 0; c < 4; c++) {
		if (tc_range(rs, 0, 2) == 0) {
			strcpy(e->name[e->n], "cap");
			strcpy(e->value[e->n++], caps[c]);
		}
	}
	strcpy(e->name[e->n], "health");
	strcpy(e->value[e->n++], health[tc_range(rs, 0, 1)]);
	if (tc_range(rs, 0, 1)) {
		strcpy(e->name[e->n], "ver");
		snprintf(e->value[e->n++], 16, "%u",
			 (unsigned)tc_range(rs, 0, 40));
	}
}

static unsigned to_attrs(const struct mentry *e, shmreg_attr_t *a)
{
	for (unsigned k = 0; k < e->n; k++) {
		a[k].name = e->name[k];
		a[k].value = e->value[k];
	}
	return e->n;
}

static bool model_has(const struct mentry *e, const char *n, const char *v)
{
	for (unsigned a = 0; a < e->n; a++)
		if (!strcmp(e->name[a], n) && !strcmp(e->value[a], v))
			return true;
	return false;
}

/* Does the value text carry name=value? */
static bool value_has(const char *val, size_t vlen, const char *n,
		      const char *v)
{
	char pat[64];
	size_t pl = (size_t)snprintf(pat, sizeof(pat), "%s=%s;", n, v);

	for (size_t i = 0; i + pl <= vlen; i++) {
		if ((i == 0 || val[i - 1] == ';') && !memcmp(val + i, pat, pl))
			return true;
	}
	return false;
}

static void random_query(uint64_t *rs, shmreg_attr_t *q, unsigned *nq,
			 char (*vbuf)[16])
{
	*nq = (unsigned)tc_range(rs, 1, 2);
	for (unsigned k = 0; k < *nq; k++) {
		switch (tc_range(rs, 0, 3)) {
		case 0:
			q[k].name = "zone";
			q[k].value = zones[tc_range(rs, 0, 3)];
			break;
		case 1:
			q[k].name = "cap";
			q[k].value = caps[tc_range(rs, 0, 3)];
			break;
		case 2:
			q[k].name = "health";
			q[k].value = health[tc_range(rs, 0, 1)];
			break;
		default:
			snprintf(vbuf[k], 16, "%u",
				 (unsigned)tc_range(rs, 0, 40));
			q[k].name = "ver";
			q[k].value = vbuf[k];
			break;
		}
	}
}

/* ---- the writer's exact check ---- */

struct collect {
	bool seen[NKEYS];
	unsigned n, dup, bad;
};

static int collect_cb(const void *key, size_t klen, const void *val,
		      size_t vlen, const shmreg_info_t *info, void *arg)
{
	struct collect *c = arg;
	char k[32];
	unsigned i;

	(void)val;
	(void)vlen;
	(void)info;
	char digits[5] = { 0 };

	if (klen == 8)
		memcpy(digits, (const char *)key + 4, 4);
	if (klen != 8 || sscanf(digits, "%4u", &i) != 1 || i >= NKEYS) {
		c->bad++;
		return 0;
	}
	key_of(i, k);
	if (memcmp(k, key, 8) != 0) {
		c->bad++;
		return 0;
	}
	if (c->seen[i])
		c->dup++;
	c->seen[i] = true;
	c->n++;
	return 0;
}

static void check_query(shmreg_t *r, const shmreg_attr_t *q, unsigned nq,
			int step)
{
	struct collect c = { 0 };
	ssize_t got = shmreg_find(r, q, nq, collect_cb, &c);
	unsigned want = 0;

	TC_CHECK(got >= 0, "step %d: find: %zd", step, got);
	TC_EQ(c.bad + c.dup, 0, "bad or repeated find results");
	for (unsigned i = 0; i < NKEYS; i++) {
		bool m = model[i].live;

		for (unsigned k = 0; k < nq && m; k++)
			m = model_has(&model[i], q[k].name, q[k].value);
		want += m;
		TC_CHECK(m == c.seen[i], "step %d: key %u: model %d, find %d "
			 "(%s=%s%s%s%s)", step, i, m, c.seen[i], q[0].name,
			 q[0].value, nq > 1 ? " " : "",
			 nq > 1 ? q[1].name : "", nq > 1 ? q[1].value : "");
	}
	TC_EQ(got, want, "find count");
}

static void check_attrs(shmreg_t *r, unsigned i)
{
	char k[32], buf[2048], want[2048];
	size_t wl = 0;
	ssize_t n;

	key_of(i, k);
	n = shmreg_get_attrs(r, k, strlen(k), buf, sizeof(buf));
	if (!model[i].live) {
		TC_EQ(n, -ENOENT, "get_attrs of a deleted key");
		return;
	}
	for (unsigned a = 0; a < model[i].n; a++) {
		size_t nl = strlen(model[i].name[a]) + 1;
		size_t vl = strlen(model[i].value[a]) + 1;

		memcpy(want + wl, model[i].name[a], nl);
		wl += nl;
		memcpy(want + wl, model[i].value[a], vl);
		wl += vl;
	}
	TC_EQ(n, wl, "get_attrs length");
	TC_CHECK(memcmp(buf, want, wl) == 0, "key %u: attribute bytes", i);
}

/* ---- readers ---- */

struct rcheck {
	const shmreg_attr_t *q;
	unsigned nq;
	unsigned long bad;
};

static int reader_cb(const void *key, size_t klen, const void *val,
		     size_t vlen, const shmreg_info_t *info, void *arg)
{
	struct rcheck *c = arg;

	(void)key;
	(void)klen;
	(void)info;
	for (unsigned k = 0; k < c->nq; k++)
		if (!value_has(val, vlen, c->q[k].name, c->q[k].value))
			c->bad++;
	return 0;
}

/* Inside a snapshot: the value of a key and its attributes must agree. */
static unsigned long snapshot_check(shmreg_t *r, uint64_t *rs,
				    unsigned long *snaps)
{
	char k[32], val[512], attrs[2048];
	unsigned i = (unsigned)tc_range(rs, 0, NKEYS - 1);
	uint64_t tok = shmreg_read_begin(r);
	ssize_t vl, al;
	size_t pos = 0;
	unsigned long bad = 0;

	key_of(i, k);
	vl = shmreg_get(r, k, strlen(k), val, sizeof(val) - 1, NULL);
	al = shmreg_get_attrs(r, k, strlen(k), attrs, sizeof(attrs));
	if (shmreg_read_validate(r, tok) != 0)
		return 0;
	if (vl == -ENOENT && al == -ENOENT) {
		(*snaps)++;
		return 0;
	}
	if (vl < 0 || al < 0 || (size_t)vl >= sizeof(val) ||
	    (size_t)al > sizeof(attrs))
		return vl == -EAGAIN || al == -EAGAIN ? 0 : 1;
	(*snaps)++;
	val[vl] = 0;
	/* each attribute is in the value text, and as many as it holds */
	unsigned na = 0, nv = 0;

	while (pos < (size_t)al) {
		const char *n = attrs + pos, *v = n + strlen(n) + 1;

		if (!value_has(val, (size_t)vl, n, v))
			bad++;
		na++;
		pos += strlen(n) + strlen(v) + 2;
	}
	for (ssize_t c = 0; c < vl; c++)
		nv += val[c] == ';';
	return bad + (na != nv);
}

static int reader(struct tc_child *c, void *arg)
{
	struct shared *sh = arg;
	unsigned id = c->name[6] - '0';
	uint64_t rs = tc_seed() + id * 7919;
	shmreg_t *r = NULL;
	unsigned long finds = 0, results = 0, snaps = 0, bad = 0;

	tc_set_role(c->name);
	for (int t = 0; t < 2000 && shmreg_open("attrs", 0, &r) < 0; t++)
		tc_wait_parent(c, 5);
	TC_CHECK(r, "open");
	tc_post(c, 'R');
	while (!atomic_load(&sh->stop)) {
		shmreg_attr_t q[2];
		char vb[2][16];
		struct rcheck rc;
		ssize_t n;

		random_query(&rs, q, &rc.nq, vb);
		rc.q = q;
		rc.bad = 0;
		n = shmreg_find(r, q, rc.nq, reader_cb, &rc);
		if (n >= 0) {
			finds++;
			results += (unsigned long)n;
		} else if (n != -EAGAIN) {
			bad++;
		}
		bad += rc.bad;
		bad += snapshot_check(r, &rs, &snaps);
		/* live, for the writer's loop (tc_counts_reached) */
		atomic_store(&sh->finds[id], finds);
		atomic_store(&sh->snaps[id], snaps);
	}
	sh->results[id] = results;
	sh->bad[id] = bad;
	shmreg_close(r);
	return 0;
}

/* ---- the writer ---- */

static void put_model(shmreg_writer_t *w, unsigned i, bool set_only)
{
	char k[32], v[512];
	shmreg_attr_t a[NATTRS];
	unsigned n = to_attrs(&model[i], a);
	shmreg_put_opts_t o = { .attrs = a, .nattrs = n };
	size_t vl = value_of(&model[i], i, v);
	int64_t rev;

	key_of(i, k);
	if (set_only) {
		/* the value must keep describing the attributes: put the
		 * new text (without attributes), then set them, in one
		 * batch, so that no snapshot sees one without the other */
		TC_EQ(shmreg_writer_batch_begin(w), 0, "batch");
		rev = shmreg_writer_put(w, k, strlen(k), v, vl, NULL);
		TC_CHECK(rev > 0, "put: %lld", (long long)rev);
		rev = shmreg_writer_set_attrs(w, k, strlen(k), a, n);
		TC_CHECK(rev > 0, "set_attrs: %lld", (long long)rev);
		TC_EQ(shmreg_writer_batch_end(w), 0, "batch end");
	} else {
		rev = shmreg_writer_put(w, k, strlen(k), v, vl, &o);
		TC_CHECK(rev > 0, "put: %lld", (long long)rev);
	}
	model[i].live = true;
}

int main(void)
{
	shmreg_writer_opts_t wo = { .flags = SHMREG_WRITER_TRUNCATE,
				    .initial_entries = 16,
				    .initial_arena = 16384 };
	struct shared *sh;
	struct tc_child *rd[NREADERS];
	shmreg_writer_t *w;
	shmreg_t *r;
	uint64_t rs, give_up;
	unsigned long finds = 0, snaps = 0;

	tc_init("attr_index", 120);
	tc_dir();
	rs = tc_seed();
	sh = tc_shared(sizeof(*sh));
	for (unsigned i = 0; i < NREADERS; i++) {
		char name[16];

		snprintf(name, sizeof(name), "reader%u", i);
		rd[i] = tc_spawn(name, reader, sh);
	}
	TC_EQ(shmreg_writer_open("attrs", &wo, &w), 0, "writer open");
	r = shmreg_writer_reader(w);
	TC_CHECK(r, "writer's reader");
	for (unsigned i = 0; i < NREADERS; i++)
		tc_expect(rd[i], 'R', 20000);

	/* argument checks */
	{
		shmreg_attr_t bad[2] = { { "a=b", "x" }, { "", "y" } };
		shmreg_put_opts_t o = { .attrs = bad, .nattrs = 1 };

		TC_EQ(shmreg_writer_put(w, "k", 1, "v", 1, &o), -EINVAL,
		      "'=' in a name");
		o.attrs = bad + 1;
		TC_EQ(shmreg_writer_put(w, "k", 1, "v", 1, &o), -EINVAL,
		      "empty name");
		o.nattrs = SHMREG_ATTRS_MAX + 1;
		TC_EQ(shmreg_writer_put(w, "k", 1, "v", 1, &o), -E2BIG,
		      "too many");
		TC_EQ(shmreg_find(r, bad, 0, collect_cb, NULL), -EINVAL,
		      "nmatch 0");
		TC_EQ(shmreg_writer_set_attrs(w, "nope", 4, NULL, 0), -ENOENT,
		      "set_attrs of an absent key");
		TC_EQ(shmreg_get_attrs(r, "nope", 4, NULL, 0), -ENOENT,
		      "get_attrs of an absent key");
	}

	/* at least STEPS changes, and on until every reader has done
	 * MIN_READS finds and validated snapshots, within a deadline */
	give_up = tc_now_ns() + 60000000000ull;
	for (int step = 0; step < STEPS ||
			   !tc_counts_reached(sh->finds, NREADERS, MIN_READS) ||
			   !tc_counts_reached(sh->snaps, NREADERS, MIN_READS);
	     step++) {
		unsigned i = (unsigned)tc_range(&rs, 0, NKEYS - 1);
		unsigned op = (unsigned)tc_range(&rs, 0, 9);
		char k[32];

		TC_CHECK(step < STEPS || tc_now_ns() < give_up, "the readers "
			 "did only %lu and %lu finds, %lu and %lu snapshots in "
			 "60 s", atomic_load(&sh->finds[0]),
			 atomic_load(&sh->finds[1]), atomic_load(&sh->snaps[0]),
			 atomic_load(&sh->snaps[1]));

		key_of(i, k);
		if (op < 5 || !model[i].live) {
			random_attrs(&model[i], &rs);
			put_model(w, i, false);
		} else if (op < 7) {
			random_attrs(&model[i], &rs);
			put_model(w, i, true);
		} else if (op < 9) {
			TC_CHECK(shmreg_writer_del(w, k, strlen(k)) > 0, "del");
			model[i].live = false;
		} else {
			/* a put without attributes drops them all */
			char v[8] = "plain";

			model[i].n = 0;
			TC_CHECK(shmreg_writer_put(w, k, strlen(k), v, 0,
						   NULL) > 0, "plain put");
			model[i].live = true;
		}
		shmreg_attr_t q[2];
		char vb[2][16];
		unsigned nq;

		random_query(&rs, q, &nq, vb);
		check_query(r, q, nq, step);
		check_attrs(r, i);
		if (step % 500 == 0)
			for (unsigned j = 0; j < NKEYS; j++)
				check_attrs(r, j);
	}
	/* every query once more, over the final state */
	for (unsigned z = 0; z < 4; z++) {
		shmreg_attr_t q = { "zone", zones[z] };

		check_query(r, &q, 1, STEPS);
	}

	/* repeated names: capability=gpu and capability=inference */
	{
		shmreg_attr_t a[3] = { { "capability", "gpu" },
				       { "capability", "inference" },
				       { "capability", "gpu" } };
		shmreg_put_opts_t o = { .attrs = a, .nattrs = 3 };
		struct collect c = { 0 };

		TC_CHECK(shmreg_writer_put(w, "svc/9999", 8, "x", 1, &o) > 0,
			 "put with a repeated name");
		TC_EQ(shmreg_find(r, a, 2, collect_cb, &c), 1,
		      "both values of one name");
		TC_EQ(shmreg_get_attrs(r, "svc/9999", 8, NULL, 0),
		      15 + 21 + 15, "length");
		TC_CHECK(shmreg_writer_del(w, "svc/9999", 8) > 0, "del");
	}

	atomic_store(&sh->stop, 1);
	for (unsigned i = 0; i < NREADERS; i++) {
		tc_child_join(rd[i], 30000);
		tc_log("reader%u: %lu finds (%lu results), %lu validated "
		       "snapshots, %lu inconsistent", i, sh->finds[i],
		       sh->results[i], sh->snaps[i], sh->bad[i]);
		TC_EQ(sh->bad[i], 0, "inconsistent answers");
		finds += sh->finds[i];
		snaps += sh->snaps[i];
		tc_child_free(rd[i]);
	}
	TC_CHECK(finds >= NREADERS * MIN_READS, "only %lu finds", finds);
	TC_CHECK(snaps >= NREADERS * MIN_READS, "only %lu validated snapshots",
		 snaps);

	/* churn of one attribute value: no growth without bound.  After
	 * the readers stopped: the entry's value ("c") does not describe
	 * its attributes, which their checks of find results expect of
	 * every entry (one of them once found "churn" carrying ver=0) */
	{
		shmreg_stats_t st0, st1;
		char val[16];
		shmreg_attr_t a = { "ver", val };

		TC_CHECK(shmreg_writer_put(w, "churn", 5, "c", 1, NULL) > 0,
			 "put");
		for (int n = 0; n < 2000; n++) {
			snprintf(val, sizeof(val), "%d", n);
			TC_CHECK(shmreg_writer_set_attrs(w, "churn", 5, &a, 1) >
					 0, "set_attrs");
			if (n == 999)
				TC_EQ(shmreg_stats(r, &st0), 0, "stats");
		}
		TC_EQ(shmreg_stats(r, &st1), 0, "stats");
		TC_EQ(st1.segment_bytes, st0.segment_bytes,
		      "segment size after 1000 more value changes");
		TC_EQ(st1.generation, st0.generation, "no handoff either");
	}

	/* delete everything: nothing of the index is left */
	for (unsigned i = 0; i < NKEYS; i++) {
		char k[32];

		key_of(i, k);
		if (model[i].live)
			TC_CHECK(shmreg_writer_del(w, k, strlen(k)) > 0, "del");
		model[i].live = false;
	}
	TC_CHECK(shmreg_writer_del(w, "churn", 5) > 0, "del");
	TC_EQ(w->attr_pairs, 0, "pair slots left");
	TC_EQ(w->apos.n, 0, "postings left");
	TC_EQ(w->arena_live, 0, "arena bytes left");
	TC_EQ(w->entries, 0, "entries left");

	/* a close and a reopen in place keeps the index (adopt.c) */
	random_attrs(&model[0], &rs);
	put_model(w, 0, false);
	random_attrs(&model[1], &rs);
	put_model(w, 1, false);
	shmreg_writer_close(w);
	wo.flags = 0;
	TC_EQ(shmreg_writer_open("attrs", &wo, &w), 0, "reopen");
	r = shmreg_writer_reader(w);
	TC_CHECK(w->attr_pairs > 0, "adopted pairs");
	for (unsigned z = 0; z < 4; z++) {
		shmreg_attr_t q = { "zone", zones[z] };

		check_query(r, &q, 1, STEPS + 1);
	}
	check_attrs(r, 0);
	check_attrs(r, 1);
	TC_CHECK(shmreg_writer_del(w, "svc/0000", 8) > 0, "del after adopt");
	model[0].live = false;
	check_query(r, &(shmreg_attr_t){ "zone", model[1].value[0] }, 1, 0);
	shmreg_stats_t gs0, gs1;

	TC_EQ(shmreg_stats(r, &gs0), 0, "stats");
	shmreg_writer_close(w);

	/* a writer that dies without closing: the next one recovers by
	 * copying through the validating reader path (handoff.c
	 * copy_validated), which must rebuild the index */
	{
		pid_t pid = fork();

		TC_CHECK(pid >= 0, "fork");
		if (pid == 0) {
			shmreg_writer_t *cw;

			if (shmreg_writer_open("attrs", &wo, &cw) < 0)
				_exit(1);
			for (unsigned i = 2; i < 40; i++) {
				random_attrs(&model[i], &rs);
				put_model(cw, i, false);
			}
			_exit(0); /* no close: state stays OPEN */
		}
		int st;

		TC_EQ(waitpid(pid, &st, 0), pid, "waitpid");
		TC_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child");
	}
	/* the child's model changes happened in its copy of the model:
	 * replay them here with the same seed state */
	for (unsigned i = 2; i < 40; i++) {
		random_attrs(&model[i], &rs);
		model[i].live = true;
	}
	TC_EQ(shmreg_writer_open("attrs", &wo, &w), 0, "takeover");
	r = shmreg_writer_reader(w);
	TC_EQ(shmreg_stats(r, &gs1), 0, "stats");
	/* a copy is a new segment: the generation moved (by more than one
	 * when the child's puts also grew the registry) */
	TC_CHECK(gs1.generation > gs0.generation, "recovered by a copy: "
		 "generation %llu after %llu",
		 (unsigned long long)gs1.generation,
		 (unsigned long long)gs0.generation);
	for (unsigned z = 0; z < 4; z++) {
		shmreg_attr_t q = { "zone", zones[z] };

		check_query(r, &q, 1, STEPS + 2);
	}
	for (unsigned i = 0; i < 40; i++)
		check_attrs(r, i);
	shmreg_writer_close(w);
	tc_log("%d steps checked against the model; %lu finds and %lu "
	       "snapshots by the readers", STEPS, finds, snaps);
	return 0;
}
