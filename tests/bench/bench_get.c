/* SPDX-License-Identifier: MIT */
/* Description: the core benchmark (issue 2; its table prints the performance
 * target of each figure): random shmreg_get over 1 M entries against
 * LMDB's mdb_get on the same data, gets while a writer process rewrites at
 * full speed, reader scaling, embedded put and replace rates, and bytes per
 * entry, in one run.
 *
 * Usage: bench_get [-n ENTRIES] [-g GETS] [-r REPS] [-l LMDB_GETS]
 *                  [-R REDIS_GETS] [--no-lmdb] [--no-redis] [--no-pin]
 *                  [--quick]
 *
 * Method (the same for every figure, so the ratios compare like with like):
 *  - Keys are "key:%012d" (16 B), values 64 B; key i's value is eight
 *    64-bit words {i, generation, 6 words mixed from both}, so every read
 *    is checked: word 0 against the key's index in the timed loops, the
 *    whole value in the validation pass under writes.
 *  - The random access order is an xorshift sequence drawn before timing;
 *    the keys are pre-formatted in that order into one array that the loop
 *    reads sequentially (the hardware prefetcher hides it), so neither the
 *    PRNG nor key formatting is measured.  What is measured per get: the
 *    call, the copy of the 64 B value out, and one compare.
 *  - A get figure is the median over REPS passes of GETS gets each, after
 *    one untimed warm-up pass (page faults of the first touch).
 *  - The writer is a forked process that owns the registry from the start.
 *    With two CPUs or more, the reader runs on the first allowed CPU and
 *    the writer on the second (sched_setaffinity), for every figure.  The
 *    quiet gets are measured twice: with the writer asleep (its CPU idle)
 *    and with it spinning in a register loop (its CPU busy, no memory
 *    traffic), because on a virtual machine an idle vCPU can slow the
 *    other's memory accesses; the rate under writes is compared with the
 *    faster of the two.
 *  - LMDB: an environment in a scratch directory on the same filesystem,
 *    loaded in key order (MDB_APPEND) with MDB_NOSYNC | MDB_WRITEMAP |
 *    MDB_NOMETASYNC, read in the same key order with one read transaction
 *    renewed (mdb_txn_reset + mdb_txn_renew) every 1,000 gets, the value
 *    copied out and checked like shmreg's.
 *  - Redis (when redis-server is in PATH): a private server on a free
 *    loopback port, no persistence, pinned to the writer's CPU while the
 *    writer sleeps; the same keys and values loaded with pipelined SETs;
 *    then GET round trips one at a time (pipeline depth 1) over TCP
 *    127.0.0.1 in the same key order, each reply read whole and checked;
 *    with the server on the other CPU, then moved to the client's.
 *  - The floor: one random 64 B read (copied out and checked, each address
 *    depending on the previous read) from memory of the segment's size,
 *    in a tmpfs file mapped like a segment and in anonymous memory on
 *    2 MiB pages: the latency of one random memory access on this
 *    machine, page walk included, in the same run.
 *
 * Exit 0 when every read returned the right value, 1 otherwise (a target
 * that is missed is reported, not a failure).
 */
#define _GNU_SOURCE
#include "bench_common.h"

#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <lmdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>

#include "shmreg.h"
#include "shmreg_writer.h"
#include "bare_table.h"

#define KLEN     16
#define VLEN     64
#define MAX_REPS 32
#define TXN_GETS 1000   /* LMDB read txn renewed every this many gets */

typedef char key_t16[KLEN];

struct cfg {
	uint64_t n;          /* entries */
	uint64_t gets;       /* gets per timed pass */
	uint64_t lmdb_gets;  /* gets per LMDB pass */
	uint64_t redis_gets; /* GET round trips per Redis pass */
	int reps;            /* timed passes per figure */
	int put_reps;        /* passes of each put figure */
	int lmdb;
	int redis;
	int pin;
	int quick;
	int huge;            /* mount a tmpfs on 2 MiB pages (root only) */
};

/* Shared with the writer process (MAP_SHARED anonymous page). */
struct ctl {
	_Atomic uint32_t stop;   /* parent -> writer: end the rewrite loop */
};

struct load_reply {
	int64_t err;             /* first error of the load, 0 */
	uint64_t ns;
	uint64_t slots;          /* index slots, = the bare tables' */
	int huge;                /* the copies on 2 MiB pages exist */
};

struct rewrite_reply {
	int64_t err;
	uint64_t puts, ns;
};


static pid_t writer_pid;
static uint64_t t_start;
/* The CPUs of the run, chosen before anything is pinned (a pinned process
 * sees only its own CPU in its affinity mask, and so do its children). */
static int cpu_of[2] = { -1, -1 };

/* Progress on stderr: where a long run is, and what each phase cost. */
static void phase(const char *what)
{
	fprintf(stderr, "[%7.2f s] %s\n",
		(double)(bench_now_ns() - t_start) / 1e9, what);
}
static char scratch[4096];
static char huge_dir[4200];   /* tmpfs on 2 MiB pages, "" when none */
static int failures;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("bench_get: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	failures++;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2),
						    noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("bench_get: fatal: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	if (writer_pid > 0) {
		kill(writer_pid, SIGKILL);
		waitpid(writer_pid, NULL, 0);
	}
	if (scratch[0])
		bench_rmtree(scratch);
	exit(1);
}

/* ---- keys and self-checking values ---- */

static void key_of(uint64_t i, char *out)
{
	char b[32];

	snprintf(b, sizeof(b), "key:%012llu", (unsigned long long)i);
	memcpy(out, b, KLEN);
}

static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

static inline void val_of(uint64_t i, uint64_t gen, uint64_t v[8])
{
	v[0] = i;
	v[1] = gen;
	for (int k = 2; k < 8; k++)
		v[k] = mix64(i * 8 + (uint64_t)k + gen * 0x9e3779b97f4a7c15ull);
}

static inline int val_ok(uint64_t i, const uint64_t v[8])
{
	uint64_t e[8];

	val_of(i, v[1], e);
	return memcmp(e, v, VLEN) == 0;
}

/* ---- pipes ---- */

static void write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("pipe write: %s", strerror(errno));
		p += n;
		len -= (size_t)n;
	}
}

/* Returns 0, or -1 at end of file. */
static int read_full(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("pipe read: %s", strerror(errno));
		if (n == 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Remove the registry at @path and the files the writer keeps beside it
 * (lock, wait, handoff temporaries): every name that starts with it. */
static void rm_registry(const char *path)
{
	char cmdir[4096], *slash;
	const char *base;
	struct dirent *de;
	DIR *d;

	snprintf(cmdir, sizeof(cmdir), "%s", path);
	slash = strrchr(cmdir, '/');
	if (!slash)
		return;
	*slash = '\0';
	base = path + (slash - cmdir) + 1;
	d = opendir(cmdir);
	if (!d)
		return;
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, base, strlen(base))) {
			char full[8192];

			snprintf(full, sizeof(full), "%s/%s", cmdir,
				 de->d_name);
			unlink(full);
		}
	closedir(d);
}

/* ---- the writer process ---- */

static int64_t load(shmreg_writer_t *w, const key_t16 *keys, uint64_t n)
{
	uint64_t v[8];

	for (uint64_t i = 0; i < n; i++) {
		int64_t rev;

		val_of(i, 0, v);
		rev = shmreg_writer_put(w, keys[i], KLEN, v, VLEN, NULL);
		if (rev <= 0)
			return rev ? rev : -EPROTO;
	}
	return 0;
}

#include "put_rates.h"

static double rate(uint64_t ops, uint64_t ns)
{
	return ns ? (double)ops * 1e9 / (double)ns : 0;
}

/* The writer-side figures (put_rates.h), in the writer process: puts
 * against the bare writer, growth, takeover.  The replacing puts go to
 * random existing keys in an order drawn up front. */
