/* SPDX-License-Identifier: MIT */
/*
 * log_group.c - group commit by the host: the writer hands out the
 * records of many commits as one write (+ fdatasync), the host performs
 * it asynchronously and reports back (shmreg_writer.h explains the
 * calls; shmregd's writer/daemon/group_commit.c is the host).
 *
 * How it works.  Commits encode their records into p->buf as always
 * (log_write.c).  A take swaps p->buf with p->fbuf: the taken bytes stay
 * where they are, unchanged, until the done, while the next commits fill
 * the other buffer.  The group's file offset is assigned at the take
 * (p->end moves past it), so the next group goes after it whatever the
 * completion order of the host's I/O; with one group in flight at a time
 * they complete in order anyway, and "acked" only ever grows.
 *
 * Only the writer's thread calls any of this (the host's event loop is
 * the writer's thread), so nothing here is atomic; the kernel reads
 * p->fbuf while it writes, and nobody writes it until the done.
 *
 * The space for the records was reserved (fallocate) when their changes
 * were admitted, so a write into it does not fail for space; a failed
 * write or fdatasync latches -EIO exactly as plog_flush does.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "persist.h"

static struct persist *group_log(shmreg_writer_t *w)
{
	return w && w->plog && w->plog->group ? w->plog : NULL;
}

SHMREG_EXPORT uint64_t shmreg_writer_log_pos(shmreg_writer_t *w)
{
	struct persist *p = w ? w->plog : NULL;

	if (!p)
		return 0;
	return p->pos_written + p->direct + (p->inflight ? p->flen : 0) +
	       p->len;
}

SHMREG_EXPORT uint64_t shmreg_writer_log_acked(shmreg_writer_t *w)
{
	struct persist *p = w ? w->plog : NULL;

	if (!p)
		return 0;
	return p->durability == SHMREG_DURABILITY_SYNC ? p->pos_synced
						       : p->pos_written;
}

SHMREG_EXPORT int shmreg_writer_log_take(shmreg_writer_t *w,
					 shmreg_writer_log_io_t *io)
{
	struct persist *p = group_log(w);
	uint8_t *b;
	size_t cap;

	if (!p || !io)
		return -EINVAL;
	if (p->err)
		return p->err;
	if (p->inflight)
		return -EBUSY;
	/* sync mode syncs every group; batch when due, even an empty one
	 * (the tick's call: the last writes get synced on time) */
	if (!p->len && !(p->unsynced &&
			 p->durability == SHMREG_DURABILITY_BATCH &&
			 plog_sync_now(p)))
		return 0;
	p->fsync = p->len ? plog_sync_now(p) : true;
	memset(io, 0, sizeof(*io));
	io->fd = p->log_fd;
	io->sync = p->fsync;
	io->buf = p->buf;
	io->len = p->len;
	io->offset = p->end;
	/* the next group collects in the other buffer */
	b = p->fbuf;
	cap = p->fcap;
	p->fbuf = p->buf;
	p->fcap = p->cap;
	p->flen = p->len;
	p->buf = b;
	p->cap = cap;
	p->len = 0;
	p->end += p->flen;
	p->inflight = true;
	if (p->flen)
		p->writes++;
	if (p->fsync)
		p->syncs++;
	io->upto = p->pos_written + p->flen;
	return 1;
}

SHMREG_EXPORT int shmreg_writer_log_done(shmreg_writer_t *w, int res)
{
	struct persist *p = group_log(w);

	if (!p || !p->inflight)
		return -EINVAL;
	p->inflight = false;
	if (res < 0) {
		/* as in plog_flush: whatever was written since the last good
		 * fdatasync may be gone; the writer stops taking changes */
		p->err = -EIO;
		return p->err;
	}
	p->pos_written += p->flen;
	p->log_bytes += p->flen;
	if (p->flen)
		p->unsynced = true;
	p->flen = 0;
	if (p->fsync) {
		p->unsynced = false;
		p->pos_synced = p->pos_written;
	}
	/* a snapshot rotates the log: now, with nothing in flight */
	if (p->snap_asked) {
		p->snap_asked = false;
		(void)psnap_start(w, true);
	} else {
		(void)psnap_start(w, false);
	}
	return p->err;
}

/* persist_close with the host's group still in flight (the host stopped
 * without waiting for it): write it here, to the offset it was given, so
 * the records after it do not follow a hole.  Returns 0 or -errno. */
int plog_group_abandon(struct persist *p)
{
	int rc;

	if (!p->inflight)
		return 0;
	rc = plog_pwrite(p->log_fd, p->fbuf, p->flen, p->end - p->flen);
	p->inflight = false;
	if (rc < 0)
		return p->err = -EIO;
	p->pos_written += p->flen;
	p->flen = 0;
	p->unsynced = true;
	return 0;
}
