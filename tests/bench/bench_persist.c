/* SPDX-License-Identifier: MIT */
/*
 * bench_persist.c - the persistence log's cost and the restart time, side
 * by side with LMDB in the same run:
 *
 *   - embedded put throughput without a log and in each durability mode
 *     (sync: one fdatasync per put, so also its latency);
 *   - shmregd pipelined put throughput without a log and in each mode
 *     (group commit through its io_uring: the daemon reports puts per
 *     fdatasync at exit), and the daemon's CPU per put (its rusage, io_uring
 *     workers included: what a loaded machine distorts least);
 *   - LMDB mdb_put committed in transactions of 1,000, with and without
 *     MDB_NOSYNC;
 *   - restart with 1 M entries (16 B keys, 64 B values): the segment
 *     removed (a reboot), shmreg_writer_open until the registry serves,
 *     against LMDB's mdb_env_open + first mdb_get of the same data.
 *
 * Every figure is the median of RUNS runs.  The data directories live in
 * $SHMREG_BENCH_DATA (default /var/tmp: a disk, so fdatasync means
 * something; on tmpfs it costs nothing), the segments in $SHMREG_DIR or
 * /dev/shm.
 *
 * Usage: bench_persist [--quick] [--shmregd PATH] [--restart-only N]
 *                      [--batch-only]
 *   --restart-only N   only the restart with N entries: 5 runs each of
 *                      shmreg and LMDB, every run and the medians
 *   --batch-only       only the batch-mode puts, embedded (and without a
 *                      log) and through shmregd, once each (profiling)
 */
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <lmdb.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "bench_common.h"
#include "bench_shmregd.h"
#include "shmreg.h"
#include "shmreg_writer.h"

#define KEY_LEN 16
#define VAL_LEN 64

static int quick, runs = 3;
#define RESTART_RUNS 5 /* --restart-only */
static uint64_t n_put = 1000000, n_sync = 2000, n_restart = 1000000;
static char scratch[PATH_MAX], datadir[2 * PATH_MAX + 32], seg[PATH_MAX + 16];
static int failed;
static double restart_cpu;   /* CPU seconds of the last restart() */
static double put_cpu_ns;    /* writer thread CPU ns per put, last embedded() */

/* CPU seconds (user + system) this process (@who: RUSAGE_SELF) or this
 * thread (RUSAGE_THREAD) has used.  On a loaded machine the wall clock
 * measures the other processes too; CPU time much less so. */
