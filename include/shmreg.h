/* SPDX-License-Identifier: MIT */
/*
 * shmreg.h - the reader and client API of shmreg, a shared-memory registry.
 *
 * One writer process owns a registry and serialises every change; any number
 * of reader processes map it read-only and read it without locks, system
 * calls or messages.  This header is all a reader or a client includes; the
 * embedded writer lives in shmreg_writer.h.
 *
 * Conventions (liburing style): functions return 0, a length or a revision on
 * success and a negative errno on failure, so strerror(-ret) works.  Each
 * errno has one meaning across the API:
 *
 *   -ENOENT      the key (or registry) does not exist
 *   -EINVAL      bad argument (NULL pointer, empty key, bad name, bad flags)
 *   -E2BIG       a key or value is over its size limit
 *   -EPROTO      the file is not a shmreg registry, or of another format
 *                version or byte order
 *   -EBUSY       the registry already has a writer
 *   -EAGAIN      the lock-free retry budget was spent (writer very busy);
 *                retrying is safe
 *   -EOWNERDEAD  the writer died (in the middle of a change, or while a
 *                caller waited)
 *   -ESHUTDOWN   the writer closed the registry while a caller waited
 *   -ETIMEDOUT   a wait ran out of time
 *   -ENOBUFS     a pipelined client's request queue is full: reap first
 *   -ENOMEM      out of memory
 *   -EOPNOTSUPP  the operation is not supported on this path
 *   -ENOTEMPTY   the entry has children (delete the subtree instead)
 *   -ELOOP       the parent given is the entry itself or below it
 *
 * Thread safety: a shmreg_t may be used by many threads at once.  Fork
 * safety: a shmreg_t opened before fork() keeps working in every child
 * (readers hold no per-reader slot, lock or registration).
 */
#ifndef SHMREG_H
#define SHMREG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SHMREG_VERSION_MAJOR 0
#define SHMREG_VERSION_MINOR 1

/* Size limits: a key of 1..SHMREG_KEY_MAX bytes, a value of
 * 0..SHMREG_VALUE_MAX bytes.  Anything longer is refused with -E2BIG. */
#define SHMREG_KEY_MAX   1024u
#define SHMREG_VALUE_MAX (16u << 20)
/* A registry name: 1..SHMREG_NAME_MAX bytes of [A-Za-z0-9._-], not starting
 * with '.', or an absolute path (starting with '/') to the segment file. */
#define SHMREG_NAME_MAX  200u

typedef struct shmreg shmreg_t;
typedef struct shmreg_watch shmreg_watch_t;
typedef struct shmreg_client shmreg_client_t;

/* What a read reports about an entry besides its value. */
typedef struct shmreg_info {
	uint64_t mod_rev;       /* revision of the entry's last put */
	uint64_t create_rev;    /* revision of the put that created it */
	int64_t  expires_at_ns; /* CLOCK_REALTIME deadline, 0 = never */
	pid_t    owner_pid;     /* owning process, 0 = none */
	uint32_t flags;         /* SHMREG_EPHEMERAL, ... */
	uint32_t vlen;          /* full value length */
} shmreg_info_t;

/*
 * An attribute of an entry: a name=value pair that shmreg_find looks
 * entries up by.  @name is a C string of 1..SHMREG_ATTR_NAME_MAX bytes
 * without '='; @value a C string of 0..SHMREG_ATTR_VALUE_MAX bytes.  A
 * name may repeat on one entry (capability=gpu, capability=inference).
 */
typedef struct shmreg_attr {
	const char *name;
	const char *value;
} shmreg_attr_t;

#define SHMREG_ATTR_NAME_MAX  64u
#define SHMREG_ATTR_VALUE_MAX 256u
#define SHMREG_ATTRS_MAX      16  /* attributes per entry */

/* Options of a put; the all-zero value means defaults.  The same struct
 * serves the embedded writer and the client. */
