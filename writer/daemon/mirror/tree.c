/* SPDX-License-Identifier: MIT */
/*
 * tree.c - parents on a mirror: the txns of a PUT with a parent (or of a
 * key that has one), a DEL and a DELTREE (loop thread).
 *
 * etcd has no tree, so each parent link is a key of its own (empty value)
 * under the reserved sub-prefix, named by the parent first:
 *
 *   P + MIRROR_LINKS + "<length of parent>/" + parent + "/" + child
 *
 * so the links of one parent's children are one etcd range, which a txn
 * can compare as a whole.  The mirror keeps a copy of the links it has
 * seen (links.h, kept by apply.c); with it and the registry at revision
 * R, this host knows every link etcd held at R.  The local rules then
 * become compares that hold only if etcd still is as this host saw it at
 * R where the rule looked:
 *
 *   put K under Q   Q exists (create_revision > 0; else -ENOENT); when K
 *                   moves (a new parent), no link was written since R
 *                   under any node of K's subtree (mod_revision < R + 1
 *                   over each one's children range): Q was not below K at
 *                   R (checked here, -ELOOP) and nothing moved below it
 *                   since, so no cycle; K itself is as seen (its
 *                   mod_revision, or expect_rev's compare when given).
 *                   Success: K, its attribute sidecar, the link to Q
 *                   (under K's lease, so they go together), and the
 *                   deletion of K's link to a former parent.  A put
 *                   without a parent of a key that has one moves it to the
 *                   roots: the same without a new link.
 *   del K           K has no children here (else -ENOTEMPTY at once) and
 *                   nothing was written under K's children range since R
 *                   (else -ENOTEMPTY); K exists (as seen, when it has a
 *                   link).  Success: K, its sidecar, its own link, and
 *                   the whole children range (links left by children that
 *                   other etcd clients deleted).
 *   del_tree K      K's subtree here, at most MT_NODES_MAX nodes (else
 *                   -E2BIG): every node as seen, nothing written under
 *                   any node's children since R.  Success: each node, its
 *                   sidecar and its children range, and K's own link: one
 *                   txn, one revision.
 *
 * A compare that fails because this host was behind etcd is -EAGAIN (read
 * and retry: the local check then answers), a missing key -ENOENT, as the
 * single writes' other errors (req.c).  The job is a MJ_BATCH of one
 * operation answered as that request (mjob.single).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../daemon.h"
#include "internal.h"

/* etcd's default --max-txn-ops bounds each of compare and success */
#define MT_TXN_OPS_MAX 128u
/* del_tree: three success operations per node and K's link */
#define MT_NODES_MAX ((MT_TXN_OPS_MAX - 1) / 3)

struct tnode {
	uint8_t *key;
	size_t klen;
	uint64_t mod;
};

struct tlist {
	struct tnode *v;
	size_t n, cap, max;
	int err;
};

static int tlist_add(struct tlist *t, const void *key, size_t klen,
		     uint64_t mod)
{
	if (t->n == t->max) {
		t->err = -E2BIG;
		return 1;
	}
	if (t->n == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 16;
		struct tnode *v = realloc(t->v, cap * sizeof(*v));

		if (!v) {
			t->err = -ENOMEM;
			return 1;
		}
		t->v = v;
		t->cap = cap;
	}
	t->v[t->n].key = malloc(klen ? klen : 1);
	if (!t->v[t->n].key) {
		t->err = -ENOMEM;
		return 1;
	}
	memcpy(t->v[t->n].key, key, klen);
	t->v[t->n].klen = klen;
	t->v[t->n].mod = mod;
	t->n++;
	return 0;
}

static void tlist_free(struct tlist *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->v[i].key);
	free(t->v);
}

static int add_child(const void *key, size_t klen, const void *val,
		     size_t vlen, const shmreg_info_t *info, void *arg)
{
	(void)val, (void)vlen;
	return tlist_add(arg, key, klen, info->mod_rev);
}

/* @key (mod_revision @mod) and its descendants here, breadth first, at
 * most t->max of them.  Returns 0 or -E2BIG / -ENOMEM / a reader error. */
static int subtree(const struct mirror *m, const void *key, size_t klen,
		   uint64_t mod, struct tlist *t)
{
	shmreg_t *rd = shmreg_writer_reader(m->r->w);

	if (tlist_add(t, key, klen, mod))
		return t->err;
	/* bounded by t->max nodes (the writer's tree has no cycle) */
	for (size_t i = 0; i < t->n; i++) {
		ssize_t n = shmreg_children(rd, t->v[i].key, t->v[i].klen,
					    add_child, t);

		if (t->err)
			return t->err;
		if (n < 0)
			return (int)n;
	}
	return 0;
}

