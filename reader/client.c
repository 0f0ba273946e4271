/* SPDX-License-Identifier: MIT */
/* client.c - connect to shmregd, synchronous put/del/ping/stats, the I/O pump. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "internal.h"
#include "validate.h"
#include "client_internal.h"

/*
 * How it works
 *
 * The socket is non-blocking and every call goes through client_pump(),
 * which writes queued requests and reads replies in the same poll loop.
 * Reading while writing matters: the daemon stops reading a connection
 * whose replies are not being taken (back-pressure), so a client that
 * only wrote could block forever on a full socket.  Replies come in
 * request order; each is matched to the next id expected, and anything
 * else means the stream is broken (-EPROTO, the connection is dropped).
 *
 * Read-your-writes: the daemon replies after its writer committed, and
 * the committed change is already in the shared segment this process maps,
 * so a get after the put returns sees it.  (The reply travels through the
 * kernel's socket, which orders the daemon's stores before our loads.)
 */

#define IN_CAP (64u << 10)

static void fail(shmreg_client_t *c, int err)
{
	if (!c->err)
		c->err = err;
}

uint8_t *client_out_reserve(shmreg_client_t *c, size_t n)
{
	uint8_t *p;

	if (c->out_cap - c->out_len < n) {
		size_t live = c->out_len - c->out_off;
		size_t cap = c->out_cap ? c->out_cap : 4096;

		if (c->out_off) {
			memmove(c->out, c->out + c->out_off, live);
			c->out_off = 0;
			c->out_len = live;
		}
		while (cap - c->out_len < n)
			cap *= 2;
		if (cap != c->out_cap) {
			p = realloc(c->out, cap);
			if (!p)
				return NULL;
			c->out = p;
			c->out_cap = cap;
		}
	}
	p = c->out + c->out_len;
	c->out_len += n;
	return p;
}

static void take_replies(shmreg_client_t *c)
{
	while (!c->err) {
		struct proto_reply rep;
		ssize_t n = proto_decode_reply(c->in + c->in_off,
					       c->in_len - c->in_off, &rep);

		if (n == 0)
			break;
		if (n < 0) {
			fail(c, -EPROTO);
			break;
		}
		if (rep.id != c->replied_id + 1 || rep.id >= c->next_id) {
			fail(c, -EPROTO);
			break;
		}
		c->replied_id = rep.id;
		if (rep.id == c->sync_id) {
			c->sync_done = true;
			c->sync_status = rep.status;
			c->sync_rev = rep.revision;
			c->sync_blen = rep.blen;
			memcpy(c->sync_body, rep.body, rep.blen);
		} else if (c->cq_count < c->depth) {
			shmreg_completion_t *e;

			e = &c->cq[(c->cq_head + c->cq_count) % c->depth];
			e->id = rep.id;
			e->result = rep.status < 0 ? rep.status
						   : (int64_t)rep.revision;
			c->cq_count++;
		} else {
			/* more answers than requests outstanding */
			fail(c, -EPROTO);
			break;
		}
		c->in_off += (size_t)n;
	}
	if (c->in_off == c->in_len)
		c->in_off = c->in_len = 0;
}

/* Read what the socket holds without blocking.  Returns false when the
 * connection ended (c->err set). */
static bool read_some(shmreg_client_t *c)
{
	for (;;) {
		ssize_t n;

		if (c->in_off && c->in_len == c->in_cap) {
			memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
			c->in_len -= c->in_off;
			c->in_off = 0;
		}
		n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len,
			 MSG_DONTWAIT);
		if (n > 0) {
			c->in_len += (size_t)n;
			take_replies(c);
			if (c->err)
				return false;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return true;
		/* EOF or ECONNRESET: the daemon closed the connection (after
		 * a malformed frame, a refusal, or because it stopped) */
		fail(c, -ECONNRESET);
		return false;
	}
}

static int64_t deadline_of(int64_t timeout_ns)
{
	if (timeout_ns < 0)
		return -1;
	return shm_deadline_ns(shm_monotonic_ns(), timeout_ns);
}