typedef struct shmreg_put_opts {
	pid_t    owner_pid;   /* remove the entry when this process exits */
	uint32_t flags;       /* SHMREG_EPHEMERAL, ... */
	int64_t  ttl_ns;      /* > 0: expire this long after the put, at
	                       * most SHMREG_TTL_MAX_NS (else -EINVAL) */
	uint64_t expect_rev;  /* compare-and-set: put only if the entry's
	                       * mod_rev equals this; 0 = unconditional.
	                       * SHMREG_REV_ABSENT: put only if absent. */
	const shmreg_attr_t *attrs; /* the entry's attributes (nattrs of
	                             * them); a put replaces them all */
	uint32_t nattrs;      /* 0..SHMREG_ATTRS_MAX */
	const void *parent;   /* parent entry's key, NULL = none; it must
	                       * exist (-ENOENT).  Re-putting with another
	                       * parent moves the entry (and its subtree) */
	size_t   parent_len;
} shmreg_put_opts_t;

/* Longest TTL a put accepts: 100 years of 365 days, in ns.  A longer one
 * is refused with -EINVAL (the expiry, now + ttl_ns, must fit an int64 of
 * CLOCK_REALTIME nanoseconds); for "never expires" give 0. */
#define SHMREG_TTL_MAX_NS (INT64_C(100) * 365 * 24 * 3600 * 1000000000)

/* put_opts.flags */
#define SHMREG_EPHEMERAL 0x1u /* owned by the client connection */

/* expect_rev value meaning "only if the key does not exist" */
#define SHMREG_REV_ABSENT UINT64_MAX

/* ----------------------------------------------------------------------
 * Opening and reading
 */

/* shmreg_open flags */
#define SHMREG_OPEN_NOFOLLOW 0x1u /* do not follow a segment handoff */

/*
 * Map registry @name read-only.  @name is a registry name (the file is
 * /dev/shm/shmreg.NAME, or $SHMREG_DIR/shmreg.NAME when SHMREG_DIR is set)
 * or an absolute path.  Does not block (a FIFO at the name is -EPROTO).
 * A symbolic link at a registry name's file is refused; one at an
 * absolute path is followed (the caller chose that path).
 *
 * Returns 0 and stores the handle in *out, or
 *   -EINVAL  bad name, flags or NULL out
 *   -ENOENT  no such registry (no writer has created it)
 *   -EPROTO  not a registry (not a regular file), another format version,
 *            or truncated
 *   -ELOOP   @name is a registry name and its file is a symbolic link
 *   -EACCES  the file mode forbids reading
 *   -ENOMEM  out of memory or address space
 */
int shmreg_open(const char *name, int flags, shmreg_t **out);

/* Unmap and free.  NULL is allowed.  Not async-signal-safe. */
void shmreg_close(shmreg_t *r);

/*
 * Look up @key.  Copies min(value length, @cap) bytes into @buf and fills
 * *@info when @info is not NULL.  Lock-free: no system call, lock or store
 * to shared memory.  Async-signal-safe unless a segment handoff must be
 * followed (which maps the new segment).
 *
 * Returns the value's full length (which may exceed @cap), or
 *   -ENOENT      no such key (or it has expired)
 *   -EINVAL      NULL handle, NULL key, empty key, or NULL buf with cap > 0
 *   -E2BIG       klen > SHMREG_KEY_MAX
 *   -EAGAIN      the retry budget was spent while the writer kept changing
 *                this entry; retry
 *   -EOWNERDEAD  the writer died in the middle of changing this entry
 *   -EPROTO      the segment is corrupt
 */
ssize_t shmreg_get(shmreg_t *r, const void *key, size_t klen,
		   void *buf, size_t cap, shmreg_info_t *info);

/* The registry's current revision (+1 per committed change); 0 on a NULL
 * handle.  Lock-free. */
uint64_t shmreg_revision(shmreg_t *r);

/*
 * Iterate the entries whose key starts with @prefix (@plen may be 0 for all),
 * calling @fn for each with a validated copy of key and value.  Iteration is
 * not a snapshot: an entry changed during the walk is reported at most once,
 * with either its old or its new value.  @fn returns 0 to go on, > 0 to
 * stop early, or a negative errno to abort the walk.
 *
 * Returns the number of entries passed to @fn (counting the one whose
 * callback stopped the walk), @fn's negative return when it aborted, or
 *   -EINVAL -E2BIG -EPROTO -ENOMEM -EAGAIN
 */
typedef int (*shmreg_list_fn)(const void *key, size_t klen,
			      const void *val, size_t vlen,
			      const shmreg_info_t *info, void *arg);
