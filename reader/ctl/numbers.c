/* SPDX-License-Identifier: MIT */
/* numbers.c - shmregctl: durations, counts and pids from text (ctl.h).
 * Depends on nothing else of shmregctl, so the batch-line fuzzer links it. */
#include <errno.h>
#include <stdint.h>
#include <sys/types.h>

#include "duration.h"
#include "numbers.h"

int parse_duration(const char *s, int64_t *ns)
{
	/* plain numbers are seconds in shmregctl */
	return shm_parse_duration(s, SHM_NS_PER_S, ns);
}

int parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (!*s)
		return -EINVAL;
	for (; *s; s++) {
		unsigned d = (unsigned)(*s - '0');

		if (d > 9)
			return -EINVAL;
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

int parse_pid(const char *s, pid_t *out)
{
	uint64_t v;

	/* pid_max is at most 2^22 on Linux; INT32_MAX is a safe upper bound */
	if (parse_u64(s, &v) || v == 0 || v > INT32_MAX)
		return -EINVAL;
	*out = (pid_t)v;
	return 0;
}
