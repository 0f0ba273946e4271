/* SPDX-License-Identifier: MIT */
/* internal.h - the mirror's pieces: queue, threads, loop-side apply. */
#ifndef SHMREGD_MIRROR_INTERNAL_H
#define SHMREGD_MIRROR_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "decode.h"
#include "http.h"
#include "links.h"
#include "mirror.h"
#include "../daemon.h"

/* Messages from the threads to the loop. */
enum mmsg_kind {
	MM_RESYNC,      /* rng: the whole prefix at rng.header_rev */
	MM_EVENTS,      /* ev/nev: every event of revision rev */
	MM_STATE,       /* up: the watch is (not) connected */
	MM_REPLY,       /* a forwarded write's answer */
	MM_ADOPT,       /* pid: an owner whose lease was adopted (owners.c) */
};

struct mmsg {
	enum mmsg_kind kind;
	struct mmsg *next;
	uint64_t rev;
	struct mrange rng;          /* MM_RESYNC: kvs of every page */
	struct mev *ev;             /* MM_EVENTS */
	size_t nev;
	bool up;                    /* MM_STATE */
	int32_t pid;                /* MM_ADOPT */
	struct mjob *job;           /* MM_REPLY */
};

/* A client's write on its way to etcd and back, or (MJ_REVOKE, no conn)
 * the end of an owner: its lease is revoked. */
/* (DEL and DELTREE go as MJ_BATCH: tree.c) */
enum mjob_op { MJ_PUT, MJ_SETATTRS, MJ_REVOKE, MJ_BATCH };
/* A compare of a BATCH's txn (batch.c): what etcd must hold for the first
 * operation touching a key, so a failed txn names that operation. */
/* MB_SAME (tree.c): the key is as this host saw it, mod_revision rev
 * (0: absent); when not, this host was behind: -EAGAIN. */
enum mbcmp_kind { MB_EXISTS, MB_ABSENT, MB_MOD, MB_SAME };
struct mbcmp {
	uint32_t index;             /* the operation's index in the batch */
	enum mbcmp_kind kind;
	uint64_t rev;               /* MB_MOD, MB_SAME: the mod_revision */
};
/* The lease a put's key is attached to (req.c): its owner's, one etcd
 * lease per owner, kept alive while the owner lives; or, MO_TTL, a lease
 * of its own granted with the put's TTL in whole seconds and never kept
 * alive, so etcd deletes the key when it runs out. */
enum mowner_kind { MO_NONE, MO_PID, MO_CONN, MO_TTL };
/* A lease a BATCH's txn needs (batch.c): granted or found by the request
 * thread before the txn is sent, its id then written into the body at
 * each of its slots (struct mbslot). */
struct mblease {
	enum mowner_kind kind;
	uint64_t id;                /* the pid, connection serial or TTL s */
};
/* A slot of MB_LEASE_SLOT blanks in a BATCH's body, after "lease": where
 * the id of lease @which goes, as a JSON string padded with blanks (JSON
 * allows them between tokens: the body keeps its length). */
#define MB_LEASE_SLOT 21            /* '"' + 19 digits of int64 + '"' */
struct mbslot {
	size_t off;
	uint32_t which;
};
struct mjob {
	struct mjob *next;
	enum mjob_op op;
	struct conn *c;             /* holds a reference (c->ops) */
	uint8_t req_op;             /* the wire op and id to answer */
	uint64_t id;
	uint8_t *key, *val;         /* with the prefix: etcd's key */
	size_t klen, vlen;
	uint8_t *skey;              /* its attribute sidecar key */
	size_t sklen;
	uint8_t *attrs;             /* the sidecar's value (MJ_PUT with
	                             * attributes, MJ_SETATTRS), or NULL */
	size_t alen;
	bool sidecar;               /* MJ_PUT: write (attrs) or delete the
	                             * sidecar in the same txn */
	uint64_t expect_rev;        /* 0, a revision or SHMREG_REV_ABSENT */
	enum mowner_kind owner;     /* MJ_PUT: attach to this owner's lease;
	                             * MJ_REVOKE: the owner that ended */
	uint64_t owner_id;          /* the pid, the connection's serial or
	                             * the TTL in seconds */
	uint64_t deadline_ns;       /* d_now_ns() bound of the whole write */
	char *body;                 /* MJ_BATCH: the whole txn request */
	struct mbcmp *cmp;          /* MJ_BATCH: its compares, in index order */
	size_t ncmp;
	struct mblease *leases;     /* MJ_BATCH: the distinct leases its */
	size_t nleases;             /* puts need, and where their ids go */
	struct mbslot *slots;
	size_t nslots;
	uint32_t nops;              /* MJ_BATCH: operations (applied if ok) */
	uint32_t failed;            /* MJ_BATCH answer: PROTO_BATCH_NO_INDEX
	                             * or the failing operation */
	bool single;                /* MJ_BATCH for one PUT, DEL or DELTREE
	                             * (tree.c): answered as that request */
	int rest_err;               /* MJ_BATCH: the errno when no compare of
	                             * cmp[] failed (a range compare did) */
	/* the answer (request thread) */
	int status;
	uint64_t rev;
	uint64_t deleted;
	struct mjob *wnext;         /* waiting for rev to be applied */
	struct mmsg reply;          /* the MM_REPLY that brings it back */
};

/* The reserved sub-prefix of a mirrored prefix: etcd keys P + MIRROR_META
 * are shmreg's own (attribute sidecars: P + MIRROR_ATTRS + key; parent
 * links: tree.c), never entries; local keys starting with it are
 * refused. */
