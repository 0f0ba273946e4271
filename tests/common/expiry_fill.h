/* SPDX-License-Identifier: MIT */
/*
 * expiry_fill.h - fill a registry with N entries that all expire at one
 * instant, as soon after the fill as the machine's load allows (the test
 * expiry_daemon and the benchmark bench_expiry both sweep such a registry).
 *
 * The deadline cannot be fixed up front: the fill's own length depends on
 * the load.  So the first 1% are put with a deadline far ahead and timed,
 * which gives the deadline (@factor times the expected rest, plus the
 * caller's @margin_ns for what it does before the deadline), then the rest
 * and again the first 1% are put with it.  When a rise of the load made
 * the fill overrun its deadline, it starts over (the registry is
 * truncated) with twice the factor.
 *
 * Entries are "e/NNNNNNN" (9 bytes) with the value "12345678".
 */
#ifndef TESTS_COMMON_EXPIRY_FILL_H
#define TESTS_COMMON_EXPIRY_FILL_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>

#include "clock.h"
#include "shmreg_writer.h"

/* Put entry number @i expiring at @at (CLOCK_REALTIME): 1, 0 when @at has
 * passed already, or the writer's -errno. */
static inline int64_t expiry_fill_put(shmreg_writer_t *w, uint64_t i,
				      int64_t at)
{
	shmreg_put_opts_t o = { .ttl_ns = at - shm_realtime_ns() };
	char k[32];
	int len = snprintf(k, sizeof(k), "e/%07llu", (unsigned long long)i);
	int64_t rev;

	if (o.ttl_ns <= 0)
		return 0;
	rev = shmreg_writer_put(w, k, (size_t)len, "12345678", 8, &o);
	return rev < 0 ? rev : 1;
}

/* One try: the deadline, 0 when the fill ran past it, or -errno. */
static inline int64_t expiry_fill_try(const char *reg, uint64_t n,
				      int64_t factor, int64_t margin_ns)
{
	shmreg_writer_opts_t wo = { .flags = SHMREG_WRITER_TRUNCATE,
				    .initial_entries = n + 1024 };
	uint64_t first = n / 100 + 1;
	int64_t t0, at, ok = 1;
	shmreg_writer_t *w;
	int rc = shmreg_writer_open(reg, &wo, &w);

	if (rc < 0)
		return rc;
	t0 = shm_realtime_ns();
	for (uint64_t i = 0; ok > 0 && i < first && i < n; i++)
		ok = expiry_fill_put(w, i, t0 + 3600 * INT64_C(1000000000));
	at = shm_realtime_ns();
	at += factor * (at - t0) * (int64_t)(n / first) + margin_ns;
	for (uint64_t i = first; ok > 0 && i < n; i++)
		ok = expiry_fill_put(w, i, at);
	for (uint64_t i = 0; ok > 0 && i < first && i < n; i++)
		ok = expiry_fill_put(w, i, at);
	shmreg_writer_close(w);
	return ok < 0 ? ok : ok ? at : 0;
}

/* The deadline of @n entries in @reg, or -errno (-ETIME: the fill overran
 * its deadline six times: a machine too loaded). */
static inline int64_t expiry_fill(const char *reg, uint64_t n,
				  int64_t margin_ns)
{
	for (int64_t factor = 2; factor <= 64; factor *= 2) {
		int64_t at = expiry_fill_try(reg, n, factor, margin_ns);

		if (at != 0)
			return at;
	}
	return -ETIME;
}

#endif
