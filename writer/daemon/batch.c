/* SPDX-License-Identifier: MIT */
/* batch.c - BATCH: check every operation, then apply them all in one
 * commit, or none. */
#include <errno.h>
#include <string.h>

#include "batch_sim.h"
#include "daemon.h"

/*
 * How it works
 *
 * The embedded writer groups changes into one commit (batch_begin/end)
 * but cannot take one back.  So a batch is decided before anything is
 * written: a dry run (batch_sim.c) asks each operation, in order, every
 * question the writer would ask it (sizes and names as proto_check_request,
 * the owner pid alive, compare-and-set against the mod_rev the entry has
 * at that point of the batch, the parent existing then, no cycle, no
 * children left under a plain delete, the key there for a delete or an
 * attribute update) against the segment's state plus the batch's earlier
 * operations, and records the operation's effect.  The first operation
 * that would fail ends the dry run: nothing is written, no revision is
 * used, and the reply names that operation and its errno.
 *
 * Only when every operation passes is the batch applied, in one writer
 * batch: one commit, seen whole or not at all by a validated snapshot
 * read.  Each change keeps its own revision and change-ring event (the
 * ring is indexed by revision); the reply carries the last one, which the
 * dry run predicted exactly (checked).  A compare-and-set is not asked
 * again when applied: it was decided against the same state.
 *
 * What the dry run cannot foresee.  Between the check and the apply (the
 * same event-loop step, no other request in between) the state can still
 * change by the clock and the kernel alone: an entry the batch relies on
 * may reach its TTL, an owner pid may exit, and growing the segment may
 * fail for lack of memory or tmpfs space.  Then the writer refuses that
 * operation, the ones before it stay applied (still in the one commit),
 * the rest are not applied, and the reply says so: the operation's index
 * and errno and how many were applied.  That is the only way "applied" is
 * neither 0 nor all of them.
 */

/* ---- the dry run ---- */

static int check_put(struct daemon *d, struct reg *r, struct sim *s,
		     const struct proto_req *o)
{
	const uint8_t *key = o->u.put.key;
	uint32_t klen = o->u.put.klen;
	shmreg_put_opts_t po;
	uint64_t mod_rev = 0;
	int rc;

	proto_put_opts(o, &po);
	/* watched before the entry exists, as a single PUT (conn.c) */
	if (po.owner_pid) {
		rc = owner_watch(d, po.owner_pid, r);
		if (rc < 0)
			return rc;
	}
	rc = sim_exists(s, key, klen, &mod_rev);
	if (rc < 0)
		return rc;
	/* the writer's compare-and-set rule (shmreg_writer_put) */
	if (po.expect_rev == SHMREG_REV_ABSENT ? rc == 1
	    : po.expect_rev && (rc == 0 || mod_rev != po.expect_rev))
		return -EEXIST;
	if (po.parent) {
		/* the writer's order: the key itself first, then the parent
		 * must exist, then it must not be below the key */
		if (po.parent_len == klen && !memcmp(po.parent, key, klen))
			return -ELOOP;
		rc = sim_exists(s, po.parent, po.parent_len, &mod_rev);
		if (rc <= 0)
			return rc < 0 ? rc : -ENOENT;
		rc = sim_below(s, key, klen, po.parent, po.parent_len);
		if (rc != 0)
			return rc < 0 ? rc : -ELOOP;
	}
	return sim_put(s, key, klen, po.parent, po.parent_len);
}

