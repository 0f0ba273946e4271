/* SPDX-License-Identifier: MIT */
/*
 * proto.h - the shmregd wire protocol: frame layout, encoders and decoders.
 *
 * Shared by the client (reader/client*.c) and the daemon (writer/daemon/).
 * Pure functions: no I/O, no allocation, no global state; every decoder
 * accepts any bytes and answers with a length, "need more" or -errno, never
 * a crash (fuzz/fuzz_frame.c holds it to that).  docs/protocol.md is the
 * specification for clients in other languages; this header and that file
 * must say the same thing.
 *
 * Every integer is little-endian.  A request frame:
 *
 *   off size field
 *     0    4 len      whole frame length in bytes, header included,
 *                     PROTO_HDR_SIZE .. PROTO_FRAME_MAX
 *     4    1 op       PROTO_OP_*
 *     5    1 version  PROTO_VERSION
 *     6    2 flags    0 (reserved)
 *     8    8 id       request id, chosen by the client, echoed in the reply
 *    16      body     op-specific, exactly len - 16 bytes
 *
 * A reply frame (one per request, in request order):
 *
 *     0    4 len      whole frame length, PROTO_REPLY_HDR_SIZE ..
 *                     PROTO_REPLY_MAX
 *     4    1 op       the request's op (0 when it could not be read)
 *     5    1 version  PROTO_VERSION
 *     6    2 flags    0
 *     8    8 id       the request's id (0 when it could not be read)
 *    16    4 status   0 or a negative Linux errno (int32)
 *    20    4 reserved 0
 *    24    8 revision the registry's revision after the request
 *    32      body     op-specific
 *
 * Bodies:
 *   HELLO request: u32 name_len, u32 reserved(0), name (name_len bytes)
 *         reply:   u32 max_frame, u32 max_inflight, u32 daemon_pid,
 *                  u32 reserved
 *   PUT   request: u32 klen, u32 vlen, i32 owner_pid, u32 flags,
 *                  i64 ttl_ns, u64 expect_rev, key, value
 *   DEL   request: u32 klen, u32 reserved(0), key
 *   PUTX  request: PUT's 32 fixed bytes, u32 plen, u32 alen, key, value,
 *                  parent (plen bytes), attrs (alen bytes: "name\0value\0"
 *                  pairs, the layout shmreg_get_attrs returns)
 *   SETATTRS request: u32 klen, u32 alen, key, attrs (as PUTX)
 *   DELTREE  request: u32 klen, u32 reserved(0), key
 *            reply:   u64 removed (on success)
 *   PING  request: empty
 *   STATS request: empty
 *   SNAPSHOT request: empty (op 10: start a snapshot of the registry's
 *         data directory; status 0, -EALREADY, -ENOTSUP without one)
 *         reply:   u32 nfields, u32 reserved, u64 field[nfields]
 *                  (PROTO_STAT_* indexes; a client ignores extra fields)
 *   BATCH request: u32 nops, u32 reserved(0), then nops records
 *                  {u8 op, u8 reserved[3] (0), u32 blen, body (blen
 *                  bytes: the body of that op's own request)}; op is
 *                  PUT, PUTX, DEL, SETATTRS or DELTREE
 *         reply:   u32 failed_index, u32 applied (on success and on a
 *                  per-operation error; empty for an error that is not
 *                  about one operation, e.g. -ENOTCONN)
 *   RELOAD request: empty
 *          reply:   u32 msglen, u32 reserved, msg (any status; empty
 *                   for -ENOTCONN)
 *   REGISTRIES request: u32 first, u32 reserved(0)
 *              reply:   u32 total, u32 n, then n records {u64 entries,
 *                       u64 revision, u32 state, u32 nlen, name}
 */
#ifndef SHM_PROTO_H
#define SHM_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "shmreg.h"

#define PROTO_VERSION        1u
#define PROTO_HDR_SIZE       16u
#define PROTO_REPLY_HDR_SIZE 32u

#define PROTO_OP_HELLO 1u
#define PROTO_OP_PUT   2u
#define PROTO_OP_DEL   3u
#define PROTO_OP_PING  4u
#define PROTO_OP_STATS 5u
#define PROTO_OP_PUTX     6u  /* a put with a parent and/or attributes */
#define PROTO_OP_SETATTRS 7u
#define PROTO_OP_DELTREE  8u
#define PROTO_OP_BATCH    9u  /* puts, deletes, ... applied all or nothing */
#define PROTO_OP_SNAPSHOT 10u /* write a snapshot of the registry's data */
#define PROTO_OP_RELOAD     11u /* re-read the registry's --load DIR */
#define PROTO_OP_REGISTRIES 12u /* the registries the daemon serves */
#define PROTO_OP_LAST     PROTO_OP_REGISTRIES

