/* SPDX-License-Identifier: MIT */
/* cmd_rm.c - shmregctl rm-registry NAME: remove a registry no one writes. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "paths.h"

/*
 * A registry is three files: the segment, NAME.lock (a live writer holds
 * an OFD write lock on it) and NAME.wait (the waiters' futex words).  The
 * lock is taken here the way a writer takes it, so that no writer can
 * open the registry between the check and the unlinks: one that starts
 * meanwhile gets -EBUSY, and one that starts after finds no registry.
 * Readers that have it mapped keep their (now nameless) copy.
 */
int cmd_rm_registry(struct ctl *c)
{
	const char *name = c->argv[0];
	char seg[PATH_MAX], lock[PATH_MAX + 8], wait[PATH_MAX + 8];
	struct flock fl;
	int fd, ret;

	ret = shm_resolve_path(name, seg, sizeof(seg));
	if (ret == -EINVAL)
		return ctl_bad_name(name);
	if (ret < 0)
		return ctl_fail(name, -ret);
	snprintf(lock, sizeof(lock), "%s.lock", seg);
	snprintf(wait, sizeof(wait), "%s.wait", seg);
	if (access(seg, F_OK) < 0 && errno == ENOENT &&
	    access(lock, F_OK) < 0 && errno == ENOENT)
		return ctl_say(CTL_NOTFOUND, "registry %s does not exist",
			       name);

	fd = open(lock, O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 && errno != ENOENT)
		return ctl_fail(lock, errno);
	if (fd >= 0) {
		memset(&fl, 0, sizeof(fl));
		fl.l_type = F_WRLCK;
		fl.l_whence = SEEK_SET;
		if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
			int err = errno;
			shmreg_stats_t st;
			shmreg_t *r;
			int pid = 0;

			close(fd);
			if (err != EAGAIN && err != EACCES)
				return ctl_fail(lock, err);
			if (shmreg_open(name, 0, &r) == 0) {
				if (shmreg_stats(r, &st) == 0)
					pid = (int)st.writer_pid;
				shmreg_close(r);
			}
			return ctl_say(CTL_ERROR, "registry %s has a writer "
				       "(pid %d): stop it first", name, pid);
		}
	}
	ret = CTL_OK;
	if (unlink(seg) < 0 && errno != ENOENT)
		ret = ctl_fail(seg, errno);
	if (unlink(wait) < 0 && errno != ENOENT)
		ret = ctl_fail(wait, errno);
	if (ret == CTL_OK && fd >= 0 && unlink(lock) < 0 && errno != ENOENT)
		ret = ctl_fail(lock, errno);
	if (fd >= 0)
		close(fd);
	return ret;
}
