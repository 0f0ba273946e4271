/* SPDX-License-Identifier: MIT */
/*
 * bench_common.h - helpers shared by the benchmarks in tests/bench: clocks,
 * CPU pinning, medians, a cheap PRNG, scratch directories and the result
 * table.  Header-only (static functions) so each bench is one .c file.
 *
 * Conventions every bench follows, so that scripts/bench can compare runs:
 *  - figures are printed as a table of rows "what | measured | target";
 *  - one line "# key: VALUE" names the run's headline figure (scripts/bench
 *    reports the run whose key is the median of several runs);
 *  - the exit status is 1 when a correctness check failed (wrong or torn
 *    values), never because a target was missed: targets are reported.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static inline uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A spin-wait hint: keeps a CPU busy without memory traffic. */
static inline void bench_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

/* xorshift64*: a few cycles per number; never returns 0 from a seed != 0. */
static inline uint64_t bench_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

/* Number of CPUs this process may run on. */
static inline int bench_ncpus(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return 1;
	return CPU_COUNT(&set);
}

/* The @nth CPU (0-based) of the allowed set, or -1. */
static inline int bench_cpu(int nth)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return -1;
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &set) && nth-- == 0)
			return c;
	return -1;
}

/* Pin the calling process to @cpu.  Returns 0 or -errno. */
static inline int bench_pin(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return -EINVAL;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set) < 0 ? -errno : 0;
}

static int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/*
 * Have the host back @bytes of guest memory just before a timed phase that
 * allocates that much fresh memory: touch that many anonymous pages and
 * free them again.  On a virtual machine whose balloon reports free pages
 * to the host (virtio-balloon free page reporting), memory freed a couple
 * of seconds ago is handed back, and the next first touch of each page
 * costs a host fault: measured here, writing 1 GiB into tmpfs ran at
 * 0.2 GB/s on such pages against 1.2-1.9 GB/s on freshly freed ones and
 * 4 GB/s on pages already in the file.  The kernel reports only after a
 * delay (2 s), so the pages freed here are still backed when the phase
 * that follows at once allocates them.  Returns 0, or -errno.
 */
static inline int bench_back_memory(size_t bytes)
{
	long page = sysconf(_SC_PAGESIZE);
	uint8_t *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return -errno;
	for (size_t off = 0; off < bytes; off += (size_t)page)
		p[off] = 1;
	munmap(p, bytes);
	return 0;
}

/*
 * Start a timed pass with no table of an earlier pass in any cache: read
 * a buffer of twice the last-level cache (at least 64 MiB) once, a line at
 * a time.  A pass over a table larger than the caches still leaves a part
 * of it behind in a large last-level cache (480 MiB on one benchmark
 * machine), and the pass that reads the same table next starts warmer: a
 * bare-table get pass measured 54-62 ns right after another pass over the
 * same table against 63-69 ns after a pass over a different one.  Two
 * tables compared in interleaved rounds must start alike, so every timed
 * pass of a comparison (gets, LMDB, replacing puts) starts from this
 * sweep.  The buffer is
 * allocated (and written, so that it is backed) on the first call.
 */
static inline void bench_sweep_caches(void)
{
	static volatile uint8_t *buf;
	static size_t len;
	uint64_t sum = 0;

	if (!buf) {
		long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
		uint8_t *p;

		len = l3 > 0 ? 2 * (size_t)l3 : 0;
		if (len < ((size_t)64 << 20))
			len = (size_t)64 << 20;
		p = mmap(NULL, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return; /* no sweep: the passes start as they are */
		memset(p, 1, len);
		buf = p;
	}
	for (size_t off = 0; off < len; off += 64)
		sum += buf[off];
	__asm__ volatile("" : : "r"(sum));
}

/* Median of @n values (sorts @v in place); the lower middle for even n. */
static inline double bench_median(double *v, int n)
{
	if (n <= 0)
		return 0;
	qsort(v, (size_t)n, sizeof(*v), bench_cmp_double);
	return v[(n - 1) / 2];
}

/* The benchmarks' data: key @i as 16 bytes "key:%012llu" (no NUL; @i below
 * 10^12), and a value of @len >= 8 bytes that starts with @i and is filled
 * with a letter of @i, so a wrong or torn value shows. */
#define BENCH_KEY_LEN 16
static inline void bench_key(char k[BENCH_KEY_LEN], uint64_t i)
{
	char t[32];

	snprintf(t, sizeof(t), "key:%012llu",
		 (unsigned long long)(i % 1000000000000ull));
	memcpy(k, t, BENCH_KEY_LEN);
}

static inline void bench_value(char *v, size_t len, uint64_t i)
{
	memset(v, 'a' + (int)(i % 26), len);
	memcpy(v, &i, sizeof(i));
}

/* Where benchmark registries live: $SHMREG_DIR, else /dev/shm (tmpfs, as
 * in production).  A private directory under it is made by bench_mkdir. */
static inline const char *bench_base_dir(void)
{
	const char *d = getenv("SHMREG_DIR");

	return d && d[0] == '/' ? d : "/dev/shm";
}

static inline int bench_mkdir(char *buf, size_t cap, const char *tag)
{
	if ((size_t)snprintf(buf, cap, "%s/shmreg-bench-%s.XXXXXX",
			     bench_base_dir(), tag) >= cap)
		return -ENAMETOOLONG;
	return mkdtemp(buf) ? 0 : -errno;
}

static int bench_rm_one(const char *p, const struct stat *sb, int type,
			struct FTW *ftw)
{
	(void)sb;
	(void)type;
	(void)ftw;
	return remove(p) < 0 ? -1 : 0;
}

/* Remove a scratch directory and everything in it. */
static inline void bench_rmtree(const char *dir)
{
	nftw(dir, bench_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- the result table ---- */

static inline void bench_table_head(const char *title)
{
	printf("\n%s\n", title);
	printf("%-44s %16s   %s\n", "figure", "measured", "target");
	printf("%-44s %16s   %s\n", "------", "--------", "------");
}

/* One row; @target may be NULL or "" for figures without one, @ok is 1
 * (met), 0 (missed) or -1 (no verdict). */
static inline void bench_row(const char *what, const char *measured,
			     const char *target, int ok)
{
	printf("%-44s %16s   %s%s\n", what, measured, target ? target : "",
	       ok < 0 ? "" : ok ? "  [met]" : "  [MISSED]");
}

static inline void bench_rowf(const char *what, double v, const char *fmt,
			      const char *target, int ok)
{
	char buf[64];

	snprintf(buf, sizeof(buf), fmt, v);
	bench_row(what, buf, target, ok);
}

#endif /* BENCH_COMMON_H */