/* fixed part of each request body */
#define PROTO_HELLO_FIXED 8u
#define PROTO_PUT_FIXED   32u
#define PROTO_DEL_FIXED   8u
#define PROTO_PUTX_FIXED  40u
#define PROTO_SETATTRS_FIXED 8u
#define PROTO_HELLO_REPLY 16u
#define PROTO_DELTREE_REPLY 8u
#define PROTO_BATCH_FIXED   8u
#define PROTO_BATCH_REC_HDR 8u
#define PROTO_BATCH_REPLY   8u
#define PROTO_RELOAD_FIXED  8u  /* reply: u32 msglen, u32 reserved */
#define PROTO_REGISTRIES_FIXED 8u
#define PROTO_REGISTRY_REC  24u /* reply record before its name */

/* Most operations in one BATCH (a request-level -E2BIG past it): bounds
 * the daemon's work and memory for one frame. */
#define PROTO_BATCH_OPS_MAX SHMREG_BATCH_OPS_MAX
/* failed_index of a BATCH reply whose error is about no single operation */
#define PROTO_BATCH_NO_INDEX SHMREG_BATCH_NONE

/* Largest attribute block: SHMREG_ATTRS_MAX pairs of the longest name and
 * value, each NUL-terminated (validate.h's SHM_ATTR_BYTES_MAX). */
#define PROTO_ATTR_BYTES_MAX \
	(SHMREG_ATTRS_MAX * (SHMREG_ATTR_NAME_MAX + SHMREG_ATTR_VALUE_MAX + 2))

/* Largest registry name in a HELLO: a name or an absolute path. */
#define PROTO_NAME_MAX 4096u

/* Largest request frame: a PUTX of the largest key, value, parent and
 * attributes. */
#define PROTO_FRAME_MAX \
	(PROTO_HDR_SIZE + PROTO_PUTX_FIXED + 2 * SHMREG_KEY_MAX + \
	 SHMREG_VALUE_MAX + PROTO_ATTR_BYTES_MAX)

/* Largest reply frame a client accepts (STATS is the largest today). */
#define PROTO_REPLY_MAX 4096u

/* STATS reply fields, in order */
enum proto_stat {
	PROTO_STAT_ENTRIES,        /* shmreg_stats_t of the selected registry */
	PROTO_STAT_BYTES_USED,
	PROTO_STAT_SEGMENT_BYTES,
	PROTO_STAT_INDEX_CAPACITY,
	PROTO_STAT_ARENA_BYTES,
	PROTO_STAT_ARENA_USED,
	PROTO_STAT_REVISION,
	PROTO_STAT_GENERATION,
	PROTO_STAT_RING_CAPACITY,
	PROTO_STAT_WRITER_PID,
	PROTO_STAT_STATE,
	PROTO_STAT_CONNECTIONS,    /* daemon: open connections */
	PROTO_STAT_REQUESTS,       /* requests answered since start */
	PROTO_STAT_OWNERS,         /* pids watched for owner-bound entries */
	PROTO_STAT_EPHEMERAL,      /* connection-owned entries tracked */
	PROTO_STAT_CLOSED_BAD,     /* connections closed for a bad frame */
	PROTO_STAT_REFUSED,        /* connections refused by SO_PEERCRED */
	PROTO_STAT_STALLED,        /* connections closed for not reading */
	PROTO_STAT_OUT_HIGHWATER,  /* most reply bytes ever queued on one
	                            * connection (the back-pressure bound) */
	PROTO_STAT_PAUSES,         /* times a connection's receive was paused
	                            * by back-pressure */
	PROTO_STAT_OWNER_DELETES,  /* entries removed because their owner
	                            * process exited */
	PROTO_STAT_NFIELDS_V1,     /* a daemon sends at least these */
	PROTO_STAT_IDLE_CLOSED = PROTO_STAT_NFIELDS_V1,
	                           /* connections closed for --idle-timeout */
	PROTO_STAT_OVER_BUDGET,    /* frames refused for --input-budget */
	PROTO_STAT_IN_BUFFERED,    /* bytes buffered for partial input now */
	PROTO_STAT_ATTR_PAIRS,     /* shmreg_stats_t.attr_pairs ... */
	PROTO_STAT_ATTR_CAPACITY,
	PROTO_STAT_INDEX_ENTRIES,
	PROTO_STAT_OWNED,
	PROTO_STAT_WAITERS,
	PROTO_STAT_WRITES_MILLI,   /* writes_per_sec * 1000, rounded */
	PROTO_STAT_UPTIME_NS,      /* ... shmreg_stats_t.uptime_ns */
	PROTO_STAT_MIRROR_STALE,   /* etcd mirror: CLOCK_REALTIME ns since its
	                            * watch is down (stale), 0 = live or not
	                            * a mirror */
	/* persist: the selected registry's log (0 without --data-dir) */
	PROTO_STAT_LOG_WRITES,     /* writes to the log since start */
	PROTO_STAT_LOG_SYNCS,      /* fdatasyncs of the log since start */
	PROTO_STAT_LOG_BYTES,      /* log bytes since the newest snapshot */
	PROTO_STAT_SNAPSHOTS,      /* snapshots completed since start */
	PROTO_STAT_NFIELDS
};

