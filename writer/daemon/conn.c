/* SPDX-License-Identifier: MIT */
/* conn.c - shmregd connections: decode requests, apply them, queue replies. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon.h"

/*
 * How it works
 *
 * Input.  A recv completion hands over one provided buffer.  When the
 * connection has nothing buffered, frames are decoded and applied straight
 * from it and only a trailing partial frame is copied into c->in; otherwise
 * the chunk is appended to c->in and decoded from there.  Either way the
 * buffer is back in the ring before the completion handler returns.
 *
 * Order.  A request is applied to the writer while it is decoded, and its
 * reply appended to c->out_q at once, so replies leave in request order
 * without any bookkeeping: the reply stream is the request stream, mapped.
 *
 * Output.  Two buffers: out_s is being sent (the kernel reads it, so it
 * must not move), out_q collects the replies produced meanwhile.  When a
 * send finishes, the buffers swap and everything queued goes out in one
 * send: under pipelining, one send carries the replies of a whole received
 * chunk.
 *
 * Back-pressure.  Once D_OUT_HIGH reply bytes or max_inflight replies are
 * unsent, decoding stops and the multishot recv is cancelled; what the
 * kernel had already delivered waits in c->in.  The peer's requests then
 * pile up in its own socket buffer and its sends block: a client that
 * never reads its replies costs the daemon at most D_OUT_HIGH plus one
 * reply of output and one socket buffer of input.  Decoding resumes below
 * D_OUT_LOW bytes and max_inflight / 2 replies.  A connection whose sends
 * make no progress for --stall-timeout is closed (conn_check_stalls).
 *
 * Input budget.  c->in holds at most one incomplete frame (more only while
 * back-pressure pauses decoding); its capacity is charged to d->in_bytes, which
 * --input-budget bounds for all connections together.  A buffer grows by
 * doubling, but never past the frame it is receiving, so a 16 MiB frame
 * costs 16 MiB.  Growth past D_IN_SMALL may only use the budget minus a
 * reserve (budget / D_IN_RESERVE_DIV), kept for small frames.  A frame that
 * does not fit is refused with -EAGAIN: its remaining bytes are read and
 * discarded (c->skip) and the connection goes on, so the client may retry
 * (only when its 16-byte header is not even there is the connection closed).
 *
 * Who and how long.  The peer's credentials are checked at accept: a peer
 * that may not write never counts against --max-connections; it is
 * answered -EACCES on its first request and closed (see conn_new).  A
 * writer's connection that sends no complete request for --idle-timeout,
 * has no reply in flight and owns no ephemeral entry, is closed
 * (conn_check_idle).
 *
 * Errors.  A request with bad arguments (empty key, unknown flag, ...) gets
 * its error and the connection goes on.  A frame that cannot be decoded
 * (bad length, version, op, layout) gets an error reply and the connection
 * is closed once the reply is sent: after a framing error the byte stream
 * cannot be trusted to resynchronise.  The daemon never exits on input.
 */

static uint64_t reg_rev(const struct conn *c)
{
	return c->reg ? shmreg_writer_revision(c->reg->w) : 0;
}

static size_t pending_bytes(const struct conn *c)
{
	return c->out_q.len + (c->out_s.len - c->out_s.off);
}

static unsigned pending_replies(const struct conn *c)
{
	return c->out_q.nrep + c->out_s.nrep;
}

/* Room for @extra more bytes at b->p + b->len.  Consumed bytes before
 * b->off are dropped first (input buffers only: an output buffer being
 * sent is never compacted, its off stays 0 while it collects). */
