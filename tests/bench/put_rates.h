/* SPDX-License-Identifier: MIT */
/*
 * put_rates.h - bench_get's writer-side figures: embedded puts against the
 * bare seqcount table's writer (bare_table.h), growth, and takeover of a
 * cleanly closed registry.  Runs in bench_get's writer process, on its
 * CPU; included by bench_get.c only (static functions, one program).
 *
 * Method.  Every pair is measured in the same process, rounds interleaved
 * (shmreg, bare, shmreg, bare, ...), each ratio is the median of the
 * rounds' ratios:
 *  - insert, pre-sized: N new keys into a fresh registry created with
 *    initial_entries = N (no handoff), and into a fresh bare table of the
 *    same slot count;
 *  - replace: N puts of random existing keys into the two tables just
 *    filled: one random order drawn up front, the same for both, its keys
 *    pre-laid in access order (read sequentially, as the gets read theirs,
 *    so that neither side pays a cache miss for fetching its key); each
 *    pass starts from bench_sweep_caches(), so that neither table starts
 *    warmer for the pass before it;
 *  - grow: N new keys into a fresh registry with the default options (it
 *    grows by handoffs from 1,024 slots), in each directory given (tmpfs
 *    on 4 KiB pages, and on 2 MiB pages when bench_get could mount one),
 *    after one untimed round in each: growth writes twice the final
 *    segment's size into fresh tmpfs pages, and on a virtual machine the
 *    first touch of guest memory the host has not backed yet costs ten
 *    times what the same pages cost once backed (measured here: 1.0 s
 *    against 0.024 s for 256 MiB on 2 MiB pages) - a cost of the VM's
 *    first minutes, not of the registry.  And just before each timed
 *    round, bench_back_memory(GROW_BACKED_BYTES) touches and frees 1 GiB
 *    (more than a growth to N writes), because the balloon of this VM
 *    hands memory freed a few seconds earlier back to the host, and the
 *    untimed round's pages had gone back by the time the timed one ran
 *    (bench_common.h has the measurements).  The writer process may use
 *    every CPU meanwhile (the reader is idle during the put figures): the
 *    writer's helper thread, which prepares the next segment while the
 *    writer puts (writer/prepare.c), inherits the affinity of the thread
 *    that starts it, and pinned to the writer's CPU it could only take
 *    turns with it.  The writer thread's own CPU time is reported beside
 *    the rate (a figure the machine's other load disturbs less);
 *  - the bare writer again with 160 register additions after each put
 *    (15-20 ns of work on their own): a loop of puts is a throughput
 *    figure, the CPU overlapping the cache misses of consecutive puts as
 *    far as its reorder window reaches, and a put's own instructions
 *    (shmreg's journal, ring record, revision, wake-up check) shrink that
 *    reach; this row shows by how much, with nothing but filler;
 *  - takeover: shmreg_writer_open of a cleanly closed registry of 1,000
 *    and of N entries (median of TAKEOVER_REPS opens, each closed again),
 *    and open + put + close of the 1,000-entry one.
 */
#ifndef PUT_RATES_H
#define PUT_RATES_H

#include "bare_table.h"

#define TAKEOVER_REPS 9
#define GROW_BACKED_BYTES (1ul << 30)
#define TAKEOVER_SMALL 1000

struct put_figures {
	int64_t err;
	int reps;
	double ins[MAX_REPS], bare_ins[MAX_REPS];   /* ns per put */
	double rep[MAX_REPS], bare_rep[MAX_REPS];
	double bare_pad[MAX_REPS];                  /* bare + 160 adds */
	double ins_h[MAX_REPS], bare_ins_h[MAX_REPS]; /* 2 MiB pages; */
	double rep_h[MAX_REPS], bare_rep_h[MAX_REPS]; /* 0: not measured */
	double grow[MAX_REPS];                      /* ns per put */
	double grow_huge[MAX_REPS];                 /* 0: not measured */
	double grow_cpu[MAX_REPS];                  /* writer thread, ms */
	double grow_huge_cpu[MAX_REPS];
	double take_small, take_big;                /* ns per open */
	double open_put_close;                      /* ns, 1,000 entries */
	uint64_t slots;                             /* of the pre-sized one */
	shmreg_stats_t grown;                       /* grown from defaults */
};