static int local_info(const struct mirror *m, const void *key, size_t klen,
		      shmreg_info_t *info)
{
	ssize_t n = shmreg_get(shmreg_writer_reader(m->r->w), key, klen, NULL,
			       0, info);

	return n < 0 ? (int)n : 0;
}

static int stop_at_one(const void *key, size_t klen, const void *val,
		       size_t vlen, const shmreg_info_t *info, void *arg)
{
	(void)key, (void)klen, (void)val, (void)vlen, (void)info, (void)arg;
	return 1;
}

bool mirror_has_children(const struct mirror *m, const void *key,
			 size_t klen)
{
	return shmreg_children(shmreg_writer_reader(m->r->w), key, klen,
			       stop_at_one, NULL) > 0;
}

uint8_t *mirror_link_key(const struct mirror *m, const void *parent,
			 size_t plen, const void *child, size_t clen,
			 size_t *n)
{
	size_t ll = strlen(MIRROR_LINKS);
	size_t tail = mdec_link_encode(parent, plen, child, clen, NULL);
	uint8_t *k = malloc(m->plen + ll + tail);

	if (!k)
		return NULL;
	memcpy(k, m->prefix, m->plen);
	memcpy(k + m->plen, MIRROR_LINKS, ll);
	mdec_link_encode(parent, plen, child, clen, k + m->plen + ll);
	*n = m->plen + ll + tail;
	return k;
}

/* The etcd range of @parent's children's links: the link key's head up
 * to the '/' after the parent, and its end (that '/' + 1). */
static uint8_t *kids_range(const struct mirror *m, const void *parent,
			   size_t plen, size_t *n)
{
	static const uint8_t any = 'x';
	uint8_t *k = mirror_link_key(m, parent, plen, &any, 1, n);

	if (k)
		(*n)--; /* without the child: ends with the '/' */
	return k;
}

static void sb_kids(struct sbuf *b, const struct mirror *m, const void *key,
		    size_t klen)
{
	size_t n;
	uint8_t *k = kids_range(m, key, klen, &n);

	if (!k) {
		b->oom = true;
		return;
	}
	sb_add(b, "\"key\":");
	sb_bytes(b, k, n);
	k[n - 1]++; /* '/' + 1: every key that starts with the head */
	sb_add(b, ",\"range_end\":");
	sb_bytes(b, k, n);
	free(k);
}

/* Compare: nothing under @key's children range written after @rev. */
static void sb_kids_unchanged(struct sbuf *b, const struct mirror *m,
			      const void *key, size_t klen, uint64_t rev)
{
	sb_add(b, ",{");
	sb_kids(b, m, key, klen);
	sb_add(b, ",\"target\":\"MOD\",\"result\":\"LESS\","
	       "\"mod_revision\":\"%llu\"}", (unsigned long long)rev + 1);
}

static void sb_link(struct sbuf *b, const struct mirror *m, const char *op,
		    const void *parent, size_t plen, const void *child,
		    size_t clen)
{
	size_t n;
	uint8_t *k = mirror_link_key(m, parent, plen, child, clen, &n);

	if (!k) {
		b->oom = true;
		return;
	}
	sb_add(b, ",{\"%s\":{\"key\":", op);
	sb_bytes(b, k, n);
	free(k);
}

/* Delete @key, its sidecar and its children range. */
static void sb_del_node(struct sbuf *b, const struct mirror *m,
			const void *key, size_t klen, bool first)
{
	sb_add(b, "%s{\"request_delete_range\":{\"key\":", first ? "" : ",");
	sb_key(b, m, "", key, klen);
	sb_add(b, "}},{\"request_delete_range\":{\"key\":");
	sb_key(b, m, MIRROR_ATTRS, key, klen);
	sb_add(b, "}},{\"request_delete_range\":{");
	sb_kids(b, m, key, klen);
	sb_add(b, "}}");
}

static void sb_failure(struct sbuf *b, const struct mirror *m,
		       const struct tnode *keys, size_t n)
{
	sb_add(b, "],\"failure\":[");
	for (size_t i = 0; i < n; i++) {
		sb_add(b, "%s{\"request_range\":{\"key\":", i ? "," : "");
		sb_key(b, m, "", keys[i].key, keys[i].klen);
		sb_add(b, ",\"keys_only\":true}}");
	}
	sb_add(b, "]}");
}