ssize_t shmreg_list(shmreg_t *r, const void *prefix, size_t plen,
		    shmreg_list_fn fn, void *arg);

/*
 * Report every entry that carries all @nmatch (1..SHMREG_ATTRS_MAX)
 * name=value pairs of @match (AND), each at most once, calling @fn with a
 * validated copy of its key and value as shmreg_list does: the copy @fn
 * gets is of a version of the entry that carried every pair asked for.
 * Lock-free; not a snapshot (see shmreg_read_begin): an entry changed
 * during the call is reported at most once, as it was before or after.
 * The cost grows with the number of entries carrying the rarest of the
 * pairs, not with the registry.
 *
 * Returns the number of entries passed to @fn (counting the one whose
 * callback stopped the call), @fn's negative return when it aborted, or
 *   -EINVAL  NULL handle, fn or match, nmatch 0, a NULL or empty name,
 *            a name with '=', a NULL value
 *   -E2BIG   nmatch > SHMREG_ATTRS_MAX, a name or value over its limit
 *   -EAGAIN  the writer kept changing the rarest pair; retry
 *   -EPROTO  the segment is corrupt
 *   -ENOMEM  out of memory
 */
ssize_t shmreg_find(shmreg_t *r, const shmreg_attr_t *match, unsigned nmatch,
		    shmreg_list_fn fn, void *arg);

/*
 * Report the direct children of @key (the entries put with it as
 * opts.parent), each at most once, calling @fn as shmreg_list does with a
 * validated copy of a version of the child that had @key as its parent.
 * Lock-free, not a snapshot; the cost grows with the children, not with
 * the registry.  @key need not exist (then there are none).
 *
 * Returns the number of entries passed to @fn (counting the one whose
 * callback stopped the call), @fn's negative return when it aborted, or
 *   -EINVAL -E2BIG -EAGAIN -EPROTO -ENOMEM as shmreg_find
 */
ssize_t shmreg_children(shmreg_t *r, const void *key, size_t klen,
			shmreg_list_fn fn, void *arg);

/*
 * Copy @key's attributes into @buf as consecutive "name\0value\0" pairs
 * (in the order they were put), at most @cap bytes of them.
 *
 * Returns the bytes all of them take (0 for an entry without attributes;
 * larger than @cap means truncated: call again with that much), or
 *   -ENOENT -EINVAL -E2BIG -EAGAIN -EOWNERDEAD -EPROTO as shmreg_get
 */
ssize_t shmreg_get_attrs(shmreg_t *r, const void *key, size_t klen,
			 void *buf, size_t cap);

/*
 * Snapshot reads: is what a group of reads saw one committed state?
 *
 *	do {
 *		tok = shmreg_read_begin(r);
 *		... shmreg_get, shmreg_get_attrs, shmreg_find, shmreg_list ...
 *	} while (shmreg_read_validate(r, tok) == -EAGAIN);
 *
 * shmreg_read_begin returns a token (waiting out a commit in progress,
 * boundedly).  shmreg_read_validate returns 0 when every read made between
 * the two saw one and the same committed state (a batch all or nothing,
 * entries and attribute index alike, also across a segment handoff), or
 *   -EAGAIN  a commit or a handoff came between: discard and read again
 *   -EINVAL  NULL handle
 * Lock-free; reads outside a begin/validate pair cost what they always do.
 */
uint64_t shmreg_read_begin(shmreg_t *r);
int shmreg_read_validate(shmreg_t *r, uint64_t token);

/*
 * For a cache of values read through @r: store the registry's revision in
 * *@rev and return 0 when no commit is being applied, -EAGAIN when one is
 * (*@rev is then the revision before it), -EINVAL for a NULL argument.
 * Two calls through one handle that both return 0 with the same revision
 * saw no entry change between them, except by expiring: a value without
 * an expiry read after the first is still current at the second.
 * Lock-free, no system call (follows a segment handoff as shmreg_get
 * does); a revision in memory the caller gives, for FFIs that box a
 * 64-bit return (LuaJIT).
 */
int shmreg_stable_revision(shmreg_t *r, uint64_t *rev);