static int check_op(struct daemon *d, struct reg *r, struct sim *s,
		    const struct proto_req *o)
{
	const uint8_t *key;
	uint32_t klen;
	uint64_t mod_rev;
	int64_t n;
	int rc = proto_check_request(o);

	if (rc)
		return rc;
	if (o->op == PROTO_OP_PUT || o->op == PROTO_OP_PUTX)
		return check_put(d, r, s, o);
	key = o->op == PROTO_OP_SETATTRS ? o->u.setattrs.key : o->u.del.key;
	klen = o->op == PROTO_OP_SETATTRS ? o->u.setattrs.klen
					  : o->u.del.klen;
	rc = sim_exists(s, key, klen, &mod_rev);
	if (rc <= 0)
		return rc < 0 ? rc : -ENOENT;
	switch (o->op) {
	case PROTO_OP_DEL:
		rc = sim_has_children(s, key, klen);
		if (rc != 0)
			return rc < 0 ? rc : -ENOTEMPTY;
		return sim_del(s, key, klen);
	case PROTO_OP_SETATTRS:
		return sim_touch(s, key, klen);
	case PROTO_OP_DELTREE:
		n = sim_del_tree(s, key, klen);
		return n < 0 ? (int)n : 0;
	}
	return -EOPNOTSUPP; /* proto_decode_request() admits no other op */
}

/* Run the dry run; the failing operation's index in *@failed. */
static int dry_run(struct daemon *d, struct reg *r, const struct proto_req *q,
		   uint32_t *failed, uint64_t *final_rev)
{
	struct proto_batch_iter it;
	struct proto_req o;
	struct sim *s;
	uint32_t i = 0;
	int rc;

	s = sim_new(shmreg_writer_reader(r->w), shmreg_writer_revision(r->w));
	if (!s) {
		*failed = PROTO_BATCH_NO_INDEX; /* about no one operation */
		return -ENOMEM;
	}
	proto_batch_iter_init(&it, q);
	while ((rc = proto_batch_next(&it, &o)) > 0) {
		rc = check_op(d, r, s, &o);
		if (rc < 0)
			break;
		i++;
	}
	*failed = i;
	*final_rev = sim_revision(s);
	sim_free(s);
	return rc;
}

/* A failed batch may have had owner pids watched for its puts: those
 * that now own nothing are released (owner_ref with 0). */
static void release_watches(struct daemon *d, const struct proto_req *q,
			    uint32_t from)
{
	struct proto_batch_iter it;
	struct proto_req o;
	uint32_t i = 0;

	proto_batch_iter_init(&it, q);
	while (proto_batch_next(&it, &o) > 0) {
		if (i++ >= from &&
		    (o.op == PROTO_OP_PUT || o.op == PROTO_OP_PUTX))
			owner_ref(d, o.u.put.owner_pid, 0);
	}
}

int batch_dry_run(struct daemon *d, struct reg *r, const struct proto_req *q,
		  uint32_t *failed)
{
	uint64_t want_rev;
	int rc = dry_run(d, r, q, failed, &want_rev);

	/* nothing is applied here: no owner pid keeps a watch for it */
	release_watches(d, q, 0);
	if (rc == 0)
		*failed = PROTO_BATCH_NO_INDEX;
	return rc;
}

/* ---- applying: what conn.c does for each single request ---- */

static bool plain(const shmreg_put_opts_t *po)
{
	return !po->owner_pid && !po->flags && !po->ttl_ns && !po->expect_rev &&
	       !po->nattrs && !po->parent;
}

static int64_t apply_put(struct daemon *d, struct reg *r, struct conn *c,
			 const struct proto_req *o)
{
	shmreg_put_opts_t po;
	int64_t ret;
	pid_t old;
	int err;

	proto_put_opts(o, &po);
	po.expect_rev = 0; /* decided by the dry run, on the same state */
	old = owner_of(d, r, o->u.put.key, o->u.put.klen);
	/* no option at all: NULL, the writer's fast path for a plain put */
	ret = shmreg_writer_put(r->w, o->u.put.key, o->u.put.klen,
				o->u.put.val, o->u.put.vlen,
				plain(&po) ? NULL : &po);
	if (ret <= 0) {
		owner_ref(d, po.owner_pid, 0);
		return ret < 0 ? ret : -EPROTO;
	}
	err = eph_after_put(d, r, c, o->u.put.key, o->u.put.klen,
			    po.flags & SHMREG_EPHEMERAL, po.owner_pid);
	if (err < 0) {
		/* cannot be tracked, so must not stay (as conn.c) */
		shmreg_writer_del(r->w, o->u.put.key, o->u.put.klen);
		owner_ref(d, old, -1);
		owner_ref(d, po.owner_pid, 0);
		return err;
	}
	owner_ref(d, po.owner_pid, 1);
	owner_ref(d, old, -1);
	return ret;
}