static double ns_per(uint64_t t0, uint64_t t1, uint64_t ops)
{
	return ops ? (double)(t1 - t0) / (double)ops : 0;
}

/* The value of a timed put: the key's index and a generation in the
 * first two words.  Two stores, the same for shmreg and the bare writer:
 * work in the loop body besides the put itself takes reorder-window slots
 * from the bare writer's overlap of misses (see the padded row), so a
 * costlier value (bench_get's val_of, eight mixed words) would flatter
 * the ratio.  The put figures never read these values back. */
static inline void put_val(uint64_t v[8], uint64_t i, uint64_t gen)
{
	v[0] = i;
	v[1] = gen;
}

/* N puts of keys[j] (@order NULL), or of seq[j], the key of order[j]. */
static int64_t put_keys(shmreg_writer_t *w, const key_t16 *keys,
			const uint32_t *order, uint64_t n, uint64_t gen)
{
	uint64_t v[8] = { 0 };

	for (uint64_t j = 0; j < n; j++) {
		uint64_t i = order ? order[j] : j;
		int64_t rev;

		put_val(v, i, gen);
		rev = shmreg_writer_put(w, keys[j], KLEN, v, VLEN, NULL);
		if (rev <= 0)
			return rev ? rev : -EPROTO;
	}
	return 0;
}

/* 160 register additions in four independent chains: ROB entries with
 * nothing behind them. */
#define PAD4 "add $1, %0\n\tadd $1, %1\n\tadd $1, %2\n\tadd $1, %3\n\t"
#define PAD40 PAD4 PAD4 PAD4 PAD4 PAD4 PAD4 PAD4 PAD4 PAD4 PAD4
static inline void pad160(void)
{
#if defined(__x86_64__)
	uint64_t a = 0, b = 0, c = 0, d = 0;

	__asm__ volatile(PAD40 PAD40 PAD40 PAD40
			 : "+r"(a), "+r"(b), "+r"(c), "+r"(d));
#endif
}

/* The same with the bare writer (@pad: and 160 additions after each). */
static void bare_keys(struct bare_table *t, const key_t16 *keys,
		      const uint32_t *order, uint64_t n, uint64_t gen,
		      int pad)
{
	uint64_t v[8] = { 0 };

	for (uint64_t j = 0; j < n; j++) {
		uint64_t i = order ? order[j] : j;

		put_val(v, i, gen);
		bare_put(t, keys[j], KLEN, v, VLEN);
		if (pad)
			pad160();
	}
}

static double thread_cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* A fresh registry at @path with @initial entries pre-sized (0: the
 * defaults), its N puts timed into *@ns (and the thread's CPU time in
 * *@cpu_ms when not NULL). */
static int64_t fresh_load(const char *path, uint64_t initial,
			  const key_t16 *keys, uint64_t n,
			  shmreg_writer_t **out, double *ns, double *cpu_ms)
{
	shmreg_writer_opts_t o = { .flags = SHMREG_WRITER_TRUNCATE,
				   .initial_entries = initial };
	double c0;
	uint64_t t0;
	int64_t rc;

	rm_registry(path);
	rc = shmreg_writer_open(path, &o, out);
	if (rc < 0)
		return rc;
	c0 = thread_cpu_ms();
	t0 = bench_now_ns();
	rc = put_keys(*out, keys, NULL, n, 0);
	*ns = ns_per(t0, bench_now_ns(), n);
	if (cpu_ms)
		*cpu_ms = thread_cpu_ms() - c0;
	return rc;
}

/* Growth from the defaults (see the top of this file), with the process
 * free to use every CPU meanwhile. */