/* Registry state in shmreg_stats_t.state */
#define SHMREG_STATE_OPEN    1 /* a writer serves the registry */
#define SHMREG_STATE_CLOSED  2 /* the writer closed it; contents readable */
#define SHMREG_STATE_DEAD    3 /* the writer died without closing */

typedef struct shmreg_stats {
	uint64_t entries;        /* live entries */
	uint64_t bytes_used;     /* key + value bytes of live entries */
	uint64_t segment_bytes;  /* size of the segment file */
	uint64_t index_capacity; /* index slots */
	uint64_t arena_bytes;    /* arena size (out-of-line objects) */
	uint64_t arena_used;     /* arena bytes handed out, incl. free lists */
	uint64_t revision;
	uint64_t generation;     /* segment handoffs so far */
	uint64_t ring_capacity;  /* change-ring events kept */
	pid_t    writer_pid;
	int      state;          /* SHMREG_STATE_* */
	/* Appended in 0.1 (the data-model stats); only ever appended to.
	 * Each is 0 when the segment's writer predates it. */
	uint64_t attr_pairs;     /* distinct name=value pairs indexed */
	uint64_t attr_capacity;  /* attribute index slots */
	uint64_t index_entries;  /* attribute index postings: one per entry
	                          * and distinct pair it carries */
	uint64_t owned;          /* live entries bound to an owner pid */
	uint64_t waiters;        /* threads blocked in await or watch, from
	                          * the wait file: a hint (a waiter killed
	                          * while blocked stays counted) */
	double   writes_per_sec; /* commits per second over the last 1-2 s
	                          * (longer, and falling, when idle) */
	uint64_t uptime_ns;      /* since the writer opened the registry */
} shmreg_stats_t;

/* Fill *@st.  Returns 0, -EINVAL or -EPROTO.  Lock-free; never blocks (the
 * waiter count maps the wait file the first time, then walks its resident
 * pages: at most 128 KiB, tens of gets' worth: for monitoring, not for a
 * hot path). */
int shmreg_stats(shmreg_t *r, shmreg_stats_t *st);

/*
 * The handle mapped by the library constructor when libshmreg.so is loaded
 * (for instance with LD_PRELOAD) and SHMREG_PRELOAD=NAME is set in the
 * environment; NULL if none (not set, or the open failed: the reason is
 * printed to stderr when SHMREG_DEBUG is set).
 */
shmreg_t *shmreg_default(void);

/* ----------------------------------------------------------------------
 * Await and watch: block (on futexes) until the registry changes
 */

/*
 * Like shmreg_get, but when the key is absent, wait until a writer puts it.
 * @timeout_ns is relative: < 0 waits forever, 0 does not block.  Interrupted
 * waits resume with the remaining time; never returns -EAGAIN.
 *
 * Returns the value's full length, or
 *   -ETIMEDOUT   the key did not appear in time
 *   -ESHUTDOWN   the writer closed the registry
 *   -EOWNERDEAD  the writer died (noticed within 100 ms)
 *   -EINVAL -E2BIG -EPROTO -ENOMEM
 */
ssize_t shmreg_await(shmreg_t *r, const void *key, size_t klen,
		     void *buf, size_t cap, shmreg_info_t *info,
		     int64_t timeout_ns);

/*
 * Wait until @key's mod_rev passes @since_rev or the key is deleted.  Stores
 * the key's new mod_rev in *@new_rev (may be NULL).
 *
 * Returns 0 when the key was put with mod_rev > since_rev, -ENOENT when the
 * key is (or became) absent, or -ETIMEDOUT -ESHUTDOWN -EOWNERDEAD -EINVAL
 * -E2BIG -EPROTO.
 */
int shmreg_watch_key(shmreg_t *r, const void *key, size_t klen,
		     uint64_t since_rev, int64_t timeout_ns,
		     uint64_t *new_rev);

/* Change stream events */
#define SHMREG_EVENT_PUT 1
#define SHMREG_EVENT_DEL 2

typedef struct shmreg_event {
	uint64_t    rev;
	int         type;      /* SHMREG_EVENT_PUT or SHMREG_EVENT_DEL */
	const void *key;       /* valid until the next call on this watch */
	size_t      klen;
} shmreg_event_t;

