/* SPDX-License-Identifier: MIT */
/* notify.c - placeholder until the await/watch work lands: no waiters yet. */
#include <stdlib.h>
#include "notify.h"

struct notify { int unused; };

int notify_open(struct notify **out, const char *segment_path, mode_t mode)
{
	(void)segment_path; (void)mode;
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -12;
}
void notify_key(struct notify *n, uint64_t hash) { (void)n; (void)hash; }
void notify_all(struct notify *n) { (void)n; }
void notify_close(struct notify *n) { free(n); }
