/* SPDX-License-Identifier: MIT */
/* Description: 10 M put/delete cycles over a fixed key set do not degrade
 * lookups (hit and miss gets of the churned registry against a registry
 * freshly filled with the same contents, in alternating rounds of one
 * process) nor grow the index or the segment without bound, and leave
 * exact contents. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shmreg.h"
#include "shmreg_writer.h"
#include "common/tc.h"

#define NAME      "churn"
#define NRES      1000u        /* resident keys: measured, never deleted */
#define NCHURN    1000u        /* churned keys: a window of half is live */
#define NMISS     1000u        /* never-inserted keys: measured misses */
#define CYCLES    10000000ull  /* put + delete pairs, divided by tc_scale() */
#define GETS      300000u      /* gets per timed run */
#define RUNS      7            /* runs of each registry, alternating */

static shmreg_t *r;

static int res_key(char *b, uint32_t i)
{
	return snprintf(b, 24, "resident:%04u", i);
}

static int churn_key(char *b, uint32_t i)
{
	return snprintf(b, 24, "churn:%04u", i);
}

static int miss_key(char *b, uint32_t i)
{
	return snprintf(b, 24, "missing:%04u", i);
}

/* CPU time of this (single-threaded) process: unlike the wall clock, it
 * does not count the time other tests (ctest -j2 on 2 cores) take the CPU
 * from us, so the before/after comparison compares lookups, not load. */
static uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One run of GETS gets of @rr over a key set, in CPU ns per get. */
static double get_run(shmreg_t *rr, int (*key_fn)(char *, uint32_t),
		      uint32_t nkeys, ssize_t want)
{
	static char keys[NRES][24];
	static uint8_t klen[NRES];
	uint8_t buf[64];
	uint64_t rs = 12345, t0, bad = 0;
	double ns;

	for (uint32_t i = 0; i < nkeys; i++)
		klen[i] = (uint8_t)key_fn(keys[i], i);
	t0 = cpu_ns();
	for (uint32_t n = 0; n < GETS; n++) {
		uint32_t i = (uint32_t)tc_range(&rs, 0, nkeys - 1);
		ssize_t got = shmreg_get(rr, keys[i], klen[i], buf,
					 sizeof(buf), NULL);

		bad += got != want;
	}
	ns = (double)(cpu_ns() - t0) / GETS;
	TC_EQ(bad, 0, "gets with an unexpected result");
	return ns;
}

/*
 * Hit and miss gets of the churned registry and of @fresh (the same
 * contents, put once), RUNS alternating runs each; the best run of each,
 * in *hit and *miss ([0] churned, [1] fresh).  Side by side, because the
 * machine's state moves between two moments of a run (a parallel test on
 * the other CPU once made every run of a later measurement 2.3 times
 * slower than an earlier one), while tombstones would slow the churned
 * registry in every round.
 */
static void rates(shmreg_t *fresh, double hit[2], double miss[2])
{
	shmreg_t *regs[2] = { r, fresh };

	hit[0] = hit[1] = miss[0] = miss[1] = 1e30;
	for (int run = 0; run < RUNS; run++)
		for (int k = 0; k < 2; k++) {
			double h = get_run(regs[k], res_key, NRES, 16);
			double m = get_run(regs[k], miss_key, NMISS, -ENOENT);

			hit[k] = h < hit[k] ? h : hit[k];
			miss[k] = m < miss[k] ? m : miss[k];
		}
}

/* Put the resident keys, and the window of NCHURN/2 churn keys from
 * @first on (mod NCHURN): the contents after @first cycles. */