/*
 * Open a stream of every put and delete with revision > @start_rev whose key
 * starts with @prefix (@plen may be 0).  Events come in revision order.
 * Returns 0, -EINVAL, -E2BIG, -ENOMEM, or -ERANGE when @start_rev is already
 * older than what the change ring keeps.
 */
int shmreg_watch_open(shmreg_t *r, const void *prefix, size_t plen,
		      uint64_t start_rev, shmreg_watch_t **out);

/*
 * Next event, waiting up to @timeout_ns (< 0 forever, 0 never blocks).
 * Returns 0 and fills *@ev, or
 *   -ETIMEDOUT   no event in time
 *   -ERANGE      the watcher fell behind the change ring; events were lost.
 *                Resync: note shmreg_revision(), list, and open a new watch
 *                from that revision.  (A registry that mirrors etcd says
 *                so too at a revision that changed several keys at once.)
 *   -ESHUTDOWN -EOWNERDEAD -EINVAL
 */
int shmreg_watch_next(shmreg_watch_t *w, shmreg_event_t *ev,
		      int64_t timeout_ns);

void shmreg_watch_close(shmreg_watch_t *w);

/* ----------------------------------------------------------------------
 * Client: ask a running shmregd to write.  One connection serves one
 * registry.  A put that returned its revision is visible to every later
 * shmreg_get of this process (read-your-writes).
 *
 * A shmreg_client_t is used by one thread at a time, and only in the
 * process that connected (a forked child shares the socket: it must
 * connect on its own).  Calls block until the daemon answers; the socket
 * is the only thing they wait on.  The wire protocol is docs/protocol.md.
 */

/*
 * Connect to the daemon at @socket_path (NULL: $SHMREG_SOCKET, else
 * $XDG_RUNTIME_DIR/shmreg.sock, else /run/shmreg/shmreg.sock) for registry
 * @registry.  Returns 0, -EINVAL, -ENOENT (no such socket or registry),
 * -ECONNREFUSED, -EACCES, -ENOMEM, -EPROTO.  @registry NULL selects none:
 * such a connection serves shmreg_ping, shmreg_client_stats (the daemon's
 * counters only) and shmreg_client_registries; writes on it fail with
 * -ENOTCONN.
 */
int shmreg_connect(const char *socket_path, const char *registry,
		   shmreg_client_t **out);

/*
 * Put or replace @key.  Returns the new revision (> 0), or
 *   -EINVAL -E2BIG       bad argument or size (as shmreg_writer_put: a
 *                        ttl_ns over SHMREG_TTL_MAX_NS is -EINVAL; the
 *                        client refuses it before sending)
 *   -ENOENT              opts->parent does not exist
 *   -ELOOP               opts->parent is @key itself or below it
 *   -EOPNOTSUPP          (with a parent or attributes only) the daemon
 *                        predates the PUTX op; it closed the
 *                        connection: upgrade shmregd (docs/protocol.md)
 *   -ESRCH               opts->owner_pid does not exist
 *   -EEXIST              compare-and-set failed (expect_rev did not match)
 *   -EACCES              this uid/gid may not write
 *   -ECONNRESET -EPIPE   the connection was lost
 *   -ENOMEM -ENOSPC      the daemon is out of memory
 *   -EAGAIN              the daemon's input budget is spent on other
 *                        large requests; nothing was written: retry later
 */
int64_t shmreg_put(shmreg_client_t *c, const void *key, size_t klen,
		   const void *val, size_t vlen,
		   const shmreg_put_opts_t *opts);

/* Delete @key.  Returns the new revision, -ENOENT when absent, -ENOTEMPTY
 * when it has children (nothing changes in either case: delete the
 * subtree with shmreg_del_tree), or the errors of shmreg_put. */
int64_t shmreg_del(shmreg_client_t *c, const void *key, size_t klen);

/*
 * Replace @key's attributes with the @nattrs (0..SHMREG_ATTRS_MAX) of
 * @attrs, keeping its value, expiry, owner and flags: one new revision, as
 * shmreg_writer_set_attrs.  Returns the new revision, or -ENOENT (no such
 * key), -EINVAL/-E2BIG (as shmreg_writer_set_attrs; refused before
 * sending), or the connection errors of shmreg_put.
 */
int64_t shmreg_set_attrs(shmreg_client_t *c, const void *key, size_t klen,
			 const shmreg_attr_t *attrs, uint32_t nattrs);

