/* SPDX-License-Identifier: MIT */
/* client_async.c - pipelined requests to shmregd: queue, flush, reap. */
#include <errno.h>

#include "internal.h"
#include "client_internal.h"

/*
 * Ids are handed out in order on the connection and the daemon answers in
 * order, so a completion needs no lookup: the ring of completions fills in
 * id order and is reaped in id order.  The depth (the daemon's
 * max_inflight, from HELLO) bounds the requests that are sent or answered
 * but not reaped, and so the ring; a caller that does not reap gets -ENOBUFS
 * rather than unbounded buffering on either side.
 */

/* Queueing a request may write the queue out once it is large, so that a
 * bulk writer's memory stays bounded by CLIENT_OUT_FLUSH plus one frame. */
static int64_t queued(shmreg_client_t *c, uint64_t id)
{
	c->outstanding++;
	if (c->out_len - c->out_off >= CLIENT_OUT_FLUSH) {
		int ret = client_pump(c, UNTIL_SENT, -1);

		if (ret < 0)
			return ret;
	}
	return (int64_t)id;
}

SHMREG_EXPORT
int64_t shmreg_put_async(shmreg_client_t *c, const void *key, size_t klen,
			 const void *val, size_t vlen,
			 const shmreg_put_opts_t *opts)
{
	int64_t id = client_enqueue_put(c, key, klen, val, vlen, opts, true);

	return id < 0 ? id : queued(c, (uint64_t)id);
}

SHMREG_EXPORT
int64_t shmreg_del_async(shmreg_client_t *c, const void *key, size_t klen)
{
	int64_t id = client_enqueue_del(c, key, klen, true);

	return id < 0 ? id : queued(c, (uint64_t)id);
}

SHMREG_EXPORT
int shmreg_client_flush(shmreg_client_t *c)
{
	if (!c)
		return -EINVAL;
	return client_pump(c, UNTIL_SENT, -1);
}

SHMREG_EXPORT
int shmreg_client_wait(shmreg_client_t *c, shmreg_completion_t *cqes,
		       unsigned max, int64_t timeout_ns)
{
	unsigned n;
	int ret;

	if (!c || !cqes || !max)
		return -EINVAL;
	if (!c->cq_count) {
		if (!c->outstanding)
			return 0;
		ret = client_pump(c, UNTIL_COMPLETION, timeout_ns);
		/* completions read before an error are still handed out;
		 * the error comes with the next call */
		if (ret < 0 && !c->cq_count)
			return ret;
	} else {
		/* get queued requests on their way while the caller works
		 * through these; never blocks */
		(void)client_pump(c, UNTIL_NOTHING, 0);
	}
	n = c->cq_count < max ? c->cq_count : max;
	for (unsigned i = 0; i < n; i++) {
		cqes[i] = c->cq[c->cq_head];
		c->cq_head = (c->cq_head + 1) % c->depth;
	}
	c->cq_count -= n;
	c->outstanding -= n;
	return (int)n;
}

SHMREG_EXPORT
unsigned shmreg_client_depth(shmreg_client_t *c)
{
	return c ? c->depth : 0;
}

SHMREG_EXPORT
int shmreg_client_fd(shmreg_client_t *c)
{
	return c ? c->fd : -1;
}
