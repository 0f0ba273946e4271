/* SPDX-License-Identifier: MIT */
/*
 * req.c - the request thread: clients' writes, one at a time, to etcd, and
 * the owners' leases.
 *
 * Writes (job_body() has each one's request).  A plain put is /v3/kv/put;
 * a put with expect_rev is a txn comparing the key's mod_revision (or, for
 * SHMREG_REV_ABSENT, its create_revision with 0: absent), whose failure is
 * the local -EEXIST; attributes live in the key's sidecar, written or
 * deleted in the same txn.  A BATCH comes as one prepared txn (batch.c),
 * and so do a put with a parent, a delete and a tree delete (tree.c); a
 * failed one is told apart by its failure branch.
 * Each job is bounded by its deadline (--etcd-timeout): a member that does
 * not answer is -ETIMEDOUT, no member reachable -EAGAIN.
 *
 * Owners.  Each owner (a pid, or a connection for SHMREG_EPHEMERAL) gets
 * one etcd lease, granted at its first put with --etcd-lease-ttl and kept
 * here, in this thread only (so the table needs no lock).  Between jobs
 * the thread sends every lease a keepalive each TTL/3; when the owner ends
 * the loop queues MJ_REVOKE, which revokes the lease at once, and etcd
 * deletes its keys on every host.  Jobs run in queue order, so an owner's
 * revoke always follows its puts.  If this daemon dies, the keepalives stop
 * and etcd deletes the keys after the TTL.  A lease etcd no longer knows
 * (expired while etcd was unreachable) is granted anew at the next put.
 *
 * TTLs.  A put with a TTL gets a lease of its own, granted just before it
 * with the TTL in whole seconds and never kept alive nor kept here: etcd
 * deletes the key when it runs out, and every mirror sees the delete.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../daemon.h"
#include "internal.h"
#include "req.h"


char *mirror_b64(const uint8_t *p, size_t n)
{
	char *s = malloc(mdec_b64_len(n) + 1);

	if (s)
		mdec_b64_encode(p, n, s);
	return s;
}

struct mlease **lease_slot(struct rstate *rs, enum mowner_kind kind,
			   uint64_t id)
{
	struct mlease **pp;

	/* bounded by the owners with keys in etcd through this daemon */
	for (pp = &rs->leases; *pp; pp = &(*pp)->next)
		if ((*pp)->kind == kind && (*pp)->id == id)
			break;
	return pp;
}

int call(struct rstate *rs, const char *path, const char *body,
	 long timeout_ms, struct hbuf *out)
{
	int st = hclient_post(&rs->hc, path, body, timeout_ms, out);

	if (st < 0)
		return st == -ECANCELED ? -ESHUTDOWN : st;
	if (st != 200) {
		int code = mdec_error_code(out->p, out->len);

		hbuf_free(out);
		/* 14 Unavailable, 4 DeadlineExceeded: the cluster has no
		 * leader right now; 5 NotFound (a lease); anything else is
		 * a request etcd refused */
		return code == 14 ? -EAGAIN : code == 4 ? -ETIMEDOUT
		     : code == 5 ? -ENOENT : -EIO;
	}
	return 0;
}

/* A new lease of @ttl_s seconds.  Returns its id or -errno. */
static int64_t grant(struct rstate *rs, int64_t ttl_s, long timeout_ms)
{
	struct hbuf out;
	char body[64];
	int64_t lid, ttl;
	int rc;

	snprintf(body, sizeof(body), "{\"TTL\":\"%lld\"}", (long long)ttl_s);
	rc = call(rs, "/v3/lease/grant", body, timeout_ms, &out);
	if (rc < 0)
		return rc;
	rc = mdec_lease(out.p, out.len, &lid, &ttl);
	hbuf_free(&out);
	if (rc < 0 || lid <= 0 || ttl <= 0)
		return -EIO;
	return lid;
}

/* The lease a put of @kind/@id goes under: a TTL put's own, new one; an
 * owner's, granted when it has none.  Returns the id or -errno. */
static int64_t lease_of(struct rstate *rs, enum mowner_kind kind, uint64_t id,
			long timeout_ms)
{
	struct mlease **pp, *l;
	int64_t lid;

	if (kind == MO_TTL) /* etcd deletes the key at its end */
		return grant(rs, (int64_t)id, timeout_ms);
	pp = lease_slot(rs, kind, id);
	if (*pp)
		return (*pp)->lease;
	lid = grant(rs, rs->m->lease_ttl_s, timeout_ms);
	if (lid < 0)
		return lid;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM; /* the lease expires on its own */
	l->kind = kind;
	l->id = id;
	l->lease = lid;
	lease_keep(rs, l);
	/* so that a successor of this daemon adopts it (owners.c) */
	owner_record(rs, l, timeout_ms);
	return lid;
}

