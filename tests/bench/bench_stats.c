/* SPDX-License-Identifier: MIT */
/*
 * bench_stats.c - what the metrics cost: the commit-rate sample on every
 * commit against a replacing put, shmreg_stats() against shmreg_get(),
 * and a scrape of shmregd's GET /metrics against its GET / (the same
 * HTTP path with a one-line body), in one run.
 *
 * Usage: bench_stats [--quick] [--shmregd PATH] [-n ENTRIES]
 *
 * Method:
 *  - A registry of N entries (16 B keys, 64 B values; default 100,000),
 *    written by an embedded writer in this process.
 *  - put: N replacing puts of random existing keys (order drawn before
 *    timing), ns per put; clock: N reads of CLOCK_REALTIME_COARSE, the one
 *    call the rate sample adds to every commit (writer/rate.c), ns per
 *    read.  Their ratio bounds the sample's share of a put's cost (the
 *    rest of the sample runs once a second).  Rounds interleaved, medians
 *    over ROUNDS rounds.
 *  - get: N random gets of the same registry, ns per get; stats: 10,000
 *    shmreg_stats() calls, ns per call, after the puts made every page of
 *    the wait file resident (the writer reads a key slot's waiter count
 *    per commit), so the waiter walk reads all of its 128 KiB.
 *  - scrape: shmregd (started here on the same registry, which it adopts
 *    with its N entries) answering 500 sequential GET /metrics on
 *    loopback, each a new connection read to the end, against 500 GET /;
 *    the median round trip of each, and the exposition's size.
 *
 * Exit 1 when a read returned a wrong value or a scrape failed.
 */
#define _GNU_SOURCE
#include "bench_common.h"
#include "bench_shmregd.h"

#include <arpa/inet.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "shmreg.h"
#include "shmreg_writer.h"

#define ROUNDS 7
#define KLEN 16
#define VLEN 64
#define SCRAPES 500

static char dir[PATH_MAX];
static pid_t daemon_pid;

static void key_of(char *k, uint64_t i)
{
	char tmp[32];

	/* i < 10^12: always KLEN characters */
	snprintf(tmp, sizeof(tmp), "key:%012llu", (unsigned long long)i);
	memcpy(k, tmp, KLEN);
}

static void die(const char *what)
{
	fprintf(stderr, "bench_stats: %s\n", what);
	if (daemon_pid > 0)
		kill(daemon_pid, SIGKILL);
	exit(1);
}

static double put_round(shmreg_writer_t *w, const uint64_t *order, int n)
{
	char k[KLEN], v[VLEN] = { 0 };
	uint64_t t0 = bench_now_ns();

	for (int i = 0; i < n; i++) {
		key_of(k, order[i]);
		memcpy(v, &i, sizeof(i));
		if (shmreg_writer_put(w, k, KLEN, v, VLEN, NULL) <= 0)
			die("put failed");
	}
	return (double)(bench_now_ns() - t0) / n;
}

static double clock_round(int n)
{
	struct timespec ts;
	uint64_t t0 = bench_now_ns(), sink = 0;

	for (int i = 0; i < n; i++) {
		clock_gettime(CLOCK_REALTIME_COARSE, &ts);
		sink += (uint64_t)ts.tv_nsec;
	}
	__asm__ __volatile__("" : : "r"(sink));
	return (double)(bench_now_ns() - t0) / n;
}

static double get_round(shmreg_t *r, const uint64_t *order, int n)
{
	char k[KLEN], v[VLEN];
	uint64_t t0 = bench_now_ns();

	for (int i = 0; i < n; i++) {
		key_of(k, order[i]);
		if (shmreg_get(r, k, KLEN, v, sizeof(v), NULL) != VLEN)
			die("get: wrong length");
	}
	return (double)(bench_now_ns() - t0) / n;
}

static double stats_round(shmreg_t *r, uint64_t want_entries)
{
	shmreg_stats_t st;
	uint64_t t0 = bench_now_ns();

	for (int i = 0; i < 10000; i++)
		if (shmreg_stats(r, &st) || st.entries != want_entries)
			die("stats: wrong entries");
	return (double)(bench_now_ns() - t0) / 10000;
}

/* ---- the daemon and its HTTP endpoint ---- */

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (void *)&a, sizeof(a)) ||
	    getsockname(fd, (void *)&a, &len))
		die("free port");
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static int start_daemon(const char *bin, const char *reg)
{
	char fdarg[16], listen[32], sock[PATH_MAX + 16], buf[8];
	int p[2], port = free_port();

	snprintf(sock, sizeof(sock), "/tmp/shmreg-bench-stats-%d.sock",
		 (int)getpid());
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	if (pipe(p) < 0)
		die("pipe");
	snprintf(fdarg, sizeof(fdarg), "%d", p[1]);
	daemon_pid = fork();
	if (daemon_pid == 0) {
		close(p[0]);
		execl(bin, bin, "--registry", reg, "--socket", sock,
		      "--metrics-listen", listen, "--ready-fd", fdarg,
		      "--quiet", (char *)NULL);
		perror(bin);
		_exit(127);
	}
	close(p[1]);
	if (read(p[0], buf, 6) != 6 || memcmp(buf, "READY\n", 6))
		die("shmregd did not start (port taken? run again)");
	close(p[0]);
	unlink(sock); /* the daemon keeps listening on it; nobody else */
	return port;
}