static void fill(shmreg_writer_t *fw, uint64_t first)
{
	uint8_t val[16];
	char key[24];
	int klen;

	for (uint32_t i = 0; i < NRES; i++) {
		klen = res_key(key, i);
		tv_build(val, 16, key, (size_t)klen, i);
		TC_CHECK(shmreg_writer_put(fw, key, (size_t)klen, val, 16,
					   NULL) > 0, "put %s", key);
	}
	for (uint32_t a = 0; a < NCHURN / 2; a++) {
		uint32_t i = (uint32_t)((first + a) % NCHURN);

		klen = churn_key(key, i);
		tv_build(val, 16, key, (size_t)klen, i);
		TC_CHECK(shmreg_writer_put(fw, key, (size_t)klen, val, 16,
					   NULL) > 0, "put %s", key);
	}
}

/* A registry holding what the churned one holds after @cycles cycles,
 * put in one pass: the reference of rates(). */
static shmreg_writer_t *fill_fresh(uint64_t cycles, shmreg_t **out)
{
	shmreg_writer_opts_t o = { .flags = SHMREG_WRITER_TRUNCATE };
	shmreg_writer_t *fw;

	TC_EQ(shmreg_writer_open(NAME "-fresh", &o, &fw), 0, "fresh writer");
	fill(fw, cycles);
	TC_EQ(shmreg_open(NAME "-fresh", 0, out), 0, "fresh reader");
	return fw;
}

static void check_contents(uint64_t cycles)
{
	uint8_t buf[512];
	char key[24];
	int klen;

	for (uint32_t i = 0; i < NRES; i++) {
		klen = res_key(key, i);
		TC_EQ(shmreg_get(r, key, (size_t)klen, buf, sizeof(buf), NULL),
		      16, key);
		TC_EQ(tv_check(buf, 16, key, (size_t)klen, NULL), 0, key);
	}
	/* after c cycles, churn keys c .. c + NCHURN/2 - 1 (mod NCHURN) are
	 * live */
	for (uint32_t i = 0; i < NCHURN; i++) {
		uint32_t age = (uint32_t)((i + NCHURN - cycles % NCHURN) %
					  NCHURN);
		ssize_t n;

		klen = churn_key(key, i);
		n = shmreg_get(r, key, (size_t)klen, buf, sizeof(buf), NULL);
		if (age < NCHURN / 2) {
			TC_CHECK(n >= (ssize_t)TV_MIN &&
				 tv_check(buf, (size_t)n, key, (size_t)klen,
					  NULL) == 0, "%s: %zd", key, n);
		} else {
			TC_EQ(n, -ENOENT, key);
		}
	}
}