/* Send the txn @b (its compares @cmp, which it owns, the keys they name
 * ranged by the failure branch) as request @q of @c. */
static void send_txn(struct conn *c, const struct proto_req *q,
		     struct sbuf *b, struct mbcmp *cmp, size_t ncmp,
		     struct mbleases *ls, int rest_err, uint64_t deleted)
{
	struct mjob *j = b->oom ? NULL : calloc(1, sizeof(*j));

	if (!j) {
		free(b->p);
		free(cmp);
		free(ls->l);
		free(ls->slot);
		conn_mirror_done(c, q->op, q->id, -ENOMEM, 0, 0);
		return;
	}
	j->op = MJ_BATCH;
	j->single = true;
	j->body = b->p;
	j->cmp = cmp;
	j->ncmp = ncmp;
	j->leases = ls->l;
	j->nleases = ls->n;
	j->slots = ls->slot;
	j->nslots = ls->nslot;
	j->rest_err = rest_err;
	j->deleted = deleted;
	j->nops = 1;
	j->failed = PROTO_BATCH_NO_INDEX;
	mirror_job_send(c, q, j);
}

bool mirror_tree_put(const struct mirror *m, const struct proto_req *q)
{
	return q->u.put.plen ||
	       links_get(&m->links, q->u.put.key, q->u.put.klen);
}

static void forward_put(struct conn *c, const struct proto_req *q)
{
	struct mirror *m = c->reg->mirror;
	const uint8_t *key = q->u.put.key, *par = q->u.put.parent;
	size_t klen = q->u.put.klen, plen = q->u.put.plen;
	const struct mlink *old = links_get(&m->links, key, klen);
	uint64_t rev = shmreg_writer_revision(m->r->w);
	struct tlist t = { .max = MT_TXN_OPS_MAX - 2 };
	struct tnode named[2];
	struct mbleases ls = { 0 };
	struct sbuf b = { 0 };
	shmreg_info_t ki, pi;
	struct mbcmp *cmp;
	bool have, moving;
	uint32_t lease;
	int err = 0;

	have = local_info(m, key, klen, &ki) == 0;
	moving = plen && !(old && old->plen == plen &&
			   !memcmp(mlink_parent(old), par, plen));
	/* the writer's order: the key itself, the parent, the cycle */
	if (plen == klen && !memcmp(par, key, klen))
		err = -ELOOP;
	else if (plen && local_info(m, par, plen, &pi) < 0)
		err = -ENOENT;
	else if (moving && have)
		err = subtree(m, key, klen, ki.mod_rev, &t);
	for (size_t i = 0; !err && i < t.n; i++)
		if (t.v[i].klen == plen && !memcmp(t.v[i].key, par, plen))
			err = -ELOOP;
	cmp = calloc(2, sizeof(*cmp));
	ls.l = calloc(1, sizeof(*ls.l));
	ls.slot = calloc(3, sizeof(*ls.slot));
	if (!err && (!cmp || !ls.l || !ls.slot))
		err = -ENOMEM;
	if (err) {
		tlist_free(&t);
		free(cmp);
		free(ls.l);
		free(ls.slot);
		conn_mirror_done(c, q->op, q->id, err, 0, 0);
		return;
	}
	/* the key as the put expects it, or as seen here */
	cmp[0].kind = q->u.put.expect_rev == SHMREG_REV_ABSENT ? MB_ABSENT
		    : q->u.put.expect_rev ? MB_MOD : MB_SAME;
	cmp[0].rev = q->u.put.expect_rev == SHMREG_REV_ABSENT ? 0
		   : q->u.put.expect_rev ? q->u.put.expect_rev
		   : have ? ki.mod_rev : 0;
	named[0] = (struct tnode){ (uint8_t *)key, klen, 0 };
	sb_add(&b, "{\"compare\":[");
	sb_compare(&b, m, key, klen, &cmp[0]);
	if (plen) {
		cmp[1].kind = MB_EXISTS;
		named[1] = (struct tnode){ (uint8_t *)par, plen, 0 };
		sb_add(&b, ",");
		sb_compare(&b, m, par, plen, &cmp[1]);
	}
	if (moving && !have)
		sb_kids_unchanged(&b, m, key, klen, rev);
	for (size_t i = 0; i < t.n; i++)
		sb_kids_unchanged(&b, m, t.v[i].key, t.v[i].klen, rev);
	tlist_free(&t);
	lease = mb_lease_index(&ls, mirror_put_lease(c, q));
	sb_add(&b, "],\"success\":[{\"request_put\":{\"key\":");
	sb_key(&b, m, "", key, klen);
	sb_add(&b, ",\"value\":");
	sb_bytes(&b, q->u.put.val, q->u.put.vlen);
	sb_lease(&b, &ls, lease);
	if (q->u.put.attrs.n) {
		sb_add(&b, "}},{\"request_put\":{\"key\":");
		sb_key(&b, m, MIRROR_ATTRS, key, klen);
		sb_add(&b, ",\"value\":");
		sb_bytes(&b, q->u.put.attrs.block, q->u.put.attrs.blen);
		sb_lease(&b, &ls, lease);
	} else {
		/* none: deleting one that is not there changes nothing */
		sb_add(&b, "}},{\"request_delete_range\":{\"key\":");
		sb_key(&b, m, MIRROR_ATTRS, key, klen);
	}
	sb_add(&b, "}}");
	if (old && (moving || !plen)) {
		sb_link(&b, m, "request_delete_range", mlink_parent(old),
			old->plen, key, klen);
		sb_add(&b, "}}");
	}
	if (plen) {
		/* written again when it stays: it takes K's new lease */
		sb_link(&b, m, "request_put", par, plen, key, klen);
		sb_lease(&b, &ls, lease);
		sb_add(&b, "}}");
	}
	sb_failure(&b, m, named, plen ? 2 : 1);
	if (ls.n && ls.l[0].kind == MO_CONN)
		c->mirror_eph = true;
	send_txn(c, q, &b, cmp, plen ? 2 : 1, &ls, -EAGAIN, 0);
}