#define PROTO_STATS_BODY (8u + 8u * PROTO_STAT_NFIELDS)

/* Decoded attributes: up to SHMREG_ATTRS_MAX pointers to the NUL-terminated
 * strings of the frame; n is SHMREG_ATTRS_MAX + 1 when the block held more
 * pairs (proto_check_request answers -E2BIG). */
struct proto_attrs {
	uint32_t n;
	uint32_t blen;              /* bytes of the block */
	const uint8_t *block;
	shmreg_attr_t a[SHMREG_ATTRS_MAX];
};

/* A decoded request.  Pointers point into the buffer given to the decoder
 * and are valid as long as it is. */
struct proto_req {
	uint32_t len;
	uint8_t  op;
	uint8_t  version;
	uint16_t flags;
	uint64_t id;
	union {
		struct {
			const uint8_t *name;
			uint32_t nlen;
		} hello;
		struct {
			const uint8_t *key;
			const uint8_t *val;
			uint32_t klen;
			uint32_t vlen;
			int32_t  owner_pid;
			uint32_t flags;
			int64_t  ttl_ns;
			uint64_t expect_rev;
			const uint8_t *parent;  /* PUTX only, NULL if plen 0 */
			uint32_t plen;
			struct proto_attrs attrs;
		} put;                          /* PUT and PUTX */
		struct {
			const uint8_t *key;
			uint32_t klen;
		} del;                          /* DEL and DELTREE */
		struct {
			const uint8_t *key;
			uint32_t klen;
			struct proto_attrs attrs;
		} setattrs;
		struct {
			const uint8_t *recs;    /* the first record */
			uint32_t rlen;          /* bytes of all records */
			uint32_t nops;
		} batch;
		struct {
			uint32_t first;
		} registries;
	} u;
};

/* A decoded reply. */
struct proto_reply {
	uint32_t len;
	uint8_t  op;
	uint64_t id;
	int32_t  status;
	uint64_t revision;
	const uint8_t *body;
	uint32_t blen;
};

/*
 * Decode the request frame at the start of @buf (@len bytes available).
 *
 * Returns the frame's length (> 0) when a whole valid frame is there, 0 when
 * more bytes are needed, or a frame-level error after which the stream
 * cannot be resynchronised (the daemon replies and closes):
 *   -EMSGSIZE    len under PROTO_HDR_SIZE or over @max_frame
 *   -EPROTO      version is not PROTO_VERSION
 *   -EOPNOTSUPP  unknown op
 *   -EBADMSG     reserved bits set, or a body that does not match its op's
 *                layout (lengths that do not add up, an attribute block
 *                that is not whole NUL-terminated name/value pairs)
 * The header is checked as soon as its 16 bytes are there, before the body
 * arrives, so garbage is refused without waiting for a length it made up.
 * Once PROTO_HDR_SIZE bytes are available req->op and req->id are filled
 * even on error (for the error reply).  @max_frame is at most
 * PROTO_FRAME_MAX.
 */
ssize_t proto_decode_request(const void *buf, size_t len, size_t max_frame,
			     struct proto_req *req);

/*
 * Check a decoded request's arguments: the request-level errors that get a
 * reply and leave the connection open.  Returns 0 or
 *   -EINVAL  empty key, unknown put flags (SHM_PUT_FLAGS), negative
 *            owner_pid, ttl_ns < 0 or > SHMREG_TTL_MAX_NS, empty hello
 *            name, an empty attribute name or one with '=' (the checks
 *            of shm/validate.h, as the embedded writer)
 *   -E2BIG   key or parent over SHMREG_KEY_MAX, value over
 *            SHMREG_VALUE_MAX, hello name over PROTO_NAME_MAX, more than
 *            SHMREG_ATTRS_MAX attributes, a name or value over its limit,
 *            a BATCH of more than PROTO_BATCH_OPS_MAX operations
 * A BATCH's operations are checked one by one by its executor (the reply
 * names the one that fails), not here.
 */
int proto_check_request(const struct proto_req *req);