void lease_keep(struct rstate *rs, struct mlease *l)
{
	l->next = rs->leases;
	rs->leases = l;
	if (rs->next_keepalive_ms < http_now_ms())
		rs->next_keepalive_ms = http_now_ms() +
					(int64_t)rs->m->lease_ttl_s * 1000 / 3;
}

static void lease_forget(struct rstate *rs, enum mowner_kind kind,
			 uint64_t id)
{
	struct mlease **pp = lease_slot(rs, kind, id), *l = *pp;

	if (l) {
		*pp = l->next;
		free(l);
	}
}

void sb_add(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL,
			      b->p ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if (b->p && b->len + (size_t)n < b->cap) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap ? b->cap : 256;

		while (cap <= b->len + (size_t)n)
			cap *= 2;
		char *q = realloc(b->p, cap);

		if (!q) {
			b->oom = true;
			return;
		}
		b->p = q;
		b->cap = cap;
	}
}

/* The request body of write @j (a put with lease @lease, 0 = none),
 * malloc'd, and the gateway path in *@path.
 *
 *   put, nothing else:      kv/put
 *   put otherwise:          txn [compare expect_rev]
 *                               success: put key, put or delete sidecar
 *   set_attrs:              txn compare key exists
 *                               success: put key keeping value and lease
 *                                        (a new mod_revision, as locally),
 *                                        put or delete sidecar */
