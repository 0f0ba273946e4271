/* SPDX-License-Identifier: MIT */
/* paths.c - registry names to segment paths; opening the files there. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

int shm_open_file(const char *path, int flags, mode_t mode, bool follow,
		  struct stat *st)
{
	int fd, fl;

	fd = open(path, flags | O_NONBLOCK | O_CLOEXEC | O_NOCTTY |
				(follow ? 0 : O_NOFOLLOW), mode);
	if (fd < 0)
		return -errno;
	if (fstat(fd, st) < 0)
		goto fail;
	/* nothing of ours reads or writes through the fd but pread and
	 * mmap; clearing the flag keeps it from surprising a later user */
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
		goto fail;
	return fd;
fail:
	fl = -errno;
	close(fd);
	return fl;
}

int shm_writer_may_adopt(const char *path, const struct stat *st, int err)
{
	uid_t me = geteuid();

	if (err == -ELOOP) {
		fprintf(stderr, "shmreg: refusing %s: it is a symbolic link "
			"(shmreg never follows links at its file names)\n",
			path);
		return -EPERM;
	}
	if (err < 0)
		return err;
	if (!S_ISREG(st->st_mode)) {
		fprintf(stderr, "shmreg: refusing %s: not a regular file "
			"(type %07o, owner uid %u)\n", path,
			(unsigned)(st->st_mode & S_IFMT), (unsigned)st->st_uid);
		return -EPERM;
	}
	if (st->st_uid != me) {
		fprintf(stderr, "shmreg: refusing %s: owned by uid %u, not by "
			"the writer's uid %u (remove it, or run the writer as its "
			"owner)\n", path, (unsigned)st->st_uid, (unsigned)me);
		return -EPERM;
	}
	if (st->st_nlink != 1) {
		fprintf(stderr, "shmreg: refusing %s: it has %lu hard links "
			"(a registry's files have one)\n", path,
			(unsigned long)st->st_nlink);
		return -EPERM;
	}
	return 0;
}