/*
 * Delete @key and all its descendants in one commit (snapshot readers see
 * all of the subtree or none), as shmreg_writer_del_tree.  Returns how
 * many entries were removed (>= 1), or -ENOENT (no such key), -EINVAL,
 * -E2BIG, or the connection errors of shmreg_put.
 */
int64_t shmreg_del_tree(shmreg_client_t *c, const void *key, size_t klen);

/* Close the connection (entries put with SHMREG_EPHEMERAL on it are
 * removed by the daemon) and free @c.  Unreaped asynchronous requests are
 * still applied by the daemon; their results are lost.  NULL is allowed. */
void shmreg_disconnect(shmreg_client_t *c);

/* A round trip that changes nothing.  Returns the registry's revision
 * (>= 0) or the connection errors of shmreg_put. */
int64_t shmreg_ping(shmreg_client_t *c);

/* Ask the daemon to start a snapshot of the registry's data directory
 * (shmregd --data-dir; see shmreg_writer_snapshot).  Returns 0 when it was
 * started, -EALREADY (one is being written), -ENOTSUP (the registry is not
 * persistent), or the connection errors of shmreg_put. */
int shmreg_client_snapshot(shmreg_client_t *c);

/* What the daemon reports about itself (shmreg_client_stats). */
typedef struct shmreg_daemon_stats {
	uint64_t connections;    /* open connections */
	uint64_t requests;       /* requests answered since it started */
	uint64_t owners;         /* processes watched for owner-bound entries */
	uint64_t ephemeral;      /* connection-owned entries tracked */
	uint64_t closed_bad;     /* connections closed for a malformed frame */
	uint64_t refused;        /* connections refused by uid/gid */
	uint64_t stalled;        /* connections closed for not reading replies */
	uint64_t out_highwater;  /* most reply bytes queued on one connection */
	uint64_t pauses;         /* receives paused by back-pressure */
	uint64_t owner_deletes;  /* entries removed because their owner exited */
	uint64_t idle_closed;    /* connections closed for --idle-timeout */
	uint64_t over_budget;    /* requests refused for --input-budget */
	uint64_t in_buffered;    /* bytes buffered for partial requests now */
	uint64_t mirror_stale;   /* etcd mirror (docs/multi-host.md): the
	                          * CLOCK_REALTIME ns since which its watch is
	                          * down and reads serve the last state; 0 =
	                          * live, or not a mirror */
} shmreg_daemon_stats_t;

/* Fill *@st with the registry's stats (as shmreg_stats would) and *@ds with
 * the daemon's; either may be NULL.  Returns 0 or the connection errors of
 * shmreg_put. */
int shmreg_client_stats(shmreg_client_t *c, shmreg_stats_t *st,
			shmreg_daemon_stats_t *ds);

/* ----------------------------------------------------------------------
 * Pipelined client: many requests in flight on one connection, for bulk
 * writers.  Requests are queued and sent in batches; the daemon applies
 * them and answers in order; completions are reaped in request order.
 *
 *	for (i = 0; i < n; i++) {
 *		while ((id = shmreg_put_async(c, k[i], kl[i], v[i], vl[i],
 *					      NULL)) == -ENOBUFS)
 *			shmreg_client_wait(c, cqes, 64, -1);  // handle them
 *		...
 *	}
 *	while ((got = shmreg_client_wait(c, cqes, 64, -1)) > 0)
 *		...;                                       // until 0: all done
 *
 * Synchronous calls may be mixed in: they wait for their own reply, and the
 * completions of earlier asynchronous requests stay queued for the next
 * shmreg_client_wait.
 */

/* A finished asynchronous request. */
typedef struct shmreg_completion {
	uint64_t id;      /* as returned by shmreg_put_async/shmreg_del_async */
	int64_t  result;  /* what shmreg_put/shmreg_del would have returned */
} shmreg_completion_t;

