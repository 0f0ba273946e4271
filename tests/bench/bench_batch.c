/* SPDX-License-Identifier: MIT */
/*
 * bench_batch.c - atomic batches through shmregd against the same puts
 * sent one by one, pipelined, in the same run: commits per second and
 * operations per second for batches of 10 and 100 puts (one batch in
 * flight: shmreg_batch_commit waits for its answer; 1000 too, to show
 * where the per-batch round trip stops mattering), and for single puts
 * at the daemon's full pipelining depth (each put its own commit); and,
 * for the round trip a batch pays, single synchronous puts.
 *
 * Every configuration runs RUNS times, interleaved (batch 10, batch 100,
 * pipelined, batch 10, ...) so that a load spike on this shared machine
 * hits them alike; the figures are the medians.  Pinning as bench_daemon:
 * shmregd on the second allowed CPU, the client on the first.
 *
 * Usage: bench_batch [--quick] [--shmregd PATH]
 */
#include <errno.h>
#include <signal.h>

#include "bench_common.h"
#include "bench_shmregd.h"
#include "shmreg.h"

#define KEY_LEN 16
#define VAL_LEN 64
#define NKEYS   100000
#define RUNS    5

static int quick;
static int failed;
static struct bench_shmregd srv;

/* key @i of the NKEYS the benchmark cycles through */
static void key_of(char *k, uint64_t i)
{
	bench_key(k, i % NKEYS);
}

static void val_of(char *v, uint64_t i)
{
	bench_value(v, VAL_LEN, i);
}

/* @n puts in batches of @size: seconds taken.  Each commit must return
 * the revision its last put got: the one before plus @size. */
static double batches(shmreg_client_t *c, uint64_t n, unsigned size)
{
	char k[KEY_LEN], v[VAL_LEN];
	int64_t prev = shmreg_ping(c);
	uint64_t t0 = bench_now_ns();

	for (uint64_t i = 0; i < n; i += size) {
		shmreg_batch_t *b;
		uint32_t bad;
		int64_t rev;

		if (shmreg_batch_begin(c, &b) < 0)
			exit(1);
		for (unsigned j = 0; j < size; j++) {
			key_of(k, i + j);
			val_of(v, i + j);
			if (shmreg_batch_put(b, k, KEY_LEN, v, VAL_LEN, NULL))
				exit(1);
		}
		rev = shmreg_batch_commit(b, &bad);
		if (rev != prev + size) {
			fprintf(stderr, "bench_batch: commit: %lld after %lld\n",
				(long long)rev, (long long)prev);
			failed = 1;
			return 1;
		}
		prev = rev;
	}
	return (double)(bench_now_ns() - t0) / 1e9;
}

/* @n single puts, each waiting for its answer: seconds taken. */
static double synchronous(shmreg_client_t *c, uint64_t n)
{
	char k[KEY_LEN], v[VAL_LEN];
	uint64_t t0 = bench_now_ns();

	for (uint64_t i = 0; i < n; i++) {
		key_of(k, i);
		val_of(v, i);
		if (shmreg_put(c, k, KEY_LEN, v, VAL_LEN, NULL) <= 0)
			failed = 1;
	}
	return (double)(bench_now_ns() - t0) / 1e9;
}

/* @n single puts with the daemon's depth in flight: seconds taken. */
static double pipelined(shmreg_client_t *c, uint64_t n)
{
	shmreg_completion_t cq[256];
	char k[KEY_LEN], v[VAL_LEN];
	uint64_t out = 0, depth = shmreg_client_depth(c);
	uint64_t t0 = bench_now_ns();

	for (uint64_t i = 0; i < n || out; ) {
		if (i < n && out < depth) {
			key_of(k, i);
			val_of(v, i);
			if (shmreg_put_async(c, k, KEY_LEN, v, VAL_LEN,
					     NULL) <= 0)
				exit(1);
			out++;
			i++;
			continue;
		}
		int got = shmreg_client_wait(c, cq, 256, -1);

		if (got <= 0)
			exit(1);
		for (int j = 0; j < got; j++)
			if (cq[j].result <= 0)
				failed = 1;
		out -= (uint64_t)got;
	}
	return (double)(bench_now_ns() - t0) / 1e9;
}