static int64_t grow_load(const char *path, const key_t16 *keys, uint64_t n,
			 shmreg_writer_t **out, double *ns, double *cpu_ms)
{
	cpu_set_t pinned, all;
	int64_t rc;

	CPU_ZERO(&all);
	for (int c = 0; c < CPU_SETSIZE; c++)
		CPU_SET(c, &all);
	/* the kernel keeps only the CPUs the process may use */
	if (sched_getaffinity(0, sizeof(pinned), &pinned) < 0 ||
	    sched_setaffinity(0, sizeof(all), &all) < 0)
		return -errno;
	rc = fresh_load(path, 0, keys, n, out, ns, cpu_ms);
	if (sched_setaffinity(0, sizeof(pinned), &pinned) < 0 && !rc)
		rc = -errno;
	return rc;
}

/* Median ns of TAKEOVER_REPS opens of the closed registry at @path (each
 * closed again at once). */
static int64_t takeover_ns(const char *path, double *ns)
{
	double t[TAKEOVER_REPS];

	for (int k = 0; k < TAKEOVER_REPS; k++) {
		shmreg_writer_t *w;
		uint64_t t0 = bench_now_ns();
		int rc = shmreg_writer_open(path, NULL, &w);

		t[k] = (double)(bench_now_ns() - t0);
		if (rc < 0)
			return rc;
		shmreg_writer_close(w);
	}
	*ns = bench_median(t, TAKEOVER_REPS);
	return 0;
}

static int64_t open_put_close_ns(const char *path, const key_t16 *keys,
				 double *ns)
{
	double t[TAKEOVER_REPS];
	uint64_t v[8];

	for (int k = 0; k < TAKEOVER_REPS; k++) {
		shmreg_writer_t *w;
		uint64_t t0 = bench_now_ns();
		int64_t rc = shmreg_writer_open(path, NULL, &w);

		if (rc < 0)
			return rc;
		val_of(0, (uint64_t)k + 1, v);
		rc = shmreg_writer_put(w, keys[0], KLEN, v, VLEN, NULL);
		shmreg_writer_close(w);
		t[k] = (double)(bench_now_ns() - t0);
		if (rc <= 0)
			return rc ? rc : -EPROTO;
	}
	*ns = bench_median(t, TAKEOVER_REPS);
	return 0;
}

/*
 * One round of the paired figures in @dir: N inserts into a fresh
 * pre-sized registry and into a bare table of its slot count, then N
 * replacing puts in the order @order into each.  The registry is left
 * open in *@w (the caller times its takeover).
 */
static int64_t pair_round(const char *dir, const key_t16 *keys,
			  const key_t16 *seq, const uint32_t *order, uint64_t n,
			  int r,
			  shmreg_writer_t **w, uint64_t *slots, double *ins,
			  double *bare_ins, double *rep, double *bare_rep,
			  double *bare_pad)
{
	char path[4200], bpath[4200];
	struct bare_table bt = { 0 };
	shmreg_stats_t st;
	uint64_t t0;
	int64_t err;

	snprintf(path, sizeof(path), "%s/shmreg.put", dir);
	snprintf(bpath, sizeof(bpath), "%s/bare.put", dir);
	err = fresh_load(path, n, keys, n, w, ins, NULL);
	if (err)
		return err;
	shmreg_stats(shmreg_writer_reader(*w), &st);
	*slots = st.index_capacity;
	err = bare_create(&bt, bpath, st.index_capacity);
	if (err)
		return err;
	t0 = bench_now_ns();
	bare_keys(&bt, keys, NULL, n, 0, 0);
	*bare_ins = ns_per(t0, bench_now_ns(), n);

	bench_sweep_caches();
	t0 = bench_now_ns();
	err = put_keys(*w, seq, order, n, (uint64_t)r + 1);
	*rep = ns_per(t0, bench_now_ns(), n);
	bench_sweep_caches();
	t0 = bench_now_ns();
	bare_keys(&bt, seq, order, n, (uint64_t)r + 1, 0);
	*bare_rep = ns_per(t0, bench_now_ns(), n);
	if (bare_pad) {
		bench_sweep_caches();
		t0 = bench_now_ns();
		bare_keys(&bt, seq, order, n, (uint64_t)r + 2, 1);
		*bare_pad = ns_per(t0, bench_now_ns(), n);
	}
	bare_close(&bt);
	unlink(bpath);
	return err;
}

