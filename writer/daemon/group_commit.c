/* SPDX-License-Identifier: MIT */
/*
 * group_commit.c - shmregd's persistence: each registry with --data-dir
 * logs through its writer opened with SHMREG_WRITER_GROUP, and the loop
 * writes the log once per turn.
 *
 * How it works.  A turn of the loop (loop.c) applies every request that
 * arrived, each reply queued on its connection; while it does,
 * d->hold_replies keeps conn.c from starting a send of newly queued
 * replies.  At the end of the turn d_group_commit() calls
 * shmreg_writer_flush() on each persistent registry: one write of every
 * record of the turn, and (sync) one fdatasync for them all; only then
 * are the sends started.  So a reply never leaves before its change is
 * in the log: written (a process crash loses nothing acknowledged), and
 * in sync mode on disk.  The tick calls it too, so batch mode syncs
 * within --batch-ms of a change while no request comes.
 *
 * Costs.  The write and fdatasync block the loop: with sync the loop's
 * turn takes one fdatasync, and every request that arrives meanwhile
 * joins the next turn's group.  (Submitting them as a linked write +
 * fsync through the ring, and keeping replies until their completion,
 * would let the loop go on decoding meanwhile; not done.)
 *
 * Failure.  A failed write or fdatasync latches -EIO in the writer: it
 * refuses every later change, and the connections with replies queued in
 * this turn are closed instead of being told "done" about changes that
 * may not be durable.  Reads (the segment) are unaffected.
 */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon.h"

int d_persist_opts(struct daemon *d, const struct d_regopt *ro,
		   shmreg_writer_opts_t *wo, char *buf, size_t cap)
{
	const char *name = strrchr(ro->name, '/');

	if (!ro->po.data_dir)
		return 0;
	name = name ? name + 1 : ro->name;
	/* DIR itself is made when missing (the writer makes DIR/NAME) */
	if (mkdir(ro->po.data_dir, 0700) < 0 && errno != EEXIST) {
		d_log(D_ERR, "registry %s: --data-dir %s: %s", ro->name,
		      ro->po.data_dir, strerror(errno));
		return -errno;
	}
	if ((size_t)snprintf(buf, cap, "%s/%s", ro->po.data_dir, name) >= cap) {
		d_log(D_ERR, "registry %s: --data-dir path too long", ro->name);
		return -ENAMETOOLONG;
	}
	wo->data_dir = buf;
	wo->durability = (uint32_t)ro->po.durability;
	wo->batch_ms = (uint32_t)ro->po.batch_ms;
	wo->flags |= SHMREG_WRITER_GROUP;
	if (ro->po.keep_prefix)
		wo->flags |= SHMREG_WRITER_KEEP_PREFIX;
	d->persistent = true;
	return 0;
}

void d_group_commit(struct daemon *d)
{
	bool failed = false;

	if (!d->persistent)
		return;
	for (unsigned i = 0; i < d->nreg; i++) {
		int rc;

		if (!d->reg[i].ro->po.data_dir)
			continue;
		rc = shmreg_writer_flush(d->reg[i].w);
		if (rc < 0) {
			d_log_limited(D_ERR, "registry %s: log write failed: %s; "
				      "refusing changes until restarted",
				      d->reg[i].name, strerror(-rc));
			failed = true;
		}
	}
	if (!failed)
		return;
	/* the replies queued this turn may acknowledge lost changes */
	for (struct conn *c = d->conns, *next; c; c = next) {
		next = c->next;
		if (c->out_q.len)
			conn_kill(c, "log write failed");
	}
}

void d_log_persist_stats(struct daemon *d)
{
	for (unsigned i = 0; i < d->nreg; i++) {
		shmreg_writer_log_stats_t st;

		if (!d->reg[i].w || shmreg_writer_log_stats(d->reg[i].w, &st))
			continue;
		d_log(D_INFO, "registry %s: log: %llu writes, %llu fdatasyncs, "
		      "%llu snapshots", d->reg[i].name,
		      (unsigned long long)st.writes,
		      (unsigned long long)st.syncs,
		      (unsigned long long)st.snapshots);
	}
}