/* One request on a new connection, read to the end: its bytes. */
static size_t http_get(int port, const char *path)
{
	static char buf[1 << 20];
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port) };
	char req[128];
	size_t got = 0;
	ssize_t n;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (void *)&a, sizeof(a)))
		die("connect");
	n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: b\r\n\r\n",
		     path);
	if (write(fd, req, (size_t)n) != n)
		die("write");
	while ((n = read(fd, buf + got, sizeof(buf) - got)) > 0)
		got += (size_t)n;
	close(fd);
	if (got < 12 || memcmp(buf, "HTTP/1.1 200", 12))
		die("scrape: not a 200");
	return got;
}

static double scrape_round(int port, const char *path, int n, size_t *bytes)
{
	double *lat = malloc(sizeof(*lat) * (size_t)n), m;

	for (int i = 0; i < n; i++) {
		uint64_t t0 = bench_now_ns();

		*bytes = http_get(port, path);
		lat[i] = (double)(bench_now_ns() - t0);
	}
	m = bench_median(lat, n);
	free(lat);
	return m;
}

int main(int argc, char **argv)
{
	double put[ROUNDS], clk[ROUNDS], get[ROUNDS], sts[ROUNDS];
	double p, c, g, s, scrape, root;
	const char *bin = NULL;
	shmreg_writer_opts_t o = { .flags = SHMREG_WRITER_TRUNCATE };
	size_t mbytes = 0, rbytes = 0;
	uint64_t *order, seed = 0x9e3779b97f4a7c15ull, n = 100000;
	char path[PATH_MAX + 16], k[KLEN], v[VLEN] = { 0 }, la[64] = "?";
	shmreg_writer_t *w;
	shmreg_t *r;
	int quick = 0, port;
	FILE *f;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			quick = 1;
		else if (!strcmp(argv[i], "--shmregd") && i + 1 < argc)
			bin = argv[++i];
		else if (!strcmp(argv[i], "-n") && i + 1 < argc)
			n = strtoull(argv[++i], NULL, 10);
		else {
			fprintf(stderr, "usage: bench_stats [--quick] "
				"[--shmregd PATH] [-n ENTRIES]\n");
			return 2;
		}
	}
	if (quick)
		n = 5000;
	if (bench_mkdir(dir, sizeof(dir), "stats"))
		die("scratch directory");
	snprintf(path, sizeof(path), "%s/bench", dir);
	o.initial_entries = n;
	if (shmreg_writer_open(path, &o, &w) || shmreg_open(path, 0, &r))
		die("open");
	order = malloc(sizeof(*order) * n);
	for (uint64_t i = 0; i < n; i++) {
		key_of(k, i);
		if (shmreg_writer_put(w, k, KLEN, v, VLEN, NULL) <= 0)
			die("load");
		order[i] = bench_rand(&seed) % n;
	}
	for (int i = 0; i < ROUNDS; i++) {
		put[i] = put_round(w, order, (int)n);
		clk[i] = clock_round((int)n);
		get[i] = get_round(r, order, (int)n);
		sts[i] = stats_round(r, n);
	}
	p = bench_median(put, ROUNDS);
	c = bench_median(clk, ROUNDS);
	g = bench_median(get, ROUNDS);
	s = bench_median(sts, ROUNDS);
	shmreg_close(r);
	shmreg_writer_close(w);

	port = start_daemon(bench_find_shmregd(bin), path);
	scrape = scrape_round(port, "/metrics", quick ? 20 : SCRAPES, &mbytes);
	root = scrape_round(port, "/", quick ? 20 : SCRAPES, &rbytes);
	kill(daemon_pid, SIGTERM);
	waitpid(daemon_pid, NULL, 0);
	daemon_pid = 0;
	bench_rmtree(dir);

	if ((f = fopen("/proc/loadavg", "r"))) {
		if (!fgets(la, sizeof(la), f))
			strcpy(la, "?");
		fclose(f);
		la[strcspn(la, "\n")] = 0;
	}
	printf("bench_stats: %llu entries, %d rounds, %d cpus, loadavg %s\n",
	       (unsigned long long)n, ROUNDS, bench_ncpus(), la);
	bench_table_head("metrics costs (medians)");
	bench_rowf("replacing put, ns", p, "%.1f", NULL, -1);
	bench_rowf("coarse clock read (per commit), ns", c, "%.1f", NULL, -1);
	bench_rowf("  clock / put", c / p, "%.3f", "< 0.05", c / p < 0.05);
	bench_rowf("shmreg_get, ns", g, "%.1f", NULL, -1);
	bench_rowf("shmreg_stats (wait file resident), ns", s, "%.0f", NULL,
		   -1);
	bench_rowf("  stats / get", s / g, "%.1f", NULL, -1);
	bench_rowf("GET /metrics round trip, us", scrape / 1e3, "%.1f", NULL,
		   -1);
	bench_rowf("GET / round trip, us", root / 1e3, "%.1f", NULL, -1);
	bench_rowf("  /metrics / GET /", scrape / root, "%.2f", NULL, -1);
	bench_rowf("exposition bytes (1 registry)", (double)mbytes, "%.0f",
		   NULL, -1);
	printf("# key: %.1f\n", scrape / 1e3);
	return 0;
}