/*
 * The operations of a decoded BATCH, in order.  proto_decode_request()
 * has checked every record's layout already, so the iteration cannot fail
 * on a frame it accepted; proto_batch_next() still answers -EBADMSG rather
 * than read past the records.  @sub gets the op and its fields (len and id
 * 0), as a request of its own would; check it with proto_check_request().
 */
struct proto_batch_iter {
	const uint8_t *p;
	uint32_t left;              /* record bytes not yet walked */
	uint32_t ops_left;
};
void proto_batch_iter_init(struct proto_batch_iter *it,
			   const struct proto_req *batch);
/* 1 and the next operation in *@sub, 0 after the last, or -EBADMSG. */
int proto_batch_next(struct proto_batch_iter *it, struct proto_req *sub);

/* The put options of a decoded PUT or PUTX (pointing into the request). */
void proto_put_opts(const struct proto_req *req, shmreg_put_opts_t *o);

/*
 * Decode the reply frame at the start of @buf.  Returns its length, 0 when
 * more bytes are needed, or -EPROTO (bad version, reserved bits, length out
 * of range, a body that does not fit its op).
 */
ssize_t proto_decode_reply(const void *buf, size_t len,
			   struct proto_reply *rep);

/* The layout of a successful REGISTRIES reply's body (proto_decode_reply
 * checks it): 0 or -EPROTO. */
int proto_registries_check(const struct proto_reply *rep);

/*
 * Encoders.  Each returns the frame's length and writes it to @buf only when
 * it fits in @cap (so a caller may ask for the size with cap 0), like
 * snprintf.  The key, value and name lengths must already be within the
 * protocol's limits (the frame length is a u32): the encoders do not check.
 */
size_t proto_encode_hello(void *buf, size_t cap, uint64_t id,
			  const void *name, size_t nlen);
size_t proto_encode_put(void *buf, size_t cap, uint64_t id,
			const void *key, size_t klen,
			const void *val, size_t vlen,
			const shmreg_put_opts_t *opts);
size_t proto_encode_del(void *buf, size_t cap, uint64_t id,
			const void *key, size_t klen);
/* PUTX carries opts->parent and opts->attrs too (attributes already
 * checked with shm_check_attrs: their strings are bounded). */
size_t proto_encode_putx(void *buf, size_t cap, uint64_t id,
			 const void *key, size_t klen,
			 const void *val, size_t vlen,
			 const shmreg_put_opts_t *opts);
size_t proto_encode_setattrs(void *buf, size_t cap, uint64_t id,
			     const void *key, size_t klen,
			     const shmreg_attr_t *attrs, size_t nattrs);
size_t proto_encode_deltree(void *buf, size_t cap, uint64_t id,
			    const void *key, size_t klen);
size_t proto_encode_simple(void *buf, size_t cap, uint64_t id, uint8_t op);
size_t proto_encode_registries(void *buf, size_t cap, uint64_t id,
			       uint32_t first);

/*
 * BATCH frames are built in two parts: the records, each encoded where it
 * goes (like the encoders above, they return their length and write only
 * when it fits), then the header, PROTO_HDR_SIZE + PROTO_BATCH_FIXED bytes
 * in front of them, once the total length @len and count are known.  A
 * put is a PUTX record when it has a parent or attributes, else a PUT one;
 * @op of proto_encode_batch_key is PROTO_OP_DEL or PROTO_OP_DELTREE.
 */
size_t proto_encode_batch_hdr(void *buf, size_t cap, uint64_t id,
			      size_t len, uint32_t nops);
size_t proto_encode_batch_put(void *buf, size_t cap, const void *key,
			      size_t klen, const void *val, size_t vlen,
			      const shmreg_put_opts_t *opts);
size_t proto_encode_batch_key(void *buf, size_t cap, uint8_t op,
			      const void *key, size_t klen);
size_t proto_encode_batch_setattrs(void *buf, size_t cap, const void *key,
				   size_t klen, const shmreg_attr_t *attrs,
				   size_t nattrs);

/* Reply header with @blen body bytes to follow; the caller writes the body
 * at buf + PROTO_REPLY_HDR_SIZE. */
size_t proto_encode_reply(void *buf, size_t cap, uint8_t op, uint64_t id,
			  int32_t status, uint64_t revision, uint32_t blen);

/* Little-endian field access, for bodies. */
void proto_put_u32(void *p, uint32_t v);
void proto_put_u64(void *p, uint64_t v);
uint32_t proto_get_u32(const void *p);
uint64_t proto_get_u64(const void *p);

/* A short name of @op for logs ("put", ...; "?" when unknown). */
const char *proto_op_name(unsigned op);

#endif /* SHM_PROTO_H */
