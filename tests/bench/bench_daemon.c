/* SPDX-License-Identifier: MIT */
/*
 * bench_daemon.c - shmregd over its socket: one client's put round trip
 * against a bare Unix-socket ping-pong of the same message sizes (the
 * floor), and pipelined put throughput from 1 and 4 clients at depth 16
 * and at the daemon's full depth.  scripts/bench-daemon runs it beside
 * redis-benchmark, pinned the same way.
 *
 * Pinning: the server side (shmregd, or the bare echo server) runs on the
 * second allowed CPU, every client on the first, for every figure: a
 * wake-up across CPUs costs several times one on the same CPU on these
 * machines, so the floor and the daemon must pay the same one.
 *
 * Usage: bench_daemon [--quick] [--shmregd PATH]
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "bench_common.h"
#include "bench_shmregd.h"
#include "shmreg.h"

#define KEY_LEN   16
#define VAL_LEN   64
#define NKEYS     100000
/* the request a put of these sizes is on the wire, and its reply */
#define REQ_BYTES (16 + 32 + KEY_LEN + VAL_LEN)
#define REP_BYTES 32

static int quick;
static int srv_cpu, cli_cpu;
static char dir[PATH_MAX];
static int failed;

/* key @i of the NKEYS the benchmark cycles through */
static void key_of(char *k, uint64_t i)
{
	bench_key(k, i % NKEYS);
}

static void val_of(char *v, uint64_t i)
{
	bench_value(v, VAL_LEN, i);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static double pct(uint64_t *v, size_t n, double p)
{
	return (double)v[(size_t)((double)(n - 1) * p)];
}

/* ---- the floor: a bare Unix-socket ping-pong ---- */

static void echo_server(int fd)
{
	char req[REQ_BYTES], rep[REP_BYTES] = { 0 };

	for (;;) {
		size_t got = 0;

		while (got < sizeof(req)) {
			ssize_t n = read(fd, req + got, sizeof(req) - got);

			if (n <= 0)
				_exit(0);
			got += (size_t)n;
		}
		if (write(fd, rep, sizeof(rep)) != (ssize_t)sizeof(rep))
			_exit(1);
	}
}

static void pingpong(int n, double *p50, double *p99)
{
	uint64_t *lat = malloc(sizeof(*lat) * (size_t)n);
	char req[REQ_BYTES] = { 1 }, rep[REP_BYTES];
	int sv[2];
	pid_t pid;

	if (!lat || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
		perror("pingpong");
		exit(1);
	}
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		bench_pin(srv_cpu);
		echo_server(sv[1]);
	}
	close(sv[1]);
	for (int i = 0; i < n; i++) {
		uint64_t t0 = bench_now_ns();
		size_t got = 0;

		if (write(sv[0], req, sizeof(req)) != (ssize_t)sizeof(req))
			exit(1);
		while (got < sizeof(rep)) {
			ssize_t r = read(sv[0], rep + got, sizeof(rep) - got);

			if (r <= 0)
				exit(1);
			got += (size_t)r;
		}
		lat[i] = bench_now_ns() - t0;
	}
	close(sv[0]);
	waitpid(pid, NULL, 0);
	qsort(lat, (size_t)n, sizeof(*lat), cmp_u64);
	*p50 = pct(lat, (size_t)n, 0.5);
	*p99 = pct(lat, (size_t)n, 0.99);
	free(lat);
}

/* ---- the daemon ---- */

static struct bench_shmregd srv;

static shmreg_client_t *client(void)
{
	return bench_shmregd_client(&srv);
}