int main(int argc, char **argv)
{
	const char *bin = NULL;
	char dir[PATH_MAX], b[64];
	double b10[RUNS], b100[RUNS], b1000[RUNS], pipe_[RUNS], sync_[RUNS];
	double m10, m100, m1000, mp, ms;
	uint64_t n = 200000;
	shmreg_client_t *c;
	int cli_cpu, srv_cpu, runs = RUNS;
	double load[3] = { 0 };

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			quick = 1;
		else if (!strcmp(argv[i], "--shmregd") && i + 1 < argc)
			bin = argv[++i];
		else {
			fprintf(stderr, "usage: bench_batch [--quick] "
				"[--shmregd PATH]\n");
			return 2;
		}
	}
	if (quick) {
		n = 2000;
		runs = 1;
	}
	bin = bench_find_shmregd(bin);
	cli_cpu = bench_cpu(0);
	srv_cpu = bench_ncpus() > 1 ? bench_cpu(1) : cli_cpu;
	if (bench_mkdir(dir, sizeof(dir), "batch") < 0) {
		perror("mkdtemp");
		return 1;
	}
	setenv("SHMREG_DIR", dir, 1);
	signal(SIGPIPE, SIG_IGN);
	bench_pin(cli_cpu);
	if (getloadavg(load, 3) < 0)
		load[0] = load[1] = load[2] = -1;
	printf("bench_batch: %llu puts of %d B keys, %d B values per run, "
	       "%d runs; server on CPU %d, client on CPU %d; loadavg %.2f "
	       "%.2f %.2f%s\n", (unsigned long long)n, KEY_LEN, VAL_LEN, runs,
	       srv_cpu, cli_cpu, load[0], load[1], load[2],
	       quick ? "; quick (figures meaningless)" : "");
	bench_shmregd_start(&srv, bin, "bench", srv_cpu);
	c = bench_shmregd_client(&srv);
	for (int r = 0; r < runs; r++) {
		b10[r] = (double)n / batches(c, n, 10);
		b100[r] = (double)n / batches(c, n, 100);
		b1000[r] = (double)n / batches(c, n, 1000);
		pipe_[r] = (double)n / pipelined(c, n);
		/* a tenth as many: one round trip each */
		sync_[r] = (double)(n / 10) / synchronous(c, n / 10);
	}
	shmreg_disconnect(c);
	bench_shmregd_stop(&srv);
	bench_rmtree(dir);
	m10 = bench_median(b10, runs);
	m100 = bench_median(b100, runs);
	m1000 = bench_median(b1000, runs);
	mp = bench_median(pipe_, runs);
	ms = bench_median(sync_, runs);

	bench_table_head("puts through shmregd: batches vs one by one "
			 "(medians)");
	bench_rowf("batch of 10: commits/s", m10 / 10, "%.0f", "", -1);
	bench_rowf("batch of 10: puts/s", m10, "%.0f", "", -1);
	bench_rowf("batch of 100: commits/s", m100 / 100, "%.0f", "", -1);
	bench_rowf("batch of 100: puts/s", m100, "%.0f", "", -1);
	bench_rowf("batch of 1000: commits/s", m1000 / 1000, "%.0f", "", -1);
	bench_rowf("batch of 1000: puts/s", m1000, "%.0f", "", -1);
	bench_rowf("pipelined single puts: commits/s = puts/s", mp, "%.0f",
		   "", -1);
	bench_rowf("synchronous single puts: commits/s = puts/s", ms, "%.0f",
		   "", -1);
	snprintf(b, sizeof(b), "%.2fx", m10 / 10 / ms);
	bench_row("commits/s, batch of 10 / synchronous put", b, "", -1);
	snprintf(b, sizeof(b), "%.2fx", m10 / mp);
	bench_row("puts/s, batch of 10 / pipelined", b, "", -1);
	snprintf(b, sizeof(b), "%.2fx", m100 / mp);
	bench_row("puts/s, batch of 100 / pipelined", b, "", -1);
	printf("# fig batch10_commits %.0f\n", m10 / 10);
	printf("# fig batch10_ops %.0f\n", m10);
	printf("# fig batch100_commits %.0f\n", m100 / 100);
	printf("# fig batch100_ops %.0f\n", m100);
	printf("# fig batch1000_ops %.0f\n", m1000);
	printf("# fig sync_ops %.0f\n", ms);
	printf("# fig pipelined_ops %.0f\n", mp);
	printf("# key: %.0f\n", m100);
	if (failed)
		fprintf(stderr, "bench_batch: a put or a commit failed\n");
	return failed;
}
