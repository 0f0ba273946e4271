/* SPDX-License-Identifier: MIT */
/* follow.c - shmregctl: wait for a registry to get a writer (again). */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "ctl.h"
#include "paths.h"

/*
 * How it works.  The library ends a wait with -ESHUTDOWN when the writer
 * closes the registry and -EOWNERDEAD when it dies: right for a program
 * that must react.  A person or a script running "shmregctl await KEY"
 * means "until KEY exists", and between two embedded "shmregctl put"s a
 * registry is closed most of the time.  So await and watch wait for the
 * next writer instead, until their own timeout or a signal.
 *
 * A writer that takes a registry over either publishes a new segment file
 * by renaming it over the name (creation, recovery after a crash, growth)
 * or, after a clean close, reopens the segment in place: it stores OPEN in
 * the header we have mapped and touches the file's times.  So "a new
 * writer came" is "the file at the registry's path is not the one we have
 * mapped, or the one we have mapped is open again": inotify on the
 * directory reports the rename (IN_MOVED_TO), the creation (IN_CREATE) or
 * the touch (IN_ATTRIB); the identity check is the inode, compared with
 * the one we recorded when we opened, and the state in the header.  A
 * writer may also reopen, write and close again before we look: so a
 * revision that moved since we last returned counts as a new writer too
 * (the revision only moves while a writer has it open).
 *
 * Races.  The inotify watch is added before the first check, so a rename
 * after the check is an event, and one before it is a changed inode.  The
 * inode is read before the open: if the file is replaced in between, we
 * hold a newer segment than the inode says, and the next check reopens
 * once more, which is harmless.  An inode number cannot be reused while we
 * wait: our handle keeps the file it maps alive.
 *
 * The caller then retries its call on the new handle, which sees whatever
 * the new writer did, even if it has already closed again.
 */

#define NO_INOTIFY_POLL_NS (100 * 1000 * 1000) /* when inotify fails */
#define SIGNAL_SLICE_NS    (250 * 1000 * 1000) /* see cmd_watch.c */

/* Record the identity of the file at reg->path (none: ino 0). */
static void note_file(struct ctl_reg *reg)
{
	struct stat st;

	if (stat(reg->path, &st) == 0) {
		reg->dev = st.st_dev;
		reg->ino = st.st_ino;
	} else {
		reg->dev = 0;
		reg->ino = 0;
	}
}

static bool file_changed(const struct ctl_reg *reg)
{
	struct stat st;

	if (stat(reg->path, &st) < 0)
		return false;
	return st.st_ino != reg->ino || st.st_dev != reg->dev;
}

/* Did a writer adopt the segment we have mapped (CLOSED -> OPEN)? */
static bool reopened_in_place(const struct ctl_reg *reg)
{
	shmreg_stats_t st;

	return shmreg_stats(reg->r, &st) == 0 &&
	       st.state == SHMREG_STATE_OPEN;
}

int ctl_reg_open(struct ctl *c, struct ctl_reg *reg)
{
	int ret;

	memset(reg, 0, sizeof(*reg));
	ret = shm_resolve_path(c->registry, reg->path, sizeof(reg->path));
	if (ret == -EINVAL)
		return ctl_bad_name(c->registry);
	if (ret < 0)
		return ctl_fail(c->registry, -ret);
	note_file(reg);
	ret = shmreg_open(reg->path, 0, &reg->r);
	if (ret == 0)
		reg->rev = shmreg_revision(reg->r);
	if (ret == 0 || ret == -ENOENT)
		return 0; /* absent: reg->r stays NULL, the caller may wait */
	return ctl_open(c, &reg->r);
}

/* A new file is at the path: map it instead.  Returns 0, or -errno when it
 * cannot be opened (then the old handle, if any, stays). */
static int reopen(struct ctl_reg *reg)
{
	struct ctl_reg fresh = *reg;
	int ret;

	note_file(&fresh);
	ret = shmreg_open(fresh.path, 0, &fresh.r);
	if (ret < 0)
		return ret;
	shmreg_close(reg->r);
	fresh.rev = shmreg_revision(fresh.r);
	*reg = fresh;
	return 0;
}

int ctl_reg_wait(struct ctl_reg *reg, int64_t deadline, bool stop_on_signal)
{
	char dir[PATH_MAX], ev[sizeof(struct inotify_event) + NAME_MAX + 1];
	char *slash;
	int fd, ret = -ETIMEDOUT;

	memcpy(dir, reg->path, sizeof(dir));
	slash = strrchr(dir, '/');
	if (slash == dir)
		dir[1] = '\0';
	else if (slash)
		*slash = '\0';

	fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fd >= 0 && inotify_add_watch(fd, slash ? dir : ".",
					 IN_CREATE | IN_MOVED_TO | IN_ATTRIB) < 0) {
		close(fd);
		fd = -1;
	}

	/* Each round checks, then sleeps until an event in the directory,
	 * the deadline or a slice: bounded by the deadline (and, with none,
	 * by a signal when @stop_on_signal). */
	for (;;) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		int64_t now, left;

		if ((!reg->r || file_changed(reg)) && reopen(reg) == 0) {
			ret = 0;
			break;
		}
		if (reg->r && (reopened_in_place(reg) ||
			       shmreg_revision(reg->r) != reg->rev)) {
			reg->rev = shmreg_revision(reg->r);
			ret = 0;
			break;
		}
		if (stop_on_signal && ctl_stopping()) {
			ret = -EINTR;
			break;
		}
		now = shm_monotonic_ns();
		if (deadline >= 0 && now >= deadline)
			break;
		left = deadline < 0 ? INT64_MAX : deadline - now;
		if (fd < 0 && left > NO_INOTIFY_POLL_NS)
			left = NO_INOTIFY_POLL_NS;
		if (stop_on_signal && left > SIGNAL_SLICE_NS)
			left = SIGNAL_SLICE_NS;
		if (left > INT_MAX / 2 * INT64_C(1000000))
			left = INT_MAX / 2 * INT64_C(1000000);
		/* round up: a 0 ms poll with time left would spin */
		if (poll(&pf, fd >= 0 ? 1 : 0,
			 (int)((left + 999999) / 1000000)) > 0) {
			/* drain: what happened is re-checked above, the event
			 * names only spare us checks for unrelated files */
			while (read(fd, ev, sizeof(ev)) > 0)
				;
		}
	}
	if (fd >= 0)
		close(fd);
	return ret;
}

void ctl_reg_close(struct ctl_reg *reg)
{
	shmreg_close(reg->r);
	reg->r = NULL;
}