static void roundtrip(int n, double *p50, double *p99, double *rps)
{
	uint64_t *lat = malloc(sizeof(*lat) * (size_t)n);
	shmreg_client_t *c = client();
	char k[KEY_LEN], v[VAL_LEN];

	for (int i = 0; i < n; i++) {
		uint64_t t0;
		int64_t rev;

		key_of(k, (uint64_t)i);
		val_of(v, (uint64_t)i);
		t0 = bench_now_ns();
		rev = shmreg_put(c, k, KEY_LEN, v, VAL_LEN, NULL);
		lat[i] = bench_now_ns() - t0;
		if (rev <= 0) {
			fprintf(stderr, "put: %s\n", strerror((int)-rev));
			exit(1);
		}
	}
	shmreg_disconnect(c);
	{
		double sum = 0;

		for (int i = 0; i < n; i++)
			sum += (double)lat[i];
		*rps = (double)n * 1e9 / sum;
	}
	qsort(lat, (size_t)n, sizeof(*lat), cmp_u64);
	*p50 = pct(lat, (size_t)n, 0.5);
	*p99 = pct(lat, (size_t)n, 0.99);
	free(lat);
}

/* @n puts with at most @depth unanswered (0: the daemon's depth).
 * Returns the seconds taken, or exits on an error. */
static double pipelined(uint64_t first, uint64_t n, unsigned depth)
{
	shmreg_completion_t cq[256];
	shmreg_client_t *c = client();
	char k[KEY_LEN], v[VAL_LEN];
	uint64_t out = 0, t0;

	if (!depth || depth > shmreg_client_depth(c))
		depth = shmreg_client_depth(c);
	t0 = bench_now_ns();
	for (uint64_t i = first; i < first + n; i++) {
		key_of(k, i);
		val_of(v, i);
		while (out >= depth) {
			int got = shmreg_client_wait(c, cq, 256, -1);

			if (got <= 0) {
				fprintf(stderr, "wait: %d\n", got);
				exit(1);
			}
			for (int j = 0; j < got; j++)
				if (cq[j].result <= 0)
					failed = 1;
			out -= (uint64_t)got;
		}
		if (shmreg_put_async(c, k, KEY_LEN, v, VAL_LEN, NULL) <= 0) {
			fprintf(stderr, "put_async failed\n");
			exit(1);
		}
		out++;
	}
	while (out) {
		int got = shmreg_client_wait(c, cq, 256, -1);

		if (got <= 0)
			exit(1);
		for (int j = 0; j < got; j++)
			if (cq[j].result <= 0)
				failed = 1;
		out -= (uint64_t)got;
	}
	t0 = bench_now_ns() - t0;
	shmreg_disconnect(c);
	return (double)t0 / 1e9;
}

/* @clients processes, all on the client CPU, started together. */
static double multi(int clients, uint64_t per, unsigned depth)
{
	int go[2], done[2];
	pid_t pids[16];
	uint64_t t0, t1;
	char b = 0;

	if (pipe(go) < 0 || pipe(done) < 0)
		exit(1);
	for (int i = 0; i < clients; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			close(go[1]);
			if (read(go[0], &b, 1) != 0)
				_exit(1);
			pipelined((uint64_t)i * per, per, depth);
			_exit(failed);
		}
	}
	close(go[0]);
	close(done[0]);
	close(done[1]);
	t0 = bench_now_ns();
	close(go[1]); /* EOF releases them all at once */
	for (int i = 0; i < clients; i++) {
		int st;

		waitpid(pids[i], &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st))
			failed = 1;
	}
	t1 = bench_now_ns();
	return (double)(t1 - t0) / 1e9;
}

static void verify(uint64_t n)
{
	shmreg_t *r;
	char k[KEY_LEN], v[VAL_LEN], buf[VAL_LEN];
	uint64_t last = n < NKEYS ? n : NKEYS;

	if (shmreg_open("bench", 0, &r) < 0) {
		failed = 1;
		return;
	}
	/* a single client wrote i = 0..n-1 in order: each key holds the
	 * value of its last lap */
	for (uint64_t i = n - last; i < n; i++) {
		key_of(k, i);
		val_of(v, i);
		if (shmreg_get(r, k, KEY_LEN, buf, sizeof(buf), NULL) !=
			    VAL_LEN ||
		    memcmp(buf, v, VAL_LEN)) {
			fprintf(stderr, "bench_daemon: wrong value for %.16s\n",
				k);
			failed = 1;
			break;
		}
	}
	shmreg_close(r);
}