/*
 * Queue a put (a delete).  The key, value and options are copied: the
 * caller's buffers may be reused at once.  The request is sent when the
 * queue fills, at shmreg_client_flush or at shmreg_client_wait; it may be
 * applied by the daemon before its completion is reaped.
 *
 * Returns the request id (> 0, increasing by one per request on this
 * connection), or
 *   -ENOBUFS             shmreg_client_depth() requests are outstanding
 *                        (sent or answered, not yet reaped): reap first
 *   -EINVAL -E2BIG       bad argument or size (nothing is queued)
 *   -ECONNRESET -EPIPE   the connection was lost
 *   -ENOMEM
 * Blocks only to write a full queue to the socket.
 */
int64_t shmreg_put_async(shmreg_client_t *c, const void *key, size_t klen,
			 const void *val, size_t vlen,
			 const shmreg_put_opts_t *opts);
int64_t shmreg_del_async(shmreg_client_t *c, const void *key, size_t klen);

/* Send every queued request.  Blocks until the socket took them (reading
 * replies meanwhile, so a daemon applying back-pressure cannot deadlock
 * it).  Returns 0 or -ECONNRESET -EPIPE -ENOMEM. */
int shmreg_client_flush(shmreg_client_t *c);

/*
 * Reap up to @max completions, oldest first, after sending whatever is
 * queued.  When none is ready, wait up to @timeout_ns for one (< 0 waits
 * forever, 0 does not block).
 *
 * Returns the number of completions stored in @cqes (> 0), 0 when no
 * asynchronous request is outstanding, or -ETIMEDOUT, -EINVAL (@max 0),
 * -ECONNRESET / -EPIPE (connection lost: the outstanding requests may or
 * may not have been applied), -EPROTO (the daemon broke the protocol).
 */
int shmreg_client_wait(shmreg_client_t *c, shmreg_completion_t *cqes,
		       unsigned max, int64_t timeout_ns);

/* How many asynchronous requests may be outstanding (the daemon's
 * per-connection limit); 0 for NULL. */
unsigned shmreg_client_depth(shmreg_client_t *c);

/* The connection's socket, to poll for POLLIN alongside other work (then
 * shmreg_client_wait with timeout 0); -1 for NULL.  Do not read or write
 * it. */
int shmreg_client_fd(shmreg_client_t *c);

/* ----------------------------------------------------------------------
 * Atomic batches: puts, deletes, attribute updates and tree deletes sent
 * to shmregd in one request and applied all or nothing, in one commit.
 *
 *	shmreg_batch_t *b;
 *	uint32_t failed;
 *	shmreg_batch_begin(c, &b);
 *	shmreg_batch_del(b, "token/3", 7);
 *	shmreg_batch_put(b, "token/4", 7, "1", 1, &(shmreg_put_opts_t){
 *				 .expect_rev = SHMREG_REV_ABSENT });
 *	rev = shmreg_batch_commit(b, &failed);   // b is freed
 *	if (rev < 0 && failed != SHMREG_BATCH_NONE)
 *		... operation #failed would have failed with rev (-errno) ...
 *
 * The daemon checks every operation, in order, against the registry as
 * the earlier operations of the batch leave it (a put may name a parent
 * put earlier in the batch; a compare-and-set sees the batch's own
 * earlier puts) before it writes anything.  If one would fail, none is
 * applied, no revision is used, and the commit returns that operation's
 * error with its index (0-based, in the order added) in *failed.
 * Otherwise all are applied in one commit: a validated snapshot read
 * (shmreg_read_begin) sees all of them or none.  Each change still gets
 * its own revision and change event, as shmreg_del_tree's; the commit
 * returns the last.  The one exception to "all or nothing" is a change the
 * daemon could not foresee between its check and its write (an entry the
 * batch relies on reaching its TTL, an owner process exiting, the
 * registry failing to grow for lack of memory): docs/protocol.md, BATCH.
 *
 * Nothing is sent before shmreg_batch_commit.  A batch is used by one
 * thread, with its connection, and holds at most SHMREG_BATCH_OPS_MAX
 * operations and one request frame (about 16 MiB) of them.
 */
typedef struct shmreg_batch shmreg_batch_t;

#define SHMREG_BATCH_OPS_MAX 65536u
/* *failed of shmreg_batch_commit when no single operation failed */
#define SHMREG_BATCH_NONE    UINT32_MAX

/* Start a batch on @c.  Returns 0, -EINVAL, -ENOMEM. */
int shmreg_batch_begin(shmreg_client_t *c, shmreg_batch_t **out);

