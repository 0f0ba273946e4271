/* SPDX-License-Identifier: MIT */
/*
 * batch.c - a client's BATCH on a mirror: one etcd txn, all or nothing.
 *
 * First the batch is checked here, on this host: what a mirror cannot
 * hold (what single writes refuse too: unknown flags, two leases for one
 * key; and parents, and keys that have one or have children here) and
 * reserved keys,
 * then the local dry run (../batch.c), which refuses with the index and
 * errno the local batch path gives.  Only a batch that passes both goes
 * to etcd, as one txn:
 *
 *   compare   for the first operation touching each key, what the dry run
 *             assumed of etcd's state: a put with expect_rev its
 *             mod_revision (or, SHMREG_REV_ABSENT, create_revision 0), a
 *             delete, tree delete or attribute update the key's existence.
 *             Later operations on the key depend only on the batch's own
 *             earlier ones, which the dry run decided.
 *   success   each key's net effect (etcd refuses a key twice in a txn):
 *             put, delete or attribute update of the key, and its
 *             attribute sidecar put or deleted (docs/multi-host.md).
 *   failure   a keys-only range of each compared key, so a txn that failed
 *             (this host lagged etcd) names its operation (req.c).
 *
 * Leases.  A put with an owner (pid or SHMREG_EPHEMERAL) or a TTL goes
 * under a lease, as a single put (req.c): the owner's, or one of its own
 * with the TTL in whole seconds (puts of one batch with the same TTL
 * share one: granted at the same moment, it ends for all at once).  A txn
 * cannot grant leases, so the body leaves a blank slot after each
 * "lease": and the request thread grants (or finds) the batch's distinct
 * leases before it sends the txn and writes their ids into the slots.  A
 * txn that fails leaves a TTL lease it granted to expire on its own.
 *
 * etcd gives the whole txn one revision; the mirror applies its events in
 * one commit at that revision, and the reply waits for it as any
 * forwarded write (mirror.c).  A batch touches no key of the tree (its
 * txn would have to move links: refused above, tree.c does that for
 * single writes), so a tree delete in one deletes the one key.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../daemon.h"
#include "internal.h"

/* etcd's default --max-txn-ops: each key takes two (key and sidecar) */
#define MB_TXN_OPS_MAX 128u
#define MB_KEYS_MAX (MB_TXN_OPS_MAX / 2)

enum mb_eff { MB_PUT, MB_DEL, MB_SETATTRS };

/* One distinct key of the batch and what the batch leaves of it (pointers
 * into the request, which stays valid while the txn is built). */
struct mbkey {
	const uint8_t *key;
	uint32_t klen;
	enum mb_eff eff;
	const uint8_t *val;
	uint32_t vlen;
	const uint8_t *attrs;       /* NULL: none (the sidecar is deleted) */
	uint32_t alen;
	struct mblease owner;       /* MB_PUT: the last put's lease */
	uint32_t lease;             /* its index in the job's leases, or
	                             * MB_NO_LEASE */
};

static const uint8_t *op_key(const struct proto_req *o, uint32_t *klen)
{
	switch (o->op) {
	case PROTO_OP_PUT:
	case PROTO_OP_PUTX:
		*klen = o->u.put.klen;
		return o->u.put.key;
	case PROTO_OP_SETATTRS:
		*klen = o->u.setattrs.klen;
		return o->u.setattrs.key;
	default:
		*klen = o->u.del.klen;
		return o->u.del.key;
	}
}

/* What a mirror refuses of operation @o before anything else: 0 or the
 * errno its single write gets (mirror.c); and the tree: a parent, or a key
 * that has one or has children here (its txn would have to move links:
 * tree.c does that for single writes only). */
static int mirror_refuses(const struct mirror *m, const struct proto_req *o)
{
	size_t ml = strlen(MIRROR_META);
	uint32_t klen;
	const uint8_t *key = op_key(o, &klen);
	bool put = o->op == PROTO_OP_PUT || o->op == PROTO_OP_PUTX;

	if (klen >= ml && !memcmp(key, MIRROR_META, ml))
		return -EINVAL;
	if ((put && o->u.put.plen) || links_get(&m->links, key, klen) ||
	    mirror_has_children(m, key, klen))
		return -EOPNOTSUPP;
	return put ? mirror_put_refuses(o) : 0;
}

static void reply(struct conn *c, const struct proto_req *q, int err,
		  uint32_t failed)
{
	conn_mirror_batch_done(c, q->id, err, 0, failed, 0);
}