static void put_phase(const struct cfg *c, const key_t16 *keys, int rep_fd)
{
	struct put_figures *pf = calloc(1, sizeof(*pf));
	uint32_t *order = malloc(c->n * sizeof(*order));
	key_t16 *seq = malloc(c->n * KLEN);
	uint64_t s = 0x1234567;

	if (!pf || !order || !seq)
		die("out of memory");
	for (uint64_t j = 0; j < c->n; j++) {
		order[j] = (uint32_t)(bench_rand(&s) % c->n);
		memcpy(seq[j], keys[order[j]], KLEN);
	}
	put_rates(scratch, huge_dir[0] ? huge_dir : NULL, c->n, c->put_reps,
		  keys, seq, order, pf);
	write_full(rep_fd, pf, sizeof(*pf));
	free(seq);
	free(order);
	free(pf);
}

/* A copy of the get registry's contents in a bare table of the same slot
 * count, at @dir/bare.get. */
static int64_t bare_copy(const char *dir, const key_t16 *keys, uint64_t n,
			 uint64_t slots)
{
	char path[4200];
	struct bare_table t = { 0 };
	uint64_t v[8];
	int rc;

	snprintf(path, sizeof(path), "%s/bare.get", dir);
	rc = bare_create(&t, path, slots);
	if (rc < 0)
		return rc;
	for (uint64_t i = 0; i < n; i++) {
		val_of(i, 0, v);
		bare_put(&t, keys[i], KLEN, v, VLEN);
	}
	bare_close(&t);
	return 0;
}

/* The get registry again, pre-sized and loaded, on the huge-page tmpfs;
 * kept open (its writer stays this process) until the end. */
static int64_t huge_copy(const struct cfg *c, const key_t16 *keys,
			 shmreg_writer_t **w, uint64_t slots)
{
	shmreg_writer_opts_t o = { .flags = SHMREG_WRITER_TRUNCATE,
				   .initial_entries = c->n };
	char path[4400];
	int64_t rc;

	snprintf(path, sizeof(path), "%s/shmreg.get", huge_dir);
	rc = shmreg_writer_open(path, &o, w);
	if (rc < 0)
		return rc;
	rc = load(*w, keys, c->n);
	return rc ? rc : bare_copy(huge_dir, keys, c->n, slots);
}

static void writer_main(const struct cfg *c, const char *path,
			const key_t16 *keys, int cmd_fd, int rep_fd,
			struct ctl *ctl, int cpu)
{
	shmreg_writer_opts_t o = {
		.flags = SHMREG_WRITER_TRUNCATE,
		.initial_entries = c->n,
	};
	struct load_reply lr = { 0 };
	shmreg_writer_t *w = NULL, *wh = NULL;
	uint64_t t0, gen = 0, s = 0xfeedbeef;
	char cmd;
	int rc;

	if (cpu >= 0)
		bench_pin(cpu);
	rc = shmreg_writer_open(path, &o, &w);
	if (rc < 0) {
		lr.err = rc;
		write_full(rep_fd, &lr, sizeof(lr));
		_exit(1);
	}
	t0 = bench_now_ns();
	lr.err = load(w, keys, c->n);
	lr.ns = bench_now_ns() - t0;
	if (!lr.err) {
		shmreg_stats_t st;

		shmreg_stats(shmreg_writer_reader(w), &st);
		lr.slots = st.index_capacity;
		lr.err = bare_copy(scratch, keys, c->n, lr.slots);
	}
	if (!lr.err && huge_dir[0]) {
		lr.err = huge_copy(c, keys, &wh, lr.slots);
		lr.huge = lr.err == 0;
	}
	write_full(rep_fd, &lr, sizeof(lr));

	/* Idle (blocked in read) until told what to do: the quiet figures
	 * are measured with this process asleep. */
	while (read_full(cmd_fd, &cmd, 1) == 0) {
		if (cmd == 'S') {
			/* Keep this CPU busy without touching memory, until
			 * told to stop: the reader's "quiet, other CPU busy"
			 * figure (an idle vCPU slows the other one's memory
			 * accesses on these virtual machines). */
			write_full(rep_fd, "s", 1);
			while (!atomic_load_explicit(&ctl->stop,
						     memory_order_relaxed))
				bench_pause();
			write_full(rep_fd, "e", 1);
		} else if (cmd == 'W' || (cmd == 'H' && wh)) {
			/* Rewrite random keys at full speed until told to
			 * stop, of the registry on 4 KiB pages ('W') or of
			 * its copy on 2 MiB pages ('H').  The stop flag is a
			 * relaxed load every 256 puts: a request, not a
			 * synchronisation; the results travel through the
			 * pipe. */
			shmreg_writer_t *tw = cmd == 'H' ? wh : w;
			struct rewrite_reply rr = { 0 };
			uint64_t v[8];
			int started = 0;

			t0 = bench_now_ns();
			while (!rr.err && !atomic_load_explicit(
					&ctl->stop, memory_order_relaxed)) {
				for (int k = 0; k < 256; k++) {
					uint64_t i = bench_rand(&s) % c->n;
					int64_t rev;

					val_of(i, ++gen, v);
					rev = shmreg_writer_put(tw, keys[i],
								KLEN, v, VLEN,
								NULL);
					if (rev <= 0) {
						rr.err = rev ? rev : -EPROTO;
						break;
					}
				}
				rr.puts += 256;
				if (!started && rr.puts >= 4096) {
					started = 1;
					write_full(rep_fd, "w", 1);
				}
			}
			rr.ns = bench_now_ns() - t0;
			if (!started)
				write_full(rep_fd, "w", 1);
			write_full(rep_fd, &rr, sizeof(rr));
		} else if (cmd == 'P') {
			put_phase(c, keys, rep_fd);
		} else {
			break;
		}
	}
	shmreg_writer_close(w);
	shmreg_writer_close(wh);
	_exit(0);
}

/* ---- the reader side ---- */

/*
 * One timed pass: @gets random gets in the order of @seq (key indexes in
 * @idx) from @t, with GET(t, key, v) the read.  Returns ns per get; counts
 * wrong values in *@bad and -EAGAIN returns (shmreg's only) in *@again.
 * GET is a macro, not a function pointer, so that each pass has its read
 * inlined into its loop (the references' speed depends on it).  The reads:
 * shmreg_get() as a C program writes it (a constant key length: inlined
 * from shmreg.h where it can be, include/shmreg_inline.h), (shmreg_get)(),
 * the library's function, as bindings and calls with a run-time length
 * reach it, and the bare table's three readings below.
 *
 * The empty asm after each read tells the compiler that all 64 bytes of
 * the value are used.  Without it, the inlined read of bare_get_fixed()
 * kept only v[0], the one word the loop looks at: the compiler dropped the
 * other 56 bytes' loads and every store to v, and the reference read one
 * of its slot's two cache lines and copied nothing.  shmreg_get() must
 * store the whole value to the caller's buffer, so the reference must too
 * (like with like: probe, seqcount, copy).
 *
 * Each pass starts from bench_sweep_caches(), so that no table starts
 * warmer because the pass before it read the same one (bench_common.h).
 */
#define TIMED_PASS(name, T, GET)                                              \
	static double name(T t, const key_t16 *seq, const uint32_t *idx,    \
			   uint64_t gets, uint64_t *bad, uint64_t *again)     \
	{                                                                     \
		uint64_t v[8], t0, t1;                                         \
                                                                              \
		bench_sweep_caches();                                          \
		t0 = bench_now_ns();                                           \
		for (uint64_t j = 0; j < gets; j++) {                          \
			ssize_t n = GET(t, seq[j], v);                         \
                                                                              \
			__asm__ volatile("" : : "m"(v));                       \
			if (__builtin_expect(n == VLEN, 1))                    \
				*bad += v[0] != idx[j];                        \
			else if (n == -EAGAIN)                                 \
				(*again)++;                                    \
			else                                                   \
				(*bad)++;                                      \
		}                                                              \
		t1 = bench_now_ns();                                           \
		return (double)(t1 - t0) / (double)gets;                       \
	}

#define SHMREG_GET(r, key, v)  shmreg_get(r, key, KLEN, v, VLEN, NULL)
#define LIBRARY_GET(r, key, v) (shmreg_get)(r, key, KLEN, v, VLEN, NULL)

TIMED_PASS(get_pass, shmreg_t *, SHMREG_GET)
TIMED_PASS(library_pass, shmreg_t *, LIBRARY_GET)

