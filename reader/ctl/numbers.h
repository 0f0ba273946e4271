/* SPDX-License-Identifier: MIT */
/* numbers.h - shmregctl's parsers of numbers on a command line (and in
 * batch input): pure, no output. */
#ifndef SHMREG_CTL_NUMBERS_H
#define SHMREG_CTL_NUMBERS_H

#include <stdint.h>
#include <sys/types.h>

/* A duration: a decimal number with an optional fraction and an optional
 * unit, ms, s, m or h ("2", "0.25", "500ms", "1.5m", "2h"; no unit:
 * seconds), at most about 285 years so that nanoseconds fit an int64_t
 * (shm/duration.h).  Returns 0, -EINVAL (not a duration) or -ERANGE. */
int parse_duration(const char *s, int64_t *ns);
/* A decimal unsigned integer without sign or junk.  0 or -EINVAL/-ERANGE. */
int parse_u64(const char *s, uint64_t *out);
/* A process id > 0.  Returns 0 or -EINVAL. */
int parse_pid(const char *s, pid_t *out);

#endif /* SHMREG_CTL_NUMBERS_H */