int main(int argc, char **argv)
{
	const char *bin = NULL;
	double pp50, pp99, rt50, rt99, rtrps, s;
	uint64_t np = 1000000, n4;
	double r1_16, r1_max, r4_16, r4_max;
	int nrt = 100000;
	char b[64];

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			quick = 1;
		else if (!strcmp(argv[i], "--shmregd") && i + 1 < argc)
			bin = argv[++i];
		else {
			fprintf(stderr, "usage: bench_daemon [--quick] "
				"[--shmregd PATH]\n");
			return 2;
		}
	}
	bin = bench_find_shmregd(bin);
	if (quick) {
		np = 20000;
		nrt = 2000;
	}
	n4 = np / 4;
	cli_cpu = bench_cpu(0);
	srv_cpu = bench_ncpus() > 1 ? bench_cpu(1) : cli_cpu;
	if (bench_mkdir(dir, sizeof(dir), "daemon") < 0) {
		perror("mkdtemp");
		return 1;
	}
	setenv("SHMREG_DIR", dir, 1);
	signal(SIGPIPE, SIG_IGN);
	bench_pin(cli_cpu);

	printf("bench_daemon: %d B keys, %d B values over %d keys; server on "
	       "CPU %d, clients on CPU %d; %s\n", KEY_LEN, VAL_LEN, NKEYS,
	       srv_cpu, cli_cpu, quick ? "quick (figures meaningless)" : "");
	pingpong(nrt, &pp50, &pp99);
	bench_shmregd_start(&srv, bin, "bench", srv_cpu);
	roundtrip(nrt, &rt50, &rt99, &rtrps);
	s = pipelined(0, np, 16);
	r1_16 = (double)np / s;
	s = pipelined(0, np, 0);
	r1_max = (double)np / s;
	verify(np);
	s = multi(4, n4, 16);
	r4_16 = (double)(n4 * 4) / s;
	s = multi(4, n4, 0);
	r4_max = (double)(n4 * 4) / s;

	bench_shmregd_stop(&srv);
	bench_rmtree(dir);

	bench_table_head("shmregd put over the socket (server and clients "
			 "pinned as above)");
	bench_rowf("bare unix ping-pong p50 (ns)", pp50, "%.0f", "", -1);
	bench_rowf("bare unix ping-pong p99 (ns)", pp99, "%.0f", "", -1);
	bench_rowf("put round trip p50 (ns)", rt50, "%.0f", "", -1);
	bench_rowf("put round trip p99 (ns)", rt99, "%.0f", "", -1);
	snprintf(b, sizeof(b), "%.2fx", rt50 / pp50);
	bench_row("round trip / ping-pong (p50)", b, "<= 1.5x",
		  rt50 <= 1.5 * pp50);
	bench_rowf("pipelined puts/s, 1 client, depth 16", r1_16, "%.0f", "",
		   -1);
	bench_rowf("pipelined puts/s, 1 client, full depth", r1_max, "%.0f",
		   ">= 500000", r1_max >= 500000);
	bench_rowf("pipelined puts/s, 4 clients, depth 16", r4_16, "%.0f",
		   "", -1);
	bench_rowf("pipelined puts/s, 4 clients, full depth", r4_max, "%.0f",
		   ">= 500000", r4_max >= 500000);
	/* machine-readable lines for scripts/bench-daemon */
	printf("# fig pingpong_p50_ns %.0f\n", pp50);
	printf("# fig rtt_p50_ns %.0f\n", rt50);
	printf("# fig rtt_p99_ns %.0f\n", rt99);
	printf("# fig rtt_rps %.0f\n", rtrps);
	printf("# fig p16_1c_rps %.0f\n", r1_16);
	printf("# fig pmax_1c_rps %.0f\n", r1_max);
	printf("# fig p16_4c_rps %.0f\n", r4_16);
	printf("# fig pmax_4c_rps %.0f\n", r4_max);
	printf("# key: %.0f\n", r1_max);
	if (failed)
		fprintf(stderr, "bench_daemon: a put failed or a value was "
			"wrong\n");
	return failed;
}
