/* SPDX-License-Identifier: MIT */
/*
 * preload.c - the registry mapped by the library constructor, for programs
 * that load libshmreg.so with LD_PRELOAD and SHMREG_PRELOAD=NAME.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static shmreg_t *default_handle;

__attribute__((constructor)) static void preload_open(void)
{
	const char *name = getenv("SHMREG_PRELOAD");
	int rc;

	if (!name || !*name)
		return;
	rc = shmreg_open(name, 0, &default_handle);
	if (rc < 0) {
		default_handle = NULL;
		if (getenv("SHMREG_DEBUG"))
			fprintf(stderr, "shmreg: SHMREG_PRELOAD=%s: %s\n", name,
				strerror(-rc));
	}
}

/* No destructor: other destructors may still read through the handle, and
 * the kernel unmaps everything at exit anyway. */

SHMREG_EXPORT shmreg_t *shmreg_default(void)
{
	return default_handle;
}