static void forward_del(struct conn *c, const struct proto_req *q)
{
	struct mirror *m = c->reg->mirror;
	const uint8_t *key = q->u.del.key;
	size_t klen = q->u.del.klen;
	const struct mlink *old = links_get(&m->links, key, klen);
	uint64_t rev = shmreg_writer_revision(m->r->w);
	bool tree = q->op == PROTO_OP_DELTREE;
	struct tlist t = { .max = tree ? MT_NODES_MAX : 1 };
	struct mbleases none = { 0 };
	struct sbuf b = { 0 };
	struct mbcmp *cmp;
	shmreg_info_t ki;
	int err = 0;

	if (local_info(m, key, klen, &ki) < 0) {
		/* absent here: etcd may have it (this host is behind); the
		 * txn decides, a range compare for what this host cannot
		 * know of its children */
		ki.mod_rev = 0;
	} else if (!tree && mirror_has_children(m, key, klen)) {
		err = -ENOTEMPTY;
	}
	if (!err)
		err = tree && ki.mod_rev ? subtree(m, key, klen, ki.mod_rev, &t)
					 : tlist_add(&t, key, klen, ki.mod_rev)
					 ? t.err : 0;
	cmp = err ? NULL : calloc(t.n, sizeof(*cmp));
	if (!err && !cmp)
		err = -ENOMEM;
	if (err) {
		tlist_free(&t);
		conn_mirror_done(c, q->op, q->id, err, 0, 0);
		return;
	}
	sb_add(&b, "{\"compare\":[");
	for (size_t i = 0; i < t.n; i++) {
		/* the key, as seen where it has a link to delete or is part
		 * of a subtree; else only there (as before parents) */
		cmp[i].kind = ki.mod_rev && (old || t.n > 1) ? MB_SAME
							      : MB_EXISTS;
		cmp[i].rev = t.v[i].mod;
		sb_add(&b, "%s", i ? "," : "");
		sb_compare(&b, m, t.v[i].key, t.v[i].klen, &cmp[i]);
		sb_kids_unchanged(&b, m, t.v[i].key, t.v[i].klen, rev);
	}
	sb_add(&b, "],\"success\":[");
	for (size_t i = 0; i < t.n; i++)
		sb_del_node(&b, m, t.v[i].key, t.v[i].klen, i == 0);
	if (old) {
		sb_link(&b, m, "request_delete_range", mlink_parent(old),
			old->plen, key, klen);
		sb_add(&b, "}}");
	}
	sb_failure(&b, m, t.v, t.n);
	send_txn(c, q, &b, cmp, t.n, &none, tree ? -EAGAIN : -ENOTEMPTY, t.n);
	tlist_free(&t);
}

void mirror_forward_tree(struct conn *c, const struct proto_req *q)
{
	if (q->op == PROTO_OP_PUT || q->op == PROTO_OP_PUTX)
		forward_put(c, q);
	else
		forward_del(c, q);
}
