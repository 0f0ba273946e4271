/* SPDX-License-Identifier: MIT */
/*
 * client_internal.h - the shmregd client connection, shared by client.c
 * (connect, synchronous calls, the I/O pump) and client_async.c.
 */
#ifndef READER_CLIENT_INTERNAL_H
#define READER_CLIENT_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "shmreg.h"
#include "proto.h"

/* Queued request bytes past which a queueing call writes them out. */
#define CLIENT_OUT_FLUSH (64u << 10)

struct shmreg_client {
	int fd;
	int err;                    /* sticky: 0, or why the connection is
	                             * unusable (-ECONNRESET, -EPROTO ...) */
	uint64_t next_id;           /* id of the next request (from 1) */
	uint64_t replied_id;        /* last id whose reply was read; replies
	                             * come in order, so every id up to it is
	                             * answered */
	unsigned depth;             /* async requests outstanding at most */
	unsigned outstanding;       /* async requests not yet reaped */
	/* requests queued, not yet written: out[out_off, out_len) */
	uint8_t *out;
	size_t out_off, out_len, out_cap;
	/* bytes read, not yet decoded: in[in_off, in_len) */
	uint8_t *in;
	size_t in_off, in_len, in_cap;
	/* completions of async requests read but not reaped: a ring of
	 * depth entries (outstanding <= depth bounds it) */
	shmreg_completion_t *cq;
	unsigned cq_head, cq_count;
	/* A synchronous call waits for exactly one id and takes its reply
	 * here; at most one is in flight (calls are not concurrent), so every
	 * other reply belongs to an asynchronous request and goes to cq. */
	uint64_t sync_id;
	bool sync_done;
	int32_t sync_status;
	uint64_t sync_rev;
	uint8_t sync_body[PROTO_REPLY_MAX];
	uint32_t sync_blen;
};

/* What the pump waits for */
enum client_until {
	UNTIL_SENT,                 /* every queued byte written */
	UNTIL_SYNC,                 /* the reply to c->sync_id */
	UNTIL_COMPLETION,           /* at least one completion in the ring */
	UNTIL_NOTHING,              /* one non-blocking pass */
};

/* Write and read until @until holds or @timeout_ns passes (< 0 forever).
 * Returns 0, -ETIMEDOUT, or the sticky error. */
int client_pump(shmreg_client_t *c, enum client_until until,
		int64_t timeout_ns);

/* Send what is queued and wait for the reply to request @id (it lands in
 * c->sync_*).  Returns 0 or the connection's error. */
int client_sync_wait(shmreg_client_t *c, uint64_t id);
/* Start a request of @len bytes: *@p is where to encode it in the output
 * queue, *@id its request id.  0, the connection's sticky error, or
 * -ENOMEM. */
int client_request(shmreg_client_t *c, size_t len, uint8_t **p,
		   uint64_t *id);
/* Send a request with an empty body (PING, STATS, SNAPSHOT, RELOAD) and
 * wait for its reply: 0 (status and body in c->sync_*) or -errno. */
int client_simple_call(shmreg_client_t *c, uint8_t op);

/* Reserve @n bytes at the end of the output queue.  NULL on -ENOMEM. */
uint8_t *client_out_reserve(shmreg_client_t *c, size_t n);

/* Argument checks shared by the synchronous and asynchronous calls:
 * 0, -EINVAL or -E2BIG. */
int client_check_put(const void *key, size_t klen, const void *val,
		     size_t vlen, const shmreg_put_opts_t *opts);
int client_check_del(const void *key, size_t klen);

/* Check, number and encode a put (a delete) into the output queue, the one
 * step the synchronous and the pipelined calls share.  With @limited, a
 * connection that already has its depth of requests outstanding is refused
 * (-ENOBUFS).  Returns the request's id, or -EINVAL, -E2BIG, -ENOBUFS,
 * -ENOMEM, or the connection's sticky error. */
int64_t client_enqueue_put(shmreg_client_t *c, const void *key, size_t klen,
			   const void *val, size_t vlen,
			   const shmreg_put_opts_t *opts, bool limited);
int64_t client_enqueue_del(shmreg_client_t *c, const void *key, size_t klen,
			   bool limited);

#endif /* READER_CLIENT_INTERNAL_H */
