/* Description: the attribute index, trees and snapshots between threads
 * (for ThreadSanitizer): a writer thread churns attributes, values and
 * parents while reader threads run shmreg_find, shmreg_children,
 * shmreg_get_attrs and snapshots on the same registry; every find result
 * must carry the pairs asked for, every child name its parent, and every
 * validated snapshot agree between value and attributes.  Sized so that
 * no handoff happens while the threads run: a reader thread following a
 * handoff overlays the old mapping with zero pages under the others'
 * reads (reader/map.c), which ThreadSanitizer reports as a race by
 * design; handoffs are covered by the multi-process suites. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "shmreg.h"
#include "shmreg_writer.h"
#include "common/tc.h"

#define NKEYS    64
#define NREADERS 2
#define STEPS    4000

static _Atomic int stop;
static _Atomic unsigned long finds, kids, snaps, bad;
static shmreg_t *rd;

static const char *const colours[] = { "red", "green", "blue" };

/* The value names its colour and parent: "c=<colour>;p=<parent>;" */
static int check_find(const void *key, size_t klen, const void *val,
		      size_t vlen, const shmreg_info_t *info, void *arg)
{
	char want[32];
	size_t n = (size_t)snprintf(want, sizeof(want), "c=%s;",
				    (const char *)arg);

	(void)key;
	(void)klen;
	(void)info;
	if (vlen < n || memcmp(val, want, n) != 0)
		atomic_fetch_add(&bad, 1);
	return 0;
}

static int check_child(const void *key, size_t klen, const void *val,
		       size_t vlen, const shmreg_info_t *info, void *arg)
{
	const char *p = arg;
	const char *v = val;
	const char *at = memchr(v, 'p', vlen);
	size_t pl = strlen(p);

	(void)key;
	(void)klen;
	(void)info;
	if (!at || (size_t)(v + vlen - at) < pl + 3 ||
	    memcmp(at + 2, p, pl) != 0 || at[2 + pl] != ';')
		atomic_fetch_add(&bad, 1);
	return 0;
}

static void *reader(void *arg)
{
	uint64_t rs = tc_seed() + (uintptr_t)arg;

	while (!atomic_load(&stop)) {
		const char *c = colours[tc_range(&rs, 0, 2)];
		shmreg_attr_t q = { "colour", c };
		char k[16], v[64], a[256];
		ssize_t vl, al;
		uint64_t tok;

		if (shmreg_find(rd, &q, 1, check_find, (void *)c) >= 0)
			atomic_fetch_add(&finds, 1);
		snprintf(k, sizeof(k), "k%02u", (unsigned)tc_range(&rs, 0, 7));
		if (shmreg_children(rd, k, strlen(k), check_child, k) >= 0)
			atomic_fetch_add(&kids, 1);
		snprintf(k, sizeof(k), "k%02u",
			 (unsigned)tc_range(&rs, 0, NKEYS - 1));
		tok = shmreg_read_begin(rd);
		vl = shmreg_get(rd, k, strlen(k), v, sizeof(v), NULL);
		al = shmreg_get_attrs(rd, k, strlen(k), a, sizeof(a));
		if (shmreg_read_validate(rd, tok) == 0) {
			atomic_fetch_add(&snaps, 1);
			if (vl >= 0 && al > 0) {
				/* "colour\0<c>\0": the value's c=<c>; */
				const char *col = a + 7;
				size_t cl = strlen(col);

				if ((size_t)vl < cl + 3 ||
				    memcmp(v + 2, col, cl) != 0)
					atomic_fetch_add(&bad, 1);
			} else if ((vl >= 0) != (al >= 0)) {
				atomic_fetch_add(&bad, 1);
			}
		}
	}
	return NULL;
}

