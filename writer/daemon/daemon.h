/* SPDX-License-Identifier: MIT */
/*
 * daemon.h - shmregd's internal interfaces: options, the event loop, the
 * per-connection state, owner monitoring and authorisation.
 *
 * One thread, one io_uring.  Every piece of state below is touched only by
 * that thread, so nothing here is locked or atomic.  Requests are applied
 * to the writer synchronously as their frames are decoded, so a reply is
 * produced in request order by construction; only sends are asynchronous.
 */
#ifndef SHMREGD_DAEMON_H
#define SHMREGD_DAEMON_H

#include <liburing.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/signalfd.h>
#include <sys/types.h>

#include "shmreg_writer.h"
#include "proto.h"
#include "d_tag.h"
#include "metrics.h"
#include "mirror/mirror.h"

#define D_MAX_REGISTRIES 64     /* one bit each in owner.regmask */
#define D_MAX_IDS        64     /* --allow-uid / --allow-gid entries */

/* Back-pressure (per connection): stop decoding requests once this many
 * reply bytes, or max_inflight replies, wait to be sent; start again below
 * the low marks.  The hysteresis keeps a client that reads slowly from
 * toggling the receive on every send. */
#define D_OUT_HIGH  (64u << 10)
#define D_OUT_LOW   (16u << 10)

/* Provided receive buffers shared by all connections (buffer group 0). */
#define D_NBUFS  256u
#define D_BUFSZ  (16u << 10)

/* Peers that may not write: each is answered -EACCES on its first request
 * and closed.  At most D_REFUSE_MAX wait for that request at a time (the
 * oldest is closed to make room), each for at most D_REFUSE_NS; they are
 * never counted against --max-connections. */
#define D_REFUSE_MAX 64u
#define D_REFUSE_NS  1000000000ull

/* Idle scan: connections examined per tick at most (see conn_check_idle). */
#define D_IDLE_SCAN  256u

/* Input budget: an input buffer up to D_IN_SMALL bytes may use the whole
 * --input-budget; a larger one (a large frame) only the part above
 * budget / D_IN_RESERVE_DIV, so small frames keep being served while the
 * large ones are refused. */
#define D_IN_SMALL       (64u << 10)
#define D_IN_RESERVE_DIV 8u

/* Who may write (--allow-uid / --allow-gid). */
struct d_acl {
	uid_t uid[D_MAX_IDS];
	unsigned nuid;
	gid_t gid[D_MAX_IDS];
	unsigned ngid;
};

/* One --registry and the options written after it (before the next
 * --registry).  What it does not set comes from the defaults: the options
 * written before the first --registry. */
struct d_regopt {
	const char *name;
	mode_t mode;                /* --mode, segment files */
	bool mode_set;
	struct d_acl acl;           /* its own list replaces the default one */
	bool acl_set;
	const char *load_dir;       /* --load, or NULL */
	struct d_mirror_opts mirror; /* --etcd ...: mirror.urls or NULL */
	struct d_persist_opt {      /* persistence: --data-dir ... */
		const char *data_dir;   /* DIR (the registry's files go in
		                         * DIR/NAME), NULL = none */
		int durability;         /* SHMREG_DURABILITY_*, -1 = unset */
		int batch_ms;           /* -1 = unset */
		bool keep_prefix;       /* --recover-prefix */
	} po;
};

struct d_opts {
	struct d_regopt reg[D_MAX_REGISTRIES];
	unsigned nreg;
	char socket_path[108];      /* sizeof(sun_path) */
	mode_t seg_mode;            /* default --mode, segment files */
	mode_t sock_mode;           /* --socket-mode */
	struct d_acl acl;           /* default allow lists */
	unsigned max_conns;
	unsigned max_per_uid;       /* writers' connections per uid, 0 = no
	                             * limit but max_conns */
	unsigned max_inflight;
	uint64_t stall_ns;          /* close a connection whose replies make
	                             * no progress for this long */
	uint64_t drain_ns;          /* shutdown: wait this long for clients */
	uint64_t idle_ns;           /* close a connection that sends no
	                             * request for this long; 0 = never */
	uint64_t in_budget;         /* bytes of buffered partial input, all
	                             * connections together */
	int ready_fd;               /* -1 or an fd to write "READY\n" to */
	const char *metrics_listen; /* --metrics-listen ADDR:PORT, or NULL */
	bool truncate;
	int verbose;                /* 0 errors, 1 info, 2 debug */
	struct d_persist_opt po;    /* defaults of every registry */
};