/*
 * All of the above, in @dir (and on 2 MiB pages in @hdir when not NULL).
 * @order: N key indexes for the replacing puts, @seq their keys.
 */
static void put_rates(const char *dir, const char *hdir, uint64_t n,
		      int reps, const key_t16 *keys, const key_t16 *seq,
		      const uint32_t *order, struct put_figures *pf)
{
	char path[4200];
	shmreg_writer_t *w = NULL;
	double ns;

	pf->reps = reps;
	snprintf(path, sizeof(path), "%s/shmreg.put", dir);
	/* the untimed growth rounds (see the top of this file) */
	for (int k = 0; k < 2 && !pf->err; k++) {
		char wpath[4200];

		if (k && !hdir)
			break;
		snprintf(wpath, sizeof(wpath), "%s/shmreg.put", k ? hdir : dir);
		pf->err = grow_load(wpath, keys, n, &w, &ns, NULL);
		shmreg_writer_close(w);
		rm_registry(wpath);
	}
	for (int r = 0; r < reps && !pf->err; r++) {
		pf->err = pair_round(dir, keys, seq, order, n, r, &w,
				     &pf->slots,
				     &pf->ins[r], &pf->bare_ins[r], &pf->rep[r],
				     &pf->bare_rep[r], &pf->bare_pad[r]);
		if (pf->err)
			break;
		shmreg_writer_close(w);
		if (r == reps - 1 && !pf->err)
			pf->err = takeover_ns(path, &pf->take_big);
		rm_registry(path);
		if (pf->err)
			break;

		pf->err = bench_back_memory(GROW_BACKED_BYTES);
		if (!pf->err)
			pf->err = grow_load(path, keys, n, &w, &pf->grow[r],
					    &pf->grow_cpu[r]);
		if (!pf->err && r == reps - 1)
			shmreg_stats(shmreg_writer_reader(w), &pf->grown);
		shmreg_writer_close(w);
		rm_registry(path);
		if (hdir && !pf->err) {
			char hpath[4200];
			uint64_t slots;

			snprintf(hpath, sizeof(hpath), "%s/shmreg.put",
				 hdir);
			pf->err = bench_back_memory(GROW_BACKED_BYTES);
			if (!pf->err)
				pf->err = grow_load(hpath, keys, n, &w,
						    &pf->grow_huge[r],
						    &pf->grow_huge_cpu[r]);
			shmreg_writer_close(w);
			rm_registry(hpath);
			if (!pf->err)
				pf->err = pair_round(hdir, keys, seq, order, n,
						     r,
						     &w, &slots, &pf->ins_h[r],
						     &pf->bare_ins_h[r],
						     &pf->rep_h[r],
						     &pf->bare_rep_h[r], NULL);
			if (!pf->err) {
				shmreg_writer_close(w);
				rm_registry(hpath);
			}
		}
	}
	if (pf->err)
		return;
	/* takeover and open + put + close of a small registry */
	pf->err = fresh_load(path, 0, keys, n < TAKEOVER_SMALL ? n
							      : TAKEOVER_SMALL,
			     &w, &ns, NULL);
	shmreg_writer_close(w);
	if (!pf->err)
		pf->err = takeover_ns(path, &pf->take_small);
	if (!pf->err)
		pf->err = open_put_close_ns(path, keys, &pf->open_put_close);
	rm_registry(path);
}

/* Median over the rounds of a / b, the rounds paired. */
static double median_ratio(const double *a, const double *b, int reps)
{
	double q[MAX_REPS];

	for (int r = 0; r < reps; r++)
		q[r] = b[r] > 0 ? a[r] / b[r] : 0;
	return bench_median(q, reps);
}

