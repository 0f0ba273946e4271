/* SPDX-License-Identifier: MIT */
/*
 * reap.c - owner processes in the embedded writer: refuse a dead owner,
 * and remove an owner's entries when it exits, driven by the host's event
 * loop through one pollable descriptor.
 *
 * How it works.  A put with opts.owner_pid first checks that the process
 * exists (kill(pid, 0): -ESRCH when it does not, so no entry is left that
 * nothing would ever remove).  Once the host has asked for
 * shmreg_writer_owner_fd(), the writer keeps an epoll set holding a pidfd
 * (pidfd_open) for every owner process it has entries of, and an eventfd:
 *
 *   - a pidfd becomes readable when its process exits; the epoll set is
 *     then readable, and so is the descriptor the host polls;
 *   - a process already gone when it was to be watched (it died between
 *     its put's check and the pidfd_open, or before owner_fd was first
 *     asked for) is marked in its owner list and the eventfd is written,
 *     so it is reaped on the next round all the same.
 *
 * shmreg_writer_reap_owners() drains the set without blocking and calls
 * shmreg_writer_del_owner() for each exited owner: its entries and their
 * subtrees go in one commit per owner.  Freeing an owner's list closes its
 * pidfd, which also takes it out of the epoll set.
 *
 * Bounds.  A reap makes at most (owners + 1) rounds of epoll_wait(0): each
 * round's ready pidfds are closed by the del_owner of their pid, and the
 * eventfd's dead owners are taken one by one until none is marked.
 */
#include <errno.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

#define EV_DEAD 0 /* epoll data of the eventfd (no pid is 0) */

int owner_check(struct shmreg_writer *w, pid_t pid)
{
	(void)w;
	/* EPERM: it exists, only not ours to signal */
	if (kill(pid, 0) < 0 && errno == ESRCH)
		return -ESRCH;
	return 0;
}

static void signal_dead(struct shmreg_writer *w, pid_t pid)
{
	uint64_t one = 1;

	owners_mark_dead(&w->owners, pid);
	/* an eventfd write of 1 fails only at a count of 2^64 - 2 */
	(void)!write(w->owner_ev, &one, sizeof(one));
}

void owner_watch(struct shmreg_writer *w, pid_t pid)
{
	struct epoll_event ev = { .events = EPOLLIN,
				  .data.u64 = (uint64_t)pid };
	int fd;

	if (w->owner_ep < 0 || owners_pidfd(&w->owners, pid) >= 0)
		return;
	fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd < 0) {
		if (errno == ESRCH)
			signal_dead(w, pid);
		/* else (EMFILE, ENOSYS): unwatched; del_owner still works */
		return;
	}
	if (!owners_set_pidfd(&w->owners, pid, fd)) {
		close(fd);
		return;
	}
	if (epoll_ctl(w->owner_ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
		/* cannot watch it: check it on the next reap instead */
		signal_dead(w, pid);
	}
}

static void watch_one(void *ctx, pid_t pid)
{
	owner_watch(ctx, pid);
}

void owner_close(struct shmreg_writer *w)
{
	if (w->owner_ev >= 0)
		close(w->owner_ev);
	if (w->owner_ep >= 0)
		close(w->owner_ep);
	w->owner_ev = w->owner_ep = -1;
}

SHMREG_EXPORT int shmreg_writer_owner_fd(shmreg_writer_t *w)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = EV_DEAD };

	if (!w)
		return -EINVAL;
	if (w->owner_ep >= 0)
		return w->owner_ep;
	w->owner_ep = epoll_create1(EPOLL_CLOEXEC);
	if (w->owner_ep < 0)
		return -errno;
	w->owner_ev = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->owner_ev < 0 ||
	    epoll_ctl(w->owner_ep, EPOLL_CTL_ADD, w->owner_ev, &ev) < 0) {
		int rc = -errno;

		owner_close(w);
		return rc;
	}
	/* the owners the writer already has entries of */
	owners_each(&w->owners, watch_one, w);
	return w->owner_ep;
}

SHMREG_EXPORT int64_t shmreg_writer_reap_owners(shmreg_writer_t *w)
{
	int64_t removed = 0;

	if (!w)
		return -EINVAL;
	if (w->owner_ep < 0)
		return 0;
	for (size_t round = 0; round <= w->owners.count + 1; round++) {
		struct epoll_event ev[64];
		int n = epoll_wait(w->owner_ep, ev, 64, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		for (int i = 0; i < n; i++) {
			pid_t pid = (pid_t)ev[i].data.u64;
			int64_t r;

			if (ev[i].data.u64 == EV_DEAD) {
				uint64_t cnt;

				(void)!read(w->owner_ev, &cnt, sizeof(cnt));
				while ((pid = owners_next_dead(&w->owners))) {
					r = shmreg_writer_del_owner(w, pid);
					removed += r > 0 ? r : 0;
				}
				continue;
			}
			r = shmreg_writer_del_owner(w, pid);
			removed += r > 0 ? r : 0;
		}
	}
	return removed;
}
