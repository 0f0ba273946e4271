/* SPDX-License-Identifier: MIT */
/* Description: shmreg_find against gets in the same run: 1 M entries with
 * attributes, a find on a pair that 10 of them carry, against 10 random
 * gets of entries of the same registry (the data model's target: within
 * 5x), and against the 10-50 us per indexed query that the registry
 * designs shmreg comes from aim at.
 *
 * Usage: bench_find [-n ENTRIES] [-q QUERIES] [-r REPS] [--quick]
 *
 * Method.  One process: an embedded writer fills a pre-sized registry with
 * N entries "key:%012d" (16 B keys, 64 B values), entry i carrying the
 * attributes node=<i mod N/10> and zone=<i mod 4>, so every node value is
 * carried by exactly 10 entries.  Then, rounds interleaved (REPS rounds,
 * median): Q finds of node=V for V drawn at random up front, each result
 * counted and checked (exactly 10 entries, each with the right node), and
 * Q times 10 gets of keys drawn at random up front (pre-laid in access
 * order).  Reported: ns per find, ns per 10 gets, the ratio.  The reader
 * and the writer are the same process: the writer sleeps during the
 * timed loops (nothing is written while they run).
 *
 * Exit 0 when every find returned exactly its 10 entries, 1 otherwise.
 */
#define _GNU_SOURCE
#include "bench_common.h"

#include <getopt.h>
#include <stdio.h>

#include "shmreg.h"
#include "shmreg_writer.h"

#define KLEN 16
#define VLEN 64
#define MATCHES 10
#define MAX_REPS 32

struct counter {
	uint64_t seen, wrong;
	const char *want;
};

static int count(const void *key, size_t klen, const void *val, size_t vlen,
		 const shmreg_info_t *info, void *arg)
{
	struct counter *c = arg;
	uint64_t idx;

	(void)key;
	(void)klen;
	(void)info;
	c->seen++;
	if (vlen != VLEN)
		c->wrong++;
	memcpy(&idx, val, sizeof(idx));
	(void)idx;
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t n = 1000000, queries = 20000, s = 0x9e3779b97f4a7c15ull;
	int reps = 5, quick = 0, o;
	static const struct option lo[] = {
		{ "quick", no_argument, NULL, 'k' }, { 0 } };
	char dir[4096], path[4200];
	shmreg_writer_t *w;
	shmreg_t *r;
	double fns[MAX_REPS], gns[MAX_REPS], ratio[MAX_REPS];
	uint64_t bad = 0;

	while ((o = getopt_long(argc, argv, "n:q:r:", lo, NULL)) != -1) {
		switch (o) {
		case 'n': n = strtoull(optarg, NULL, 0); break;
		case 'q': queries = strtoull(optarg, NULL, 0); break;
		case 'r': reps = atoi(optarg); break;
		case 'k': quick = 1; n = 20000; queries = 2000; reps = 2;
			break;
		default:
			fprintf(stderr, "usage: %s [-n N] [-q Q] [-r R] "
				"[--quick]\n", argv[0]);
			return 2;
		}
	}
	if (n < 10 * MATCHES || reps < 1 || reps > MAX_REPS || !queries)
		return 2;
	if (bench_mkdir(dir, sizeof(dir), "find") < 0)
		return 1;
	snprintf(path, sizeof(path), "%s/shmreg.find", dir);
	shmreg_writer_opts_t wo = { .flags = SHMREG_WRITER_TRUNCATE,
				    .initial_entries = n,
				    .initial_arena = n * 256 };
	if (shmreg_writer_open(path, &wo, &w) < 0 ||
	    shmreg_open(path, 0, &r) < 0) {
		fprintf(stderr, "bench_find: cannot open %s\n", path);
		return 1;
	}

	uint64_t groups = n / MATCHES, t0 = bench_now_ns();
	char key[32], node[32], zone[8];
	uint64_t v[8] = { 0 };

	for (uint64_t i = 0; i < n; i++) {
		shmreg_attr_t at[2] = { { "node", node }, { "zone", zone } };
		shmreg_put_opts_t po = { .attrs = at, .nattrs = 2 };
		int64_t rev;

		snprintf(key, sizeof(key), "key:%012llu", (unsigned long long)i);
		snprintf(node, sizeof(node), "n%llu",
			 (unsigned long long)(i % groups));
		snprintf(zone, sizeof(zone), "z%llu", (unsigned long long)(i % 4));
		v[0] = i;
		rev = shmreg_writer_put(w, key, KLEN, v, VLEN, &po);
		if (rev <= 0) {
			fprintf(stderr, "bench_find: put %s: %s\n", key,
				strerror((int)-rev));
			return 1;
		}
	}
	printf("bench_find: %llu entries with 2 attributes each (%.2f s to "
	       "load), %llu queries per round, median of %d rounds\n",
	       (unsigned long long)n, (double)(bench_now_ns() - t0) / 1e9,
	       (unsigned long long)queries, reps);

	/* what the timed loops read, drawn up front */
	char (*nodes)[32] = malloc(queries * sizeof(*nodes));
	char (*keys)[KLEN] = malloc(queries * MATCHES * KLEN);

	if (!nodes || !keys)
		return 1;
	for (uint64_t q = 0; q < queries; q++) {
		snprintf(nodes[q], sizeof(nodes[q]), "n%llu",
			 (unsigned long long)(bench_rand(&s) % groups));
		for (int k = 0; k < MATCHES; k++) {
			char kb[32];

			snprintf(kb, sizeof(kb), "key:%012llu",
				 (unsigned long long)(bench_rand(&s) % n));
			memcpy(keys[q * MATCHES + k], kb, KLEN);
		}
	}
	for (int rep = -1; rep < reps; rep++) { /* -1: the warm-up round */
		uint64_t f0, f1, g1, got = 0;

		f0 = bench_now_ns();
		for (uint64_t q = 0; q < queries; q++) {
			shmreg_attr_t m = { "node", nodes[q] };
			struct counter c = { 0 };
			ssize_t k = shmreg_find(r, &m, 1, count, &c);

			if (k != MATCHES || c.seen != MATCHES || c.wrong)
				bad++;
		}
		f1 = bench_now_ns();
		for (uint64_t j = 0; j < queries * MATCHES; j++) {
			uint64_t val[8];

			if (shmreg_get(r, keys[j], KLEN, val, VLEN, NULL) ==
			    VLEN)
				got++;
		}
		g1 = bench_now_ns();
		if (got != queries * MATCHES)
			bad++;
		if (rep < 0)
			continue;
		fns[rep] = (double)(f1 - f0) / (double)queries;
		gns[rep] = (double)(g1 - f1) / (double)queries;
		ratio[rep] = fns[rep] / gns[rep];
	}
	double f = bench_median(fns, reps), g = bench_median(gns, reps);
	double q = bench_median(ratio, reps);

	bench_table_head("find (the data-model issue)");
	bench_rowf("find, a pair carried by 10 of the entries (ns)", f, "%.0f",
		   "10-50 us (the designs shmreg comes from)", f <= 50000);
	bench_rowf("10 random gets of the same registry (ns)", g, "%.0f", "",
		   -1);
	bench_rowf("  find / 10 gets (median of rounds)", q, "%.2fx",
		   "within 5x", q <= 5);
	bench_rowf("wrong answers", (double)bad, "%.0f", "0", bad == 0);
	printf("# key: %.1f\n", f);
	if (quick)
		printf("(--quick: the figures mean nothing)\n");

	shmreg_close(r);
	shmreg_writer_close(w);
	bench_rmtree(dir);
	free(nodes);
	free(keys);
	return bad ? 1 : 0;
}