/* Median ns/get over @reps passes (after one warm-up pass when @warm). */
static double get_median(const struct cfg *c, shmreg_t *r, const key_t16 *seq,
			 const uint32_t *idx, int warm, double *lo, double *hi,
			 uint64_t *bad, uint64_t *again)
{
	double ns[MAX_REPS] = { 0 };

	if (warm)
		get_pass(r, seq, idx, c->gets, bad, again);
	for (int i = 0; i < c->reps; i++)
		ns[i] = get_pass(r, seq, idx, c->gets, bad, again);
	*lo = *hi = ns[0];
	for (int i = 1; i < c->reps; i++) {
		*lo = ns[i] < *lo ? ns[i] : *lo;
		*hi = ns[i] > *hi ? ns[i] : *hi;
	}
	return bench_median(ns, c->reps);
}

/* Validate every byte of @gets values while the writer rewrites them. */
static void validate_pass(shmreg_t *r, const key_t16 *seq, const uint32_t *idx,
			  uint64_t gets, uint64_t *torn, uint64_t *again,
			  uint64_t *newer)
{
	uint64_t v[8];

	for (uint64_t j = 0; j < gets; j++) {
		ssize_t n = shmreg_get(r, seq[j], KLEN, v, VLEN, NULL);

		if (n == -EAGAIN) {
			(*again)++;
			continue;
		}
		if (n != VLEN || v[0] != idx[j] || !val_ok(idx[j], v))
			(*torn)++;
		else if (v[1])
			(*newer)++;
	}
}

/* What gets under writes measured. */
struct under {
	double ns, lo, hi;       /* median ns/get and its passes' range */
	uint64_t torn, newer, again, puts, put_ns;
};

/*
 * Gets of @r while the writer process rewrites random keys of the same
 * registry at full speed (@what 'W': the one on 4 KiB pages, 'H': its copy
 * on 2 MiB pages), then one pass validating every byte.  Ends the run on
 * a wrong or torn value, or when no rewritten value was seen (the writer
 * did not overlap the reads).
 */
static void under_writes(const struct cfg *c, shmreg_t *r, char what,
			 struct ctl *ctl, int cmd_fd, int rep_fd,
			 const key_t16 *seq, const uint32_t *idx,
			 struct under *u)
{
	uint64_t bad = 0, vagain = 0;
	struct rewrite_reply rr;
	char b;

	memset(u, 0, sizeof(*u));
	atomic_store_explicit(&ctl->stop, 0, memory_order_relaxed);
	write_full(cmd_fd, &what, 1);
	if (read_full(rep_fd, &b, 1) < 0)
		die("the writer died");
	u->ns = get_median(c, r, seq, idx, 0, &u->lo, &u->hi, &bad,
			   &u->again);
	validate_pass(r, seq, idx, c->gets, &u->torn, &vagain, &u->newer);
	atomic_store_explicit(&ctl->stop, 1, memory_order_relaxed);
	if (read_full(rep_fd, &rr, sizeof(rr)) < 0)
		die("the writer died");
	if (rr.err)
		fail("rewrite: %s", strerror((int)-rr.err));
	if (bad)
		fail("gets under writes (%c): %llu wrong values", what,
		     (unsigned long long)bad);
	if (u->torn)
		fail("validation under writes (%c): %llu torn or wrong values",
		     what, (unsigned long long)u->torn);
	if (!u->newer)
		fail("validation under writes (%c) saw no rewritten value: "
		     "the writer did not overlap the readers", what);
	u->again += vagain;
	u->puts = rr.puts;
	u->put_ns = rr.ns;
}

/* bare_get_fixed() behind a call the compiler cannot see through, as a
 * function of a shared library is: what the library call alone costs the
 * bare table (the target stays on the inlined reading). */
static __attribute__((noipa)) ssize_t
fixed_called(const struct bare_table *t, const void *key, void *buf)
{
	return bare_get_fixed(t, key, buf);
}

#define BARE_RUNTIME(t, key, v) bare_get(t, key, KLEN, v, VLEN)

/* run-time lengths (bare_get), the sizes compiled in (bare_get_fixed), and
 * that behind a call */
TIMED_PASS(bare_pass, const struct bare_table *, BARE_RUNTIME)
TIMED_PASS(fixed_pass, const struct bare_table *, bare_get_fixed)
TIMED_PASS(called_pass, const struct bare_table *, fixed_called)

/* The quiet gets of one run, rounds interleaved: shmreg, the bare table
 * (run-time lengths, with the sizes compiled in, and that behind a call),
 * and shmreg and the bare table on 2 MiB pages when there (rh, bh
 * non-NULL). */
struct quiet {
	double q[MAX_REPS], b[MAX_REPS], f[MAX_REPS], fc[MAX_REPS],
		lib[MAX_REPS], qh[MAX_REPS], bh[MAX_REPS];
};

static void quiet_rounds(const struct cfg *c, shmreg_t *r,
			 const struct bare_table *bt, shmreg_t *rh,
			 const struct bare_table *bh, const key_t16 *seq,
			 const uint32_t *idx, struct quiet *out, uint64_t *bad,
			 uint64_t *again)
{
	/* warm-up: the first touch of every page, once each */
	get_pass(r, seq, idx, c->gets, bad, again);
	library_pass(r, seq, idx, c->gets, bad, again);
	bare_pass(bt, seq, idx, c->gets, bad, again);
	fixed_pass(bt, seq, idx, c->gets, bad, again);
	called_pass(bt, seq, idx, c->gets, bad, again);
	if (rh) {
		get_pass(rh, seq, idx, c->gets, bad, again);
		bare_pass(bh, seq, idx, c->gets, bad, again);
	}
	for (int i = 0; i < c->reps; i++) {
		out->q[i] = get_pass(r, seq, idx, c->gets, bad, again);
		out->b[i] = bare_pass(bt, seq, idx, c->gets, bad, again);
		out->f[i] = fixed_pass(bt, seq, idx, c->gets, bad, again);
		out->fc[i] = called_pass(bt, seq, idx, c->gets, bad, again);
		out->lib[i] = library_pass(r, seq, idx, c->gets, bad, again);
		if (rh) {
			out->qh[i] = get_pass(rh, seq, idx, c->gets, bad,
					      again);
			out->bh[i] = bare_pass(bh, seq, idx, c->gets, bad, again);
		}
	}
}

/* A tmpfs on 2 MiB pages in the scratch directory (root only), for the
 * huge-page figures; "" in huge_dir when it cannot be had. */
static void mount_huge(const struct cfg *c, char *why, size_t cap)
{
	snprintf(huge_dir, sizeof(huge_dir), "%s/huge", scratch);
	if (!c->huge) {
		snprintf(why, cap, "--no-huge");
	} else if (geteuid() != 0) {
		snprintf(why, cap, "skipped: mounting a tmpfs needs root");
	} else if (mkdir(huge_dir, 0700) < 0 ||
		   mount("shmreg-bench", huge_dir, "tmpfs", 0,
			 "huge=always,size=6G,mode=0700") < 0) {
		snprintf(why, cap, "skipped: mount tmpfs huge=always: %s",
			 strerror(errno));
		rmdir(huge_dir);
	} else {
		why[0] = '\0';
		return;
	}
	huge_dir[0] = '\0';
}

/* ---- LMDB ---- */

struct lmdb_res {
	double ns, lo, hi;
	double load_rate;
};

static void lmdb_check(int rc, const char *what)
{
	if (rc)
		die("%s: %s", what, mdb_strerror(rc));
}

static int lmdb_bench(const struct cfg *c, const key_t16 *keys,
		      const key_t16 *seq, const uint32_t *idx,
		      struct lmdb_res *res)
{
	char dir[4200];
	double ns[MAX_REPS];
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	uint64_t v[8], t0, bad = 0;

	snprintf(dir, sizeof(dir), "%s/lmdb", scratch);
	if (mkdir(dir, 0700) < 0)
		die("mkdir %s: %s", dir, strerror(errno));
	lmdb_check(mdb_env_create(&env), "mdb_env_create");
	lmdb_check(mdb_env_set_mapsize(env, (size_t)c->n * 256 + (64u << 20)),
		   "mdb_env_set_mapsize");
	lmdb_check(mdb_env_open(env, dir, MDB_NOSYNC | MDB_WRITEMAP |
				MDB_NOMETASYNC, 0600), "mdb_env_open");