int main(void)
{
	shmreg_writer_opts_t o = { .flags = SHMREG_WRITER_TRUNCATE };
	uint64_t cycles = CYCLES / tc_scale(), rev0, t0;
	double hit[2], miss[2];
	shmreg_stats_t st0, st1, st = { 0 };
	shmreg_writer_t *w, *fw;
	shmreg_t *rf;
	uint8_t val[512];
	char key[24];
	int ret, klen;

	tc_init("churn", 110);
	tc_dir();
	ret = shmreg_writer_open(NAME, &o, &w);
	TC_CHECK(ret == 0, "writer_open: %s", strerror(-ret));
	ret = shmreg_open(NAME, 0, &r);
	TC_CHECK(ret == 0, "shmreg_open: %s", strerror(-ret));

	fill(w, 0);
	TC_EQ(shmreg_stats(r, &st0), 0, "stats");
	rev0 = shmreg_writer_revision(w);

	/*
	 * Cycle c puts churn key (c + NCHURN/2) % NCHURN and deletes key
	 * c % NCHURN: a window of NCHURN/2 live keys slides round the set,
	 * so every slot the churn keys hash to sees inserts and deletes in
	 * turn (the pattern that piles up tombstones in a table that never
	 * reclaims them).  One put in 16 is out of line, so the arena's
	 * free lists churn too.
	 */
	t0 = tc_now_ns();
	for (uint64_t c = 0; c < cycles; c++) {
		uint32_t in = (uint32_t)((c + NCHURN / 2) % NCHURN);
		uint32_t out = (uint32_t)(c % NCHURN);
		size_t len = (c & 15) == 0 ? 300 : 16;
		int64_t rev;

		klen = churn_key(key, in);
		tv_build(val, len, key, (size_t)klen, c);
		rev = shmreg_writer_put(w, key, (size_t)klen, val, len, NULL);
		TC_CHECK(rev == (int64_t)(rev0 + 2 * c + 1), "cycle %llu: put "
			 "%s: %lld", (unsigned long long)c, key,
			 (long long)rev);
		klen = churn_key(key, out);
		rev = shmreg_writer_del(w, key, (size_t)klen);
		TC_CHECK(rev == (int64_t)(rev0 + 2 * c + 2), "cycle %llu: del "
			 "%s: %lld", (unsigned long long)c, key,
			 (long long)rev);
		if (c == cycles / 10) {
			/* after the first tenth: what the rest must not
			 * outgrow */
			TC_EQ(shmreg_stats(r, &st), 0, "stats");
		}
	}
	tc_log("%llu put/del cycles in %.1f s", (unsigned long long)cycles,
	       (double)(tc_now_ns() - t0) / 1e9);

	TC_EQ(shmreg_stats(r, &st1), 0, "stats");
	fw = fill_fresh(cycles, &rf);
	rates(rf, hit, miss);
	tc_log("get hit %.1f ns (freshly filled: %.1f), miss %.1f ns (%.1f)",
	       hit[0], hit[1], miss[0], miss[1]);
	tc_log("index %llu -> %llu -> %llu slots, segment %llu -> %llu -> "
	       "%llu B, generation %llu -> %llu",
	       (unsigned long long)st0.index_capacity,
	       (unsigned long long)st.index_capacity,
	       (unsigned long long)st1.index_capacity,
	       (unsigned long long)st0.segment_bytes,
	       (unsigned long long)st.segment_bytes,
	       (unsigned long long)st1.segment_bytes,
	       (unsigned long long)st0.generation,
	       (unsigned long long)st1.generation);

	/* rates against the freshly filled registry (the same slot count):
	 * a generous floor that noise never reaches but that a table
	 * clogged with tombstones (misses probing the whole table) does */
	shmreg_stats_t fst;

	TC_EQ(shmreg_stats(rf, &fst), 0, "fresh stats");
	TC_EQ(fst.index_capacity, st1.index_capacity, "fresh index slots");
	TC_EQ(fst.entries, st1.entries, "fresh entries");
	TC_CHECK(hit[0] <= 2 * hit[1], "hits: %.1f ns, freshly filled %.1f",
		 hit[0], hit[1]);
	TC_CHECK(miss[0] <= 2 * miss[1],
		 "misses: %.1f ns, freshly filled %.1f", miss[0], miss[1]);
	/* space: the live set never changed size, so neither may the
	 * registry keep growing */
	TC_CHECK(st1.index_capacity <= 2 * st0.index_capacity,
		 "index grew from %llu to %llu slots",
		 (unsigned long long)st0.index_capacity,
		 (unsigned long long)st1.index_capacity);
	TC_CHECK(st1.index_capacity <= st.index_capacity &&
		 st1.segment_bytes <= 2 * st.segment_bytes,
		 "the registry kept growing after the first tenth of the "
		 "churn (index %llu -> %llu, segment %llu -> %llu)",
		 (unsigned long long)st.index_capacity,
		 (unsigned long long)st1.index_capacity,
		 (unsigned long long)st.segment_bytes,
		 (unsigned long long)st1.segment_bytes);
	TC_EQ(st1.entries, NRES + NCHURN / 2, "entries");
	TC_EQ(st1.revision, rev0 + 2 * cycles, "revision");
	check_contents(cycles);

	shmreg_close(rf);
	shmreg_writer_close(fw);
	shmreg_writer_close(w);
	shmreg_close(r);
	tc_log("pass");
	return 0;
}
