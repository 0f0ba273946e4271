/* SPDX-License-Identifier: MIT */
/*
 * bench_expiry.c - what the TTL sweep costs a client of shmregd: put round
 * trips before and while N entries (default 1 M) that expire at the same
 * instant are swept, in the same run, and the sweep's rate.
 *
 * Each run: an embedded writer fills a fresh registry with N entries of
 * 9-byte keys and 8-byte values, all with one absolute deadline about a
 * second after the fill (the fill's first 1% times the rest); shmregd
 * takes the registry over (its deadline queue is rebuilt from the slots at
 * start) and a client does put round trips, one at a time, until the registry holds only its own key.  Round trips that
 * began before the deadline are the baseline ("before"), those that began
 * after it and before the sweep ended are "during".  The figures are the
 * medians over --runs runs; the ratio during/before of p99.9 is the
 * headline.  The daemon and the client are pinned to different CPUs when
 * there are two.
 *
 * Usage: bench_expiry [--quick] [--runs N] [--entries N] [--shmregd PATH]
 */
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/wait.h>

#include "bench_common.h"
#include "bench_shmregd.h"
#include "common/expiry_fill.h"
#include "shmreg.h"
#include "shmreg_writer.h"

#define MS 1000000LL
#define MAX_RUNS 15

static char dir[PATH_MAX], sockdir[64], sock[128];
static pid_t daemon_pid;
static int cli_cpu, srv_cpu;

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static double pct(uint64_t *v, size_t n, double q)
{
	size_t i = (size_t)(q * (double)n);

	return n ? (double)v[i < n ? i : n - 1] : 0;
}

static void die(const char *what, int64_t rc)
{
	fprintf(stderr, "bench_expiry: %s: %s\n", what, strerror((int)-rc));
	exit(1);
}

/* The deadline of @n entries that all expire at one instant
 * (expiry_fill.h), with 1 s for the daemon's start. */
static int64_t fill(const char *reg, uint64_t n)
{
	int64_t at = expiry_fill(reg, n, 1000 * MS);

	if (at == -ETIME) {
		fprintf(stderr, "bench_expiry: the fill kept running past "
			"its deadline (a machine too loaded)\n");
		exit(1);
	}
	if (at < 0)
		die("fill", at);
	return at;
}

static void start_daemon(const char *bin)
{
	char fdarg[16], buf[8];
	int p[2];

	strcpy(sockdir, "/tmp/shmregd-bexp-XXXXXX");
	if (!mkdtemp(sockdir) || pipe(p) < 0)
		exit(1);
	snprintf(sock, sizeof(sock), "%s/d.sock", sockdir);
	snprintf(fdarg, sizeof(fdarg), "%d", p[1]);
	daemon_pid = fork();
	if (daemon_pid == 0) {
		close(p[0]);
		bench_pin(srv_cpu);
		execl(bin, bin, "--registry", "expb", "--socket", sock,
		      "--ready-fd", fdarg, "--quiet", (char *)NULL);
		perror(bin);
		_exit(127);
	}
	close(p[1]);
	if (read(p[0], buf, 6) != 6 || memcmp(buf, "READY\n", 6)) {
		fprintf(stderr, "bench_expiry: %s did not start\n", bin);
		exit(1);
	}
	close(p[0]);
}

static void stop_daemon(void)
{
	kill(daemon_pid, SIGTERM);
	waitpid(daemon_pid, NULL, 0);
	bench_rmtree(sockdir);
}

struct run {
	double b50, b99, b999, d50, d99, d999, dmax, sweep_s;
	size_t nb, nd;
};

static void one_run(const char *bin, uint64_t n, struct run *out)
{
	size_t cap = 8u << 20, nb = 0, nd = 0;
	uint64_t *before = malloc(cap * sizeof(uint64_t));
	uint64_t *during = malloc(cap * sizeof(uint64_t));
	int64_t at, end;
	shmreg_client_t *c;
	shmreg_stats_t st;
	shmreg_t *r;
	int rc;

	if (!before || !during)
		exit(1);
	at = fill("expb", n);
	start_daemon(bin);
	rc = shmreg_open("expb", 0, &r);
	if (rc < 0)
		die("open", rc);
	rc = shmreg_connect(sock, "expb", &c);
	if (rc < 0)
		die("connect", rc);
	for (uint64_t i = 0;; i++) {
		int64_t rt0 = shm_realtime_ns();
		uint64_t t0 = bench_now_ns(), lat;
		int64_t rev = shmreg_put(c, "probe", 5, "x", 1, NULL);

		lat = bench_now_ns() - t0;
		if (rev <= 0)
			die("client put", rev);
		if (rt0 < at && nb < cap)
			before[nb++] = lat;
		else if (rt0 >= at && nd < cap)
			during[nd++] = lat;
		if (i % 32 == 0 && rt0 >= at &&
		    shmreg_stats(r, &st) == 0 && st.entries == 1)
			break;
		if (rt0 > at + 120000 * MS) {
			fprintf(stderr, "bench_expiry: no sweep in 120 s\n");
			exit(1);
		}
	}
	end = shm_realtime_ns();
	shmreg_disconnect(c);
	shmreg_close(r);
	stop_daemon();
	qsort(before, nb, sizeof(*before), cmp_u64);
	qsort(during, nd, sizeof(*during), cmp_u64);
	*out = (struct run){
		.b50 = pct(before, nb, 0.5), .b99 = pct(before, nb, 0.99),
		.b999 = pct(before, nb, 0.999), .d50 = pct(during, nd, 0.5),
		.d99 = pct(during, nd, 0.99), .d999 = pct(during, nd, 0.999),
		.dmax = nd ? (double)during[nd - 1] : 0,
		.sweep_s = (double)(end - at) / 1e9, .nb = nb, .nd = nd };
	free(before);
	free(during);
}