static void put_rows(const struct put_figures *pf, uint64_t n)
{
	double ins = bench_median((double *)pf->ins, pf->reps);
	double rep = bench_median((double *)pf->rep, pf->reps);
	double grow = bench_median((double *)pf->grow, pf->reps);
	double rq = median_ratio(pf->rep, pf->bare_rep, pf->reps);
	char msg[96];

	snprintf(msg, sizeof(msg), "bare seqcount table: %llu slots, load "
		 "%.2f", (unsigned long long)pf->slots,
		 pf->slots ? (double)n / (double)pf->slots : 0);
	bench_row("put: reference", msg, "", -1);
	bench_rowf("replace, random existing keys (ns/put)", rep, "%.1f", "",
		   -1);
	bench_rowf("  bare writer, same keys and order (ns/put)",
		   bench_median((double *)pf->bare_rep, pf->reps), "%.1f", "",
		   -1);
	bench_rowf("  replace / bare (median of rounds)", rq, "%.2fx",
		   "<= 2.5x", rq <= 2.5);
	bench_rowf("  bare writer + 160 register adds per put (ns/put)",
		   bench_median((double *)pf->bare_pad, pf->reps), "%.1f",
		   "(the overlap of misses)", -1);
	bench_rowf("insert, pre-sized registry (M puts/s)", 1e3 / ins, "%.2f",
		   ">= 3 M/s", 1e3 / ins >= 3);
	bench_rowf("  insert / bare insert (median of rounds)",
		   median_ratio(pf->ins, pf->bare_ins, pf->reps), "%.2fx", "",
		   -1);
	bench_rowf("insert, growing from the defaults, 4 KiB pages (M/s)",
		   1e3 / grow, "%.2f", ">= 1.5 M/s", 1e3 / grow >= 1.5);
	bench_rowf("  writer thread CPU for the growth (ms)",
		   bench_median((double *)pf->grow_cpu, pf->reps), "%.0f", "",
		   -1);
	if (pf->grow_huge[0] > 0) {
		double gh = bench_median((double *)pf->grow_huge, pf->reps);
		double ih = bench_median((double *)pf->ins_h, pf->reps);
		double rh = median_ratio(pf->rep_h, pf->bare_rep_h, pf->reps);

		bench_rowf("insert, growing, tmpfs on 2 MiB pages (M/s)",
			   1e3 / gh, "%.2f", ">= 1.5 M/s", 1e3 / gh >= 1.5);
		bench_rowf("  writer thread CPU for the growth (ms)",
			   bench_median((double *)pf->grow_huge_cpu, pf->reps),
			   "%.0f", "", -1);
		bench_rowf("replace, 2 MiB pages (ns/put)",
			   bench_median((double *)pf->rep_h, pf->reps), "%.1f",
			   "", -1);
		bench_rowf("  bare writer, 2 MiB pages (ns/put)",
			   bench_median((double *)pf->bare_rep_h, pf->reps),
			   "%.1f", "", -1);
		bench_rowf("  replace / bare, 2 MiB pages", rh, "%.2fx",
			   "<= 2.5x", rh <= 2.5);
		bench_rowf("insert, pre-sized, 2 MiB pages (M puts/s)", 1e3 / ih,
			   "%.2f", ">= 3 M/s", 1e3 / ih >= 3);
	}
	bench_rowf("takeover of a closed registry, 1,000 entries (ms)",
		   pf->take_small / 1e6, "%.3f", "", -1);
	snprintf(msg, sizeof(msg), "takeover of a closed registry, %llu "
		 "entries (ms)", (unsigned long long)n);
	bench_rowf(msg, pf->take_big / 1e6, "%.3f", "", -1);
	bench_rowf("  large / small", pf->take_big / pf->take_small, "%.2fx",
		   "<= 3x", pf->take_big <= 3 * pf->take_small);
	bench_rowf("open + put + close, 1,000 entries (ms)",
		   pf->open_put_close / 1e6, "%.3f", "well under 1 ms",
		   pf->open_put_close < 1e6);
}

#endif /* PUT_RATES_H */
