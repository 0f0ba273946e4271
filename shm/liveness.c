/* SPDX-License-Identifier: MIT */
/* liveness.c - is the writer alive: its lock, else its pid and start time. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layout.h"
#include "liveness.h"
#include "paths.h"

int shm_lock_path(char *buf, size_t cap, const char *segment_path)
{
	int n = snprintf(buf, cap, "%s.lock", segment_path);

	return (n < 0 || (size_t)n >= cap) ? -ENAMETOOLONG : 0;
}

uint64_t shm_proc_start(pid_t pid, char *state)
{
	char path[64], buf[1024];
	unsigned long long start = 0;
	char st = 0;
	ssize_t n;
	char *p;
	int fd;

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	else
		snprintf(path, sizeof(path), "/proc/self/stat");
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	/* the command name may contain spaces and ')': skip past the last */
	p = strrchr(buf, ')');
	if (!p || !p[1])
		return 0;
	/* field 3 (state), fields 4..21, then 22 (starttime) */
	if (sscanf(p + 2, "%c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u "
			  "%*d %*d %*d %*d %*d %*d %llu", &st, &start) != 2)
		return 0;
	if (state)
		*state = st;
	return start;
}

int shm_pid_test(int32_t pid, uint64_t start)
{
	uint64_t now;
	char st = 0;

	/* kill(0 or -N) would ask about process groups: not a writer */
	if (pid <= 0)
		return SHM_PID_DEAD;
	now = shm_proc_start(pid, &st);
	if (now) {
		/* a dead writer not yet reaped by its parent is dead */
		if (st == 'Z' || st == 'X')
			return SHM_PID_DEAD;
		if (start)
			return now == start ? SHM_PID_ALIVE : SHM_PID_DEAD;
	}
	/* /proc hides it (hidepid), is not mounted, or @start is unknown:
	 * kill(pid, 0) sends nothing and tells only whether the pid exists */
	if (kill(pid, 0) == 0 || errno == EPERM)
		return SHM_PID_UNKNOWN;
	return SHM_PID_DEAD;
}

/* Read the header of the segment at @segment_path into @h: 0, or -errno
 * when there is no readable segment there.  Read with pread, never
 * mapped: a file someone truncated cannot fault. */
static int segment_header(const char *segment_path, struct shm_hdr *h)
{
	struct stat st;
	ssize_t n;
	int fd;

	/* the reader already opened this path (following a link only if
	 * the caller gave it as an absolute path): follow here too */
	fd = shm_open_file(segment_path, O_RDONLY, 0, true, &st);
	if (fd < 0)
		return fd;
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return -EPROTO;
	}
	n = pread(fd, h, sizeof(*h), 0);
	close(fd);
	if (n != (ssize_t)sizeof(*h) || h->magic != SHM_MAGIC)
		return -EPROTO;
	return 0;
}

int shm_writer_alive(const char *segment_path)
{
	char path[4200];
	struct shm_hdr h;
	struct flock fl;
	struct stat st;
	int fd, rc;

	rc = shm_lock_path(path, sizeof(path), segment_path);
	if (rc < 0)
		return rc;
	fd = shm_open_file(path, O_RDONLY, 0, false, &st);
	if (fd >= 0 && S_ISREG(st.st_mode)) {
		/* Would a read lock conflict?  Only with the writer's write
		 * lock.  F_OFD_GETLK takes nothing, so it cannot make a
		 * starting writer fail with EBUSY. */
		memset(&fl, 0, sizeof(fl));
		fl.l_type = F_RDLCK;
		fl.l_whence = SEEK_SET;
		rc = fcntl(fd, F_OFD_GETLK, &fl);
		rc = rc < 0 ? -errno : (fl.l_type != F_UNLCK);
		close(fd);
		if (rc != 0)
			return rc;
		/* Not held: the writer died or closed - if this is the file
		 * it locked.  One removed and made anew under a live writer
		 * tells nothing: then the pid test answers. */
		if (segment_header(segment_path, &h) < 0 || !h.lock_ino ||
		    (h.lock_dev == (uint64_t)st.st_dev &&
		     h.lock_ino == (uint64_t)st.st_ino))
			return 0;
		return shm_pid_test(h.writer_pid, h.writer_start) !=
		       SHM_PID_DEAD;
	}
	if (fd >= 0) {
		close(fd);
		fd = -EPERM; /* not a regular file: not the writer's */
	}
	if (fd != -ENOENT && fd != -EACCES && fd != -EPERM && fd != -ELOOP)
		return fd;
	/* A lock file we may not open (the writer makes it 0600), or none
	 * (removed under a live writer, or no writer ever ran): the pid
	 * test, where "exists, cannot tell which" counts as alive. */
	rc = segment_header(segment_path, &h);
	if (rc == 0)
		return shm_pid_test(h.writer_pid, h.writer_start) !=
		       SHM_PID_DEAD;
	/* no segment header to ask either */
	return fd == -ENOENT ? -ENOENT : rc;
}
