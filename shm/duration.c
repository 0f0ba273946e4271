/* SPDX-License-Identifier: MIT */
/* duration.c - parse "500ms", "5s", "1.5m", "2h" (duration.h). */
#include <errno.h>
#include <string.h>

#include "duration.h"

int shm_parse_duration(const char *s, int64_t plain_unit_ns, int64_t *ns)
{
	/* 128 bits: whole * unit cannot overflow before it is compared */
	unsigned __int128 whole = 0, frac = 0, scale = 1000000000, unit, v;
	const char *p = s;
	int digits = 0;

	for (; *p >= '0' && *p <= '9'; p++, digits++) {
		whole = whole * 10 + (unsigned)(*p - '0');
		if (whole > SHM_DURATION_MAX_NS)
			return -ERANGE;
	}
	if (*p == '.') {
		/* frac is in billionths of the unit; digits past the ninth
		 * are below a nanosecond of a second: ignored */
		for (p++; *p >= '0' && *p <= '9'; p++, digits++) {
			if (scale > 1) {
				scale /= 10;
				frac += (unsigned)(*p - '0') * scale;
			}
		}
	}
	if (digits == 0 || plain_unit_ns <= 0)
		return -EINVAL;
	if (!*p)
		unit = (unsigned __int128)plain_unit_ns;
	else if (strcmp(p, "s") == 0)
		unit = SHM_NS_PER_S;
	else if (strcmp(p, "ms") == 0)
		unit = SHM_NS_PER_MS;
	else if (strcmp(p, "m") == 0)
		unit = 60 * SHM_NS_PER_S;
	else if (strcmp(p, "h") == 0)
		unit = 3600 * SHM_NS_PER_S;
	else
		return -EINVAL;
	v = whole * unit + frac * unit / 1000000000;
	if (v > SHM_DURATION_MAX_NS)
		return -ERANGE;
	*ns = (int64_t)v;
	return 0;
}