	/* Load in key order with MDB_APPEND: LMDB's best case (full pages). */
	t0 = bench_now_ns();
	lmdb_check(mdb_txn_begin(env, NULL, 0, &txn), "mdb_txn_begin");
	lmdb_check(mdb_dbi_open(txn, NULL, 0, &dbi), "mdb_dbi_open");
	for (uint64_t i = 0; i < c->n; i++) {
		MDB_val k = { KLEN, (void *)keys[i] }, d = { VLEN, v };

		val_of(i, 0, v);
		lmdb_check(mdb_put(txn, dbi, &k, &d, MDB_APPEND), "mdb_put");
		if (i % 100000 == 99999) {
			lmdb_check(mdb_txn_commit(txn), "mdb_txn_commit");
			lmdb_check(mdb_txn_begin(env, NULL, 0, &txn),
				   "mdb_txn_begin");
		}
	}
	lmdb_check(mdb_txn_commit(txn), "mdb_txn_commit");
	res->load_rate = rate(c->n, bench_now_ns() - t0);

	lmdb_check(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), "mdb_txn_begin");
	for (int rep = -1; rep < c->reps; rep++) {   /* -1: warm-up */
		bench_sweep_caches();
		t0 = bench_now_ns();
		for (uint64_t j = 0; j < c->lmdb_gets; j++) {
			MDB_val k = { KLEN, (void *)seq[j] }, d;

			if (j % TXN_GETS == TXN_GETS - 1) {
				mdb_txn_reset(txn);
				lmdb_check(mdb_txn_renew(txn), "mdb_txn_renew");
			}
			if (mdb_get(txn, dbi, &k, &d) == 0 &&
			    d.mv_size == VLEN) {
				memcpy(v, d.mv_data, VLEN);
				bad += v[0] != idx[j];
			} else {
				bad++;
			}
		}
		if (rep >= 0)
			ns[rep] = (double)(bench_now_ns() - t0) /
				  (double)c->lmdb_gets;
	}
	mdb_txn_abort(txn);
	mdb_env_close(env);
	bench_rmtree(dir);

	res->lo = res->hi = ns[0];
	for (int i = 1; i < c->reps; i++) {
		res->lo = ns[i] < res->lo ? ns[i] : res->lo;
		res->hi = ns[i] > res->hi ? ns[i] : res->hi;
	}
	res->ns = bench_median(ns, c->reps);
	if (bad)
		fail("LMDB returned %llu wrong values", (unsigned long long)bad);
	return 0;
}

/* ---- Redis: a GET round trip on loopback ---- */

#define REDIS_REPS 3     /* passes per placement: a figure in tens of us */

struct redis_res {
	double ns, lo, hi;          /* server and client on different CPUs */
	double same_ns, same_lo, same_hi;   /* on the same CPU */
	int same;                   /* the same-CPU figure was measured */
	double load_rate;
	char skipped[128];      /* why it was not measured, "" when it was */
};

/* Buffered reads of RESP replies. */
struct rbuf {
	int fd;
	size_t r, w;
	char b[1 << 16];
};

static int rb_fill(struct rbuf *rb)
{
	ssize_t n;

	if (rb->r == rb->w)
		rb->r = rb->w = 0;
	if (rb->w == sizeof(rb->b)) {
		memmove(rb->b, rb->b + rb->r, rb->w - rb->r);
		rb->w -= rb->r;
		rb->r = 0;
	}
	do
		n = read(rb->fd, rb->b + rb->w, sizeof(rb->b) - rb->w);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return -1;
	rb->w += (size_t)n;
	return 0;
}

/* Copy the next reply line (without CRLF, at most @cap - 1 bytes). */
static int rb_line(struct rbuf *rb, char *out, size_t cap)
{
	for (;;) {
		char *nl = memchr(rb->b + rb->r, '\n', rb->w - rb->r);

		if (nl) {
			size_t len = (size_t)(nl - (rb->b + rb->r));
			size_t n = len && nl[-1] == '\r' ? len - 1 : len;

			if (n >= cap)
				n = cap - 1;
			memcpy(out, rb->b + rb->r, n);
			out[n] = '\0';
			rb->r += len + 1;
			return 0;
		}
		if (rb_fill(rb) < 0)
			return -1;
	}
}

static int rb_bytes(struct rbuf *rb, void *out, size_t n)
{
	char *o = out;

	while (n) {
		size_t k;

		if (rb->r == rb->w && rb_fill(rb) < 0)
			return -1;
		k = rb->w - rb->r < n ? rb->w - rb->r : n;
		if (o) {
			memcpy(o, rb->b + rb->r, k);
			o += k;
		}
		rb->r += k;
		n -= k;
	}
	return 0;
}

/* A loopback port free right now (the server binds it a moment later). */
static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static int redis_connect(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static size_t resp_get(char *out, const char *key)
{
	memcpy(out, "*2\r\n$3\r\nGET\r\n$16\r\n", 18);
	memcpy(out + 18, key, KLEN);
	memcpy(out + 18 + KLEN, "\r\n", 2);
	return 18 + KLEN + 2;
}

static void redis_bench(const struct cfg *c, const key_t16 *keys,
			const key_t16 *seq, const uint32_t *idx, int cpu,
			struct redis_res *res)
{
	char ports[16], line[128], *cmd;
	double ns[MAX_REPS];
	struct rbuf *rb;
	uint64_t v[8], bad = 0, t0;
	int port, fd = -1, status;
	pid_t pid;

	port = free_port();
	if (port < 0) {
		snprintf(res->skipped, sizeof(res->skipped), "no free port");
		return;
	}
	snprintf(ports, sizeof(ports), "%d", port);
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		if (cpu >= 0)
			bench_pin(cpu);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			dup2(null, 2);
		}
		execlp("redis-server", "redis-server", "--port", ports,
		       "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		       "--daemonize", "no", "--dir", scratch, (char *)NULL);
		_exit(127);
	}
	/* Wait for it to listen: bounded (10 s), and a server that exited
	 * (not installed, port taken) is noticed at once. */
	for (int i = 0; i < 1000 && fd < 0; i++) {
		struct timespec ts = { 0, 10000000 };

		if (waitpid(pid, &status, WNOHANG) == pid) {
			snprintf(res->skipped, sizeof(res->skipped),
				 WIFEXITED(status) && WEXITSTATUS(status) == 127
					 ? "redis-server not found"
					 : "redis-server exited");
			return;
		}
		fd = redis_connect(port);
		if (fd < 0)
			nanosleep(&ts, NULL);
	}
	if (fd < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		snprintf(res->skipped, sizeof(res->skipped),
			 "redis-server did not listen");
		return;
	}
	rb = calloc(1, sizeof(*rb));
	cmd = malloc(1000 * 128);
	if (!rb || !cmd)
		die("out of memory");
	rb->fd = fd;

	/* Load: SETs pipelined 1,000 at a time. */
	t0 = bench_now_ns();
	for (uint64_t i = 0; i < c->n; i += 1000) {
		uint64_t end = i + 1000 < c->n ? i + 1000 : c->n;
		size_t len = 0;

		for (uint64_t k = i; k < end; k++) {
			memcpy(cmd + len, "*3\r\n$3\r\nSET\r\n$16\r\n", 18);
			memcpy(cmd + len + 18, keys[k], KLEN);
			memcpy(cmd + len + 18 + KLEN, "\r\n$64\r\n", 7);
			val_of(k, 0, v);
			memcpy(cmd + len + 25 + KLEN, v, VLEN);
			memcpy(cmd + len + 25 + KLEN + VLEN, "\r\n", 2);
			len += 27 + KLEN + VLEN;
		}
		write_full(fd, cmd, len);
		for (uint64_t k = i; k < end; k++)
			if (rb_line(rb, line, sizeof(line)) < 0 ||
			    strcmp(line, "+OK"))
				die("redis SET: %s", line);
	}
	res->load_rate = rate(c->n, bench_now_ns() - t0);

	/*
	 * GET round trips, one at a time: first with the server on the
	 * writer's CPU and the client on the reader's (as every shmreg figure
	 * is pinned), then with the server moved to the client's CPU.  A
	 * wake-up across CPUs costs several times one on the same CPU on
	 * these machines (idle vCPUs sleep), and the same-CPU figure is the
	 * one the >= 200x target is judged on: it is Redis's best case.
	 */
	for (int place = 0; place < (cpu >= 0 ? 2 : 1); place++) {
		int reps = c->reps < REDIS_REPS ? c->reps : REDIS_REPS;
		double *lo = place ? &res->same_lo : &res->lo;
		double *hi = place ? &res->same_hi : &res->hi;

		if (place) {
			cpu_set_t set;

			CPU_ZERO(&set);
			CPU_SET(cpu_of[0], &set);
			if (sched_setaffinity(pid, sizeof(set), &set) < 0)
				break;
			res->same = 1;
		}
		for (int rep = -1; rep < reps; rep++) {   /* -1: warm-up */
			uint64_t n = rep < 0 ? c->redis_gets / 10 + 1 :
					       c->redis_gets;

			t0 = bench_now_ns();
			for (uint64_t j = 0; j < n; j++) {
				size_t len = resp_get(cmd, seq[j]);

				write_full(fd, cmd, len);
				if (rb_line(rb, line, sizeof(line)) < 0)
					die("redis GET: connection lost");
				if (strcmp(line, "$64") ||
				    rb_bytes(rb, v, VLEN) < 0 ||
				    rb_bytes(rb, NULL, 2) < 0) {
					bad++;
					continue;
				}
				bad += v[0] != idx[j];
			}
			if (rep >= 0)
				ns[rep] = (double)(bench_now_ns() - t0) /
					  (double)n;
		}
		*lo = *hi = ns[0];
		for (int i = 1; i < reps; i++) {
			*lo = ns[i] < *lo ? ns[i] : *lo;
			*hi = ns[i] > *hi ? ns[i] : *hi;
		}
		*(place ? &res->same_ns : &res->ns) = bench_median(ns, reps);
	}
	close(fd);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	free(cmd);
	free(rb);
	if (bad)
		fail("Redis returned %llu wrong values", (unsigned long long)bad);
}