static bool reached(const shmreg_client_t *c, enum client_until until)
{
	switch (until) {
	case UNTIL_SENT:
		return c->out_off == c->out_len;
	case UNTIL_SYNC:
		return c->sync_done;
	case UNTIL_COMPLETION:
		return c->cq_count > 0;
	case UNTIL_NOTHING:
		return true;
	}
	return true;
}

int client_pump(shmreg_client_t *c, enum client_until until,
		int64_t timeout_ns)
{
	int64_t deadline = deadline_of(timeout_ns);

	for (;;) {
		struct pollfd p = { .fd = c->fd };
		struct timespec ts, *tsp = NULL;
		int send_err = 0;
		bool expecting;
		int n;

		while (!c->err && c->out_off < c->out_len) {
			ssize_t w = send(c->fd, c->out + c->out_off,
					 c->out_len - c->out_off,
					 MSG_NOSIGNAL | MSG_DONTWAIT);

			if (w > 0) {
				c->out_off += (size_t)w;
				continue;
			}
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			/* read the replies that came before the end: they
			 * say why (a refusal, a malformed frame) */
			send_err = w < 0 && errno == EPIPE ? -EPIPE
							   : -ECONNRESET;
			break;
		}
		if (c->out_off == c->out_len)
			c->out_off = c->out_len = 0;
		expecting = c->replied_id + 1 < c->next_id;
		if (!c->err && (expecting || send_err))
			read_some(c);
		if (send_err)
			fail(c, send_err);
		if (reached(c, until))
			return 0;
		if (c->err)
			return c->err;

		if (c->out_off < c->out_len)
			p.events |= POLLOUT;
		if (expecting)
			p.events |= POLLIN;
		if (!p.events)
			return 0; /* nothing could ever change: callers check */
		if (deadline >= 0) {
			int64_t left = deadline - deadline_of(0);

			if (left <= 0)
				return -ETIMEDOUT;
			ts.tv_sec = left / 1000000000ll;
			ts.tv_nsec = left % 1000000000ll;
			tsp = &ts;
		}
		n = ppoll(&p, 1, tsp, NULL);
		if (n < 0 && errno != EINTR) {
			fail(c, -errno);
			return c->err;
		}
		/* n == 0 is a timeout: the next pass finds left <= 0 */
	}
}

/* Send the frame queued with id @id and wait for its reply. */
int client_sync_wait(shmreg_client_t *c, uint64_t id)
{
	int ret;

	c->sync_id = id;
	c->sync_done = false;
	ret = client_pump(c, UNTIL_SYNC, -1);
	c->sync_id = 0;
	if (ret < 0)
		return ret;
	return c->sync_done ? 0 : -EPROTO;
}

static int socket_path(const char *path, char *buf, size_t cap)
{
	const char *env = getenv("SHMREG_SOCKET");
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	int n;

	if (path)
		n = snprintf(buf, cap, "%s", path);
	else if (env && *env)
		n = snprintf(buf, cap, "%s", env);
	else if (xdg && *xdg == '/')
		n = snprintf(buf, cap, "%s/shmreg.sock", xdg);
	else
		n = snprintf(buf, cap, "/run/shmreg/shmreg.sock");
	return n <= 0 || (size_t)n >= cap ? -EINVAL : 0;
}