static double cpu_of(int who)
{
	struct rusage ru;

	getrusage(who, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static double cpu_s(void)
{
	return cpu_of(RUSAGE_SELF);
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "bench_persist: %s: %s\n", what, strerror(rc < 0 ? -rc
								     : rc));
	exit(1);
}

static void key_of(char *k, uint64_t i)
{
	bench_key(k, i);
}

static void val_of(char *v, uint64_t i)
{
	bench_value(v, VAL_LEN, i);
}

static const char *mode_name[] = { "batch", "none", "sync" };

/* What the data directory holds for the restart figures: nothing (0),
 * @filled_n entries as shmreg files (1) or as an LMDB environment (2). */
static int filled_kind;
static uint64_t filled_n;

static void fresh_dirs(void)
{
	char cmd[PATH_MAX * 2];

	filled_kind = 0;
	bench_rmtree(datadir);
	unlink(seg);
	snprintf(cmd, sizeof(cmd), "%s.lock", seg);
	unlink(cmd);
	snprintf(cmd, sizeof(cmd), "%s.wait", seg);
	unlink(cmd);
	snprintf(cmd, sizeof(cmd), "%s.stage", seg); /* a killed run's */
	unlink(cmd);
}

/* Embedded puts per second: @mode < 0 without a data directory. */
static double embedded(int mode, uint64_t n)
{
	shmreg_writer_opts_t o = { .initial_entries = n };
	shmreg_writer_t *w;
	char k[KEY_LEN], v[VAL_LEN];
	uint64_t t0;
	int rc;

	fresh_dirs();
	if (mode >= 0) {
		o.data_dir = datadir;
		o.durability = (uint32_t)mode;
	}
	rc = shmreg_writer_open(seg, &o, &w);
	if (rc < 0)
		die("writer open", rc);
	double c0 = cpu_of(RUSAGE_THREAD);

	t0 = bench_now_ns();
	for (uint64_t i = 0; i < n; i++) {
		key_of(k, i);
		val_of(v, i);
		if (shmreg_writer_put(w, k, KEY_LEN, v, VAL_LEN, NULL) <= 0)
			failed = 1;
	}
	t0 = bench_now_ns() - t0;
	put_cpu_ns = (cpu_of(RUSAGE_THREAD) - c0) * 1e9 / (double)n;
	shmreg_writer_close(w);
	return (double)n * 1e9 / (double)t0;
}

/* LMDB puts per second, committed every 1,000. */
static double lmdb_puts(unsigned flags, uint64_t n)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	char k[KEY_LEN], v[VAL_LEN];
	uint64_t t0;

	fresh_dirs();
	mkdir(datadir, 0700);
	if (mdb_env_create(&env) ||
	    mdb_env_set_mapsize(env, (size_t)n * 256 + (64u << 20)) ||
	    mdb_env_open(env, datadir, flags, 0600))
		die("mdb_env_open", EIO);
	t0 = bench_now_ns();
	if (mdb_txn_begin(env, NULL, 0, &txn) || mdb_dbi_open(txn, NULL, 0, &dbi))
		die("mdb_txn_begin", EIO);
	for (uint64_t i = 0; i < n; i++) {
		MDB_val mk = { KEY_LEN, k }, mv = { VAL_LEN, v };

		key_of(k, i);
		val_of(v, i);
		if (mdb_put(txn, dbi, &mk, &mv, 0))
			failed = 1;
		if ((i + 1) % 1000 == 0) {
			if (mdb_txn_commit(txn) || mdb_txn_begin(env, NULL, 0, &txn))
				die("mdb_txn_commit", EIO);
		}
	}
	if (mdb_txn_commit(txn))
		die("mdb_txn_commit", EIO);
	t0 = bench_now_ns() - t0;
	mdb_env_close(env);
	return (double)n * 1e9 / (double)t0;
}

/* The data directory of the restart: @n entries written (mode none),
 * then one snapshot of all of them (after the one the log's size may
 * have started), the writer closed: a snapshot and a log holding only
 * its MARK, as compaction leaves a registry. */
static void restart_fill(uint64_t n)
{
	shmreg_writer_opts_t o = { .data_dir = datadir,
				   .durability = SHMREG_DURABILITY_NONE,
				   .initial_entries = n };
	shmreg_writer_t *w;
	char k[KEY_LEN], v[VAL_LEN];
	uint64_t deadline;
	int rc;

	if (filled_kind == 1 && filled_n == n)
		return;
	fresh_dirs();
	rc = shmreg_writer_open(seg, &o, &w);
	if (rc < 0)
		die("writer open", rc);
	for (uint64_t i = 0; i < n; i++) {
		key_of(k, i);
		val_of(v, i);
		shmreg_writer_put(w, k, KEY_LEN, v, VAL_LEN, NULL);
	}
	/* -EALREADY: the snapshot the log's size started is being written */
	deadline = bench_now_ns() + UINT64_C(120000000000);
	while ((rc = shmreg_writer_snapshot(w)) == -EALREADY &&
	       bench_now_ns() < deadline)
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	if (rc < 0)
		die("snapshot", rc);
	shmreg_writer_close(w); /* waits for the snapshot */
	filled_kind = 1;
	filled_n = n;
}

/* Time reopening after removing the segment (a reboot) until a reader
 * gets the last key. */
static double restart(uint64_t n)
{
	shmreg_writer_opts_t o = { .data_dir = datadir,
				   .durability = SHMREG_DURABILITY_NONE };
	shmreg_writer_t *w;
	shmreg_t *r;
	char k[KEY_LEN], v[VAL_LEN], buf[VAL_LEN];
	uint64_t t0;
	int rc;

	restart_fill(n);
	unlink(seg);
	restart_cpu = cpu_s();
	t0 = bench_now_ns();
	rc = shmreg_writer_open(seg, &o, &w);
	if (rc < 0)
		die("reopen", rc);
	rc = shmreg_open(seg, 0, &r);
	if (rc < 0)
		die("reader", rc);
	key_of(k, n - 1);
	if (shmreg_get(r, k, KEY_LEN, buf, sizeof(buf), NULL) != VAL_LEN)
		failed = 1;
	t0 = bench_now_ns() - t0;
	restart_cpu = cpu_s() - restart_cpu;
	val_of(v, n - 1);
	if (memcmp(buf, v, VAL_LEN))
		failed = 1;
	shmreg_close(r);
	shmreg_writer_close(w);
	return (double)t0 / 1e9;
}

