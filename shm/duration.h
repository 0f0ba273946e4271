/* SPDX-License-Identifier: MIT */
/*
 * duration.h - the one parser of durations on a command line, shared by
 * shmregctl (--ttl, --timeout) and shmregd (--stall-timeout ...).  Pure:
 * no I/O, no state; compiled into the tools, not into the libraries.
 */
#ifndef SHM_DURATION_H
#define SHM_DURATION_H

#include <stdint.h>

/* The longest duration accepted: about 285 years, so that nanoseconds
 * (and a deadline a little later than now) fit an int64_t. */
#define SHM_DURATION_MAX_NS INT64_C(9000000000000000000)

#define SHM_NS_PER_MS INT64_C(1000000)
#define SHM_NS_PER_S  INT64_C(1000000000)

/*
 * A decimal number with an optional fraction and an optional unit: ms, s,
 * m or h ("2", "0.25", "500ms", "1.5m", "2h").  A number without a unit
 * is in @plain_unit_ns (each tool keeps the unit its plain numbers always
 * had: seconds for shmregctl, milliseconds for shmregd).  Digits of the
 * fraction below a nanosecond are ignored.  Returns 0 and the length in
 * *@ns, -EINVAL (not a duration) or -ERANGE (over SHM_DURATION_MAX_NS).
 */
int shm_parse_duration(const char *s, int64_t plain_unit_ns, int64_t *ns);

#endif /* SHM_DURATION_H */