static int dbuf_reserve(struct dbuf *b, size_t extra)
{
	size_t cap;
	uint8_t *p;

	if (b->cap - b->len >= extra)
		return 0;
	if (b->off) {
		memmove(b->p, b->p + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
		if (b->cap - b->len >= extra)
			return 0;
	}
	cap = b->cap ? b->cap : 4096;
	while (cap - b->len < extra)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p)
		return -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

/* ---- intrusive lists of connections (d->idle, d->refusing) ---- */

static void cl_append(struct clist *l, struct conn *c)
{
	c->lnext = NULL;
	c->lprev = l->tail;
	if (l->tail)
		l->tail->lnext = c;
	else
		l->head = c;
	l->tail = c;
	l->n++;
}

static void cl_remove(struct clist *l, struct conn *c)
{
	if (c->lprev)
		c->lprev->lnext = c->lnext;
	else
		l->head = c->lnext;
	if (c->lnext)
		c->lnext->lprev = c->lprev;
	else
		l->tail = c->lprev;
	c->lprev = c->lnext = NULL;
	l->n--;
}

static struct clist *conn_list(struct conn *c)
{
	return c->refused ? &c->d->refusing : &c->d->idle;
}

/* A complete request arrived: @c goes to the end of the idle list. */
static void touch(struct conn *c)
{
	struct clist *l = &c->d->idle;

	if (c->refused)
		return;
	c->active_ns = d_now_ns();
	if (l->tail == c)
		return;
	cl_remove(l, c);
	cl_append(l, c);
}

/* ---- input buffer, charged to the input budget ---- */

/* The length field of the first frame in c->in followed by @data, or 0
 * when fewer than its 4 bytes are there. */
static uint32_t pending_frame_len(const struct conn *c, const uint8_t *data,
				  size_t n)
{
	size_t have = c->in.len - c->in.off;
	uint8_t h[4];

	if (have + n < 4)
		return 0;
	for (size_t i = 0; i < 4; i++)
		h[i] = i < have ? c->in.p[c->in.off + i] : data[i - have];
	return proto_get_u32(h);
}

/* Append [data, data + n) to c->in.  Returns 0, -ENOMEM, or -ENOBUFS when
 * the input budget does not allow the buffer to grow. */
static int in_append(struct conn *c, const uint8_t *data, size_t n)
{
	struct daemon *d = c->d;
	struct dbuf *b = &c->in;
	size_t have = b->len - b->off, need, cap;
	uint64_t limit;
	uint32_t flen;
	uint8_t *p;

	if (b->cap - b->len < n && b->off) {
		memmove(b->p, b->p + b->off, have);
		b->len = have;
		b->off = 0;
	}
	if (b->cap - b->len < n) {
		need = have + n;
		cap = b->cap ? b->cap * 2 : 4096;
		/* the last step is the frame's own size, not the next power
		 * of two; the length can only make the buffer smaller, so an
		 * unchecked one (header still incomplete) is harmless */
		flen = pending_frame_len(c, data, n);
		if (flen >= need && flen < cap)
			cap = flen;
		if (cap < need)
			cap = need;
		limit = d->o->in_budget;
		if (cap > D_IN_SMALL)
			limit -= limit / D_IN_RESERVE_DIV;
		if (d->in_bytes + (cap - b->cap) > limit)
			return -ENOBUFS;
		p = realloc(b->p, cap);
		if (!p)
			return -ENOMEM;
		d->in_bytes += cap - b->cap;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	return 0;
}

/* c->in is empty: keep a buffer of up to one receive chunk for the next
 * partial frame, give back anything larger. */
static void in_release(struct conn *c, size_t keep_cap)
{
	struct dbuf *b = &c->in;

	b->off = b->len = 0;
	if (b->cap > keep_cap) {
		c->d->in_bytes -= b->cap;
		free(b->p);
		b->p = NULL;
		b->cap = 0;
	}
}

static void dbuf_reset(struct dbuf *b, size_t keep_cap)
{
	b->off = b->len = 0;
	b->nrep = 0;
	if (b->cap > keep_cap) {
		free(b->p);
		b->p = NULL;
		b->cap = 0;
	}
}

static void mark_dirty(struct conn *c)
{
	if (c->dirty || c->dead)
		return;
	c->dirty = true;
	c->dirty_next = c->d->dirty;
	c->d->dirty = c;
}

static void reply(struct conn *c, uint8_t op, uint64_t id, int32_t status,
		  uint64_t rev, const void *body, uint32_t blen)
{
	struct daemon *d = c->d;
	size_t len = PROTO_REPLY_HDR_SIZE + (size_t)blen;
	size_t pend;

	if (c->dead)
		return;
	if (dbuf_reserve(&c->out_q, len)) {
		conn_kill(c, "out of memory for replies");
		return;
	}
	proto_encode_reply(c->out_q.p + c->out_q.len, len, op, id, status,
			   rev, blen);
	if (blen)
		memcpy(c->out_q.p + c->out_q.len + PROTO_REPLY_HDR_SIZE, body,
		       blen);
	c->out_q.len += len;
	c->out_q.nrep++;
	d_hold_reply(c); /* persistence: it may wait for the log */
	d->st.requests++;
	metrics_count(c, op, status);
	pend = pending_bytes(c);
	if (pend > d->st.out_highwater)
		d->st.out_highwater = pend;
	if (status < 0)
		d_log_limited(D_TRACE, "connection %llu: %s id %llu: %s",
			      (unsigned long long)c->serial, proto_op_name(op),
			      (unsigned long long)id, strerror(-status));
	mark_dirty(c);
}

void conn_reply(struct conn *c, uint8_t op, uint64_t id, int32_t status,
		uint64_t rev, const void *body, uint32_t blen)
{
	reply(c, op, id, status, rev, body, blen);
}

static void reply_err(struct conn *c, const struct proto_req *q, int err)
{
	reply(c, q->op, q->id, err, reg_rev(c), NULL, 0);
}

static void do_hello(struct conn *c, const struct proto_req *q)
{
	struct daemon *d = c->d;
	uint8_t body[PROTO_HELLO_REPLY];

	if (c->reg) {
		/* one connection serves one registry: its requests and its
		 * connection-owned entries all belong to the one HELLO chose */
		reply_err(c, q, -EISCONN);
		return;
	}
	for (unsigned i = 0; i < d->nreg; i++) {
		const char *name = d->reg[i].name;

		if (strlen(name) == q->u.hello.nlen &&
		    !memcmp(name, q->u.hello.name, q->u.hello.nlen)) {
			c->reg = &d->reg[i];
			break;
		}
	}
	if (!c->reg) {
		reply_err(c, q, -ENOENT);
		return;
	}
	/* the registry's own allow lists (auth.c): a peer admitted at
	 * accept for another registry may not write this one */
	if (!auth_reg(c, c->reg)) {
		c->reg = NULL;
		reply_err(c, q, -EACCES);
		c->closing = true;
		return;
	}
	proto_put_u32(body, PROTO_FRAME_MAX);
	proto_put_u32(body + 4, d->o->max_inflight);
	proto_put_u32(body + 8, (uint32_t)getpid());
	proto_put_u32(body + 12, 0);
	reply(c, q->op, q->id, 0, reg_rev(c), body, sizeof(body));
}

static void do_put(struct conn *c, const struct proto_req *q)
{
	struct daemon *d = c->d;
	struct reg *r = c->reg;
	shmreg_put_opts_t o;
	bool eph;
	pid_t old;
	int64_t ret;
	int err;

	/* PUT and PUTX: a PUT's parent and attributes are none */
	proto_put_opts(q, &o);
	eph = o.flags & SHMREG_EPHEMERAL;
	if (!r) {
		reply_err(c, q, -ENOTCONN);
		return;
	}
	/* whose entry a successful put replaces: that pid may own nothing
	 * afterwards, and is then no longer watched */
	old = owner_of(d, r, q->u.put.key, q->u.put.klen);
	/* The pid is checked and watched before the entry exists: if it
	 * exits between here and the put, the pidfd poll fires and removes
	 * the entry; it can never outlive its owner unnoticed. */
	if (o.owner_pid) {
		err = owner_watch(d, o.owner_pid, r);
		if (err < 0) {
			reply_err(c, q, err);
			return;
		}
	}
	ret = shmreg_writer_put(r->w, q->u.put.key, q->u.put.klen,
				q->u.put.val, q->u.put.vlen, &o);
	if (ret > 0) {
		err = eph_after_put(d, r, c, q->u.put.key, q->u.put.klen, eph,
				    o.owner_pid);
		if (err < 0) {
			/* cannot track it, so it must not stay: it would
			 * outlive its connection */
			shmreg_writer_del(r->w, q->u.put.key, q->u.put.klen);
			owner_ref(d, old, -1);
			owner_ref(d, o.owner_pid, 0);
			reply_err(c, q, err);
			return;
		}
		/* the new owner first: old == new must not unwatch it */
		owner_ref(d, o.owner_pid, 1);
		owner_ref(d, old, -1);
		reply(c, q->op, q->id, 0, (uint64_t)ret, NULL, 0);
		return;
	}
	owner_ref(d, o.owner_pid, 0);   /* watched for nothing? */
	reply_err(c, q, ret < 0 ? (int)ret : -EPROTO);
}

static void do_del(struct conn *c, const struct proto_req *q)
{
	struct reg *r = c->reg;
	int64_t ret;
	pid_t old;

	if (!r) {
		reply_err(c, q, -ENOTCONN);
		return;
	}
	old = owner_of(c->d, r, q->u.del.key, q->u.del.klen);
	ret = shmreg_writer_del(r->w, q->u.del.key, q->u.del.klen);
	if (ret > 0 || ret == -ENOENT)
		eph_after_del(c->d, r, q->u.del.key, q->u.del.klen);
	if (ret > 0) {
		owner_ref(c->d, old, -1);
		reply(c, q->op, q->id, 0, (uint64_t)ret, NULL, 0);
	} else {
		reply_err(c, q, ret < 0 ? (int)ret : -EPROTO);
	}
}

static void do_setattrs(struct conn *c, const struct proto_req *q)
{
	int64_t ret;

	if (!c->reg) {
		reply_err(c, q, -ENOTCONN);
		return;
	}
	ret = shmreg_writer_set_attrs(c->reg->w, q->u.setattrs.key,
				      q->u.setattrs.klen, q->u.setattrs.attrs.a,
				      q->u.setattrs.attrs.n);
	if (ret > 0)
		reply(c, q->op, q->id, 0, (uint64_t)ret, NULL, 0);
	else
		reply_err(c, q, ret < 0 ? (int)ret : -EPROTO);
}

/* The subtree's owner and connection bookkeeping: the root's is settled
 * here; a descendant's stale record is harmless (its delete on owner exit
 * or connection close finds nothing: -ENOENT). */
static void do_deltree(struct conn *c, const struct proto_req *q)
{
	struct reg *r = c->reg;
	uint8_t body[PROTO_DELTREE_REPLY];
	int64_t ret;
	pid_t old;

	if (!r) {
		reply_err(c, q, -ENOTCONN);
		return;
	}
	old = owner_of(c->d, r, q->u.del.key, q->u.del.klen);
	ret = shmreg_writer_del_tree(r->w, q->u.del.key, q->u.del.klen);
	if (ret > 0 || ret == -ENOENT)
		eph_after_del(c->d, r, q->u.del.key, q->u.del.klen);
	if (ret <= 0) {
		reply_err(c, q, ret < 0 ? (int)ret : -EPROTO);
		return;
	}
	owner_ref(c->d, old, -1);
	proto_put_u64(body, (uint64_t)ret);
	reply(c, q->op, q->id, 0, reg_rev(c), body, sizeof(body));
}

static void do_stats(struct conn *c, const struct proto_req *q)
{
	struct daemon *d = c->d;
	uint8_t body[PROTO_STATS_BODY];
	uint64_t f[PROTO_STAT_NFIELDS] = { 0 };
	size_t eph = 0;

	if (c->reg) {
		shmreg_stats_t st;
		int ret = shmreg_stats(shmreg_writer_reader(c->reg->w), &st);

		if (ret < 0) {
			reply_err(c, q, ret);
			return;
		}
		f[PROTO_STAT_ENTRIES] = st.entries;
		f[PROTO_STAT_BYTES_USED] = st.bytes_used;
		f[PROTO_STAT_SEGMENT_BYTES] = st.segment_bytes;
		f[PROTO_STAT_INDEX_CAPACITY] = st.index_capacity;
		f[PROTO_STAT_ARENA_BYTES] = st.arena_bytes;
		f[PROTO_STAT_ARENA_USED] = st.arena_used;
		f[PROTO_STAT_REVISION] = st.revision;
		f[PROTO_STAT_GENERATION] = st.generation;
		f[PROTO_STAT_RING_CAPACITY] = st.ring_capacity;
		f[PROTO_STAT_WRITER_PID] = (uint64_t)st.writer_pid;
		f[PROTO_STAT_STATE] = (uint64_t)st.state;
		f[PROTO_STAT_ATTR_PAIRS] = st.attr_pairs;
		f[PROTO_STAT_ATTR_CAPACITY] = st.attr_capacity;
		f[PROTO_STAT_INDEX_ENTRIES] = st.index_entries;
		f[PROTO_STAT_OWNED] = st.owned;
		f[PROTO_STAT_WAITERS] = st.waiters;
		f[PROTO_STAT_WRITES_MILLI] =
			(uint64_t)(st.writes_per_sec * 1000.0 + 0.5);
		f[PROTO_STAT_UPTIME_NS] = st.uptime_ns;
		{
			/* persist: the log's counters */
			shmreg_writer_log_stats_t ls;

			if (shmreg_writer_log_stats(c->reg->w, &ls) == 0) {
				f[PROTO_STAT_LOG_WRITES] = ls.writes;
				f[PROTO_STAT_LOG_SYNCS] = ls.syncs;
				f[PROTO_STAT_LOG_BYTES] = ls.log_bytes;
				f[PROTO_STAT_SNAPSHOTS] = ls.snapshots;
			}
		}
	}
	for (unsigned i = 0; i < d->nreg; i++)
		eph += d->reg[i].eph_count;
	f[PROTO_STAT_CONNECTIONS] = d->nconns;
	f[PROTO_STAT_REQUESTS] = d->st.requests;
	f[PROTO_STAT_OWNERS] = d->nowners;
	f[PROTO_STAT_EPHEMERAL] = eph;
	f[PROTO_STAT_CLOSED_BAD] = d->st.closed_bad;
	f[PROTO_STAT_REFUSED] = d->st.refused;
	f[PROTO_STAT_STALLED] = d->st.stalled;
	f[PROTO_STAT_OUT_HIGHWATER] = d->st.out_highwater;
	f[PROTO_STAT_PAUSES] = d->st.pauses;
	f[PROTO_STAT_OWNER_DELETES] = d->st.owner_deletes;
	f[PROTO_STAT_IDLE_CLOSED] = d->st.idle_closed;
	f[PROTO_STAT_OVER_BUDGET] = d->st.over_budget;
	f[PROTO_STAT_IN_BUFFERED] = d->in_bytes;
	f[PROTO_STAT_MIRROR_STALE] = c->reg ? mirror_stale_since(c->reg) : 0;
	proto_put_u32(body, PROTO_STAT_NFIELDS);
	proto_put_u32(body + 4, 0);
	for (unsigned i = 0; i < PROTO_STAT_NFIELDS; i++)
		proto_put_u64(body + 8 + 8 * i, f[i]);
	reply(c, q->op, q->id, 0, reg_rev(c), body, sizeof(body));
}

static void handle_request(struct conn *c, const struct proto_req *q)
{
	int err = proto_check_request(q);

	if (err) {
		reply_err(c, q, err);
		return;
	}
	if (mirror_owns(c, q)) {
		mirror_forward(c, q);
		return;
	}
	switch (q->op) {
	case PROTO_OP_HELLO:
		do_hello(c, q);
		break;
	case PROTO_OP_PUT:
	case PROTO_OP_PUTX:
		do_put(c, q);
		break;
	case PROTO_OP_DEL:
		do_del(c, q);
		break;
	case PROTO_OP_SETATTRS:
		do_setattrs(c, q);
		break;
	case PROTO_OP_DELTREE:
		do_deltree(c, q);
		break;
	case PROTO_OP_PING:
		reply(c, q->op, q->id, 0, reg_rev(c), NULL, 0);
		break;
	case PROTO_OP_STATS:
		do_stats(c, q);
		break;
	case PROTO_OP_BATCH:
		batch_request(c, q);
		break;
	case PROTO_OP_RELOAD:
		admin_reload(c, q);
		break;
	case PROTO_OP_REGISTRIES:
		admin_registries(c, q);
		break;
	case PROTO_OP_SNAPSHOT: /* persist */
		if (!c->reg)
			reply_err(c, q, -ENOTCONN);
		else
			reply(c, q->op, q->id,
			      shmreg_writer_snapshot(c->reg->w), reg_rev(c),
			      NULL, 0);
		break;
	default:
		/* proto_decode_request() refuses unknown ops */
		reply_err(c, q, -EOPNOTSUPP);
		break;
	}
}

static void conn_cancel(struct conn *c, unsigned tag)
{
	struct io_uring_sqe *sqe = d_sqe(c->d);

	io_uring_prep_cancel64(sqe, d_ud(c, tag), 0);
	io_uring_sqe_set_data64(sqe, D_TAG_IGNORE);
}

static void check_pressure(struct conn *c)
{
	struct daemon *d = c->d;

	if (c->paused || d->state != D_RUNNING)
		return;
	if (pending_bytes(c) < D_OUT_HIGH &&
	    pending_replies(c) < d->o->max_inflight)
		return;
	c->paused = true;
	d->st.pauses++;
	if (c->recv_armed)
		conn_cancel(c, D_TAG_RECV);
}

/* Decode and apply the frames in [p, p + n).  Returns the bytes consumed:
 * all of them after a framing error (the rest is discarded), else up to the
 * first incomplete frame or the point where back-pressure stopped it.  At
 * most n / PROTO_HDR_SIZE iterations. */
static size_t parse(struct conn *c, const uint8_t *p, size_t n)
{
	size_t done = 0;

	while (done < n && !c->closing && !c->dead && !c->paused &&
	       !c->mirror_wait) {
		struct proto_req q;
		ssize_t r;

		r = proto_decode_request(p + done, n - done, PROTO_FRAME_MAX,
					 &q);
		if (r == 0 && n - done < PROTO_HDR_SIZE)
			break;
		if (c->refused) {
			/* answer the first request (its header is enough),
			 * then close */
			reply_err(c, &q, -EACCES);
			c->closing = true;
			return n;
		}
		if (r == 0)
			break;
		if (r < 0) {
			c->d->st.closed_bad++;
			d_log_limited(D_INFO, "connection %llu (pid %d uid %u): "
				      "bad frame (%s), closing it",
				      (unsigned long long)c->serial,
				      (int)c->pid, (unsigned)c->uid,
				      strerror((int)-r));
			reply_err(c, &q, (int)r);
			c->closing = true;
			return n;
		}
		handle_request(c, &q);
		done += (size_t)r;
		check_pressure(c);
	}
	if (done)
		touch(c);
	return done;
}

static void process_in(struct conn *c)
{
	size_t used;

	if (c->paused || c->closing || c->dead || c->mirror_wait)
		return;
	used = parse(c, c->in.p + c->in.off, c->in.len - c->in.off);
	c->in.off += used;
	if (c->in.off == c->in.len)
		in_release(c, D_BUFSZ);
}

/* After input was consumed: turn a peer's end of stream into closing, and
 * close a closing connection whose replies are all out. */
static void after_input(struct conn *c)
{
	if (c->dead)
		return;
	if (c->rd_eof && !c->paused && !c->closing && !c->mirror_wait) {
		if (c->in.len > c->in.off) {
			/* disconnected mid-frame: a half-closed peer still
			 * reads this; a gone one does not care */
			struct proto_req q;

			c->d->st.closed_bad++;
			proto_decode_request(c->in.p + c->in.off,
					     c->in.len - c->in.off,
					     PROTO_FRAME_MAX, &q);
			reply_err(c, &q, -EBADMSG);
		}
		c->closing = true;
	}
	if (c->closing && !c->sending && !pending_bytes(c))
		conn_kill(c, c->rd_eof ? "closed by peer" : "closed");
}

/* The frame that starts c->in (continued by [data, data + n)) does not fit
 * in the input budget: answer it -EAGAIN and discard the rest of it, or
 * close the connection when not even its header is there to say how long
 * it is.  Returns the bytes of @data used up. */
static size_t over_budget(struct conn *c, const uint8_t *data, size_t n)
{
	size_t have = c->in.len - c->in.off, take;
	uint8_t h[PROTO_HDR_SIZE];
	struct proto_req q;

	c->d->st.over_budget++;
	d_log_limited(D_INFO, "connection %llu (pid %d uid %u): input budget "
		      "(%llu bytes, --input-budget) spent, frame refused",
		      (unsigned long long)c->serial, (int)c->pid,
		      (unsigned)c->uid,
		      (unsigned long long)c->d->o->in_budget);
	if (have + n < PROTO_HDR_SIZE) {
		conn_kill(c, "input budget spent");
		return n;
	}
	for (size_t i = 0; i < PROTO_HDR_SIZE; i++)
		h[i] = i < have ? c->in.p[c->in.off + i] : data[i - have];
	/* a buffered partial frame has a checked header; one still in
	 * @data is checked here */
	if (c->paused ||
	    proto_decode_request(h, sizeof(h), PROTO_FRAME_MAX, &q) < 0 ||
	    q.len <= have) {
		/* paused by back-pressure, c->in may hold whole frames not
		 * yet answered: they cannot be skipped, so this ends here */
		conn_kill(c, "input budget spent");
		return n;
	}
	reply_err(c, &q, -EAGAIN);
	c->skip = q.len - (uint32_t)have;
	in_release(c, D_BUFSZ);
	take = c->skip < n ? c->skip : n;
	c->skip -= (uint32_t)take;
	return take;
}

static void input(struct conn *c, const uint8_t *data, size_t n)
{
	size_t take, have;
	uint32_t flen;
	int err;

	/* Each round consumes bytes or ends the loop: a buffered frame is
	 * completed (or all of @data appended), a refused frame's rest is
	 * skipped (at least one byte of @data, as its header is there), and
	 * what follows either starts from an empty buffer.  So at most n
	 * rounds; in practice one to three. */
	while (n && !c->closing && !c->dead) {
		size_t used;

		if (c->skip) {
			used = c->skip < n ? c->skip : n;
			c->skip -= (uint32_t)used;
			data += used;
			n -= used;
			continue;
		}
		if (c->in.len == c->in.off && !c->paused) {
			used = parse(c, data, n);
			data += used;
			n -= used;
			if (!n || c->closing || c->dead)
				return;
		}
		/* to the end of the frame being completed only: what comes
		 * after it is decoded straight from @data on the next
		 * round, and must not make the buffer outgrow the frame */
		take = n;
		flen = pending_frame_len(c, data, n);
		have = c->in.len - c->in.off;
		if (!c->paused && flen >= PROTO_HDR_SIZE && have < flen &&
		    flen - have < n)
			take = flen - have;
		err = in_append(c, data, take);
		if (!err) {
			data += take;
			n -= take;
			process_in(c);
			continue;
		}
		if (err != -ENOBUFS) {
			conn_kill(c, "out of memory for input");
			return;
		}
		used = over_budget(c, data, n);
		data += used;
		n -= used;
	}
}

/* The count of @uid's open writer connections (created at 0 when @make).
 * Chains hold the uids connected now: at most --max-connections of them,
 * spread over D_UID_BUCKETS. */
static struct uid_count **uid_slot(struct daemon *d, uid_t uid)
{
	struct uid_count **pp = &d->uids[(uid * 2654435761u) % D_UID_BUCKETS];

	while (*pp && (*pp)->uid != uid)
		pp = &(*pp)->next;
	return pp;
}

/* Account a new writer connection of @uid; false when it is over
 * --max-connections-per-uid (or out of memory). */
static bool uid_take(struct daemon *d, uid_t uid)
{
	struct uid_count **pp, *u;

	if (!d->o->max_per_uid)
		return true;
	pp = uid_slot(d, uid);
	if (!*pp) {
		u = calloc(1, sizeof(*u));
		if (!u)
			return false;
		u->uid = uid;
		*pp = u;
	}
	if ((*pp)->n >= d->o->max_per_uid)
		return false;
	(*pp)->n++;
	return true;
}

static void uid_drop(struct daemon *d, uid_t uid)
{
	struct uid_count **pp, *u;

	if (!d->o->max_per_uid)
		return;
	pp = uid_slot(d, uid);
	u = *pp;
	if (!u)
		return;
	if (u->n > 1) {
		u->n--;
		return;
	}
	*pp = u->next;
	free(u);
}

struct conn *conn_new(struct daemon *d, int fd)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (!c) {
		d_log_limited(D_ERR, "connection dropped: out of memory");
		return NULL;
	}
	c->d = d;
	c->fd = fd;
	/* the credentials first: whether this peer counts against
	 * --max-connections depends on them */
	c->refused = !auth_peer(d, c);
	if (c->refused) {
		d->st.refused++;
		d_log_limited(D_INFO, "connection from pid %d uid %u gid %u: "
			      "not allowed to write (-EACCES)", (int)c->pid,
			      (unsigned)c->uid, (unsigned)c->gid);
		/* the answer is a courtesy to a peer that may have been
		 * misconfigured; a flood of them costs D_REFUSE_MAX slots,
		 * the oldest going first */
		if (d->refusing.n >= D_REFUSE_MAX)
			conn_kill(d->refusing.head, "refused, no answer");
	} else if (d->nconns >= d->o->max_conns) {
		d_log_limited(D_INFO, "connection from pid %d uid %u refused: "
			      "%u open (--max-connections)", (int)c->pid,
			      (unsigned)c->uid, d->nconns);
		free(c);
		return NULL;
	} else if (!uid_take(d, c->uid)) {
		d_log_limited(D_INFO, "connection from pid %d uid %u refused: "
			      "%u open for this uid "
			      "(--max-connections-per-uid)", (int)c->pid,
			      (unsigned)c->uid, d->o->max_per_uid);
		free(c);
		return NULL;
	}
	c->serial = ++d->conn_serial;
	c->progress_ns = c->active_ns = d_now_ns();
	c->next = d->conns;
	if (d->conns)
		d->conns->prev = c;
	d->conns = c;
	cl_append(conn_list(c), c);
	if (!c->refused) {
		d->nconns++;
		d_log(D_DEBUG, "connection %llu: pid %d uid %u",
		      (unsigned long long)c->serial, (int)c->pid,
		      (unsigned)c->uid);
	}
	conn_arm_recv(c);
	return c;
}

void conn_arm_recv(struct conn *c)
{
	struct io_uring_sqe *sqe;

	if (c->recv_armed || c->dead || c->closing || c->paused || c->rd_eof)
		return;
	sqe = d_sqe(c->d);
	io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = 0;
	io_uring_sqe_set_data64(sqe, d_ud(c, D_TAG_RECV));
	c->recv_armed = true;
	c->ops++;
}

void conn_mirror_wait(struct conn *c)
{
	c->mirror_wait = true;
	c->ops++;
}

/* A forwarded write was answered: @c decodes its next requests. */
static void mirror_resume(struct conn *c, bool waited)
{
	if (!waited)
		return;
	if (!c->dead) {
		process_in(c);
		after_input(c);
	}
	conn_put(c);
}

void conn_mirror_done(struct conn *c, uint8_t op, uint64_t id, int status,
		      uint64_t rev, uint64_t count)
{
	bool waited = c->mirror_wait;
	uint8_t body[PROTO_DELTREE_REPLY];

	c->mirror_wait = false;
	if (status < 0)
		reply(c, op, id, status, reg_rev(c), NULL, 0);
	else if (op == PROTO_OP_DELTREE) {
		proto_put_u64(body, count);
		reply(c, op, id, 0, rev, body, sizeof(body));
	} else
		reply(c, op, id, 0, rev, NULL, 0);
	mirror_resume(c, waited);
}

void conn_mirror_batch_done(struct conn *c, uint64_t id, int status,
			    uint64_t rev, uint32_t failed, uint32_t applied)
{
	bool waited = c->mirror_wait;
	uint8_t body[PROTO_BATCH_REPLY];

	c->mirror_wait = false;
	proto_put_u32(body, failed);
	proto_put_u32(body + 4, applied);
	reply(c, PROTO_OP_BATCH, id, status, status < 0 ? reg_rev(c) : rev,
	      body, sizeof(body));
	mirror_resume(c, waited);
}

void conn_put(struct conn *c)
{
	/* the memory itself goes in free_zombies() (loop.c), after the
	 * completion batch, so no handler is left holding a freed conn */
	if (c->ops)
		c->ops--;
}

void conn_recv_cqe(struct conn *c, const struct io_uring_cqe *cqe)
{
	struct daemon *d = c->d;
	int res = cqe->res;

	if (cqe->flags & IORING_CQE_F_BUFFER) {
		unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;

		if (res > 0 && bid < D_NBUFS && (unsigned)res <= D_BUFSZ)
			input(c, d->bufs + (size_t)bid * D_BUFSZ,
			      (size_t)res);
		d_recycle_buf(d, bid);
	} else if (res == 0) {
		c->rd_eof = true;
	} else if (res < 0 && res != -ENOBUFS && res != -ECANCELED &&
		   !c->dead) {
		conn_kill(c, strerror(-res));
	}
	if (!(cqe->flags & IORING_CQE_F_MORE)) {
		/* the multishot recv ended: by EOF, cancellation (pause,
		 * close), or -ENOBUFS when every provided buffer was in use;
		 * the last one simply re-arms */
		c->recv_armed = false;
		after_input(c);
		conn_arm_recv(c);
		conn_put(c);
	} else {
		after_input(c);
	}
}

/* start_send took out_q as out_s: the held replies past out_free go
 * back to the (empty) out_q, and out_sealed counts from there.  Returns
 * false when the connection was closed instead. */
static bool keep_held(struct conn *c)
{
	size_t tail = c->out_s.len - c->out_free;

	if (dbuf_reserve(&c->out_q, tail)) {
		conn_kill(c, "out of memory for replies");
		return false;
	}
	memcpy(c->out_q.p, c->out_s.p + c->out_free, tail);
	c->out_q.len = tail;
	c->out_q.nrep = c->out_s.nrep - c->out_free_nrep;
	c->out_s.len = c->out_free;
	c->out_s.nrep = c->out_free_nrep;
	c->out_sealed -= c->out_free;
	c->out_sealed_nrep -= c->out_free_nrep;
	c->out_free = 0;
	c->out_free_nrep = 0;
	return true;
}

static void start_send(struct conn *c)
{
	struct io_uring_sqe *sqe;

	if (c->sending || c->dead)
		return;
	if (c->out_s.off == c->out_s.len) {
		struct dbuf t;

		/* persistence: held replies wait for their log group
		 * (group_commit.c), which releases them */
		if (!c->out_free)
			return;
		t = c->out_s;
		c->out_s = c->out_q;
		c->out_q = t;
		dbuf_reset(&c->out_q, 256u << 10);
		if (c->out_free < c->out_s.len) {
			if (!keep_held(c))
				return;
		} else {
			c->out_free = c->out_sealed = 0;
			c->out_free_nrep = c->out_sealed_nrep = 0;
		}
		/* a new stall window starts with each send from idle */
		c->progress_ns = d_now_ns();
	}
	sqe = d_sqe(c->d);
	io_uring_prep_send(sqe, c->fd, c->out_s.p + c->out_s.off,
			   c->out_s.len - c->out_s.off, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, d_ud(c, D_TAG_SEND));
	c->sending = true;
	c->ops++;
}

void conn_release_replies(struct conn *c, size_t upto, unsigned nrep)
{
	c->out_free = upto;
	c->out_free_nrep = nrep;
	mark_dirty(c);
}

void conn_flush_dirty(struct daemon *d)
{
	struct conn *c;

	while ((c = d->dirty)) {
		d->dirty = c->dirty_next;
		c->dirty = false;
		start_send(c);
	}
}

void conn_send_cqe(struct conn *c, const struct io_uring_cqe *cqe)
{
	struct daemon *d = c->d;
	int res = cqe->res;

	c->sending = false;
	if (c->dead) {
		conn_put(c);
		return;
	}
	if (res <= 0) {
		/* EPIPE, ECONNRESET: the peer is gone; 0 cannot happen for
		 * a non-empty send on a stream socket */
		conn_kill(c, res ? strerror(-res) : "send returned 0");
		conn_put(c);
		return;
	}
	if ((size_t)res > c->out_s.len - c->out_s.off)
		res = (int)(c->out_s.len - c->out_s.off);
	c->out_s.off += (size_t)res;
	c->progress_ns = d_now_ns();
	if (c->out_s.off == c->out_s.len)
		dbuf_reset(&c->out_s, 256u << 10);
	start_send(c);
	if (c->paused && pending_bytes(c) < D_OUT_LOW &&
	    pending_replies(c) <= d->o->max_inflight / 2) {
		c->paused = false;
		process_in(c);
		conn_arm_recv(c);
	}
	after_input(c);
	conn_put(c);
}

void conn_kill(struct conn *c, const char *why)
{
	struct daemon *d = c->d;

	if (c->dead)
		return;
	d_log(D_DEBUG, "connection %llu: %s", (unsigned long long)c->serial,
	      why);
	c->dead = true;
	c->closing = true;
	/* the connection's entries go in one commit, before anything else
	 * can observe the connection as closed */
	eph_conn_closed(c);
	mirror_conn_closed(c);
	d_hold_drop(c);
	if (c->prev)
		c->prev->next = c->next;
	else
		d->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	cl_remove(conn_list(c), c);
	if (!c->refused) {
		d->nconns--;
		uid_drop(d, c->uid);
	}
	/* the kernel never reads c->in (it fills the provided buffers), so
	 * its budget comes back now, not when the SQEs are done */
	in_release(c, 0);
	if (c->recv_armed)
		conn_cancel(c, D_TAG_RECV);
	if (c->sending)
		conn_cancel(c, D_TAG_SEND);
	/* wakes a send blocked on a full peer and ends the recv even if the
	 * cancellations raced with a completion */
	shutdown(c->fd, SHUT_RDWR);
	c->prev = NULL;
	c->next = d->zombies;
	d->zombies = c;
}

void conn_drain(struct conn *c)
{
	if (c->dead)
		return;
	/* answer every complete request already received, whatever the
	 * back-pressure says (bounded by what c->in holds), then close */
	c->paused = false;
	process_in(c);
	if (!c->dead) {
		c->closing = true;
		if (c->recv_armed)
			conn_cancel(c, D_TAG_RECV);
		after_input(c);
	}
}

void conn_check_stalls(struct daemon *d, uint64_t now)
{
	struct conn *c, *next;

	/* every connection, once a tick: at most --max-connections plus
	 * D_REFUSE_MAX of them */
	for (c = d->conns; c; c = next) {
		next = c->next;
		if (c->sending && now - c->progress_ns > d->o->stall_ns) {
			d->st.stalled++;
			d_log_limited(D_INFO, "connection %llu (pid %d uid %u): "
				      "took no reply for %llu ms, closing it",
				      (unsigned long long)c->serial,
				      (int)c->pid, (unsigned)c->uid,
				      (unsigned long long)(d->o->stall_ns /
							   1000000));
			conn_kill(c, "stalled");
		}
	}
}

void conn_check_idle(struct daemon *d, uint64_t now)
{
	struct conn *c;

	/* refused peers: oldest first, at most D_REFUSE_MAX of them */
	while ((c = d->refusing.head) && now - c->active_ns >= D_REFUSE_NS)
		conn_kill(c, "refused, sent no request");
	if (!d->o->idle_ns || d->state != D_RUNNING)
		return;
	/* Least recently active first: the scan stops at the first
	 * connection that is not idle, so a tick costs what it closes, and
	 * at most D_IDLE_SCAN connections (the rest wait for the next
	 * tick).  A connection with replies in flight or paused by
	 * back-pressure is busy, not idle (--stall-timeout watches it); one
	 * that owns SHMREG_EPHEMERAL entries is kept open on purpose (its
	 * entries live as long as it does): either goes to the end of the
	 * list. */
	for (unsigned i = 0; i < D_IDLE_SCAN; i++) {
		c = d->idle.head;
		if (!c || now - c->active_ns < d->o->idle_ns)
			break;
		if (c->sending || pending_bytes(c) || c->paused ||
		    c->eph_head) {
			touch(c);
			continue;
		}
		d->st.idle_closed++;
		d_log_limited(D_DEBUG, "connection %llu (pid %d uid %u): no "
			      "request for %llu ms, closing it",
			      (unsigned long long)c->serial, (int)c->pid,
			      (unsigned)c->uid,
			      (unsigned long long)(d->o->idle_ns / 1000000));
		conn_kill(c, "idle");
	}
}

void conn_free_all(struct daemon *d)
{
	struct conn *lists[2] = { d->conns, d->zombies };

	for (int i = 0; i < 2; i++) {
		struct conn *c = lists[i], *next;

		for (; c; c = next) {
			next = c->next;
			close(c->fd);
			free(c->in.p);
			free(c->out_q.p);
			free(c->out_s.p);
			free(c);
		}
	}
	d->conns = d->zombies = NULL;
	d->nconns = 0;
	d->idle = d->refusing = (struct clist){ 0 };
	d->in_bytes = 0;
	for (unsigned b = 0; b < D_UID_BUCKETS; b++) {
		while (d->uids[b]) {
			struct uid_count *u = d->uids[b];

			d->uids[b] = u->next;
			free(u);
		}
	}
}
