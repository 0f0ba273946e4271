/* SPDX-License-Identifier: MIT */
/* paths.c - from a registry name to the path of its segment file. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmreg.h"
#include "paths.h"

static bool name_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

int shm_resolve_path(const char *name, char *buf, size_t cap)
{
	size_t len;
	const char *dir;
	int n;

	if (!name || !*name)
		return -EINVAL;
	len = strlen(name);
	if (name[0] == '/') {
		if (len >= cap)
			return -ENAMETOOLONG;
		memcpy(buf, name, len + 1);
		return 0;
	}
	if (len > SHMREG_NAME_MAX || name[0] == '.')
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		if (!name_char_ok(name[i]))
			return -EINVAL;
	dir = getenv("SHMREG_DIR");
	if (!dir || !*dir)
		dir = "/dev/shm";
	n = snprintf(buf, cap, "%s/shmreg.%s", dir, name);
	return (n < 0 || (size_t)n >= cap) ? -ENAMETOOLONG : 0;
}