static void txn_effect(struct sbuf *b, const struct mirror *m,
		       const struct mbkey *k, struct mbleases *ls)
{
	if (k->eff == MB_DEL) {
		sb_add(b, "{\"request_delete_range\":{\"key\":");
	} else {
		sb_add(b, "{\"request_put\":{\"key\":");
	}
	sb_key(b, m, "", k->key, k->klen);
	if (k->eff == MB_PUT) {
		sb_add(b, ",\"value\":");
		sb_bytes(b, k->val, k->vlen);
		sb_lease(b, ls, k->lease);
	} else if (k->eff == MB_SETATTRS) {
		/* a new mod_revision, value and lease kept, as locally */
		sb_add(b, ",\"ignore_value\":true,\"ignore_lease\":true");
	}
	sb_add(b, "}},");
	/* the sidecar: deleting one that is not there changes nothing */
	if (k->eff != MB_DEL && k->attrs) {
		sb_add(b, "{\"request_put\":{\"key\":");
		sb_key(b, m, MIRROR_ATTRS, k->key, k->klen);
		sb_add(b, ",\"value\":");
		sb_bytes(b, k->attrs, k->alen);
		/* an attribute update keeps the key's lease but cannot name
		 * it (docs/multi-host.md, limits) */
		if (k->eff == MB_PUT)
			sb_lease(b, ls, k->lease);
	} else {
		sb_add(b, "{\"request_delete_range\":{\"key\":");
		sb_key(b, m, MIRROR_ATTRS, k->key, k->klen);
	}
	sb_add(b, "}}");
}

/* Collapse the batch into its keys and first-touch compares.  Returns 0,
 * or -E2BIG (more keys than a txn takes) / -ENOMEM. */
static int collapse(const struct conn *c, const struct proto_req *q,
		    struct mbkey *keys, size_t *nkeys, struct mbcmp *cmp,
		    size_t *ncmp, size_t *cmp_key)
{
	struct proto_batch_iter it;
	struct proto_req o;
	uint32_t i = 0;

	*nkeys = *ncmp = 0;
	proto_batch_iter_init(&it, q);
	for (; proto_batch_next(&it, &o) > 0; i++) {
		uint32_t klen;
		const uint8_t *key = op_key(&o, &klen);
		struct mbkey *k = NULL;
		size_t n;

		/* bounded by MB_KEYS_MAX */
		for (n = 0; n < *nkeys; n++)
			if (keys[n].klen == klen &&
			    !memcmp(keys[n].key, key, klen)) {
				k = &keys[n];
				break;
			}
		if (!k) {
			struct mbcmp *cm = &cmp[*ncmp];
			bool put = o.op == PROTO_OP_PUT ||
				   o.op == PROTO_OP_PUTX;

			if (*nkeys == MB_KEYS_MAX)
				return -E2BIG;
			k = &keys[(*nkeys)++];
			memset(k, 0, sizeof(*k));
			k->key = key;
			k->klen = klen;
			k->eff = MB_SETATTRS; /* until an effect says more */
			cm->index = i;
			cm->rev = 0;
			if (!put)
				cm->kind = MB_EXISTS;
			else if (o.u.put.expect_rev == SHMREG_REV_ABSENT)
				cm->kind = MB_ABSENT;
			else
				cm->kind = MB_MOD, cm->rev = o.u.put.expect_rev;
			if (!put || o.u.put.expect_rev)
				cmp_key[(*ncmp)++] = (size_t)(k - keys);
		}
		switch (o.op) {
		case PROTO_OP_PUT:
		case PROTO_OP_PUTX:
			k->eff = MB_PUT;
			k->val = o.u.put.val;
			k->vlen = o.u.put.vlen;
			k->attrs = o.u.put.attrs.n ? o.u.put.attrs.block : NULL;
			k->alen = o.u.put.attrs.blen;
			/* the last put of the key decides, as its value */
			k->owner = mirror_put_lease(c, &o);
			break;
		case PROTO_OP_SETATTRS:
			/* on a put of this batch it changes the put's
			 * attributes; else the key's (the dry run saw it
			 * exist, so it is not deleted here) */
			k->attrs = o.u.setattrs.attrs.n
					   ? o.u.setattrs.attrs.block : NULL;
			k->alen = o.u.setattrs.attrs.blen;
			break;
		default:
			k->eff = MB_DEL;
			k->attrs = NULL;
			break;
		}
	}
	return 0;
}

/* The distinct leases of the keys the batch leaves put. */
static void collect_leases(struct mbkey *keys, size_t nkeys,
			   struct mbleases *ls)
{
	for (size_t i = 0; i < nkeys; i++)
		keys[i].lease = keys[i].eff == MB_PUT
					? mb_lease_index(ls, keys[i].owner)
					: MB_NO_LEASE;
}

/* Watch the batch's owner pids (the dry run watched and released them)
 * and mark a connection owner, as a single put does (mirror.c).  Returns
 * 0, or -errno with the operation's index in *@failed. */
static int watch_owners(struct conn *c, const struct proto_req *q,
			uint32_t *failed)
{
	struct proto_batch_iter it;
	struct proto_req o;
	uint32_t i = 0;

	proto_batch_iter_init(&it, q);
	for (; proto_batch_next(&it, &o) > 0; i++) {
		int rc;

		if (o.op != PROTO_OP_PUT && o.op != PROTO_OP_PUTX)
			continue;
		if (o.u.put.flags & SHMREG_EPHEMERAL)
			c->mirror_eph = true;
		if (!o.u.put.owner_pid)
			continue;
		rc = owner_watch(c->d, o.u.put.owner_pid, c->reg);
		if (rc < 0) {
			*failed = i;
			return rc;
		}
	}
	return 0;
}

