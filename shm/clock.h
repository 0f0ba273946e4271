/* SPDX-License-Identifier: MIT */
/*
 * clock.h - the clocks of shmreg, in int64 nanoseconds, and the one place
 * that reads them.
 *
 *   shm_realtime_ns()         CLOCK_REALTIME: what the segment records
 *                             (expires_at_ns, created_ns), since another
 *                             process, or a later boot, compares it
 *   shm_monotonic_ns()        CLOCK_MONOTONIC: deadlines and intervals of
 *                             this process, immune to clock steps
 *   shm_monotonic_coarse_ns() CLOCK_MONOTONIC_COARSE: the same at tick
 *                             resolution (a few ms), for rate limits on
 *                             paths where a full clock read would cost
 *   shm_realtime_coarse_ns()  CLOCK_REALTIME_COARSE: what the segment
 *                             records on every commit (rate samples),
 *                             at tick resolution
 *
 * int64 nanoseconds last until the year 2262.  clock_gettime cannot fail
 * for these clocks on Linux (they always exist, the pointer is valid), so
 * there is no error to return.
 */
#ifndef SHM_CLOCK_H
#define SHM_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t shm_clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int64_t shm_realtime_ns(void)
{
	return shm_clock_ns(CLOCK_REALTIME);
}

static inline int64_t shm_monotonic_ns(void)
{
	return shm_clock_ns(CLOCK_MONOTONIC);
}

static inline int64_t shm_monotonic_coarse_ns(void)
{
	return shm_clock_ns(CLOCK_MONOTONIC_COARSE);
}

static inline int64_t shm_realtime_coarse_ns(void)
{
	return shm_clock_ns(CLOCK_REALTIME_COARSE);
}

/* @base + @rel for @rel >= 0, saturating at INT64_MAX instead of
 * overflowing (undefined behaviour, and a deadline in the past): a caller's
 * "wait up to INT64_MAX ns" or a TTL near the limit stays far in the
 * future. */
static inline int64_t shm_deadline_ns(int64_t base, int64_t rel)
{
	int64_t d;

	if (__builtin_add_overflow(base, rel, &d))
		return rel < 0 ? INT64_MIN : INT64_MAX;
	return d;
}

#endif /* SHM_CLOCK_H */