/*
 * Add a put (every option of shmreg_put), a delete, an attribute update
 * or a tree delete.  Each checks its arguments as the single call does.
 * Returns 0, or -EINVAL/-E2BIG (a bad argument, as the single call; also
 * -E2BIG when the batch would pass SHMREG_BATCH_OPS_MAX operations or one
 * frame), -ENOMEM; on error the batch is unchanged and still usable.
 */
int shmreg_batch_put(shmreg_batch_t *b, const void *key, size_t klen,
		     const void *val, size_t vlen,
		     const shmreg_put_opts_t *opts);
int shmreg_batch_del(shmreg_batch_t *b, const void *key, size_t klen);
int shmreg_batch_set_attrs(shmreg_batch_t *b, const void *key, size_t klen,
			   const shmreg_attr_t *attrs, uint32_t nattrs);
int shmreg_batch_del_tree(shmreg_batch_t *b, const void *key, size_t klen);

/*
 * Send the batch, wait for the daemon's answer, and free @b.  Returns the
 * revision of the batch's last change (the current revision for an empty
 * batch), or the failing operation's error (the errors of shmreg_put,
 * shmreg_del, shmreg_set_attrs and shmreg_del_tree: -EEXIST, -ENOENT,
 * -ENOTEMPTY, -ELOOP, -ESRCH ...) with its index in *@failed (may be
 * NULL), or an error of the whole request with *@failed =
 * SHMREG_BATCH_NONE: -ENOTCONN (a connection without a registry), the
 * connection errors of shmreg_put, -EINVAL (@b NULL).
 */
int64_t shmreg_batch_commit(shmreg_batch_t *b, uint32_t *failed);

/* Free @b without sending anything.  NULL is allowed. */
void shmreg_batch_abort(shmreg_batch_t *b);

/*
 * Ask the daemon to re-read the connection's registry's --load directory
 * and replace what the previous load put there, in one all-or-nothing
 * batch (as SIGHUP does).  Copies the daemon's one-line report (what was
 * done, or which file failed and why) into @msg (NUL-terminated, cut to
 * @cap; may be NULL).  Returns the registry's revision afterwards, or
 * -ENOENT (the registry has no --load directory), the load's error (the
 * registry unchanged: -EINVAL a malformed file, -E2BIG a file over a
 * limit, -EACCES, -ENOTEMPTY a vanished file's entry has children ...),
 * -ENOTCONN (no registry selected), or the connection errors of
 * shmreg_put.
 */
int64_t shmreg_client_reload(shmreg_client_t *c, char *msg, size_t cap);

/*
 * Report every registry the daemon serves to @fn, with its entries,
 * revision and state in @st (the other fields 0).  @fn returns 0 to go
 * on, nonzero to stop.  Works on any connection (also one without a
 * registry).  Returns how many were reported, -E2BIG (a name that does
 * not fit a reply), -EINVAL, or the connection errors of shmreg_put.
 */
typedef int (*shmreg_registry_fn)(const char *name, const shmreg_stats_t *st,
				  void *arg);
ssize_t shmreg_client_registries(shmreg_client_t *c, shmreg_registry_fn fn,
				 void *arg);

#ifdef __cplusplus
}
#endif

/*
 * shmreg_get() inlined into the caller where the key length is a constant
 * of 8 to 16 bytes (shmreg_inline.h says why, when and what it reads):
 * C with GCC or Clang optimising, on x86-64, outside ThreadSanitizer.
 * Define SHMREG_NO_INLINE_GET before including this header to always call
 * the library.  SHMREG_INLINE_GET says which it is.
 */
/* ThreadSanitizer (GCC, Clang): the library's one test for it too */
#if defined(__SANITIZE_THREAD__)
#define SHMREG__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SHMREG__TSAN 1
#endif
#endif
#if !defined(__cplusplus) && defined(__GNUC__) && defined(__OPTIMIZE__) && \
	defined(__x86_64__) && defined(__SSE2__) && defined(__ELF__) &&     \
	!defined(SHMREG__TSAN) && !defined(SHMREG_NO_INLINE_GET)
#define SHMREG_INLINE_GET 1
#include "shmreg_inline.h"
#else
#define SHMREG_INLINE_GET 0
#endif

#endif /* SHMREG_H */
