/* SPDX-License-Identifier: MIT */
/*
 * tc.h - helpers shared by the multi-process test suites: checks that fail
 * the whole test, self-checking values, scratch registries, child processes
 * with pipe synchronisation, and bounded waits.
 *
 * Every helper here is fork-aware: a check that fails in a child ends that
 * child with exit status 1 (the parent sees it through tc_child_wait()); a
 * check that fails in the test's main process kills and reaps every child
 * it started before exiting 1, so no writer is left spinning after a test.
 */
#ifndef TESTS_COMMON_TC_H
#define TESTS_COMMON_TC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define TC_SKIP 77

/* Fail the test (or the child) with a message and the failing location. */
#define TC_CHECK(cond, ...)                                                  \
	do {                                                                 \
		if (!(cond))                                                 \
			tc_fail_at(__FILE__, __LINE__, #cond, __VA_ARGS__);  \
	} while (0)

/* Check that an int64 result equals the expected one (prints both). */
#define TC_EQ(got, want, what)                                               \
	do {                                                                 \
		long long g_ = (long long)(got), w_ = (long long)(want);     \
		if (g_ != w_)                                                \
			tc_fail_at(__FILE__, __LINE__, #got " == " #want,    \
				   "%s: got %lld, want %lld", (what), g_, w_);\
	} while (0)

__attribute__((noreturn, format(printf, 4, 5)))
void tc_fail_at(const char *file, int line, const char *cond,
		const char *fmt, ...);

/* printf to stderr prefixed with the test name and the process role. */
__attribute__((format(printf, 1, 2)))
void tc_log(const char *fmt, ...);

/* Call first in main(): records the main pid and the test name for
 * messages, and arms a watchdog: after @max_seconds the test kills its
 * children and fails, whatever it was waiting for. */
void tc_init(const char *name, unsigned max_seconds);

/* The role printed by tc_log and tc_fail_at in this process ("main",
 * "reader1", ...); a child sets its own after tc_spawn(). */
void tc_set_role(const char *role);

/* ---- time and randomness ---- */

uint64_t tc_now_ns(void);                     /* CLOCK_MONOTONIC */

/* Whether each of the @n counters has reached @floor.  A writer loop whose
 * readers must prove something runs until this holds, within a deadline it
 * checks itself: a slow reader (a sanitizer, a loaded machine) then gets
 * more changes to read instead of failing a floor that timing decided. */
bool tc_counts_reached(_Atomic unsigned long *counts, unsigned n,
		       unsigned long floor);

/* The test's seed: $SHMREG_TEST_SEED when set, else from the clock; printed
 * so that a failing run can be repeated. */
uint64_t tc_seed(void);

/* splitmix64: small, fast, and good enough to draw test data. */
static inline uint64_t tc_rand(uint64_t *state)
{
	uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* Uniform in [lo, hi] (hi - lo < 2^32 is plenty for tests). */
static inline uint64_t tc_range(uint64_t *state, uint64_t lo, uint64_t hi)
{
	return lo + (tc_rand(state) >> 32) * (hi - lo + 1) /
		    (UINT64_C(1) << 32);
}

/*
 * Work divisor for heavy loops: 1 in plain builds, 10 under a sanitizer
 * (detected at compile time in this file), or $SHMREG_TEST_SCALE (an
 * integer >= 1) when set.  Tests divide iteration counts by it, never the
 * floors they assert on behaviour (only floors on throughput).
 */
unsigned tc_scale(void);

/* True when built with AddressSanitizer (or another sanitizer that slows
 * every memory access). */
bool tc_sanitized(void);

/* ---- self-checking values ----
 *
 * A value of @len >= TV_MIN bytes for a given key: the last 8 bytes are a
 * checksum over the key, the length and every other byte; the first 8 bytes
 * (when len >= 16) hold a sequence number, the rest is pseudo-random data
 * drawn from (seq, len).  Any torn copy (bytes of two versions, a shifted or
 * truncated copy, another key's value) fails tv_check() except with
 * probability 2^-64.
 */
#define TV_MIN 8u

void tv_build(void *buf, size_t len, const void *key, size_t klen,
	      uint64_t seq);

/* 0 when @buf is a value built by tv_build for this key and length, -1
 * otherwise.  Stores the sequence number in *@seq (UINT64_MAX when len < 16
 * carries none); @seq may be NULL. */
int tv_check(const void *buf, size_t len, const void *key, size_t klen,
	     uint64_t *seq);

/* Fail the test unless tv_check() rejects damaged values: a flipped bit,
 * a splice of two versions, a truncation, another key's value.  Run once by
 * the suites whose verdict rests on tv_check(), so the validator itself is
 * shown to be able to fail. */
void tv_selftest(void);

/* Describe a bad value on stderr (length, first bytes) for the failure
 * message. */
void tv_dump(const char *what, const void *buf, size_t len);

/* ---- scratch registries ---- */

/* The directory of this test's registries: $SHMREG_DIR (the harness gives
 * each test an emptied one), else a new one under /dev/shm removed at exit.
 * Also exports SHMREG_DIR so that plain names resolve into it. */
const char *tc_dir(void);

/* "$dir/@file" into @buf (PATH_MAX bytes). */
char *tc_path(char *buf, const char *file);

/* Copy the first @n bytes of file @from to a new file @to (n == SIZE_MAX:
 * all).  Then optionally patch @plen bytes at @off (plen 0: none). */
void tc_copy_file(const char *from, const char *to, size_t n,
		  size_t off, const void *patch, size_t plen);

/* Write @len bytes to a new file. */
void tc_write_file(const char *path, const void *buf, size_t len);

/* Zeroed memory shared with every child forked after this call. */
void *tc_shared(size_t size);

/* ---- child processes ----
 *
 * tc_spawn() forks a child that runs @fn(@c, @arg) and exits with its return
 * value.  Each child has two pipes with the parent: the parent tc_tell()s it
 * a byte and tc_hear()s bytes it tc_post()s; a child that exits closes its
 * end, so a parent waiting on it learns of its death at once instead of at a
 * timeout.  Children die with the main process (PR_SET_PDEATHSIG).
 */
struct tc_child {
	pid_t pid;
	int to_child;    /* parent: write end; child: read end */
	int from_child;  /* parent: read end; child: write end */
	char name[32];
	bool reaped;
	int status;      /* wait status once reaped */
};

typedef int (*tc_child_fn)(struct tc_child *c, void *arg);

struct tc_child *tc_spawn(const char *name, tc_child_fn fn, void *arg);

/* Parent side.  tc_hear returns the byte (0..255), -ETIMEDOUT, or -EPIPE
 * when the child closed its end (usually: it exited). */
void tc_tell(struct tc_child *c, uint8_t byte);
int tc_hear(struct tc_child *c, int timeout_ms);

/* Like tc_hear but fails the test unless the child posts exactly @want. */
void tc_expect(struct tc_child *c, uint8_t want, int timeout_ms);

/* Child side. */
void tc_post(struct tc_child *c, uint8_t byte);
int tc_wait_parent(struct tc_child *c, int timeout_ms);

/* Wait up to @timeout_ms for the child to exit (pidfd poll, no sleeping).
 * On timeout the child is killed with SIGKILL and reaped, and -ETIMEDOUT is
 * returned; else 0 with c->status set. */
int tc_child_wait(struct tc_child *c, int timeout_ms);

/* tc_child_wait and fail the test unless the child exited with status 0. */
void tc_child_join(struct tc_child *c, int timeout_ms);

/* SIGKILL and reap (0 or -ETIMEDOUT). */
int tc_child_kill(struct tc_child *c, int timeout_ms);

/* Free a reaped child's record and close its pipes. */
void tc_child_free(struct tc_child *c);

#endif /* TESTS_COMMON_TC_H */
