/* SPDX-License-Identifier: MIT */
/*
 * group_commit.c - shmregd's persistence: each registry with --data-dir
 * logs through its writer opened with SHMREG_WRITER_GROUP, and the loop
 * writes the log asynchronously, many changes per write and fdatasync.
 *
 * How it works.  Requests are applied as they are decoded (conn.c); each
 * change's log records collect in the writer.  Once per loop turn
 * d_group_commit() takes them as one group (shmreg_writer_log_take) and
 * submits one IORING_OP_WRITE, linked (IOSQE_IO_LINK) to an
 * IORING_OP_FSYNC with IORING_FSYNC_DATASYNC when the durability mode
 * wants one (sync: every group; batch: at most every --batch-ms, and the
 * tick submits a bare fdatasync when it is due; none: never).  The loop
 * goes on decoding and applying requests meanwhile; their records form
 * the next group, taken when this one has completed (one group in flight
 * per registry, so groups complete in order).
 *
 * Replies.  A reply that may acknowledge a change not yet in the log is
 * held: every reply on a registry whose log position is ahead of what it
 * acked (d_hold_reply), and every reply after a held one on the same
 * connection (replies leave in request order).  That also holds a read
 * that comes while changes are pending: it may wait for one group, never
 * acknowledges a change early.  When a group is submitted, each held
 * connection's queued replies are "sealed" to it (conn.out_sealed); when
 * the group completes, the writer's acked position covers them and they
 * are released (conn_release_replies).  So a reply never leaves before
 * its change is written (batch, none) or fdatasync'ed (sync).
 *
 * Failure.  A failed write (or a short one) or fdatasync latches -EIO in
 * the writer: every later change is refused.  The connections with held
 * replies on that registry are closed instead of being told "done" about
 * changes that may not be durable; later replies (reads, refusals) go out
 * as usual.  Reads of the segment are unaffected.
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

static void hold_add(struct reg *r, struct conn *c)
{
	c->held = true;
	c->hprev = NULL;
	c->hnext = r->held;
	if (r->held)
		r->held->hprev = c;
	r->held = c;
}

void d_hold_drop(struct conn *c)
{
	if (!c->held)
		return;
	if (c->hprev)
		c->hprev->hnext = c->hnext;
	else
		c->reg->held = c->hnext;
	if (c->hnext)
		c->hnext->hprev = c->hprev;
	c->held = false;
	c->hprev = c->hnext = NULL;
}

void d_hold_reply(struct conn *c)
{
	struct reg *r = c->reg;

	if (c->held)
		return; /* after a held reply: held too */
	if (!r || !r->ro->po.data_dir || r->log_failed ||
	    shmreg_writer_log_pos(r->w) == shmreg_writer_log_acked(r->w)) {
		c->out_free = c->out_sealed = c->out_q.len;
		c->out_free_nrep = c->out_sealed_nrep = c->out_q.nrep;
		return;
	}
	hold_add(r, c);
}

/* A group was submitted: what each held connection queued so far is
 * acknowledged by its completion. */
static void seal(struct reg *r)
{
	for (struct conn *c = r->held; c; c = c->hnext) {
		c->out_sealed = c->out_q.len;
		c->out_sealed_nrep = c->out_q.nrep;
	}
}

/* The log acked the sealed replies (@all: everything, nothing is
 * pending). */
static void release(struct reg *r, bool all)
{
	for (struct conn *c = r->held, *next; c; c = next) {
		next = c->hnext;
		if (all) {
			c->out_sealed = c->out_q.len;
			c->out_sealed_nrep = c->out_q.nrep;
		}
		conn_release_replies(c, c->out_sealed, c->out_sealed_nrep);
		if (c->out_free == c->out_q.len)
			d_hold_drop(c);
	}
}

static void failed(struct reg *r, int rc)
{
	d_log_limited(D_ERR, "registry %s: log write failed: %s; refusing "
		      "changes until restarted", r->name, strerror(-rc));
	r->log_failed = true;
	/* the held replies may acknowledge changes the log lost */
	while (r->held)
		conn_kill(r->held, "log write failed");
}

static void submit(struct daemon *d, struct reg *r)
{
	shmreg_writer_log_io_t io;
	struct io_uring_sqe *sqe;
	int rc = shmreg_writer_log_take(r->w, &io);

	if (rc == -EBUSY)
		return;
	if (rc < 0) {
		if (!r->log_failed)
			failed(r, rc);
		return;
	}
	if (rc == 0) {
		release(r, true);
		return;
	}
	seal(r);
	/* the write and its fdatasync in one submission: a link does not
	 * reach across two */
	if (io_uring_sq_space_left(&d->ring) < 2)
		io_uring_submit(&d->ring);
	r->log_busy = true;
	r->log_res = 0;
	r->log_len = io.len;
	r->log_ops = 0;
	if (io.len) {
		sqe = d_sqe(d);
		io_uring_prep_write(sqe, io.fd, io.buf, (unsigned)io.len,
				    io.offset);
		io_uring_sqe_set_data64(sqe, d_ud(r, D_TAG_LOG_WRITE));
		if (io.sync)
			sqe->flags |= IOSQE_IO_LINK; /* fdatasync after it */
		r->log_ops++;
	}
	if (io.sync) {
		sqe = d_sqe(d);
		io_uring_prep_fsync(sqe, io.fd, IORING_FSYNC_DATASYNC);
		io_uring_sqe_set_data64(sqe, d_ud(r, D_TAG_LOG_SYNC));
		r->log_ops++;
	}
}

void d_group_commit(struct daemon *d)
{
	if (!d->persistent || d->state == D_DONE)
		return; /* stopping: the writer's close writes the rest */
	for (unsigned i = 0; i < d->nreg; i++) {
		struct reg *r = &d->reg[i];

		if (r->ro->po.data_dir && r->w && !r->log_busy)
			submit(d, r);
	}
}

void d_log_cqe(struct daemon *d, struct reg *r,
	       const struct io_uring_cqe *cqe, bool sync)
{
	int res = cqe->res;
	int rc;

	(void)d;
	if (!sync && res >= 0 && (size_t)res != r->log_len)
		res = -EIO; /* short: the file system could not take it */
	/* a failed write cancels its fdatasync: keep the write's error */
	if (res < 0 && !r->log_res)
		r->log_res = res;
	if (--r->log_ops)
		return;
	r->log_busy = false;
	rc = shmreg_writer_log_done(r->w, r->log_res);
	if (rc < 0)
		failed(r, rc);
	else
		release(r, false);
	/* the next group (formed meanwhile) goes at the turn's end */
}

bool d_log_busy(const struct daemon *d)
{
	for (unsigned i = 0; i < d->nreg; i++)
		if (d->reg[i].log_busy)
			return true;
	return false;
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