/* The median over the runs of the field at @off of struct run. */
static double med(const struct run *runs, int n, size_t off)
{
	double v[MAX_RUNS];

	for (int i = 0; i < n; i++)
		v[i] = *(const double *)((const char *)&runs[i] + off);
	return bench_median(v, n);
}
#define MED(f) med(runs, nruns, offsetof(struct run, f))

int main(int argc, char **argv)
{
	struct run runs[MAX_RUNS];
	const char *bin = NULL;
	uint64_t n = 1000000;
	int nruns = 3, quick = 0;
	char load[64] = "?", b[64];
	FILE *f;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			quick = 1;
		else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
			nruns = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--entries") && i + 1 < argc)
			n = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--shmregd") && i + 1 < argc)
			bin = argv[++i];
		else {
			fprintf(stderr, "usage: bench_expiry [--quick] "
				"[--runs N] [--entries N] [--shmregd PATH]\n");
			return 2;
		}
	}
	if (quick) {
		n = 20000;
		nruns = 1;
	}
	if (nruns < 1 || nruns > MAX_RUNS || n < 1 || n > 50000000) {
		fprintf(stderr, "bench_expiry: --runs 1..%d, --entries "
			"1..50000000\n", MAX_RUNS);
		return 2;
	}
	bin = bench_find_shmregd(bin);
	cli_cpu = bench_cpu(0);
	srv_cpu = bench_ncpus() > 1 ? bench_cpu(1) : cli_cpu;
	if (bench_mkdir(dir, sizeof(dir), "expiry") < 0) {
		perror("mkdtemp");
		return 1;
	}
	setenv("SHMREG_DIR", dir, 1);
	signal(SIGPIPE, SIG_IGN);
	bench_pin(cli_cpu);
	if ((f = fopen("/proc/loadavg", "r"))) {
		if (fgets(load, sizeof(load), f))
			load[strcspn(load, "\n")] = 0;
		fclose(f);
	}
	printf("bench_expiry: %llu entries expiring together, %d run%s; "
	       "shmregd on CPU %d, client on CPU %d; loadavg %s%s\n",
	       (unsigned long long)n, nruns, nruns == 1 ? "" : "s", srv_cpu,
	       cli_cpu, load, quick ? "; quick (figures meaningless)" : "");
	for (int i = 0; i < nruns; i++) {
		one_run(bin, n, &runs[i]);
		printf("run %d: before p50/p99/p99.9 %.0f/%.0f/%.0f ns (%zu), "
		       "during %.0f/%.0f/%.0f ns max %.0f (%zu), "
		       "sweep %.3f s\n",
		       i + 1, runs[i].b50, runs[i].b99, runs[i].b999,
		       runs[i].nb, runs[i].d50, runs[i].d99, runs[i].d999,
		       runs[i].dmax, runs[i].nd, runs[i].sweep_s);
	}
	bench_rmtree(dir);

	bench_table_head("shmregd put round trips while the TTL sweep runs "
			 "(medians over the runs)");
	bench_rowf("before the deadline: p50 (us)", MED(b50) / 1e3, "%.1f", "",
		   -1);
	bench_rowf("before the deadline: p99.9 (us)", MED(b999) / 1e3, "%.1f",
		   "", -1);
	bench_rowf("during the sweep: p50 (us)", MED(d50) / 1e3, "%.1f", "",
		   -1);
	bench_rowf("during the sweep: p99 (us)", MED(d99) / 1e3, "%.1f", "",
		   -1);
	bench_rowf("during the sweep: p99.9 (us)", MED(d999) / 1e3, "%.1f",
		   "< 50000", MED(d999) < 50e6);
	bench_rowf("during the sweep: max (us)", MED(dmax) / 1e3, "%.1f", "",
		   -1);
	snprintf(b, sizeof(b), "%.2fx", MED(d999) / MED(b999));
	bench_row("p99.9 during / before", b, "", -1);
	bench_rowf("sweep: entries removed per second", (double)n /
		   MED(sweep_s), "%.0f", "", -1);
	printf("# key: %.0f\n", MED(d999));
	return 0;
}
