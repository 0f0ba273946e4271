/* SPDX-License-Identifier: MIT */
/*
 * bench_await.c - how fast a put reaches a waiting reader, next to the
 * floor the kernel sets: a bare cross-process futex ping-pong.
 *
 *   bench_await [--rounds N] [--puts N] [--same-cpu] [--no-pin] [--quick]
 *
 * In one run:
 *  1. raw futex: two processes ping-pong through two futex words in a
 *     shared tmpfs file mapping (the wait file's kind of memory); each side
 *     stamps the time, bumps the word and FUTEX_WAKEs; the other side's
 *     FUTEX_WAIT returns and takes the difference: one-way wake latency;
 *  2. await: the same ping-pong through shmreg: each process is the writer
 *     of one registry and awaits in the other's; the value carries the time
 *     stamped just before shmreg_writer_put, the awaiter takes the
 *     difference when shmreg_await returns: put-to-await-return latency;
 *  3. put throughput of one writer with nobody waiting, with 8 processes
 *     asleep in shmreg_await on absent keys, and with one change-stream
 *     watcher following every event; and what notify_key() (the writer's
 *     whole await/watch work per commit) costs when nobody waits.
 * Latencies are p50/p99/p99.9 over both directions of N rounds.
 *
 * Pinning: by default the two ping-pong processes run on two different
 * CPUs (the first two this process may use), for both latency figures; with
 * --same-cpu both run on the first CPU (then every wake-up is also a
 * context switch on that CPU).  The writer of part 3 runs on the first CPU,
 * waiters and watcher on the second.  --no-pin leaves placement to the
 * scheduler.
 *
 * Exit status 1 only on a wrong value or a lost event; targets are
 * reported, not enforced.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_common.h"
#include "futex.h"
#include "hash.h"
#include "notify.h"
#include "shmreg.h"
#include "shmreg_writer.h"
#include "wait_layout.h"

struct cfg {
	unsigned rounds;
	unsigned puts;
	int same_cpu;
	int pin;
	int quick;
};

static struct cfg cfg = { 100000, 1000000, 0, 1, 0 };
static char dir[PATH_MAX / 2]; /* leaves room for file names */
static int failed;

/* Shared between the two ping-pong processes (a tmpfs file mapping). */
struct pp {
	_Atomic uint32_t word[2];     /* futex words: side 0 -> 1, 1 -> 0 */
	uint64_t stamp[2];            /* time stamped before the bump */
	_Atomic uint32_t ready;
	_Atomic uint32_t go;
	_Atomic int bad;
};

static void *map_file(const char *name, size_t size)
{
	char path[PATH_MAX];
	void *p;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
		perror(path);
		exit(1);
	}
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	return p;
}