SHMREG_EXPORT
int shmreg_connect(const char *path, const char *registry,
		   shmreg_client_t **out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	shmreg_client_t *c;
	size_t nlen, len;
	uint32_t inflight;
	uint64_t id;
	int fd, ret;

	if (!out)
		return -EINVAL;
	*out = NULL;
	/* NULL: a connection to the daemon itself (shmreg_client_registries) */
	nlen = registry ? strlen(registry) : 1;
	if (!nlen || nlen > PROTO_NAME_MAX)
		return -EINVAL;
	ret = socket_path(path, sa.sun_path, sizeof(sa.sun_path));
	if (ret < 0)
		return ret;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno == EMFILE || errno == ENFILE ? -EMFILE : -ENOMEM;
	/* blocking connect: a non-blocking one fails with EAGAIN when the
	 * daemon's backlog is momentarily full */
	while ((ret = connect(fd, (struct sockaddr *)&sa, sizeof(sa))) < 0 &&
	       errno == EINTR)
		;
	if (ret < 0) {
		ret = errno == EPERM ? -EACCES
		    : errno == ENOTDIR ? -ENOENT : -errno;
		close(fd);
		return ret;
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	c->fd = fd;
	c->next_id = 1;
	c->in_cap = IN_CAP;
	c->in = malloc(c->in_cap);
	if (!c->in) {
		ret = -ENOMEM;
		goto fail;
	}
	if (!registry) {
		inflight = 1; /* no HELLO, no pipelining: one call at a time */
		goto no_registry;
	}
	len = proto_encode_hello(NULL, 0, 0, NULL, nlen);
	if (!client_out_reserve(c, len)) {
		ret = -ENOMEM;
		goto fail;
	}
	id = c->next_id++;
	proto_encode_hello(c->out, len, id, registry, nlen);
	ret = client_sync_wait(c, id);
	if (ret == 0)
		ret = c->sync_status;
	if (ret < 0)
		goto fail;
	if (c->sync_blen != PROTO_HELLO_REPLY) {
		ret = -EPROTO;
		goto fail;
	}
	inflight = proto_get_u32(c->sync_body + 4);
	if (!inflight) {
		ret = -EPROTO;
		goto fail;
	}
no_registry:
	c->depth = inflight > 65536 ? 65536 : inflight;
	c->cq = calloc(c->depth, sizeof(*c->cq));
	if (!c->cq) {
		ret = -ENOMEM;
		goto fail;
	}
	*out = c;
	return 0;
fail:
	shmreg_disconnect(c);
	return ret;
}

SHMREG_EXPORT
void shmreg_disconnect(shmreg_client_t *c)
{
	if (!c)
		return;
	close(c->fd);
	free(c->out);
	free(c->in);
	free(c->cq);
	free(c);
}

/* Client-side checks: the daemon makes the same ones (the same functions,
 * in proto_check_request), but a frame must fit the protocol's limits
 * before it can be encoded at all, and a refused argument costs no round
 * trip. */
int client_check_put(const void *key, size_t klen, const void *val,
		     size_t vlen, const shmreg_put_opts_t *opts)
{
	return shm_check_put(key, klen, val, vlen, opts);
}

/* A put with a parent or attributes goes as PUTX; any other as PUT, which
 * every daemon of protocol version 1 knows. */
static bool put_extended(const shmreg_put_opts_t *opts)
{
	return opts && (opts->nattrs || opts->parent_len);
}

int client_check_del(const void *key, size_t klen)
{
	return shm_check_key(key, klen);
}

static int64_t sync_result(shmreg_client_t *c, uint64_t id)
{
	int ret = client_sync_wait(c, id);

	if (ret < 0)
		return ret;
	return c->sync_status < 0 ? c->sync_status : (int64_t)c->sync_rev;
}

int64_t client_enqueue_put(shmreg_client_t *c, const void *key, size_t klen,
			   const void *val, size_t vlen,
			   const shmreg_put_opts_t *opts, bool limited)
{
	size_t len;
	uint8_t *p;
	uint64_t id;
	int ret;

	if (!c)
		return -EINVAL;
	ret = client_check_put(key, klen, val, vlen, opts);
	if (ret)
		return ret;
	if (c->err)
		return c->err;
	if (limited && c->outstanding >= c->depth)
		return -ENOBUFS;
	if (put_extended(opts))
		len = proto_encode_putx(NULL, 0, 0, NULL, klen, NULL, vlen,
					opts);
	else
		len = proto_encode_put(NULL, 0, 0, NULL, klen, NULL, vlen,
				       opts);
	ret = client_request(c, len, &p, &id);
	if (ret)
		return ret;
	if (put_extended(opts))
		proto_encode_putx(p, len, id, key, klen, val, vlen, opts);
	else
		proto_encode_put(p, len, id, key, klen, val, vlen, opts);
	return (int64_t)id;
}

int64_t client_enqueue_del(shmreg_client_t *c, const void *key, size_t klen,
			   bool limited)
{
	size_t len;
	uint8_t *p;
	uint64_t id;
	int ret;

	if (!c)
		return -EINVAL;
	ret = client_check_del(key, klen);
	if (ret)
		return ret;
	if (c->err)
		return c->err;
	if (limited && c->outstanding >= c->depth)
		return -ENOBUFS;
	len = proto_encode_del(NULL, 0, 0, NULL, klen);
	ret = client_request(c, len, &p, &id);
	if (ret)
		return ret;
	proto_encode_del(p, len, id, key, klen);
	return (int64_t)id;
}

SHMREG_EXPORT
int64_t shmreg_put(shmreg_client_t *c, const void *key, size_t klen,
		   const void *val, size_t vlen, const shmreg_put_opts_t *opts)
{
	int64_t id = client_enqueue_put(c, key, klen, val, vlen, opts, false);

	return id < 0 ? id : sync_result(c, (uint64_t)id);
}

SHMREG_EXPORT
int64_t shmreg_del(shmreg_client_t *c, const void *key, size_t klen)
{
	int64_t id = client_enqueue_del(c, key, klen, false);

	return id < 0 ? id : sync_result(c, (uint64_t)id);
}

SHMREG_EXPORT
int64_t shmreg_set_attrs(shmreg_client_t *c, const void *key, size_t klen,
			 const shmreg_attr_t *attrs, uint32_t nattrs)
{
	size_t len;
	uint8_t *p;
	uint64_t id;
	int ret;

	if (!c)
		return -EINVAL;
	ret = shm_check_key(key, klen);
	if (ret == 0)
		ret = shm_check_attrs(attrs, nattrs);
	if (ret)
		return ret;
	len = proto_encode_setattrs(NULL, 0, 0, NULL, klen, attrs, nattrs);
	ret = client_request(c, len, &p, &id);
	if (ret)
		return ret;
	proto_encode_setattrs(p, len, id, key, klen, attrs, nattrs);
	return sync_result(c, id);
}

SHMREG_EXPORT
int64_t shmreg_del_tree(shmreg_client_t *c, const void *key, size_t klen)
{
	size_t len;
	uint8_t *p;
	uint64_t id;
	int ret;

	if (!c)
		return -EINVAL;
	ret = shm_check_key(key, klen);
	if (ret)
		return ret;
	len = proto_encode_deltree(NULL, 0, 0, NULL, klen);
	ret = client_request(c, len, &p, &id);
	if (ret)
		return ret;
	proto_encode_deltree(p, len, id, key, klen);
	ret = client_sync_wait(c, id);
	if (ret < 0)
		return ret;
	if (c->sync_status < 0)
		return c->sync_status;
	/* proto_decode_reply() checked the body's length */
	return (int64_t)proto_get_u64(c->sync_body);
}

int client_request(shmreg_client_t *c, size_t len, uint8_t **p,
		   uint64_t *id)
{
	if (c->err)
		return c->err;
	*p = client_out_reserve(c, len);
	if (!*p)
		return -ENOMEM;
	*id = c->next_id++;
	return 0;
}

int client_simple_call(shmreg_client_t *c, uint8_t op)
{
	uint8_t *p;
	uint64_t id;

	int ret;

	if (!c)
		return -EINVAL;
	ret = client_request(c, PROTO_HDR_SIZE, &p, &id);
	if (ret)
		return ret;
	proto_encode_simple(p, PROTO_HDR_SIZE, id, op);
	return client_sync_wait(c, id);
}

SHMREG_EXPORT
int64_t shmreg_ping(shmreg_client_t *c)
{
	int ret = client_simple_call(c, PROTO_OP_PING);

	if (ret < 0)
		return ret;
	return c->sync_status < 0 ? c->sync_status : (int64_t)c->sync_rev;
}

SHMREG_EXPORT
int shmreg_client_snapshot(shmreg_client_t *c)
{
	int ret = client_simple_call(c, PROTO_OP_SNAPSHOT);

	return ret < 0 ? ret : c->sync_status < 0 ? c->sync_status : 0;
}

SHMREG_EXPORT
int shmreg_client_stats(shmreg_client_t *c, shmreg_stats_t *st,
			shmreg_daemon_stats_t *ds)
{
	uint64_t f[PROTO_STAT_NFIELDS] = { 0 };
	int ret = client_simple_call(c, PROTO_OP_STATS);
	unsigned n;

	if (ret < 0)
		return ret;
	if (c->sync_status < 0)
		return c->sync_status;
	/* proto_decode_reply() checked that the body holds the n fields it
	 * says, at least PROTO_STAT_NFIELDS_V1; an older daemon's missing
	 * ones read as 0 */
	n = proto_get_u32(c->sync_body);
	if (n > PROTO_STAT_NFIELDS)
		n = PROTO_STAT_NFIELDS;
	for (unsigned i = 0; i < n; i++)
		f[i] = proto_get_u64(c->sync_body + 8 + 8 * i);
	if (st) {
		memset(st, 0, sizeof(*st));
		st->entries = f[PROTO_STAT_ENTRIES];
		st->bytes_used = f[PROTO_STAT_BYTES_USED];
		st->segment_bytes = f[PROTO_STAT_SEGMENT_BYTES];
		st->index_capacity = f[PROTO_STAT_INDEX_CAPACITY];
		st->arena_bytes = f[PROTO_STAT_ARENA_BYTES];
		st->arena_used = f[PROTO_STAT_ARENA_USED];
		st->revision = f[PROTO_STAT_REVISION];
		st->generation = f[PROTO_STAT_GENERATION];
		st->ring_capacity = f[PROTO_STAT_RING_CAPACITY];
		st->writer_pid = (pid_t)f[PROTO_STAT_WRITER_PID];
		st->state = (int)f[PROTO_STAT_STATE];
		st->attr_pairs = f[PROTO_STAT_ATTR_PAIRS];
		st->attr_capacity = f[PROTO_STAT_ATTR_CAPACITY];
		st->index_entries = f[PROTO_STAT_INDEX_ENTRIES];
		st->owned = f[PROTO_STAT_OWNED];
		st->waiters = f[PROTO_STAT_WAITERS];
		st->writes_per_sec = (double)f[PROTO_STAT_WRITES_MILLI] / 1000.0;
		st->uptime_ns = f[PROTO_STAT_UPTIME_NS];
	}
	if (ds) {
		ds->connections = f[PROTO_STAT_CONNECTIONS];
		ds->requests = f[PROTO_STAT_REQUESTS];
		ds->owners = f[PROTO_STAT_OWNERS];
		ds->ephemeral = f[PROTO_STAT_EPHEMERAL];
		ds->closed_bad = f[PROTO_STAT_CLOSED_BAD];
		ds->refused = f[PROTO_STAT_REFUSED];
		ds->stalled = f[PROTO_STAT_STALLED];
		ds->out_highwater = f[PROTO_STAT_OUT_HIGHWATER];
		ds->pauses = f[PROTO_STAT_PAUSES];
		ds->owner_deletes = f[PROTO_STAT_OWNER_DELETES];
		ds->idle_closed = f[PROTO_STAT_IDLE_CLOSED];
		ds->over_budget = f[PROTO_STAT_OVER_BUDGET];
		ds->in_buffered = f[PROTO_STAT_IN_BUFFERED];
		ds->mirror_stale = f[PROTO_STAT_MIRROR_STALE];
	}
	return 0;
}