static double lmdb_restart(uint64_t n)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	char k[KEY_LEN], v[VAL_LEN];
	uint64_t t0;

	if (filled_kind != 2 || filled_n != n) {
		lmdb_puts(MDB_NOSYNC, n);
		filled_kind = 2;
		filled_n = n;
	}
	key_of(k, n - 1);
	t0 = bench_now_ns();
	MDB_val mk = { KEY_LEN, k }, mv;
	if (mdb_env_create(&env) ||
	    mdb_env_set_mapsize(env, (size_t)n * 256 + (64u << 20)) ||
	    mdb_env_open(env, datadir, 0, 0600) ||
	    mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) ||
	    mdb_dbi_open(txn, NULL, 0, &dbi) || mdb_get(txn, dbi, &mk, &mv))
		die("lmdb reopen", EIO);
	t0 = bench_now_ns() - t0;
	val_of(v, n - 1);
	if (mv.mv_size != VAL_LEN || memcmp(mv.mv_data, v, VAL_LEN))
		failed = 1;
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return (double)t0 / 1e9;
}

/* ---- shmregd ---- */

static const char *shmregd_bin;
static char sockdir[32], sock[64], dlog[PATH_MAX + 16];
static double d_syncs;       /* fdatasyncs of the last daemon_puts() run */
static double d_cpu_s;       /* the daemon's CPU seconds in that run (its
                              * io_uring workers and snapshot threads
                              * included) */
static double d_loop_s;      /* of those, its event loop's thread */