static void pin_side(int side)
{
	if (!cfg.pin)
		return;
	if (bench_pin(bench_cpu(cfg.same_cpu ? 0 : side)) < 0)
		fprintf(stderr, "bench_await: pinning side %d failed\n", side);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

struct pct {
	double p50, p99, p999;
};

static struct pct percentiles(uint64_t *v, size_t n)
{
	struct pct p = { 0, 0, 0 };

	if (!n)
		return p;
	qsort(v, n, sizeof(*v), cmp_u64);
	p.p50 = (double)v[(n - 1) / 2] / 1e3;
	p.p99 = (double)v[(size_t)((double)(n - 1) * 0.99)] / 1e3;
	p.p999 = (double)v[(size_t)((double)(n - 1) * 0.999)] / 1e3;
	return p;
}

/* Sleep on @w until it moves from *@last; returns with *@last updated. */
static void futex_await_change(_Atomic uint32_t *w, uint32_t *last)
{
	uint32_t v;

	/* bounded by the other side's next bump */
	while ((v = atomic_load_explicit(w, memory_order_acquire)) == *last)
		shm_futex_wait(w, *last, -1);
	*last = v;
}

/* ---- 1. raw futex ping-pong ---- */

static void raw_side(struct pp *pp, int side, uint64_t *lat)
{
	uint32_t last = 0;

	pin_side(side);
	atomic_fetch_add(&pp->ready, 1);
	/* bounded: the parent sets go once both are ready */
	while (!atomic_load(&pp->go))
		sched_yield();
	for (unsigned i = 0; i < cfg.rounds; i++) {
		if (side == 1) {
			futex_await_change(&pp->word[0], &last);
			lat[i] = bench_now_ns() - pp->stamp[0];
		}
		pp->stamp[side] = bench_now_ns();
		atomic_fetch_add_explicit(&pp->word[side], 1,
					  memory_order_release);
		shm_futex_wake(&pp->word[side], INT_MAX);
		if (side == 0) {
			futex_await_change(&pp->word[1], &last);
			lat[i] = bench_now_ns() - pp->stamp[1];
		}
	}
}

/* ---- 2. put-to-await-return ping-pong ---- */

static void reg_path(char *buf, int side)
{
	snprintf(buf, PATH_MAX, "%s/shmreg.side%d", dir, side);
}

static void await_side(struct pp *pp, int side, uint64_t *lat)
{
	shmreg_writer_opts_t o = {
		.flags = SHMREG_WRITER_TRUNCATE,
		/* no growth handoff inside the measurement */
		.initial_entries = cfg.rounds + 1024,
	};
	char mine[PATH_MAX], theirs[PATH_MAX], key[24];
	shmreg_writer_t *w;
	shmreg_t *r;
	uint64_t stamp, got;
	ssize_t n;
	int ret;

	pin_side(side);
	reg_path(mine, side);
	reg_path(theirs, !side);
	ret = shmreg_writer_open(mine, &o, &w);
	if (ret < 0) {
		fprintf(stderr, "writer_open: %s\n", strerror(-ret));
		exit(1);
	}
	atomic_fetch_add(&pp->ready, 1);
	/* bounded: the parent sets go once both writers are open */
	while (!atomic_load(&pp->go))
		sched_yield();
	ret = shmreg_open(theirs, 0, &r);
	if (ret < 0) {
		fprintf(stderr, "open: %s\n", strerror(-ret));
		exit(1);
	}
	for (unsigned i = 0; i < cfg.rounds; i++) {
		snprintf(key, sizeof(key), "k%u", i);
		if (side == 1) {
			n = shmreg_await(r, key, strlen(key), &got,
					 sizeof(got), NULL, 10000000000LL);
			lat[i] = bench_now_ns() - got;
			if (n != sizeof(got))
				atomic_store(&pp->bad, 1);
		}
		stamp = bench_now_ns();
		if (shmreg_writer_put(w, key, strlen(key), &stamp,
				      sizeof(stamp), NULL) < 0)
			atomic_store(&pp->bad, 1);
		if (side == 0) {
			n = shmreg_await(r, key, strlen(key), &got,
					 sizeof(got), NULL, 10000000000LL);
			lat[i] = bench_now_ns() - got;
			if (n != sizeof(got))
				atomic_store(&pp->bad, 1);
		}
	}
	/* the other side may still await our last key: wait for it */
	atomic_fetch_add(&pp->ready, 1);
	while (atomic_load(&pp->ready) < 4)
		sched_yield();
	shmreg_close(r);
	shmreg_writer_close(w);
}

/* Has either ping-pong side exited?  Leaves it to reap_sides(). */
static bool side_exited(const pid_t kid[2])
{
	siginfo_t si;

	for (int s = 0; s < 2; s++) {
		si.si_pid = 0;
		if (waitid(P_PID, (id_t)kid[s], &si,
			   WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid)
			return true;
	}
	return false;
}

/* Reap both sides; the first one to fail (or to be killed) ends the
 * other, which would otherwise wait for it forever.  0 or -1. */
static int reap_sides(pid_t kid[2])
{
	int rc = 0, st;

	for (int left = 2; left > 0; left--) {
		pid_t p = waitpid(-1, &st, 0);
		int s = p == kid[0] ? 0 : p == kid[1] ? 1 : -1;

		if (s < 0) {
			left++; /* not a side (or EINTR): wait again */
			if (p < 0 && errno != EINTR)
				return -1;
			continue;
		}
		kid[s] = 0;
		if (!WIFEXITED(st) || WEXITSTATUS(st)) {
			rc = -1;
			if (kid[!s])
				kill(kid[!s], SIGKILL);
		}
	}
	return rc;
}

/* Run a ping-pong (raw or await) in two children; fills lat[2][rounds]. */
static struct pct pingpong(const char *file, int await, double *total_s)
{
	size_t n = cfg.rounds;
	uint64_t *lat = mmap(NULL, 2 * n * sizeof(*lat),
			     PROT_READ | PROT_WRITE,
			     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct pp *pp = map_file(file, 4096);
	uint64_t t0;
	pid_t kid[2];
	struct pct p;

	if (lat == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	fflush(NULL); /* a side that exit()s must not print our buffer again */
	for (int s = 0; s < 2; s++) {
		kid[s] = fork();
		if (kid[s] == 0) {
			if (await)
				await_side(pp, s, lat + (size_t)s * n);
			else
				raw_side(pp, s, lat + (size_t)s * n);
			_exit(0);
		}
	}
	/* bounded: each child either gets ready or exits, and a side that
	 * exits early ends the other (which would wait for it forever) */
	while (atomic_load(&pp->ready) < 2 && !side_exited(kid))
		sched_yield();
	t0 = bench_now_ns();
	atomic_store(&pp->go, 1);
	if (reap_sides(kid) < 0) {
		fprintf(stderr, "bench_await: a %s side failed\n",
			await ? "await" : "futex");
		failed = 1;
	}
	*total_s = (double)(bench_now_ns() - t0) / 1e9;
	if (atomic_load(&pp->bad)) {
		fprintf(stderr, "bench_await: await returned a wrong value\n");
		failed = 1;
	}
	p = percentiles(lat, 2 * n);
	munmap(lat, 2 * n * sizeof(*lat));
	munmap(pp, 4096);
	return p;
}

/* ---- 3. put throughput ---- */

#define NKEYS 100000u

static int put_keys(shmreg_writer_t *w, unsigned n, uint64_t *rs)
{
	char key[17], val[64];

	memset(val, 'v', sizeof(val));
	for (unsigned i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "key:%012u",
			 (unsigned)(bench_rand(rs) % NKEYS));
		memcpy(val, &i, sizeof(i));
		if (shmreg_writer_put(w, key, 16, val, sizeof(val), NULL) < 0)
			return -1;
	}
	return 0;
}

static double put_rate(shmreg_writer_t *w, uint64_t *rs)
{
	uint64_t t0 = bench_now_ns();

	if (put_keys(w, cfg.puts, rs) < 0) {
		fprintf(stderr, "bench_await: put failed\n");
		failed = 1;
		return 0;
	}
	return cfg.puts / ((double)(bench_now_ns() - t0) / 1e9);
}

/* A process asleep in shmreg_await on a key nobody puts. */
static pid_t sleeper(const char *reg, int k)
{
	pid_t pid = (fflush(NULL), fork());
	char key[32], buf[8];
	shmreg_t *r;

	if (pid)
		return pid;
	if (cfg.pin)
		bench_pin(bench_cpu(bench_ncpus() > 1 ? 1 : 0));
	snprintf(key, sizeof(key), "absent:%d", k);
	if (shmreg_open(reg, 0, &r) < 0)
		_exit(1);
	/* ends with -ESHUTDOWN when the writer closes */
	shmreg_await(r, key, strlen(key), buf, sizeof(buf), NULL, -1);
	_exit(0);
}

/* A watcher that reads every event; writes its count to @out. */
static pid_t follower(const char *reg, uint64_t start, uint64_t *out,
		      _Atomic uint32_t *ready)
{
	pid_t pid = (fflush(NULL), fork());
	shmreg_watch_t *wt;
	shmreg_event_t ev;
	shmreg_t *r;
	int ret;

	if (pid)
		return pid;
	if (cfg.pin)
		bench_pin(bench_cpu(bench_ncpus() > 1 ? 1 : 0));
	if (shmreg_open(reg, 0, &r) < 0 ||
	    shmreg_watch_open(r, "", 0, start, &wt) < 0)
		_exit(1);
	atomic_store(ready, 1);
	/* bounded by the writer's puts; ends at its close */
	while ((ret = shmreg_watch_next(wt, &ev, -1)) == 0)
		(*out)++;
	_exit(ret == -ESHUTDOWN ? 0 : 2);
}

/* Wait (up to 10 s) until @n sleepers "absent:0".."absent:n-1" are
 * registered in the wait file of registry file @reg. */
static void wait_for_sleepers(const char *reg, int n)
{
	struct shm_wait_slot *slots;
	char wpath[PATH_MAX + 8], key[32];
	uint64_t t0 = bench_now_ns(), sum;
	void *m = MAP_FAILED;
	int fd;

	snprintf(wpath, sizeof(wpath), "%s.wait", reg);
	fd = open(wpath, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		m = mmap(NULL, SHM_WAIT_FILE_SIZE, PROT_READ, MAP_SHARED, fd,
			 0);
		close(fd);
	}
	if (m == MAP_FAILED)
		return;
	slots = shm_wait_slots(m);
	do { /* bounded: 10 s */
		sum = 0;
		for (int k = 0; k < n; k++) {
			uint32_t i;

			snprintf(key, sizeof(key), "absent:%d", k);
			i = shm_wait_slot_of(shm_hash(key, strlen(key)));
			sum += atomic_load(&slots[i].waiters);
		}
		sched_yield();
	} while (sum < (uint64_t)n && bench_now_ns() - t0 < 10000000000ull);
	munmap(m, SHM_WAIT_FILE_SIZE);
}

static void throughput(double rate[3], uint64_t *events, int *fell_behind)
{
	shmreg_writer_opts_t o = { .flags = SHMREG_WRITER_TRUNCATE,
				   .initial_entries = 2 * NKEYS };
	struct { uint64_t events; _Atomic uint32_t ready; } *sh;
	char reg[PATH_MAX];
	shmreg_writer_t *w;
	uint64_t rs = 0x9e3779b97f4a7c15ull, start;
	pid_t kids[9];
	int st, ret;

	sh = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	snprintf(reg, sizeof(reg), "%s/shmreg.puts", dir);
	if (cfg.pin)
		bench_pin(bench_cpu(0));
	ret = shmreg_writer_open(reg, &o, &w);
	if (ret < 0) {
		fprintf(stderr, "writer_open: %s\n", strerror(-ret));
		exit(1);
	}
	put_keys(w, NKEYS, &rs); /* fill: later puts replace */
	rate[0] = put_rate(w, &rs);

	for (int k = 0; k < 8; k++)
		kids[k] = sleeper(reg, k);
	/* the sleepers register within a few ms; a put before that only
	 * makes this figure look better, so wait for all 8 counts */
	wait_for_sleepers(reg, 8);
	rate[1] = put_rate(w, &rs);

	start = shmreg_writer_revision(w);
	kids[8] = follower(reg, start, &sh->events, &sh->ready);
	/* bounded: the follower sets ready or exits */
	while (!atomic_load(&sh->ready) && waitpid(kids[8], &st, WNOHANG) == 0)
		sched_yield();
	rate[2] = put_rate(w, &rs);
	shmreg_writer_close(w); /* ends the sleepers and the follower */
	*fell_behind = 0;
	for (int k = 0; k < 9; k++) {
		waitpid(kids[k], &st, 0);
		if (k == 8 && WIFEXITED(st) && WEXITSTATUS(st) == 2)
			*fell_behind = 1;
		else if (!WIFEXITED(st) || WEXITSTATUS(st)) {
			fprintf(stderr, "bench_await: waiter %d failed\n", k);
			failed = 1;
		}
	}
	*events = sh->events;
	if (!*fell_behind && *events != cfg.puts) {
		fprintf(stderr, "bench_await: the watcher saw %llu events of "
			"%u\n", (unsigned long long)*events, cfg.puts);
		failed = 1;
	}
	munmap(sh, 4096);
}

/* What notify_key() costs a commit when nobody waits (ns per call): the
 * writer's whole overhead for await/watch in that case. */
static double notify_cost(void)
{
	char path[PATH_MAX];
	struct notify *n;
	uint64_t t0, h = 0x9e3779b97f4a7c15ull;
	unsigned iters = cfg.quick ? 100000 : 10000000;

	snprintf(path, sizeof(path), "%s/shmreg.notify", dir);
	if (notify_open(&n, path, 0600) < 0)
		return 0;
	t0 = bench_now_ns();
	for (unsigned i = 0; i < iters; i++)
		notify_key(n, bench_rand(&h));
	t0 = bench_now_ns() - t0;
	notify_close(n);
	return (double)t0 / iters;
}

static void usage(const char *argv0)
{
	fprintf(stderr, "usage: %s [--rounds N] [--puts N] [--same-cpu] "
		"[--no-pin] [--quick]\n", argv0);
	exit(2);
}

static void row_pct(const char *what, struct pct p)
{
	char buf[64];

	snprintf(buf, sizeof(buf), "%.2f/%.2f/%.2f", p.p50, p.p99, p.p999);
	bench_row(what, buf, "", -1);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "rounds", required_argument, NULL, 'r' },
		{ "puts", required_argument, NULL, 'p' },
		{ "same-cpu", no_argument, NULL, 's' },
		{ "no-pin", no_argument, NULL, 'n' },
		{ "quick", no_argument, NULL, 'q' },
		{ 0 }
	};
	struct pct raw, aw;
	double rate[3], raw_s, aw_s, ratio, ncost;
	uint64_t events;
	int c, behind, ret;
	char load[64] = "?";
	FILE *f;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			cfg.rounds = (unsigned)strtoul(optarg, NULL, 0);
			break;
		case 'p':
			cfg.puts = (unsigned)strtoul(optarg, NULL, 0);
			break;
		case 's':
			cfg.same_cpu = 1;
			break;
		case 'n':
			cfg.pin = 0;
			break;
		case 'q':
			cfg.quick = 1;
			break;
		default:
			usage(argv[0]);
		}
	}
	if (cfg.quick) {
		cfg.rounds = 2000;
		cfg.puts = 20000;
	}
	if (!cfg.rounds || !cfg.puts)
		usage(argv[0]);
	if (bench_ncpus() < 2 && !cfg.same_cpu && cfg.pin) {
		fprintf(stderr, "bench_await: one CPU: using --same-cpu\n");
		cfg.same_cpu = 1;
	}
	ret = bench_mkdir(dir, sizeof(dir), "await");
	if (ret < 0) {
		fprintf(stderr, "bench_await: mkdir: %s\n", strerror(-ret));
		return 1;
	}
	if ((f = fopen("/proc/loadavg", "r"))) {
		if (fgets(load, sizeof(load), f))
			load[strcspn(load, "\n")] = 0;
		fclose(f);
	}
	printf("bench_await: %u rounds, %u puts; %d allowed CPUs; pinning: %s; "
	       "loadavg %s\n", cfg.rounds, cfg.puts, bench_ncpus(),
	       !cfg.pin ? "none" : cfg.same_cpu ?
	       "both ping-pong processes on one CPU" :
	       "ping-pong processes on two different CPUs", load);

	raw = pingpong("raw.pp", 0, &raw_s);
	aw = pingpong("await.pp", 1, &aw_s);
	throughput(rate, &events, &behind);
	ncost = notify_cost();
	bench_rmtree(dir);

	ratio = raw.p50 > 0 ? aw.p50 / raw.p50 : 0;
	bench_table_head("wake-up latency, one way (us, p50/p99/p99.9)");
	row_pct("raw futex wake (cross-process)", raw);
	row_pct("put -> shmreg_await returns", aw);
	bench_rowf("await p50 / raw futex p50", ratio, "%.2fx", "<= 2x",
		   ratio <= 2.0);
	bench_rowf("raw ping-pong round trip (us)",
		   raw_s * 1e6 / cfg.rounds, "%.2f", "", -1);
	bench_rowf("await ping-pong round trip (us)",
		   aw_s * 1e6 / cfg.rounds, "%.2f", "", -1);
	bench_table_head("put throughput (puts/s, 16 B keys, 64 B values)");
	bench_rowf("nobody waiting", rate[0], "%.0f", "", -1);
	bench_rowf("notify_key per commit, nobody waiting (ns)", ncost,
		   "%.1f", "", -1);
	bench_rowf("8 processes asleep in await", rate[1], "%.0f",
		   ">= 95% of nobody waiting", rate[1] >= 0.95 * rate[0]);
	bench_rowf("1 watcher following every event", rate[2], "%.0f", "", -1);
	if (behind)
		bench_row("watcher", "fell behind (-ERANGE)", "", -1);
	else
		bench_rowf("events the watcher saw", (double)events, "%.0f",
			   "= puts", events == cfg.puts);
	printf("# key: %.2f\n", ratio);
	return failed;
}
