/* SPDX-License-Identifier: MIT */
/* paths.h - registry names, segment paths, and opening the files there. */
#ifndef SHM_PATHS_H
#define SHM_PATHS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

/*
 * Resolve @name to its segment path in @buf: an absolute path is used as
 * is; a name of 1..SHMREG_NAME_MAX characters of [A-Za-z0-9._-], not
 * starting with '.', becomes $SHMREG_DIR/shmreg.NAME (SHMREG_DIR defaults
 * to /dev/shm).  Returns 0, -EINVAL (bad name) or -ENAMETOOLONG.
 */
int shm_resolve_path(const char *name, char *buf, size_t cap);

/*
 * Open one of a registry's files without being steered by what another
 * user may have put at its name: @flags (O_RDONLY or O_RDWR, optionally
 * O_CREAT | O_EXCL with @mode) plus O_NONBLOCK, so that a FIFO there
 * cannot block the open (cleared again before returning), O_CLOEXEC and
 * O_NOCTTY; and O_NOFOLLOW unless @follow, so that a symbolic link at the
 * last component is refused (-ELOOP) instead of followed.  Stores the open
 * file's status in *@st; the caller decides what file types it accepts.
 * Returns the fd or -errno.
 */
int shm_open_file(const char *path, int flags, mode_t mode, bool follow,
		  struct stat *st);

/*
 * May the writer adopt the existing file @path, open as described by @st
 * (or not opened at all: @err is the -errno of the open, -ELOOP for a
 * symbolic link)?  Only a regular file owned by the writer's effective
 * uid with a single link: anything else was put there by someone else
 * (or is linked to a file elsewhere), and adopting it would hand that
 * someone the registry.  Returns 0, or -EPERM after one line on stderr
 * naming the file and why (its type, owner or link count), which is the
 * only place the reason is reported.  @err other than -ELOOP is returned
 * as is.
 */
int shm_writer_may_adopt(const char *path, const struct stat *st, int err);

#endif /* SHM_PATHS_H */