static char *job_body(const struct mjob *j, int64_t lease, const char **path)
{
	char *k = mirror_b64(j->key, j->klen), *v = NULL, *sk = NULL, *a = NULL;
	char lf[48] = "";
	struct sbuf b = { 0 };

	if (j->op == MJ_PUT)
		v = mirror_b64(j->val, j->vlen);
	if (j->op != MJ_PUT || j->sidecar)
		sk = mirror_b64(j->skey, j->sklen);
	if (j->attrs)
		a = mirror_b64(j->attrs, j->alen);
	if (!k || (j->op == MJ_PUT && !v) ||
	    ((j->op != MJ_PUT || j->sidecar) && !sk) || (j->attrs && !a))
		goto out;
	if (lease)
		snprintf(lf, sizeof(lf), ",\"lease\":\"%lld\"",
			 (long long)lease);
	if (j->op == MJ_PUT && !j->expect_rev && !j->sidecar) {
		*path = "/v3/kv/put";
		sb_add(&b, "{\"key\":\"%s\",\"value\":\"%s\"%s}", k, v, lf);
		goto out;
	}
	*path = "/v3/kv/txn";
	sb_add(&b, "{\"compare\":[");
	if (j->op != MJ_PUT)
		sb_add(&b, "{\"key\":\"%s\",\"target\":\"CREATE\",\"result\":"
		       "\"GREATER\",\"create_revision\":\"0\"}", k);
	else if (j->expect_rev == SHMREG_REV_ABSENT)
		sb_add(&b, "{\"key\":\"%s\",\"target\":\"CREATE\",\"result\":"
		       "\"EQUAL\",\"create_revision\":\"0\"}", k);
	else if (j->expect_rev)
		sb_add(&b, "{\"key\":\"%s\",\"target\":\"MOD\",\"result\":"
		       "\"EQUAL\",\"mod_revision\":\"%llu\"}", k,
		       (unsigned long long)j->expect_rev);
	sb_add(&b, "],\"success\":[");
	if (j->op == MJ_SETATTRS)
		sb_add(&b, "{\"request_put\":{\"key\":\"%s\",\"ignore_value\":"
		       "true,\"ignore_lease\":true}}", k);
	else
		sb_add(&b, "{\"request_put\":{\"key\":\"%s\",\"value\":\"%s\""
		       "%s}}", k, v, lf);
	if (sk && a)
		sb_add(&b, ",{\"request_put\":{\"key\":\"%s\",\"value\":\"%s\""
		       "%s}}", sk, a, lf);
	else if (sk)
		sb_add(&b, ",{\"request_delete_range\":{\"key\":\"%s\"}}", sk);
	sb_add(&b, "]}");
out:
	free(k);
	free(v);
	free(sk);
	free(a);
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

static long left_ms(const struct mjob *j)
{
	uint64_t now = d_now_ns();

	return j->deadline_ns > now ? (long)((j->deadline_ns - now) / 1000000)
				    : 0;
}

/* One try of write @j; -ENOENT from a put means "lease not found". */
static int try_write(struct rstate *rs, struct mjob *j)
{
	const char *path = NULL;
	struct hbuf out;
	int64_t rev = 0, lease = 0;
	bool ok = false;
	char *body;
	int rc;

	if (left_ms(j) <= 0)
		return -ETIMEDOUT;
	if (j->op == MJ_PUT && j->owner != MO_NONE) {
		lease = lease_of(rs, j->owner, j->owner_id, left_ms(j));
		if (lease < 0)
			return lease == -ENOENT ? -EIO : (int)lease;
	}
	body = job_body(j, lease, &path);
	if (!body)
		return -ENOMEM;
	rc = call(rs, path, body, left_ms(j), &out);
	free(body);
	if (rc < 0)
		return rc;
	rc = mdec_write(out.p, out.len, &rev, NULL,
			!strcmp(path, "/v3/kv/txn") ? &ok : NULL);
	hbuf_free(&out);
	if (rc < 0)
		return -EIO;
	/* a txn's compare failed: for a put its expect_rev, for set_attrs
	 * the key's existence (etcd used no revision for it) */
	if (!strcmp(path, "/v3/kv/txn") && !ok)
		return j->op == MJ_PUT ? -EEXIST : -ENOENT;
	j->rev = (uint64_t)rev;
	return 0;
}

static void run_write(struct rstate *rs, struct mjob *j)
{
	int rc = try_write(rs, j);

	if (rc == -ENOENT && j->op == MJ_PUT) {
		/* the owner's lease expired (etcd was unreachable longer
		 * than its TTL): a new one, once */
		lease_forget(rs, j->owner, j->owner_id);
		rc = try_write(rs, j);
		if (rc == -ENOENT)
			rc = -EIO;
	}
	j->status = rc;
}

/* The leases BATCH @j's puts go under, each id written into its slots of
 * the body (batch.c left them blank).  Returns 0 or -errno. */
static int batch_leases(struct rstate *rs, struct mjob *j)
{
	for (size_t i = 0; i < j->nleases; i++) {
		int64_t lid = lease_of(rs, j->leases[i].kind, j->leases[i].id,
				       left_ms(j));
		char s[MB_LEASE_SLOT + 1];
		int n;

		if (lid < 0)
			return lid == -ENOENT ? -EIO : (int)lid;
		n = snprintf(s, sizeof(s), "\"%lld\"", (long long)lid);
		if (n < 0 || n > MB_LEASE_SLOT)
			return -EIO; /* an int64 always fits */
		/* bounded by the batch's puts */
		for (size_t k = 0; k < j->nslots; k++) {
			char *at = j->body + j->slots[k].off;

			if (j->slots[k].which != i)
				continue;
			memset(at, ' ', MB_LEASE_SLOT);
			memcpy(at, s, (size_t)n);
		}
	}
	return 0;
}

/* A BATCH: its txn (batch.c built it), with its leases (granted first:
 * an owner's lease etcd no longer knows is granted anew, once).  When a
 * compare failed, the failure branch's ranges tell which: the first, in
 * batch order, whose key etcd holds otherwise, is the failing operation,
 * with the errno the local dry run gives it. */
static void run_batch(struct rstate *rs, struct mjob *j)
{
	int64_t rev = 0, *mods;
	struct hbuf out;
	bool ok = false;
	int rc;

	j->failed = PROTO_BATCH_NO_INDEX;
	if (left_ms(j) <= 0) {
		j->status = -ETIMEDOUT;
		return;
	}
	mods = calloc(j->ncmp ? j->ncmp : 1, sizeof(*mods));
	if (!mods) {
		j->status = -ENOMEM;
		return;
	}
	rc = batch_leases(rs, j);
	if (rc == 0)
		rc = call(rs, "/v3/kv/txn", j->body, left_ms(j), &out);
	if (rc == -ENOENT && j->nleases) {
		/* "lease not found": an owner's expired while etcd was
		 * unreachable longer than its TTL */
		for (size_t i = 0; i < j->nleases; i++)
			lease_forget(rs, j->leases[i].kind, j->leases[i].id);
		rc = batch_leases(rs, j);
		if (rc == 0)
			rc = call(rs, "/v3/kv/txn", j->body, left_ms(j), &out);
	}
	if (rc == -ENOENT)
		rc = -EIO;
	if (rc == 0) {
		if (mdec_txn_ranges(out.p, out.len, &rev, &ok, mods,
				    j->ncmp) < 0)
			rc = -EIO;
		hbuf_free(&out);
	}
	if (rc == 0 && !ok) {
		/* the ranges read the state the compares did (one txn),
		 * so one of them fails, or else one of the range compares
		 * that have no range here (tree.c) did; without those, etcd
		 * is not making sense */
		rc = j->rest_err ? j->rest_err : -EIO;
		for (size_t i = 0; i < j->ncmp; i++) {
			const struct mbcmp *c = &j->cmp[i];
			int e = c->kind == MB_EXISTS ? (mods[i] ? 0 : -ENOENT)
			      : c->kind == MB_ABSENT ? (mods[i] ? -EEXIST : 0)
			      : mods[i] == (int64_t)c->rev ? 0
			      : c->kind == MB_SAME ? -EAGAIN : -EEXIST;

			if (e) {
				rc = e;
				j->failed = c->index;
				break;
			}
		}
	}
	free(mods);
	if (rc == 0)
		j->rev = (uint64_t)rev;
	j->status = rc;
}

int lease_revoke(struct rstate *rs, int64_t lease, long timeout_ms)
{
	struct hbuf out;
	char body[64];
	int rc;

	snprintf(body, sizeof(body), "{\"ID\":\"%lld\"}", (long long)lease);
	rc = call(rs, "/v3/lease/revoke", body, timeout_ms, &out);
	if (rc == 0)
		hbuf_free(&out);
	return rc;
}

static void run_revoke(struct rstate *rs, struct mjob *j)
{
	struct mlease **pp = lease_slot(rs, j->owner, j->owner_id);
	int rc;

	j->status = 0;
	if (!*pp)
		return; /* it never put anything in etcd */
	rc = lease_revoke(rs, (*pp)->lease, left_ms(j));
	/* failed (etcd unreachable): the lease is no longer kept alive, so
	 * etcd deletes the keys at its TTL instead */
	if (rc < 0 && rc != -ENOENT)
		d_log(D_ERR, "registry %s: revoking the lease of an owner: %s "
		      "(its keys go at the lease TTL)", rs->m->r->name,
		      strerror(-rc));
	lease_forget(rs, j->owner, j->owner_id);
	j->status = rc == -ENOENT ? 0 : rc;
}

/* Every lease's keepalive, when due. */
static void keepalive(struct rstate *rs)
{
	long ttl_ms = (long)rs->m->lease_ttl_s * 1000;
	struct mlease **pp = &rs->leases;

	if (!rs->leases || http_now_ms() < rs->next_keepalive_ms)
		return;
	rs->next_keepalive_ms = http_now_ms() + ttl_ms / 3;
	while (*pp) {
		struct mlease *l = *pp;
		struct hbuf out;
		char body[64];
		int64_t id, ttl = 1;
		int rc;

		snprintf(body, sizeof(body), "{\"ID\":\"%lld\"}",
			 (long long)l->lease);
		rc = call(rs, "/v3/lease/keepalive", body, ttl_ms / 3, &out);
		if (rc == 0) {
			if (mdec_lease(out.p, out.len, &id, &ttl) < 0)
				ttl = 1; /* garbage: try again next round */
			hbuf_free(&out);
		}
		if (rc == 0 && ttl <= 0) {
			/* expired: etcd has deleted its keys; a new put of
			 * the owner grants a new lease */
			*pp = l->next;
			free(l);
			continue;
		}
		pp = &l->next;
	}
}

void *mirror_req_main(void *arg)
{
	struct mirror *m = arg;
	struct rstate rs = { .m = m };

	if (hclient_init(&rs.hc, m->urls, m->nurl, &m->stop) < 0)
		return NULL;
	/* before any job: a put of an adopted owner finds its lease */
	owners_adopt(&rs);
	for (;;) {
		struct mjob *j;
		struct mmsg *msg;

		pthread_mutex_lock(&m->jmu);
		while (!m->jhead &&
		       !atomic_load_explicit(&m->stop, memory_order_relaxed)) {
			struct timespec ts;
			int64_t due = rs.next_keepalive_ms;

			if (!rs.leases) {
				pthread_cond_wait(&m->jcv, &m->jmu);
				continue;
			}
			if (http_now_ms() >= due)
				break;
			/* the condvar's clock is CLOCK_MONOTONIC (mirror.c),
			 * as http_now_ms() */
			ts.tv_sec = due / 1000;
			ts.tv_nsec = (due % 1000) * 1000000;
			pthread_cond_timedwait(&m->jcv, &m->jmu, &ts);
		}
		j = m->jhead;
		if (j) {
			m->jhead = j->next;
			if (!m->jhead)
				m->jtail = NULL;
		}
		pthread_mutex_unlock(&m->jmu);
		if (atomic_load_explicit(&m->stop, memory_order_relaxed) &&
		    !j)
			break; /* stopping, nothing left */
		keepalive(&rs);
		if (!j)
			continue;
		if (atomic_load_explicit(&m->stop, memory_order_relaxed))
			j->status = -ESHUTDOWN;
		else if (j->op == MJ_REVOKE)
			run_revoke(&rs, j);
		else if (j->op == MJ_BATCH)
			run_batch(&rs, j);
		else
			run_write(&rs, j);
		msg = &j->reply; /* allocated with the job: always sent */
		msg->kind = MM_REPLY;
		msg->job = j;
		mq_push(m, msg);
	}
	while (rs.leases) {
		struct mlease *l = rs.leases;

		rs.leases = l->next;
		free(l);
	}
	hclient_free(&rs.hc);
	return NULL;
}
