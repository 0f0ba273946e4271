/* SPDX-License-Identifier: MIT */
/* liveness.c - test for the writer's lock without taking it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "liveness.h"

int shm_lock_path(char *buf, size_t cap, const char *segment_path)
{
	int n = snprintf(buf, cap, "%s.lock", segment_path);

	return (n < 0 || (size_t)n >= cap) ? -ENAMETOOLONG : 0;
}

int shm_writer_alive(const char *segment_path)
{
	char path[4200];
	struct flock fl;
	int fd, rc;

	rc = shm_lock_path(path, sizeof(path), segment_path);
	if (rc < 0)
		return rc;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	/* Would a read lock conflict?  Only with the writer's write lock.
	 * F_OFD_GETLK takes nothing, so it cannot make a starting writer
	 * fail with EBUSY. */
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_RDLCK;
	fl.l_whence = SEEK_SET;
	rc = fcntl(fd, F_OFD_GETLK, &fl);
	rc = rc < 0 ? -errno : (fl.l_type != F_UNLCK);
	close(fd);
	return rc;
}