#define MIRROR_META  ".shmreg/"
#define MIRROR_ATTRS ".shmreg/attrs/"
/* parent links: P + MIRROR_LINKS + mdec_link_encode(parent, child) */
#define MIRROR_LINKS ".shmreg/children/"
/* owner records (owners.c) */
#define MIRROR_OWNERS ".shmreg/owners/"

struct D_TAGGED mirror {      /* submitted with D_TAG_MIRROR */
	struct reg *r;
	struct daemon *d;
	const struct d_mirror_opts *o;
	char **urls;                /* split --etcd, malloc'd */
	unsigned nurl;
	uint8_t *prefix;
	size_t plen;
	char *prefix_b64, *end_b64; /* the watched range, base64 */
	atomic_bool stop;
	int efd;                    /* eventfd: the loop's wake-up */
	bool polling;
	/* thread -> loop */
	pthread_mutex_t mu;
	struct mmsg *head, *tail;
	/* loop -> request thread */
	pthread_mutex_t jmu;
	pthread_cond_t jcv;
	struct mjob *jhead, *jtail;
	int64_t lease_ttl_s;        /* --etcd-lease-ttl */
	pthread_t watch_thr, req_thr;
	bool watch_started, req_started;
	uint64_t start_rev;         /* the segment's revision at start */
	bool range_first;           /* the segment is empty: range, then
	                             * watch (else resume the watch) */
	/* loop side */
	struct mjob *waiting;       /* acknowledged, revision not applied */
	struct mlinks links;        /* etcd's parent links (links.h) */
	bool rooting;               /* apply.c: puts make roots (the parent
	                             * is being deleted) */
	uint64_t stale_since;       /* realtime ns, 0: connected */
	struct mirror *next;
};

_Static_assert(_Alignof(struct mirror) > D_TAG_MASK,
	       "a tagged object's low bits must be free for its tag");

void mq_push(struct mirror *m, struct mmsg *msg);

/* mirror.c: what a mirror refuses of PUT @o before anything else (0, or
 * the errno: single puts and a BATCH's alike), and a TTL in whole seconds
 * of an etcd lease (rounded up). */
int mirror_put_refuses(const struct proto_req *o);
uint64_t mirror_ttl_s(int64_t ttl_ns);

/* req.c: a growable request body (oom: a failed append, nothing more is
 * added) and base64 of @n bytes, malloc'd (NULL: out of memory). */
struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
};
void sb_add(struct sbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
char *mirror_b64(const uint8_t *p, size_t n);
/* The batch's leases (at most one per key) and their slots in the body. */
struct mbleases {
	struct mblease *l;
	size_t n;
	struct mbslot *slot;
	size_t nslot;
};
#define MB_NO_LEASE UINT32_MAX

/* txn.c: into @b, as a JSON string: base64 of the etcd key @prefix +
 * @mid + @key, or of @n bytes; ',"lease":' and a blank slot for lease
 * @which of @ls (MB_NO_LEASE: nothing).  The lease put @o of @c goes
 * under (MO_NONE: none), and its index among @ls's, added when new. */
void sb_key(struct sbuf *b, const struct mirror *m, const char *mid,
	    const uint8_t *key, size_t klen);
void sb_bytes(struct sbuf *b, const uint8_t *p, size_t n);
/* The compare @c of etcd key prefix + @key, as a JSON object. */
void sb_compare(struct sbuf *b, const struct mirror *m, const uint8_t *key,
		size_t klen, const struct mbcmp *c);
void sb_lease(struct sbuf *b, struct mbleases *ls, uint32_t which);
struct mblease mirror_put_lease(const struct conn *c,
				const struct proto_req *o);
uint32_t mb_lease_index(struct mbleases *ls, struct mblease l);

/* Free a message other than MM_REPLY (which is part of its job). */
void mmsg_free(struct mmsg *msg);

/* watch.c: the watch thread's body. */
void *mirror_watch_main(void *arg);
/* req.c: the request thread's body. */
void *mirror_req_main(void *arg);
/* Queue a job for the request thread (loop thread). */
void mirror_job_push(struct mirror *m, struct mjob *j);
/* Queue job @j for request @q of @c, bounded by --etcd-timeout; @c waits
 * for its answer (mirror.c, loop thread). */
void mirror_job_send(struct conn *c, const struct proto_req *q,
		     struct mjob *j);
/* batch.c (loop thread): forward the BATCH @q of @c (answers it). */
void mirror_forward_batch(struct conn *c, const struct proto_req *q);
/* tree.c (loop thread): whether PUT @q needs the tree's txn (a parent, or
 * its key has a link to replace); forward such a PUT, or a DEL or DELTREE
 * (answers it); whether local @key has children. */
bool mirror_tree_put(const struct mirror *m, const struct proto_req *q);
void mirror_forward_tree(struct conn *c, const struct proto_req *q);
bool mirror_has_children(const struct mirror *m, const void *key,
			 size_t klen);
/* The etcd key of @parent's link to @child (malloc'd, *@n bytes; NULL:
 * out of memory). */
uint8_t *mirror_link_key(const struct mirror *m, const void *parent,
			 size_t plen, const void *child, size_t clen,
			 size_t *n);
/* apply.c (loop thread): one message into the registry. */
void mirror_apply(struct mirror *m, struct mmsg *msg);
/* apply.c: the links of the registry's tree, when the mirror resumes from
 * it (links to parents no longer there are not in it: see
 * docs/multi-host.md).  Returns 0 or -errno. */
int mirror_links_load(struct mirror *m);

#endif /* SHMREGD_MIRROR_INTERNAL_H */