/* Parse the command line.  Returns 0 to run, or an exit status (+1) when
 * the process should exit now (after --help: 0 + 1 = 1 means "exit 0"). */
int d_parse_args(int argc, char **argv, struct d_opts *o);

/* ---- logging: stderr, systemd picks it up; rate-limited for anything a
 * peer can trigger ---- */
#define D_ERR   0
#define D_INFO  1
#define D_DEBUG 2
#define D_TRACE 3
void d_log(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Like d_log, but at most a few lines per second; the rest are counted
 * and reported as "N messages suppressed". */
void d_log_limited(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
extern int d_verbose;

/* ---- per-registry state ---- */
struct eph;

struct load_set;

struct D_TAGGED reg {
	const char *name;
	const struct d_regopt *ro;  /* its options */
	struct load_set *loaded;    /* what --load put there, or NULL */
	shmreg_writer_t *w;
	unsigned idx;               /* bit in owner.regmask */
	/* connection-owned (SHMREG_EPHEMERAL) keys: key -> owning conn */
	struct eph **eph_tab;
	size_t eph_mask;            /* buckets - 1 */
	size_t eph_count;
	bool expiry_due;            /* its expiry timer fired: sweep a chunk
	                             * once this iteration's replies are sent */
	struct reg_metrics m;       /* its requests (metrics.c) */
	struct mirror *mirror;      /* --etcd: the registry mirrors etcd */
	/* --data-dir: its log's group commit (group_commit.c) */
	bool log_busy;              /* a group's write (+ fsync) in flight */
	bool log_failed;            /* the log latched an error */
	unsigned log_ops;           /* its CQEs still to come */
	int log_res;                /* the group's first error */
	size_t log_len;             /* bytes of its write */
	struct conn *held;          /* connections with replies held */
};

/* ---- a growable byte buffer ---- */
struct dbuf {
	uint8_t *p;
	size_t off;                 /* first unconsumed / unsent byte */
	size_t len;                 /* end of data */
	size_t cap;
	unsigned nrep;              /* replies it holds (output buffers) */
};

struct daemon;

struct D_TAGGED conn {
	struct daemon *d;
	int fd;
	unsigned ops;               /* SQEs in flight naming this conn */
	bool recv_armed;            /* a multishot recv is in flight */
	bool paused;                /* back-pressure: not decoding input */
	bool closing;               /* no more input; close when flushed */
	bool dead;                  /* shut down; freed when ops == 0 */
	bool refused;               /* peer failed authorisation */
	bool dirty;                 /* on d->dirty: has output to send */
	bool sending;               /* a send of out_s is in flight */
	bool rd_eof;                /* the peer shut its side down */
	bool mirror_wait;           /* a write forwarded to etcd is not
	                             * answered yet: decode nothing more */
	bool mirror_eph;            /* put SHMREG_EPHEMERAL keys in etcd:
	                             * its lease is revoked at close */
	uid_t uid;
	gid_t gid;
	pid_t pid;
	uint64_t serial;            /* connection number, for logs */
	struct reg *reg;            /* selected by HELLO */
	uint32_t skip;              /* bytes of a refused frame still to
	                             * discard (input budget) */
	struct dbuf in;             /* partial frame / unprocessed input;
	                             * in.cap is charged to d->in_bytes */
	struct dbuf out_q;          /* replies queued */
	struct dbuf out_s;          /* replies being sent (stable while
	                             * sending: the kernel reads it) */
	uint64_t progress_ns;       /* last send progress (stall check) */
	uint64_t active_ns;         /* last complete request (idle check);
	                             * accept time for a refused peer */
	struct eph *eph_head;       /* keys this connection owns */
	struct conn *prev, *next;   /* d->conns */
	struct conn *lprev, *lnext; /* d->idle (writers, least recently
	                             * active first) or d->refusing (oldest
	                             * first) */
	struct conn *dirty_next;
	/* persistence (group_commit.c): out_q's first out_free bytes
	 * (out_free_nrep replies) may be sent; up to out_sealed they wait
	 * for the group in flight, the rest for the next one */
	size_t out_free, out_sealed;
	unsigned out_free_nrep, out_sealed_nrep;
	bool held;                  /* on reg->held */
	struct conn *hprev, *hnext;
};

/* A process whose exit removes its entries. */
struct D_TAGGED owner {
	pid_t pid;
	int pidfd;
	uint64_t regmask;           /* registries it may own entries in */
	uint64_t nentries;          /* entries it owns, as far as the daemon
	                             * knows (see owners.c); 0 = unwatch */
	bool released;              /* unhashed, its poll being cancelled:
	                             * freed when the poll completes */
	struct owner *hnext;        /* hash chain, or d->own_released */
	struct owner *rprev;        /* d->own_released (doubly linked) */
};

struct d_stats {
	uint64_t requests;
	uint64_t closed_bad;
	uint64_t refused;
	uint64_t stalled;
	uint64_t out_highwater;
	uint64_t pauses;
	uint64_t owner_deletes;
	uint64_t idle_closed;
	uint64_t over_budget;
};

/* Open writers' connections of one uid (--max-connections-per-uid). */
struct uid_count {
	uid_t uid;
	unsigned n;
	struct uid_count *next;
};
#define D_UID_BUCKETS 256u

/* A list of connections threaded through conn.lprev/lnext. */
struct clist {
	struct conn *head, *tail;
	unsigned n;
};

enum d_state { D_RUNNING, D_DRAINING, D_DONE };

struct D_TAGGED daemon {
	struct io_uring ring;
	struct d_opts *o;
	struct reg reg[D_MAX_REGISTRIES];
	unsigned nreg;
	enum d_state state;
	int fatal;                  /* -errno that stops the loop, or 0 */
	int listen_fd;
	bool accept_armed;
	bool unlink_socket;         /* we created socket_path */
	int sock_lock_fd;           /* flock on socket_path.lock */
	int sig_fd;
	struct signalfd_siginfo siginfo;
	struct __kernel_timespec tick_ts;
	uint64_t drain_deadline;
	/* provided buffer ring */
	struct io_uring_buf_ring *br;
	size_t br_bytes;
	uint8_t *bufs;
	/* connections */
	struct conn *conns;         /* every connection, refused ones too */
	unsigned nconns;            /* writers' connections (not refused) */
	struct clist idle;          /* writers' connections, LRU order */
	struct clist refusing;      /* refused peers awaiting their answer */
	uint64_t in_bytes;          /* sum of charged in.cap (input budget) */
	struct uid_count *uids[D_UID_BUCKETS]; /* only with max_per_uid */
	uint64_t conn_serial;
	struct conn *dirty;
	struct conn *zombies;       /* dead, waiting for their SQEs */
	/* owners: pid -> struct owner, chained hash */
	struct owner **own_tab;
	size_t own_mask;
	size_t nowners;
	struct owner *own_released; /* waiting for their poll to end */
	uint64_t eph_seed;
	unsigned nexpiry_due;       /* registries with reg.expiry_due */
	struct d_stats st;
	struct metrics_srv metrics; /* --metrics-listen (metrics_http.c) */
	/* persistence (group_commit.c): a registry has a data directory, so
	 * replies wait for the log write of their group */
	bool persistent;
};

/* user_data tags, in the low four bits of the pointer to the object a
 * completion is for.  Every tagged type is declared D_TAGGED (16-byte
 * aligned; malloc's alignment on x86-64 and arm64 glibc), checked below and
 * beside each type outside this header. */
#define D_TAG_IGNORE 0u
#define D_TAG_ACCEPT 1u
#define D_TAG_RECV   2u
#define D_TAG_SEND   3u
#define D_TAG_PIDFD  4u
#define D_TAG_SIGNAL 5u
#define D_TAG_TICK   6u
#define D_TAG_EXPIRY 7u         /* a registry's expiry timer (struct reg) */
#define D_TAG_METRICS 8u  /* the HTTP endpoint and its connections */
#define D_TAG_MIRROR 9u   /* an etcd mirror's eventfd (struct mirror,
                           * aligned in mirror/internal.h) */
#define D_TAG_LOG_WRITE 10u /* a registry's log group: its write */
#define D_TAG_LOG_SYNC  11u /* and its fdatasync (struct reg) */
#define D_TAG_MASK   15u
_Static_assert(_Alignof(struct daemon) > D_TAG_MASK &&
	       _Alignof(struct conn) > D_TAG_MASK &&
	       _Alignof(struct reg) > D_TAG_MASK &&
	       _Alignof(struct owner) > D_TAG_MASK &&
	       _Alignof(struct metrics_srv) > D_TAG_MASK,
	       "a tagged object's low bits must be free for its tag");

/* Expired entries one sweep chunk removes at most, between two rounds of
 * request processing (about 1 us each: see loop.c, "Expiry"). */
#define D_EXPIRE_CHUNK 256u

static inline uint64_t d_ud(const void *p, unsigned tag)
{
	return (uint64_t)(uintptr_t)p | tag;
}

/* ---- loop.c ---- */
int loop_init(struct daemon *d);
int loop_run(struct daemon *d);
void loop_exit(struct daemon *d);
/* An SQE, submitting pending ones first when the SQ is full.  Never NULL
 * (the SQ drains on submit; see loop.c). */
struct io_uring_sqe *d_sqe(struct daemon *d);
void d_recycle_buf(struct daemon *d, unsigned bid);
uint64_t d_now_ns(void);
void d_begin_drain(struct daemon *d);

/* ---- conn.c ---- */
/* A connection for the accepted @fd.  Checks the peer's credentials first:
 * a peer that may not write goes on d->refusing (not counted in nconns),
 * an allowed one is refused with NULL when --max-connections are open.
 * Returns NULL (the caller closes @fd) when not taken. */
struct conn *conn_new(struct daemon *d, int fd);
void conn_recv_cqe(struct conn *c, const struct io_uring_cqe *cqe);
void conn_send_cqe(struct conn *c, const struct io_uring_cqe *cqe);
void conn_arm_recv(struct conn *c);
/* Start sends for every connection with queued output. */
void conn_flush_dirty(struct daemon *d);
/* Out_q's first @upto bytes (@nrep replies) may be sent (group_commit.c). */
void conn_release_replies(struct conn *c, size_t upto, unsigned nrep);
/* Shut the connection down now: ephemeral entries removed, fd shut down;
 * the memory goes when the kernel has finished with it. */
void conn_kill(struct conn *c, const char *why);
/* Shutdown: answer what was received, then close. */
void conn_drain(struct conn *c);
/* Timer: close connections whose output made no progress in stall_ns. */
void conn_check_stalls(struct daemon *d, uint64_t now);
/* Timer: close idle writers (--idle-timeout) and refused peers that did not
 * send their first request in D_REFUSE_NS.  Bounded work per call. */
void conn_check_idle(struct daemon *d, uint64_t now);
/* The etcd mirror (mirror/mirror.c): @c waits for a forwarded write (it
 * decodes nothing more and holds a reference), and its answer: the reply
 * (@count: DELTREE's body), then decoding goes on. */
void conn_mirror_wait(struct conn *c);
void conn_mirror_done(struct conn *c, uint8_t op, uint64_t id, int status,
		      uint64_t rev, uint64_t count);
/* The same for a BATCH: its reply names the failing operation (or
 * PROTO_BATCH_NO_INDEX) and how many were applied. */
void conn_mirror_batch_done(struct conn *c, uint64_t id, int status,
			    uint64_t rev, uint32_t failed, uint32_t applied);
/* Drop a reference from a completed SQE; frees a dead conn at zero. */
void conn_put(struct conn *c);
void conn_free_all(struct daemon *d);
/* Queue a reply to @c (for the request handlers outside conn.c). */
void conn_reply(struct conn *c, uint8_t op, uint64_t id, int32_t status,
		uint64_t rev, const void *body, uint32_t blen);

/* ---- owners.c ---- */
/* Make sure @pid is watched, and note that it may own entries in @r.
 * Returns 0, -ESRCH (no such process, or it has exited), or -errno from
 * pidfd_open (-EMFILE ...). */
int owner_watch(struct daemon *d, pid_t pid, struct reg *r);
/* The pid that owns @key in @r now (0: none, or no owner is watched). */
pid_t owner_of(struct daemon *d, struct reg *r, const void *key,
	       size_t klen);
/* An entry of @pid came into being (+1) or went away (-1); at 0 the pid
 * is no longer watched.  Unknown pids and pid 0 are ignored. */
void owner_ref(struct daemon *d, pid_t pid, int delta);
void owner_exited(struct daemon *d, struct owner *ow);
void owner_free_all(struct daemon *d);
/* After a successful put of @key in @r by @c. */
int eph_after_put(struct daemon *d, struct reg *r, struct conn *c,
		  const void *key, size_t klen, bool ephemeral,
		  pid_t owner_pid);
/* After a successful (or -ENOENT) delete of @key in @r. */
void eph_after_del(struct daemon *d, struct reg *r, const void *key,
		   size_t klen);
/* Remove, in one commit, every entry @c owns. */
void eph_conn_closed(struct conn *c);
/* Startup: take over what a previous daemon left in @r (watch the owner
 * pids it names, drop connection-owned entries whose connection is gone). */
int owner_adopt(struct daemon *d, struct reg *r);
void eph_free_all(struct daemon *d);

/* ---- batch.c ---- */
struct batch_result {
	int err;                    /* 0, or the failing operation's -errno */
	uint32_t failed;            /* its index, PROTO_BATCH_NO_INDEX if none */
	uint32_t applied;           /* operations applied: all, or 0 when the
	                             * dry run refused the batch */
	uint64_t rev;               /* the registry's revision afterwards */
};
/* Apply the decoded BATCH @q to @r all or nothing (how: batch.c).  @c is
 * the connection that owns SHMREG_EPHEMERAL puts (NULL: the daemon's own
 * batches, which have none). */
void batch_run(struct daemon *d, struct reg *r, struct conn *c,
	       const struct proto_req *q, struct batch_result *res);
/* Only the dry run of @q on @r's current state: 0 (*@failed =
 * PROTO_BATCH_NO_INDEX) or the first failing operation's -errno and index
 * in *@failed, exactly as batch_run() would refuse it; changes nothing
 * (the mirror checks a batch before it goes to etcd). */
int batch_dry_run(struct daemon *d, struct reg *r, const struct proto_req *q,
		  uint32_t *failed);
/* The BATCH request of @c: run it and reply. */
void batch_request(struct conn *c, const struct proto_req *q);

/* ---- admin.c ---- */
/* RELOAD: load_registry() for the connection's registry; the reply says
 * what was done or why nothing was. */
void admin_reload(struct conn *c, const struct proto_req *q);
/* REGISTRIES: the registries served, from index q->u.registries.first,
 * as many as fit in one reply. */
void admin_registries(struct conn *c, const struct proto_req *q);

/* ---- load.c ---- */
/* Read r->ro->load_dir whole into memory (every file, every .attrs parsed
 * and checked against the limits) and only then apply it as one BATCH
 * (all or nothing): files new or changed since what the registry holds
 * are put, keys of the previous load whose files are gone are deleted,
 * the rest is left alone.  Any error changes nothing; @msg (and the log
 * line) names the file and the reason, or says what was done.  Returns 0
 * or -errno. */
int load_registry(struct daemon *d, struct reg *r, char *msg, size_t cap);
/* SIGHUP: load_registry for every registry with --load; errors are
 * logged, never fatal. */
void load_reload_all(struct daemon *d);
void load_free_all(struct daemon *d);

/* ---- group_commit.c ---- */
/* Once per loop turn (and on the tick): for every registry with a data
 * directory and no group in flight, submit the log records of the
 * changes since its last group as one write linked to an fdatasync (as
 * its durability mode says); the replies of those changes are held until
 * the group's completion (d_log_cqe).  A failed group closes the
 * connections whose replies would acknowledge what it lost. */
void d_group_commit(struct daemon *d);
/* A completion of registry @r's group (@sync: of its fdatasync). */
void d_log_cqe(struct daemon *d, struct reg *r,
	       const struct io_uring_cqe *cqe, bool sync);
/* Whether any registry has a group in flight. */
bool d_log_busy(const struct daemon *d);
/* reply() queued a reply on @c: free to send, or held for the log. */
void d_hold_reply(struct conn *c);
/* conn_kill: @c's held replies are gone. */
void d_hold_drop(struct conn *c);
/* The writer options of registry @ro's --data-dir (DIR/NAME in @buf). */
int d_persist_opts(struct daemon *d, const struct d_regopt *ro,
		   shmreg_writer_opts_t *wo, char *buf, size_t cap);
/* At exit: the log counters of each persistent registry, logged. */
void d_log_persist_stats(struct daemon *d);

/* ---- auth.c ---- */
/* Read the peer's credentials into @c and decide whether it may use the
 * daemon: whether any registry's allow lists admit it.  Returns true when
 * allowed. */
bool auth_peer(struct daemon *d, struct conn *c);
/* Whether the peer of @c (auth_peer has read its credentials) may write
 * to @r: that registry's own lists.  HELLO must check it and answer
 * -EACCES when false. */
bool auth_reg(const struct conn *c, const struct reg *r);

#endif /* SHMREGD_DAEMON_H */