static char *txn_body(const struct mirror *m, const struct mbkey *keys,
		      size_t nkeys, const struct mbcmp *cmp, size_t ncmp,
		      const size_t *cmp_key, struct mbleases *ls)
{
	struct sbuf b = { 0 };

	sb_add(&b, "{\"compare\":[");
	for (size_t i = 0; i < ncmp; i++) {
		if (i)
			sb_add(&b, ",");
		sb_compare(&b, m, keys[cmp_key[i]].key, keys[cmp_key[i]].klen,
			   &cmp[i]);
	}
	sb_add(&b, "],\"success\":[");
	for (size_t i = 0; i < nkeys; i++) {
		if (i)
			sb_add(&b, ",");
		txn_effect(&b, m, &keys[i], ls);
	}
	sb_add(&b, "],\"failure\":[");
	for (size_t i = 0; i < ncmp; i++) {
		const struct mbkey *k = &keys[cmp_key[i]];

		sb_add(&b, "%s{\"request_range\":{\"key\":", i ? "," : "");
		sb_key(&b, m, "", k->key, k->klen);
		sb_add(&b, ",\"keys_only\":true}}");
	}
	sb_add(&b, "]}");
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

void mirror_forward_batch(struct conn *c, const struct proto_req *q)
{
	struct mirror *m = c->reg->mirror;
	struct proto_batch_iter it;
	struct proto_req o;
	uint32_t i = 0, refused = PROTO_BATCH_NO_INDEX, failed;
	int rerr = 0, err, rc;
	struct mbkey *keys;
	struct mbcmp *cmp;
	size_t nkeys, ncmp, *cmp_key;
	struct mbleases ls = { 0 };
	struct mjob *j;

	/* the first operation a mirror refuses, then the dry run: the
	 * earlier of the two failures is the local path's answer */
	proto_batch_iter_init(&it, q);
	while ((rc = proto_batch_next(&it, &o)) > 0) {
		rerr = proto_check_request(&o);
		if (!rerr)
			rerr = mirror_refuses(m, &o);
		if (rerr) {
			refused = i;
			break;
		}
		i++;
	}
	if (rc < 0) {
		reply(c, q, rc, PROTO_BATCH_NO_INDEX);
		return;
	}
	err = batch_dry_run(c->d, c->reg, q, &failed);
	if (err < 0 && (refused == PROTO_BATCH_NO_INDEX || failed < refused)) {
		reply(c, q, err, failed);
		return;
	}
	if (refused != PROTO_BATCH_NO_INDEX) {
		reply(c, q, rerr, refused);
		return;
	}
	if (q->u.batch.nops == 0) {
		/* nothing to send: the revision stays */
		conn_mirror_batch_done(c, q->id, 0,
				       shmreg_writer_revision(c->reg->w),
				       PROTO_BATCH_NO_INDEX, 0);
		return;
	}
	err = watch_owners(c, q, &failed);
	if (err < 0) {
		reply(c, q, err, failed);
		return;
	}
	keys = calloc(MB_KEYS_MAX, sizeof(*keys));
	cmp = calloc(MB_KEYS_MAX, sizeof(*cmp));
	cmp_key = calloc(MB_KEYS_MAX, sizeof(*cmp_key));
	/* one lease per key at most, in two places each: key and sidecar */
	ls.l = calloc(MB_KEYS_MAX, sizeof(*ls.l));
	ls.slot = calloc(2 * MB_KEYS_MAX, sizeof(*ls.slot));
	j = calloc(1, sizeof(*j));
	err = keys && cmp && cmp_key && ls.l && ls.slot && j ? 0 : -ENOMEM;
	if (!err)
		err = collapse(c, q, keys, &nkeys, cmp, &ncmp, cmp_key);
	if (!err) {
		collect_leases(keys, nkeys, &ls);
		j->body = txn_body(m, keys, nkeys, cmp, ncmp, cmp_key, &ls);
		if (!j->body)
			err = -ENOMEM;
	}
	free(keys);
	free(cmp_key);
	if (err) {
		free(cmp);
		free(ls.l);
		free(ls.slot);
		if (j)
			free(j->body);
		free(j);
		reply(c, q, err, PROTO_BATCH_NO_INDEX);
		return;
	}
	j->leases = ls.l;
	j->nleases = ls.n;
	j->slots = ls.slot;
	j->nslots = ls.nslot;
	j->op = MJ_BATCH;
	j->cmp = cmp;
	j->ncmp = ncmp;
	j->nops = q->u.batch.nops;
	j->failed = PROTO_BATCH_NO_INDEX;
	mirror_job_send(c, q, j);
}