int main(void)
{
	shmreg_writer_opts_t wo = { .flags = SHMREG_WRITER_TRUNCATE,
				    .initial_entries = 4 * NKEYS,
				    .initial_arena = 1 << 24 };
	shmreg_stats_t st0, st1;
	pthread_t th[NREADERS];
	shmreg_writer_t *w;
	uint64_t rs;

	tc_init("attr_threads", 120);
	tc_dir();
	rs = tc_seed();
	TC_EQ(shmreg_writer_open("threads", &wo, &w), 0, "writer open");
	/* eight roots, each entry's parent one of them (or none) */
	for (unsigned i = 0; i < 8; i++) {
		char k[16];

		snprintf(k, sizeof(k), "k%02u", i);
		TC_CHECK(shmreg_writer_put(w, k, strlen(k), "c=none;p=;", 10,
					   NULL) > 0, "root");
	}
	/* every pair once (3 colours, 8 parents), so the attribute index
	 * has grown to its size before the threads start */
	for (unsigned i = 0; i < 24; i++) {
		char k[16], p[16];
		shmreg_attr_t a = { "colour", colours[i % 3] };
		shmreg_put_opts_t o = { .attrs = &a, .nattrs = 1,
					.parent = p, .parent_len = 3 };

		char v[32];
		int vl;

		snprintf(k, sizeof(k), "k%02u", 8 + i);
		snprintf(p, sizeof(p), "k%02u", i % 8);
		vl = snprintf(v, sizeof(v), "c=%s;p=%s;", colours[i % 3], p);
		TC_CHECK(shmreg_writer_put(w, k, strlen(k), v, (size_t)vl,
					   &o) > 0, "warm-up");
	}
	TC_EQ(shmreg_open("threads", 0, &rd), 0, "reader open");
	TC_EQ(shmreg_stats(rd, &st0), 0, "stats");
	for (uintptr_t i = 0; i < NREADERS; i++)
		TC_EQ(pthread_create(&th[i], NULL, reader, (void *)i), 0,
		      "thread");
	/* at least STEPS changes, and on until the readers have read a
	 * while (at most 10 s) */
	uint64_t t0 = tc_now_ns();

	for (int s = 0; s < STEPS || ((atomic_load(&finds) < 1000 ||
				       atomic_load(&snaps) < 1000) &&
				      tc_now_ns() - t0 < UINT64_C(10000000000));
	     s++) {
		unsigned i = (unsigned)tc_range(&rs, 8, NKEYS - 1);
		const char *c = colours[tc_range(&rs, 0, 2)];
		char k[16], p[16], v[64];
		shmreg_attr_t a = { "colour", c };
		shmreg_put_opts_t o = { .attrs = &a, .nattrs = 1 };
		int vl;

		snprintf(k, sizeof(k), "k%02u", i);
		snprintf(p, sizeof(p), "k%02u", (unsigned)tc_range(&rs, 0, 7));
		if (tc_range(&rs, 0, 4) == 0) {
			int64_t r = shmreg_writer_del(w, k, strlen(k));

			TC_CHECK(r > 0 || r == -ENOENT, "del: %lld",
				 (long long)r);
			continue;
		}
		o.parent = p;
		o.parent_len = strlen(p);
		vl = snprintf(v, sizeof(v), "c=%s;p=%s;%.*s", c, p,
			      (int)tc_range(&rs, 0, 40),
			      "........................................");
		TC_CHECK(shmreg_writer_put(w, k, strlen(k), v, (size_t)vl,
					   &o) > 0, "put");
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < NREADERS; i++)
		pthread_join(th[i], NULL);
	TC_EQ(shmreg_stats(rd, &st1), 0, "stats");
	TC_EQ(st1.generation, st0.generation, "no handoff during the run");
	tc_log("%lu finds, %lu children lists, %lu snapshots, %lu bad",
	       finds, kids, snaps, bad);
	TC_EQ(bad, 0, "inconsistent answers");
	TC_CHECK(finds >= 100 && snaps >= 100, "too few reads");
	shmreg_close(rd);
	shmreg_writer_close(w);
	return 0;
}
