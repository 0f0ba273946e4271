/* SPDX-License-Identifier: MIT */
/* req.h - the request thread's state, shared by req.c (writes, leases)
 * and owners.c (the owner records a successor adopts).  That thread's
 * only: no lock. */
#ifndef SHMREGD_MIRROR_REQ_H
#define SHMREGD_MIRROR_REQ_H

#include "internal.h"

/* An owner's lease, held by this daemon. */
struct mlease {
	enum mowner_kind kind;      /* MO_PID or MO_CONN */
	uint64_t id;                /* the pid or the connection's serial */
	int64_t lease;
	struct mlease *next;
};

struct rstate {
	struct mirror *m;
	struct hclient hc;
	struct mlease *leases;
	int64_t next_keepalive_ms;
};

/* req.c: a call whose reply needs only its HTTP status and body (0, the
 * body in @out; or -errno: -ENOENT for etcd's NotFound); the table slot
 * of an owner's lease; a new lease kept alive from now on. */
int call(struct rstate *rs, const char *path, const char *body,
	 long timeout_ms, struct hbuf *out);
struct mlease **lease_slot(struct rstate *rs, enum mowner_kind kind,
			   uint64_t id);
void lease_keep(struct rstate *rs, struct mlease *l);
/* Revoke @lease (etcd deletes its keys): 0 or -errno (-ENOENT: gone
 * already).  A lease not revoked ends at its TTL once not kept alive. */
int lease_revoke(struct rstate *rs, int64_t lease, long timeout_ms);

/* owners.c: record lease @l in etcd (a key under the lease itself, named
 * by this host, registry and owner); at start, adopt the records a
 * predecessor left: the leases of owners that still live are kept alive
 * here, the others revoked. */
void owner_record(struct rstate *rs, const struct mlease *l, long timeout_ms);
void owners_adopt(struct rstate *rs);

#endif /* SHMREGD_MIRROR_REQ_H */
