/* SPDX-License-Identifier: MIT */
/* paths.h - registry names and segment paths. */
#ifndef SHM_PATHS_H
#define SHM_PATHS_H

#include <stddef.h>

/*
 * Resolve @name to its segment path in @buf: an absolute path is used as
 * is; a name of 1..SHMREG_NAME_MAX characters of [A-Za-z0-9._-], not
 * starting with '.', becomes $SHMREG_DIR/shmreg.NAME (SHMREG_DIR defaults
 * to /dev/shm).  Returns 0, -EINVAL (bad name) or -ENAMETOOLONG.
 */
int shm_resolve_path(const char *name, char *buf, size_t cap);

#endif /* SHM_PATHS_H */