/* ---- the floor: one random memory access on this machine ---- */

struct floor_mem {
	const uint8_t *base;
	uint64_t lines;            /* 64 B lines; line i holds i in word 0 */
	void *map;                 /* what to munmap */
	size_t map_len;
	double huge_pct;           /* share of it on huge pages (anon only) */
};

/* Lines read by get j: spread by a mix of the key index, scaled onto the
 * lines by a multiply-shift (no division in the timed loop). */
static inline uint64_t floor_line(const struct floor_mem *f, uint32_t i)
{
	return (uint64_t)(((unsigned __int128)mix64(i) * f->lines) >> 64);
}

/*
 * Reads of lines [off, off + n) of the access order; counts wrong lines.
 * Each address depends on the previous read (word 1 of every line is 0,
 * which the compiler cannot know): the CPU cannot overlap the misses, so
 * this is the latency of one random access, page walk included, which is
 * what a get pays at least once.  (Independent reads would measure the
 * memory system's throughput instead, several times less.)
 */
static void floor_run(const struct floor_mem *f, const uint32_t *idx,
		      uint64_t off, uint64_t n, uint64_t *bad)
{
	uint64_t v[8] = { 0 };

	for (uint64_t j = off; j < off + n; j++) {
		uint64_t l = floor_line(f, idx[j] + (uint32_t)v[1]);

		/* the same copy-out a get does */
		memcpy(v, f->base + l * 64, VLEN);
		*bad += v[0] != l;
	}
}

static void floor_fill(uint8_t *p, uint64_t lines)
{
	for (uint64_t l = 0; l < lines; l++)
		memcpy(p + l * 64, &l, sizeof(l));
}

/* What part of the mapping at @p is on transparent huge pages. */
static double huge_share(const void *p, size_t len)
{
	char line[256];
	unsigned long long start, end, kb = 0;
	int in = 0;
	FILE *f = fopen("/proc/self/smaps", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%llx-%llx ", &start, &end) == 2)
			in = start <= (uintptr_t)p && (uintptr_t)p < end;
		else if (in && (sscanf(line, "AnonHugePages: %llu kB", &kb) == 1 ||
				sscanf(line, "ShmemPmdMapped: %llu kB", &kb) == 1 ||
				sscanf(line, "FilePmdMapped: %llu kB", &kb) == 1) &&
			 kb)
			break;
	}
	fclose(f);
	return 100.0 * (double)kb * 1024.0 / (double)len;
}

/* @bytes of a tmpfs file in the scratch directory, mapped PROT_READ and
 * MAP_SHARED like a segment (so on the pages a segment gets). */
static void floor_file(struct floor_mem *f, uint64_t bytes)
{
	char path[4200];
	void *w;
	int fd;

	snprintf(path, sizeof(path), "%s/floor", scratch);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)bytes) < 0)
		die("floor file %s: %s", path, strerror(errno));
	w = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (w == MAP_FAILED)
		die("mmap floor: %s", strerror(errno));
	f->lines = bytes / 64;
	floor_fill(w, f->lines);
	munmap(w, bytes);
	f->map = mmap(NULL, bytes, PROT_READ, MAP_SHARED, fd, 0);
	if (f->map == MAP_FAILED)
		die("mmap floor: %s", strerror(errno));
	close(fd);
	unlink(path);
	f->map_len = bytes;
	f->base = f->map;
	f->huge_pct = -1;
}