/* CPU seconds of thread @tid of process @pid (/proc, clock ticks). */
static double thread_cpu(pid_t pid, pid_t tid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut = 0, st = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid,
		 (int)tid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	/* after "(comm)": state is field 3, utime and stime 14 and 15 */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s "
			 "%llu %llu", &ut, &st) != 2)
		return 0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static pid_t start_daemon(const char *mode)
{
	char fdarg[16], buf[8], reg[PATH_MAX + 32];
	int p[2];
	pid_t pid;

	strcpy(sockdir, "/tmp/shmregd-pbench-XXXXXX");
	if (!mkdtemp(sockdir))
		exit(1);
	snprintf(sock, sizeof(sock), "%s/d.sock", sockdir);
	snprintf(reg, sizeof(reg), "%s", seg);
	if (pipe(p) < 0)
		exit(1);
	snprintf(fdarg, sizeof(fdarg), "%d", p[1]);
	snprintf(dlog, sizeof(dlog), "%s/shmregd.log", scratch);
	pid = fork();
	if (pid == 0) {
		/* its log says how many fdatasyncs it made, at exit */
		int lf = open(dlog, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (lf >= 0)
			dup2(lf, 2);
		close(p[0]);
		if (mode)
			execl(shmregd_bin, shmregd_bin, "--registry", reg,
			      "--data-dir", scratch, "--durability", mode,
			      "--socket", sock, "--ready-fd", fdarg,
			      (char *)NULL);
		else /* the peer without a log */
			execl(shmregd_bin, shmregd_bin, "--registry", reg,
			      "--socket", sock, "--ready-fd", fdarg,
			      (char *)NULL);
		perror(shmregd_bin);
		_exit(127);
	}
	close(p[1]);
	if (read(p[0], buf, 6) != 6 || memcmp(buf, "READY\n", 6)) {
		fprintf(stderr, "bench_persist: %s did not start\n",
			shmregd_bin);
		exit(1);
	}
	close(p[0]);
	return pid;
}

static void stop_daemon(pid_t pid)
{
	char line[512];
	FILE *f;

	struct rusage ru;

	d_loop_s = thread_cpu(pid, pid); /* the main thread runs the loop */
	kill(pid, SIGTERM);
	wait4(pid, NULL, 0, &ru);
	d_cpu_s = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
		  (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
	unlink(sock);
	rmdir(sockdir);
	d_syncs = 0;
	f = fopen(dlog, "r");
	while (f && fgets(line, sizeof(line), f)) {
		const char *s = strstr(line, " writes, ");
		unsigned long long n;

		if (s && sscanf(s, " writes, %llu fdatasyncs", &n) == 1)
			d_syncs = (double)n;
	}
	if (f)
		fclose(f);
	unlink(dlog);
}

/* Pipelined puts per second through the daemon, at its full depth. */
static double daemon_puts(const char *mode, uint64_t n)
{
	shmreg_completion_t cq[256];
	shmreg_client_t *c;
	char k[KEY_LEN], v[VAL_LEN];
	uint64_t out = 0, t0, depth;
	pid_t pid;
	int rc;

	fresh_dirs();
	pid = start_daemon(mode);
	rc = shmreg_connect(sock, seg, &c);
	if (rc < 0)
		die("connect", rc);
	depth = shmreg_client_depth(c);
	t0 = bench_now_ns();
	for (uint64_t i = 0; i < n || out; ) {
		while (i < n && out < depth) {
			key_of(k, i);
			val_of(v, i);
			if (shmreg_put_async(c, k, KEY_LEN, v, VAL_LEN, NULL) <= 0)
				die("put_async", EIO);
			out++;
			i++;
		}
		int got = shmreg_client_wait(c, cq, 256, -1);

		if (got <= 0)
			die("wait", got);
		for (int j = 0; j < got; j++)
			if (cq[j].result <= 0)
				failed = 1;
		out -= (uint64_t)got;
	}
	t0 = bench_now_ns() - t0;
	shmreg_disconnect(c);
	stop_daemon(pid);
	return (double)n * 1e9 / (double)t0;
}

typedef double (*fig_fn)(int arg, uint64_t n);

/* The median of @runs runs of @fn; *@cpu (may be NULL) the median of
 * *@cpu_src after each. */
static double median_cpu(double (*fn)(int, uint64_t), int arg, uint64_t n,
			 const double *cpu_src, double *cpu)
{
	double v[16], c[16];

	for (int i = 0; i < runs; i++) {
		v[i] = fn(arg, n);
		c[i] = cpu_src ? *cpu_src : 0;
	}
	if (cpu)
		*cpu = bench_median(c, runs);
	return bench_median(v, runs);
}

static double median_of(double (*fn)(int, uint64_t), int arg, uint64_t n)
{
	return median_cpu(fn, arg, n, NULL, NULL);
}

static double f_embedded(int mode, uint64_t n) { return embedded(mode, n); }
static double f_lmdb(int flags, uint64_t n) { return lmdb_puts((unsigned)flags, n); }
static double f_restart(int x, uint64_t n) { (void)x; return restart(n); }
static double f_lmdb_restart(int x, uint64_t n) { (void)x; return lmdb_restart(n); }
static double d_per_sync;    /* puts per fdatasync, last f_daemon() */
static double d_put_cpu_ns;  /* daemon CPU ns per put, last f_daemon() */
static double d_loop_cpu_ns; /* of which its loop thread's */
static double f_daemon(int mode, uint64_t n)
{
	/* @mode 3: no data directory */
	double r = daemon_puts(mode < 3 ? mode_name[mode] : NULL, n);

	d_per_sync = d_syncs > 0 ? (double)n / d_syncs : 0;
	d_put_cpu_ns = d_cpu_s * 1e9 / (double)n;
	d_loop_cpu_ns = d_loop_s * 1e9 / (double)n;
	return r;
}

int main(int argc, char **argv)
{
	const char *base = getenv("SHMREG_BENCH_DATA");
	const char *bin_arg = NULL;
	double nolog, mode_rate[3], lmdb_sync, lmdb_nosync, d_rate[4];
	double rs, rl, rs_cpu, nolog_cpu, mode_cpu[3];
	char buf[64];
	double la[3] = { 0 };
	uint64_t restart_only = 0;
	int batch_only = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			quick = 1;
		else if (!strcmp(argv[i], "--shmregd") && i + 1 < argc)
			bin_arg = argv[++i];
		else if (!strcmp(argv[i], "--restart-only") && i + 1 < argc)
			restart_only = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--batch-only"))
			batch_only = 1;
		else {
			fprintf(stderr, "usage: bench_persist [--quick] "
				"[--shmregd PATH] [--restart-only N] "
				"[--batch-only]\n");
			return 2;
		}
	}
	if (quick) {
		runs = 1;
		n_put = 20000;
		n_sync = 50;
		n_restart = 20000;
		base = NULL;
	}
	shmregd_bin = bench_find_shmregd(bin_arg);
	if (!base)
		base = quick ? bench_base_dir() : "/var/tmp";
	if ((size_t)snprintf(scratch, sizeof(scratch), "%s/shmreg-pbench.XXXXXX",
			     base) >= sizeof(scratch) || !mkdtemp(scratch))
		die("mkdtemp", errno);
	snprintf(seg, sizeof(seg), "%s/shmreg-pbench-%d", bench_base_dir(),
		 (int)getpid());
	/* the daemon keeps DIR/NAME: the registry's name is seg's */
	snprintf(datadir, sizeof(datadir), "%s/%s", scratch, basename(seg));

	if (restart_only) {
		/* the restart alone, side by side with LMDB in this run:
		 * RESTART_RUNS of each, every run printed, then medians */
		double w[RESTART_RUNS], c[RESTART_RUNS], l[RESTART_RUNS];

		for (int i = 0; i < RESTART_RUNS; i++) {
			w[i] = restart(restart_only);
			c[i] = restart_cpu;
			printf("restart %d, %llu entries: %.3f s (%.3f s CPU)\n",
			       i + 1, (unsigned long long)restart_only, w[i],
			       c[i]);
		}
		for (int i = 0; i < RESTART_RUNS; i++)
			l[i] = lmdb_restart(restart_only);
		fresh_dirs();
		bench_rmtree(scratch);
		getloadavg(la, 3);
		rs = bench_median(w, RESTART_RUNS);
		rl = bench_median(l, RESTART_RUNS);
		printf("# medians of %d; load average %.2f %.2f %.2f\n"
		       "restart, %llu entries: %.3f s wall, %.3f s CPU "
		       "(<= 0.5 s: %s)\nLMDB env open + first get: %.4f s\n"
		       "shmreg / LMDB: %.0fx\n", RESTART_RUNS, la[0], la[1],
		       la[2], (unsigned long long)restart_only, rs,
		       bench_median(c, RESTART_RUNS), rs <= 0.5 ? "met" : "missed",
		       rl, rs / rl);
		return failed;
	}
	if (batch_only) {
		nolog = embedded(-1, n_put);
		nolog_cpu = put_cpu_ns;
		mode_rate[0] = embedded(0, n_put);
		d_rate[0] = f_daemon(0, n_put);
		fresh_dirs();
		bench_rmtree(scratch);
		printf("embedded no log: %.0f puts/s (%.0f ns CPU/put); batch: "
		       "%.0f puts/s (%.0f ns CPU/put); shmregd batch: %.0f "
		       "puts/s (%.0f ns daemon CPU/put), %.1f puts per "
		       "fdatasync\n", nolog, nolog_cpu, mode_rate[0],
		       put_cpu_ns, d_rate[0], d_put_cpu_ns, d_per_sync);
		return failed;
	}
	nolog = median_cpu(f_embedded, -1, n_put, &put_cpu_ns, &nolog_cpu);
	for (int m = 0; m < 3; m++)
		mode_rate[m] = median_cpu(f_embedded, m, m == 2 ? n_sync : n_put,
					  &put_cpu_ns, &mode_cpu[m]);
	lmdb_nosync = median_of(f_lmdb, MDB_NOSYNC, n_put);
	lmdb_sync = median_of(f_lmdb, 0, n_put / (quick ? 1 : 10));
	double d_sync_batch[4], d_cpu[4], d_loop[4];

	for (int m = 0; m < 4; m++) {
		double v[16], ps[16], cpu[16], loop[16];

		/* each figure the median of its own values over the runs */
		for (int i = 0; i < runs; i++) {
			v[i] = f_daemon(m, m == 2 ? n_put / 10 : n_put);
			ps[i] = d_per_sync;
			cpu[i] = d_put_cpu_ns;
			loop[i] = d_loop_cpu_ns;
		}
		d_rate[m] = bench_median(v, runs);
		d_sync_batch[m] = bench_median(ps, runs);
		d_cpu[m] = bench_median(cpu, runs);
		d_loop[m] = bench_median(loop, runs);
	}
	rs = median_cpu(f_restart, 0, n_restart, &restart_cpu, &rs_cpu);
	rl = median_of(f_lmdb_restart, 0, n_restart);
	fresh_dirs();
	bench_rmtree(scratch);
	getloadavg(la, 3);

	printf("# data directory on %s; %d run(s) per figure, medians; load "
	       "average %.2f %.2f %.2f\n", base, runs, la[0], la[1], la[2]);
	bench_table_head("embedded put, 16 B key + 64 B value (puts/s)");
	bench_rowf("no log", nolog, "%.0f", "", -1);
	bench_rowf("durability none", mode_rate[1], "%.0f", "", -1);
	bench_rowf("durability batch (10 ms)", mode_rate[0], "%.0f",
		   ">= 1 M/s", mode_rate[0] >= 1e6);
	bench_rowf("durability sync (1 put per fdatasync)", mode_rate[2],
		   "%.0f", "", -1);
	bench_rowf("  sync latency per put (us)", 1e6 / mode_rate[2], "%.1f",
		   "", -1);
	bench_rowf("  writer CPU per put, no log (ns)", nolog_cpu, "%.0f", "", -1);
	bench_rowf("  writer CPU per put, none (ns)", mode_cpu[1], "%.0f", "",
		   -1);
	bench_rowf("  writer CPU per put, batch (ns)", mode_cpu[0], "%.0f",
		   "<= 1000 ns", mode_cpu[0] <= 1000);
	bench_rowf("LMDB mdb_put, 1,000 per txn, MDB_NOSYNC", lmdb_nosync,
		   "%.0f", "", -1);
	bench_rowf("LMDB mdb_put, 1,000 per txn, synced", lmdb_sync, "%.0f",
		   "", -1);
	bench_rowf("batch / LMDB NOSYNC", mode_rate[0] / lmdb_nosync, "%.2fx",
		   "", -1);
	bench_table_head("shmregd pipelined put, one client (puts/s)");
	bench_rowf("no log", d_rate[3], "%.0f", "", -1);
	bench_rowf("durability none", d_rate[1], "%.0f", "", -1);
	bench_rowf("durability batch", d_rate[0], "%.0f", ">= 500 k/s",
		   d_rate[0] >= 5e5);
	bench_rowf("durability sync (group commit)", d_rate[2], "%.0f", "", -1);
	bench_rowf("batch / no log", d_rate[0] / d_rate[3], "%.2fx", "", -1);
	bench_rowf("  daemon CPU per put, no log (ns)", d_cpu[3], "%.0f", "",
		   -1);
	bench_rowf("  daemon CPU per put, none (ns)", d_cpu[1], "%.0f", "",
		   -1);
	bench_rowf("  daemon CPU per put, batch (ns)", d_cpu[0], "%.0f", "",
		   -1);
	bench_rowf("  daemon CPU per put, sync (ns)", d_cpu[2], "%.0f", "",
		   -1);
	bench_rowf("  its loop thread's, no log (ns)", d_loop[3], "%.0f", "",
		   -1);
	bench_rowf("  its loop thread's, batch (ns)", d_loop[0], "%.0f", "",
		   -1);
	bench_rowf("  sync: puts per fdatasync", d_sync_batch[2], "%.1f", "",
		   -1);
	bench_rowf("  batch: puts per fdatasync", d_sync_batch[0], "%.1f", "",
		   -1);
	bench_rowf("sync / LMDB synced 1,000-op txns", d_rate[2] / lmdb_sync,
		   "%.2fx", "", -1);
	snprintf(buf, sizeof(buf), "restart, %llu entries (s)",
		 (unsigned long long)n_restart);
	bench_table_head(buf);
	bench_rowf("shmreg: open to a served segment", rs, "%.3f", "<= 0.5 s",
		   rs <= 0.5);
	bench_rowf("shmreg: CPU of that open (s)", rs_cpu, "%.3f", "<= 0.5 s",
		   rs_cpu <= 0.5);
	bench_rowf("LMDB: env open + first get", rl, "%.4f", "", -1);
	bench_rowf("shmreg / LMDB", rs / rl, "%.0fx", "", -1);
	printf("# key: %.0f\n", mode_rate[0]);
	return failed;
}