static int64_t apply_op(struct daemon *d, struct reg *r, struct conn *c,
			const struct proto_req *o)
{
	int64_t ret;
	pid_t old;

	switch (o->op) {
	case PROTO_OP_PUT:
	case PROTO_OP_PUTX:
		return apply_put(d, r, c, o);
	case PROTO_OP_SETATTRS:
		return shmreg_writer_set_attrs(r->w, o->u.setattrs.key,
					       o->u.setattrs.klen,
					       o->u.setattrs.attrs.a,
					       o->u.setattrs.attrs.n);
	case PROTO_OP_DEL:
	case PROTO_OP_DELTREE:
		old = owner_of(d, r, o->u.del.key, o->u.del.klen);
		ret = o->op == PROTO_OP_DEL
			      ? shmreg_writer_del(r->w, o->u.del.key,
						  o->u.del.klen)
			      : shmreg_writer_del_tree(r->w, o->u.del.key,
						       o->u.del.klen);
		if (ret > 0 || ret == -ENOENT)
			eph_after_del(d, r, o->u.del.key, o->u.del.klen);
		if (ret > 0)
			owner_ref(d, old, -1);
		return ret;
	}
	return -EOPNOTSUPP;
}

static void apply(struct daemon *d, struct reg *r, struct conn *c,
		  const struct proto_req *q, struct batch_result *res)
{
	struct proto_batch_iter it;
	struct proto_req o;

	shmreg_writer_batch_begin(r->w);
	proto_batch_iter_init(&it, q);
	while (proto_batch_next(&it, &o) > 0) {
		int64_t ret = apply_op(d, r, c, &o);

		if (ret < 0) {
			res->err = (int)ret;
			res->failed = res->applied;
			break;
		}
		res->applied++;
	}
	shmreg_writer_batch_end(r->w);
	if (res->err)
		release_watches(d, q, res->applied + 1);
}

void batch_run(struct daemon *d, struct reg *r, struct conn *c,
	       const struct proto_req *q, struct batch_result *res)
{
	uint64_t want_rev = 0;

	memset(res, 0, sizeof(*res));
	res->failed = PROTO_BATCH_NO_INDEX;
	res->err = dry_run(d, r, q, &res->failed, &want_rev);
	if (res->err < 0) {
		release_watches(d, q, 0);
		res->rev = shmreg_writer_revision(r->w);
		return;
	}
	res->failed = PROTO_BATCH_NO_INDEX;
	apply(d, r, c, q, res);
	res->rev = shmreg_writer_revision(r->w);
	if (res->err)
		d_log_limited(D_INFO, "registry %s: batch applied in part: "
			      "operation %u of %u failed when applied: %s",
			      r->name, res->failed, q->u.batch.nops,
			      strerror(-res->err));
	else if (res->rev != want_rev)
		/* cannot happen: the dry run is the writer's rules */
		d_log_limited(D_ERR, "registry %s: batch: dry run predicted "
			      "revision %llu, committed %llu", r->name,
			      (unsigned long long)want_rev,
			      (unsigned long long)res->rev);
}

void batch_request(struct conn *c, const struct proto_req *q)
{
	struct batch_result res;
	uint8_t body[PROTO_BATCH_REPLY];

	if (!c->reg) {
		conn_reply(c, q->op, q->id, -ENOTCONN, 0, NULL, 0);
		return;
	}
	batch_run(c->d, c->reg, c, q, &res);
	proto_put_u32(body, res.failed);
	proto_put_u32(body + 4, res.applied);
	conn_reply(c, q->op, q->id, res.err, res.rev, body, sizeof(body));
}