/* @bytes of anonymous memory, 2 MiB aligned, with MADV_HUGEPAGE. */
static void floor_anon(struct floor_mem *f, uint64_t bytes)
{
	const uint64_t huge = 2u << 20;
	uint8_t *p;

	f->map_len = bytes + huge;
	f->map = mmap(NULL, f->map_len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (f->map == MAP_FAILED)
		die("mmap floor: %s", strerror(errno));
	p = (uint8_t *)(((uintptr_t)f->map + huge - 1) & ~(uintptr_t)(huge - 1));
	madvise(p, bytes, MADV_HUGEPAGE);
	f->lines = bytes / 64;
	floor_fill(p, f->lines);
	f->base = p;
	f->huge_pct = huge_share(p, bytes);
}

/* Median ns per read over @reps passes of @gets reads, after a warm-up. */
static double floor_median(const struct cfg *c, const struct floor_mem *f,
			   const uint32_t *idx)
{
	double ns[MAX_REPS];
	uint64_t bad = 0;

	floor_run(f, idx, 0, c->gets, &bad);
	for (int i = 0; i < c->reps; i++) {
		uint64_t t0 = bench_now_ns();

		floor_run(f, idx, 0, c->gets, &bad);
		ns[i] = (double)(bench_now_ns() - t0) / (double)c->gets;
	}
	if (bad)
		fail("floor: %llu wrong lines", (unsigned long long)bad);
	return bench_median(ns, c->reps);
}

/* ---- reader scaling ---- */

/* What each scaling process runs: gets, or the floor's reads. */
struct scale_job {
	shmreg_t *r;               /* gets when set */
	const struct floor_mem *f; /* else floor reads */
	const key_t16 *seq;
	const uint32_t *idx;
};

static void scale_run(const struct scale_job *j, uint64_t off, uint64_t n,
		      uint64_t *bad)
{
	uint64_t again = 0;

	if (j->r)
		get_pass(j->r, j->seq + off, j->idx + off, n, bad, &again);
	else
		floor_run(j->f, j->idx, off, n, bad);
}

/*
 * @k processes, forked from this one (readers share its handle: a mapping
 * made before fork() serves every child), each pinned to its own CPU,
 * each doing one pass of the access order from its own offset.  They
 * start together: each reports ready, then all block on a pipe the parent
 * closes.  Returns the aggregate operations per second.
 */
static double scaling_pass(const struct cfg *c, const struct scale_job *job,
			   int k)
{
	int ready[2], go[2], res[2];
	double agg = 0;
	pid_t pids[64];

	if (pipe(ready) || pipe(go) || pipe(res))
		die("pipe: %s", strerror(errno));
	for (int i = 0; i < k; i++) {
		pids[i] = fork();
		if (pids[i] < 0)
			die("fork: %s", strerror(errno));
		if (pids[i] == 0) {
			uint64_t bad = 0, out[2];
			uint64_t off = c->gets / (uint64_t)k * (uint64_t)i;
			uint64_t t0;
			char b;

			close(go[1]);
			if (c->pin)
				bench_pin(cpu_of[i]);
			write_full(ready[1], "r", 1);
			read_full(go[0], &b, 1);   /* EOF: go */
			t0 = bench_now_ns();
			scale_run(job, off, c->gets - off, &bad);
			scale_run(job, 0, off, &bad);
			out[0] = bench_now_ns() - t0;
			out[1] = bad;
			write_full(res[1], out, sizeof(out));
			_exit(0);
		}
	}
	close(go[0]);
	for (int i = 0; i < k; i++) {
		char b;

		if (read_full(ready[0], &b, 1) < 0)
			die("a reader died before starting");
	}
	close(go[1]);
	for (int i = 0; i < k; i++) {
		uint64_t out[2];

		if (read_full(res[0], out, sizeof(out)) < 0)
			die("a reader died");
		agg += rate(c->gets, out[0]);
		if (out[1])
			fail("scaling reader: %llu wrong values",
			     (unsigned long long)out[1]);
	}
	for (int i = 0; i < k; i++)
		waitpid(pids[i], NULL, 0);
	close(ready[0]);
	close(ready[1]);
	close(res[0]);
	close(res[1]);
	return agg;
}

/* Median aggregate rate of 1 and of 2 processes over @reps rounds. */
static void scaling(const struct cfg *c, const struct scale_job *job,
		    double *one, double *two)
{
	double a[MAX_REPS], b[MAX_REPS];

	for (int i = 0; i < c->put_reps; i++) {
		a[i] = scaling_pass(c, job, 1);
		b[i] = scaling_pass(c, job, 2);
	}
	*one = bench_median(a, c->put_reps);
	*two = bench_median(b, c->put_reps);
}

/* ---- main ---- */

static void usage(const char *argv0)
{
	fprintf(stderr,
		"usage: %s [-n ENTRIES] [-g GETS] [-r REPS] [-l LMDB_GETS]\n"
		"          [-R REDIS_GETS] [--no-lmdb] [--no-redis] [--no-pin]\n"
		"          [--no-huge] [--quick]\n", argv0);
	exit(2);
}

static void parse(int argc, char **argv, struct cfg *c)
{
	static const struct option lo[] = {
		{ "no-lmdb", no_argument, NULL, 'L' },
		{ "no-redis", no_argument, NULL, 'D' },
		{ "no-pin", no_argument, NULL, 'P' },
		{ "no-huge", no_argument, NULL, 'H' },
		{ "quick", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	int o;

	*c = (struct cfg){ .n = 1000000, .gets = 2000000, .lmdb_gets = 1000000,
			   .redis_gets = 50000, .reps = 5, .put_reps = 3,
			   .lmdb = 1, .redis = 1, .pin = 1, .huge = 1 };
	while ((o = getopt_long(argc, argv, "n:g:r:l:R:h", lo, NULL)) != -1) {
		switch (o) {
		case 'n': c->n = strtoull(optarg, NULL, 0); break;
		case 'g': c->gets = strtoull(optarg, NULL, 0); break;
		case 'l': c->lmdb_gets = strtoull(optarg, NULL, 0); break;
		case 'r': c->reps = atoi(optarg); break;
		case 'R': c->redis_gets = strtoull(optarg, NULL, 0); break;
		case 'L': c->lmdb = 0; break;
		case 'D': c->redis = 0; break;
		case 'P': c->pin = 0; break;
		case 'H': c->huge = 0; break;
		case 'q':
			c->quick = 1;
			c->n = 20000;
			c->gets = 100000;
			c->lmdb_gets = 50000;
			c->redis_gets = 500;
			c->reps = 2;
			c->put_reps = 1;
			break;
		default: usage(argv[0]);
		}
	}
	if (!c->n || c->n > UINT32_MAX || !c->gets || !c->lmdb_gets ||
	    !c->redis_gets ||
	    c->reps < 1 || c->reps > MAX_REPS)
		usage(argv[0]);
	if (c->lmdb_gets > c->gets)
		c->lmdb_gets = c->gets;
	if (c->redis_gets > c->gets)
		c->redis_gets = c->gets;
	if (c->put_reps > c->reps)
		c->put_reps = c->reps;
}

static void print_env(const struct cfg *c, int cpu0, int cpu1)
{
	char model[256] = "?", line[512], load[128] = "?";
	struct utsname u;
	FILE *f;

	if ((f = fopen("/proc/cpuinfo", "r"))) {
		while (fgets(line, sizeof(line), f))
			if (!strncmp(line, "model name", 10)) {
				char *p = strchr(line, ':');

				if (p)
					snprintf(model, sizeof(model), "%s",
						 p + 2);
				model[strcspn(model, "\n")] = '\0';
				break;
			}
		fclose(f);
	}
	if ((f = fopen("/proc/loadavg", "r"))) {
		if (fgets(load, sizeof(load), f))
			load[strcspn(load, "\n")] = '\0';
		fclose(f);
	}
	uname(&u);
	printf("bench_get: %llu entries (16 B keys, 64 B values), %llu gets "
	       "per pass, median of %d passes\n", (unsigned long long)c->n,
	       (unsigned long long)c->gets, c->reps);
	printf("cpu: %s, %d allowed CPUs; kernel %s; loadavg %s\n", model,
	       bench_ncpus(), u.release, load);
	if (cpu1 >= 0)
		printf("pinning: reader on CPU %d, writer on CPU %d "
		       "(sched_setaffinity)\n", cpu0, cpu1);
	else
		printf("pinning: none (%s)\n", c->pin ? "fewer than 2 CPUs"
						      : "--no-pin");
	printf("registries in %s\n", scratch);
#if !defined(__OPTIMIZE__)
	printf("WARNING: built without optimisation; figures are not "
	       "representative (use scripts/bench)\n");
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	printf("WARNING: built with a sanitizer; figures are not "
	       "representative\n");
#endif
}

int main(int argc, char **argv)
{
	struct cfg c;
	struct load_reply lr;
	struct put_figures *pf;
	struct quiet qr = { 0 };
	struct bare_table bt, bth;
	shmreg_t *rh = NULL;
	char huge_why[160];
	double b_ns, f_ns, ratio_f, fc_ns, ratio_fc, qh_ns = 0, bh_ns = 0, ratio,
		ratio_h = 0;
	double lib_ns, ratio_lib_f, ratio_lib_fc;
	double hshare = -1;
	struct lmdb_res lm = { 0 };
	struct redis_res rd = { 0 };
	shmreg_stats_t st;
	shmreg_t *r;
	key_t16 *keys, *seq;
	uint32_t *idx;
	struct ctl *ctl;
	char path[4200], msg[128];
	int cmd[2], rep[2], cpu0 = -1, cpu1 = -1, rc;
	uint64_t s = 0x2545f4914f6cdd1dull, bad = 0, again = 0;
	struct under uw, uh;
	double q_ns, q_lo, q_hi, agg1 = 0, agg2 = 0;
	double s_ns = 0, s_lo = 0, s_hi = 0, quiet_best;
	double fl_file = 0, fl_anon = 0, fl1 = 0, fl2 = 0;
	struct floor_mem ff = { 0 }, fa = { 0 };
	char b;

	t_start = bench_now_ns();
	parse(argc, argv, &c);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (c.pin && bench_ncpus() >= 2) {
		cpu0 = cpu_of[0] = bench_cpu(0);
		cpu1 = cpu_of[1] = bench_cpu(1);
	} else {
		c.pin = 0;
	}
	if ((rc = bench_mkdir(scratch, sizeof(scratch), "get")) < 0)
		die("scratch directory in %s: %s", bench_base_dir(),
		    strerror(-rc));
	snprintf(path, sizeof(path), "%s/shmreg.get", scratch);
	mount_huge(&c, huge_why, sizeof(huge_why));
	print_env(&c, cpu0, cpu1);
	if (huge_why[0])
		printf("huge pages: %s\n", huge_why);
	else
		printf("huge pages: a tmpfs with huge=always at %s\n",
		       huge_dir);

	/* Keys in insertion order, then the access order drawn up front. */
	keys = malloc(c.n * KLEN);
	seq = malloc(c.gets * KLEN);
	idx = malloc(c.gets * sizeof(*idx));
	pf = calloc(1, sizeof(*pf));
	if (!keys || !seq || !idx || !pf)
		die("out of memory");
	for (uint64_t i = 0; i < c.n; i++)
		key_of(i, keys[i]);
	for (uint64_t j = 0; j < c.gets; j++) {
		idx[j] = (uint32_t)(bench_rand(&s) % c.n);
		memcpy(seq[j], keys[idx[j]], KLEN);
	}

	ctl = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (ctl == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	if (pipe(cmd) || pipe(rep))
		die("pipe: %s", strerror(errno));
	writer_pid = fork();
	if (writer_pid < 0)
		die("fork: %s", strerror(errno));
	if (writer_pid == 0) {
		close(cmd[1]);
		close(rep[0]);
		writer_main(&c, path, keys, cmd[0], rep[1], ctl, cpu1);
	}
	close(cmd[0]);
	close(rep[1]);
	if (c.pin)
		bench_pin(cpu0);

	phase("loading");
	if (read_full(rep[0], &lr, sizeof(lr)) < 0)
		die("the writer died while loading");
	if (lr.err)
		die("load: %s", strerror((int)-lr.err));

	if ((rc = shmreg_open(path, 0, &r)) < 0)
		die("shmreg_open %s: %s", path, strerror(-rc));
	if ((rc = shmreg_stats(r, &st)) < 0)
		die("shmreg_stats: %s", strerror(-rc));
	if (st.entries != c.n)
		fail("stats: %llu entries after loading %llu",
		     (unsigned long long)st.entries, (unsigned long long)c.n);

	snprintf(path, sizeof(path), "%s/bare.get", scratch);
	if ((rc = bare_open_ro(&bt, path, lr.slots)) < 0)
		die("bare table %s: %s", path, strerror(-rc));
	if (lr.huge) {
		char hp[4400];

		snprintf(hp, sizeof(hp), "%s/shmreg.get", huge_dir);
		if ((rc = shmreg_open(hp, 0, &rh)) < 0)
			die("shmreg_open %s: %s", hp, strerror(-rc));
		snprintf(hp, sizeof(hp), "%s/bare.get", huge_dir);
		if ((rc = bare_open_ro(&bth, hp, lr.slots)) < 0)
			die("bare table %s: %s", hp, strerror(-rc));
	}

	phase("quiet gets");
	/* 1. quiet gets (the writer process sleeps in read()), rounds
	 * interleaved with the bare table's, on 4 KiB and 2 MiB pages */
	quiet_rounds(&c, r, &bt, rh, rh ? &bth : NULL, seq, idx, &qr, &bad,
		     &again);
	q_ns = bench_median(qr.q, c.reps);
	b_ns = bench_median(qr.b, c.reps);
	f_ns = bench_median(qr.f, c.reps);
	ratio_f = median_ratio(qr.q, qr.f, c.reps);
	fc_ns = bench_median(qr.fc, c.reps);
	ratio_fc = median_ratio(qr.q, qr.fc, c.reps);
	lib_ns = bench_median(qr.lib, c.reps);
	ratio_lib_f = median_ratio(qr.lib, qr.f, c.reps);
	ratio_lib_fc = median_ratio(qr.lib, qr.fc, c.reps);
	ratio = median_ratio(qr.q, qr.b, c.reps);
	q_lo = q_hi = qr.q[0];
	for (int i = 1; i < c.reps; i++) {
		q_lo = qr.q[i] < q_lo ? qr.q[i] : q_lo;
		q_hi = qr.q[i] > q_hi ? qr.q[i] : q_hi;
	}
	if (rh) {
		qh_ns = bench_median(qr.qh, c.reps);
		bh_ns = bench_median(qr.bh, c.reps);
		ratio_h = median_ratio(qr.qh, qr.bh, c.reps);
		hshare = huge_share(bth.slots, bth.bytes);
	}
	if (c.pin) {
		/* the same with the writer's CPU busy in a register loop */
		atomic_store_explicit(&ctl->stop, 0, memory_order_relaxed);
		write_full(cmd[1], "S", 1);
		if (read_full(rep[0], &b, 1) < 0)
			die("the writer died");
		s_ns = get_median(&c, r, seq, idx, 0, &s_lo, &s_hi, &bad,
				  &again);
		atomic_store_explicit(&ctl->stop, 1, memory_order_relaxed);
		if (read_full(rep[0], &b, 1) < 0)
			die("the writer died");
	}
	if (bad || again)
		fail("quiet gets: %llu wrong values, %llu -EAGAIN",
		     (unsigned long long)bad, (unsigned long long)again);

	phase("LMDB");
	/* 2. LMDB on the same keys, in the same order */
	if (c.lmdb)
		lmdb_bench(&c, keys, seq, idx, &lm);

	phase("Redis");
	if (c.redis)
		redis_bench(&c, keys, seq, idx, c.pin ? cpu1 : -1, &rd);
	else
		snprintf(rd.skipped, sizeof(rd.skipped), "--no-redis");

	phase("gets under writes");
	/* 3. gets while the writer rewrites random keys at full speed, on
	 * 4 KiB and on 2 MiB pages */
	under_writes(&c, r, 'W', ctl, cmd[1], rep[0], seq, idx, &uw);
	if (rh)
		under_writes(&c, rh, 'H', ctl, cmd[1], rep[0], seq, idx, &uh);

	phase("reader scaling");
	/* 4. reader scaling: 1 then (with 2 CPUs) 2 reader processes */
	if (c.pin) {
		struct scale_job job = { .r = r, .seq = seq, .idx = idx };

		scaling(&c, &job, &agg1, &agg2);
	}

	/* 5. the floor: random reads of memory of the segment's size */
	phase("floor");
	{
		uint64_t bytes = (st.segment_bytes + (2u << 20) - 1) &
				 ~(uint64_t)((2u << 20) - 1);

		floor_file(&ff, bytes);
		fl_file = floor_median(&c, &ff, idx);
		if (c.pin) {
			struct scale_job job = { .f = &ff, .idx = idx };

			scaling(&c, &job, &fl1, &fl2);
		}
		munmap(ff.map, ff.map_len);
		floor_anon(&fa, bytes);
		fl_anon = floor_median(&c, &fa, idx);
		munmap(fa.map, fa.map_len);
	}

	phase("put rates");
	/* 6. put rates (in the writer process, on its CPU) */
	write_full(cmd[1], "P", 1);
	if (read_full(rep[0], pf, sizeof(*pf)) < 0)
		die("the writer died");
	if (pf->err)
		fail("put phase: %s", strerror((int)-pf->err));
	write_full(cmd[1], "Q", 1);
	waitpid(writer_pid, &rc, 0);
	writer_pid = 0;
	if (!WIFEXITED(rc) || WEXITSTATUS(rc))
		fail("the writer process exited with status %#x", rc);

	phase("done");

	/* ---- the table ---- */
	bench_table_head("core: get, put, takeover (targets of the hot-paths "
			 "issue)");
	snprintf(msg, sizeof(msg), "%llu slots, load %.2f",
		 (unsigned long long)lr.slots, (double)c.n / (double)lr.slots);
	bench_row("get: index (shmreg and the bare table)", msg, "", -1);
	bench_rowf("get, random over all keys, quiet (ns/op)", q_ns, "%.1f",
		   "", -1);
	snprintf(msg, sizeof(msg), "%.1f .. %.1f", q_lo, q_hi);
	bench_row("  min .. max of the passes", msg, "", -1);
	bench_rowf("  bare table, sizes compiled in (16 B keys, 64 B values; ns)",
		   f_ns, "%.1f", "", -1);
	bench_rowf("  get / bare, sizes compiled in (median of rounds)",
		   ratio_f, "%.2fx", "<= 1.3x", ratio_f <= 1.3);
	bench_rowf("  the same bare table behind a call (ns)", fc_ns, "%.1f",
		   "", -1);
	bench_rowf("  get / bare behind a call (median of rounds)", ratio_fc,
		   "%.2fx", "", -1);
	bench_rowf("  the library's function, not inlined (ns)", lib_ns,
		   "%.1f", "", -1);
	bench_rowf("  library / bare, sizes compiled in", ratio_lib_f,
		   "%.2fx", "", -1);
	bench_rowf("  library / bare behind a call", ratio_lib_fc, "%.2fx", "",
		   -1);
	bench_rowf("  bare table, run-time lengths (ns)", b_ns, "%.1f", "", -1);
	bench_rowf("  get / bare, run-time lengths (median of rounds)", ratio,
		   "%.2fx", "", -1);
	if (rh) {
		bench_rowf("get, tmpfs on 2 MiB pages (ns/op)", qh_ns, "%.1f",
			   "", -1);
		bench_rowf("  bare table, run-time lengths, 2 MiB pages (ns)",
			   bh_ns, "%.1f", "", -1);
		bench_rowf("  get / bare, run-time lengths, 2 MiB pages",
			   ratio_h, "%.2fx", "", -1);
		bench_rowf("  2 MiB pages / 4 KiB pages, shmreg get",
			   qh_ns / q_ns, "%.2fx", "", -1);
		bench_rowf("  share of the mapping on 2 MiB pages", hshare,
			   "%.0f %%", "", -1);
	} else {
		bench_row("get, tmpfs on 2 MiB pages", "not measured", huge_why,
			  -1);
	}
	if (s_ns > 0) {
		bench_rowf("get, quiet, writer's CPU busy spinning (ns/op)",
			   s_ns, "%.1f", "", -1);
		snprintf(msg, sizeof(msg), "%.1f .. %.1f", s_lo, s_hi);
		bench_row("  min .. max of the passes", msg, "", -1);
	}
	bench_rowf("  floor: 1 random 64 B read, tmpfs map (ns)", fl_file,
		   "%.1f", "", -1);
	snprintf(msg, sizeof(msg), "  floor: same, anon, %.0f%% 2 MiB pages (ns)",
		 fa.huge_pct < 0 ? 0 : fa.huge_pct);
	bench_rowf(msg, fl_anon, "%.1f", "", -1);
	bench_rowf("  get / tmpfs floor", q_ns / fl_file, "%.2f", "", -1);
	if (c.lmdb) {
		bench_rowf("LMDB mdb_get, same keys and order (ns/op)", lm.ns,
			   "%.1f", "(850 ns when the targets were set)", -1);
		snprintf(msg, sizeof(msg), "%.1f .. %.1f", lm.lo, lm.hi);
		bench_row("  min .. max of the passes", msg, "", -1);
		bench_rowf("shmreg speed-up over LMDB", lm.ns / q_ns, "%.1fx",
			   ">= 8x", lm.ns / q_ns >= 8);
		bench_rowf("  (the bare table's, sizes compiled in)",
			   lm.ns / f_ns, "%.1fx", "", -1);
	}
	if (!rd.skipped[0]) {
		double best = rd.same ? rd.same_ns : rd.ns;

		if (rd.same) {
			bench_rowf("Redis GET round trip, same CPU (ns)",
				   rd.same_ns, "%.0f", "", -1);
			snprintf(msg, sizeof(msg), "%.0f .. %.0f", rd.same_lo,
				 rd.same_hi);
			bench_row("  min .. max of the passes", msg, "", -1);
		}
		bench_rowf(rd.same ? "Redis GET round trip, across CPUs (ns)"
				   : "Redis GET round trip, unpinned (ns)",
			   rd.ns, "%.0f", "", -1);
		snprintf(msg, sizeof(msg), "%.0f .. %.0f", rd.lo, rd.hi);
		bench_row("  min .. max of the passes", msg, "", -1);
		bench_rowf("shmreg speed-up over a Redis GET (best)",
			   best / q_ns, "%.0fx", ">= 200x", best / q_ns >= 200);
	} else {
		bench_row("Redis GET round trip", "not measured", rd.skipped,
			  -1);
	}
	bench_rowf("get while a writer rewrites (ns/op)", uw.ns, "%.1f", "",
		   -1);
	snprintf(msg, sizeof(msg), "%.1f .. %.1f", uw.lo, uw.hi);
	bench_row("  min .. max of the passes", msg, "", -1);
	/* Against the faster of the two quiet figures: the stricter. */
	quiet_best = s_ns > 0 && s_ns < q_ns ? s_ns : q_ns;
	bench_rowf("  read rate under writes / best quiet rate",
		   100.0 * quiet_best / uw.ns, "%.0f %%", ">= 90 %",
		   quiet_best / uw.ns >= 0.9);
	bench_rowf("  writer rate meanwhile (M puts/s)",
		   rate(uw.puts, uw.put_ns) / 1e6, "%.2f", "full speed", -1);
	snprintf(msg, sizeof(msg), "%llu of %llu",
		 (unsigned long long)uw.torn, (unsigned long long)c.gets);
	bench_row("  torn or wrong values (fully validated)", msg, "0",
		  uw.torn == 0);
	snprintf(msg, sizeof(msg), "%llu", (unsigned long long)uw.again);
	bench_row("  -EAGAIN returns (retry budget spent)", msg, "", -1);
	if (rh) {
		bench_rowf("get while a writer rewrites, 2 MiB pages (ns/op)",
			   uh.ns, "%.1f", "", -1);
		bench_rowf("  read rate under writes / quiet, 2 MiB pages",
			   100.0 * qh_ns / uh.ns, "%.0f %%", "", -1);
		bench_rowf("  writer rate meanwhile (M puts/s)",
			   rate(uh.puts, uh.put_ns) / 1e6, "%.2f", "", -1);
		snprintf(msg, sizeof(msg), "%llu of %llu",
			 (unsigned long long)uh.torn,
			 (unsigned long long)c.gets);
		bench_row("  torn or wrong values (fully validated)", msg, "0",
			  uh.torn == 0);
	}
	if (agg1 > 0) {
		bench_rowf("aggregate rate, 1 reader process (M gets/s)",
			   agg1 / 1e6, "%.2f", "", -1);
		bench_rowf("aggregate rate, 2 reader processes (M gets/s)",
			   agg2 / 1e6, "%.2f", "", -1);
		bench_rowf("  scaling, 2 readers / 1 reader", agg2 / agg1,
			   "%.2fx", "linear: 2x (met at >= 1.8x)",
			   agg2 / agg1 >= 1.8);
		bench_rowf("  floor reads, 2 processes / 1", fl2 / fl1,
			   "%.2fx", "(the machine's own scaling)", -1);
	}
	put_rows(pf, c.n);
	bench_rowf("  load of the get registry, pre-sized (M/s)",
		   rate(c.n, lr.ns) / 1e6, "%.2f", "", -1);
	if (st.entries) {
		double per = (double)st.segment_bytes / (double)st.entries;
		double over = (double)(st.segment_bytes - st.bytes_used) /
			      (double)st.entries;

		bench_rowf("segment bytes per entry, pre-sized", per, "%.1f",
			   "", -1);
		bench_rowf("  beyond key + value bytes", over, "%.1f",
			   "<= 64 B", over <= 64);
	}
	if (pf->grown.entries) {
		double per = (double)pf->grown.segment_bytes /
			     (double)pf->grown.entries;
		double over = (double)(pf->grown.segment_bytes -
				       pf->grown.bytes_used) /
			      (double)pf->grown.entries;

		bench_rowf("segment bytes per entry, grown from defaults",
			   per, "%.1f", "", -1);
		bench_rowf("  beyond key + value bytes", over, "%.1f",
			   "<= 64 B", over <= 64);
	}
	if (c.lmdb)
		bench_rowf("  (LMDB load, key order, MDB_APPEND, M/s)",
			   lm.load_rate / 1e6, "%.2f", "", -1);
	printf("# key: %.1f\n", q_ns);

	shmreg_close(r);
	shmreg_close(rh);
	bare_close(&bt);
	if (rh)
		bare_close(&bth);
	if (huge_dir[0])
		umount2(huge_dir, MNT_DETACH);
	bench_rmtree(scratch);
	munmap(ctl, 4096);
	free(keys);
	free(seq);
	free(idx);
	free(pf);
	if (failures)
		printf("bench_get: %d correctness failures (see stderr)\n",
		       failures);
	return failures ? 1 : 0;
}
