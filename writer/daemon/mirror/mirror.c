/* SPDX-License-Identifier: MIT */
/*
 * mirror.c - a mirrored registry's life: start and stop its threads, take
 * their messages in the loop (the queue's ordering argument is in
 * mirror.h), and forward clients' writes.
 *
 * A forwarded write is answered only when etcd acknowledged it and the
 * registry has applied its revision (which arrives through the watch), so
 * a client reads its own write on this host as soon as it has the answer.
 * A write whose revision does not arrive within --etcd-timeout is answered
 * -ETIMEDOUT (it is in etcd; the mirror shows it once the watch recovers).
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../daemon.h"
#include "clock.h"
#include "internal.h"

static struct mirror *mirrors;

static void owner_adopted(struct mirror *m, pid_t pid);

void mmsg_free(struct mmsg *msg)
{
	if (msg->kind == MM_RESYNC)
		mdec_range_free(&msg->rng);
	for (size_t i = 0; i < msg->nev; i++)
		mkv_free(&msg->ev[i].kv);
	free(msg->ev);
	free(msg);
}

void mq_push(struct mirror *m, struct mmsg *msg)
{
	uint64_t one = 1;

	msg->next = NULL;
	pthread_mutex_lock(&m->mu);
	if (m->tail)
		m->tail->next = msg;
	else
		m->head = msg;
	m->tail = msg;
	/* releases the message's stores; pairs with the lock in
	 * mirror_cqe() */
	pthread_mutex_unlock(&m->mu);
	/* after the unlock: a loop woken by it finds the message linked */
	if (write(m->efd, &one, sizeof(one)) < 0) {
		/* EAGAIN only: the counter is nonzero, a wake-up pending */
	}
}

static void arm_poll(struct daemon *d, struct mirror *m)
{
	struct io_uring_sqe *sqe;

	if (m->polling)
		return;
	sqe = d_sqe(d);
	io_uring_prep_poll_multishot(sqe, m->efd, POLLIN);
	io_uring_sqe_set_data64(sqe, d_ud(m, D_TAG_MIRROR));
	m->polling = true;
}

/* "a,b,c" into m->urls, each without a trailing '/'. */
static int split_urls(struct mirror *m, const char *s)
{
	unsigned n = 1;

	for (const char *p = s; *p; p++)
		n += *p == ',';
	m->urls = calloc(n, sizeof(*m->urls));
	if (!m->urls)
		return -ENOMEM;
	while (*s) {
		const char *e = strchr(s, ',');
		size_t len = e ? (size_t)(e - s) : strlen(s);

		while (len && s[len - 1] == '/')
			len--;
		if (len) {
			m->urls[m->nurl] = strndup(s, len);
			if (!m->urls[m->nurl])
				return -ENOMEM;
			m->nurl++;
		}
		if (!e)
			break;
		s = e + 1;
	}
	return m->nurl ? 0 : -EINVAL;
}

/* The watched range: [prefix, prefix with its last byte + 1), base64. */
static int set_range(struct mirror *m)
{
	size_t n = m->plen;
	uint8_t *end = malloc(n ? n : 1);

	if (!end)
		return -ENOMEM;
	memcpy(end, m->prefix, n);
	while (n && end[n - 1] == 0xff)
		n--;
	if (n)
		end[n - 1]++;
	else
		end[n++] = 0; /* "\0": every key after the prefix */
	m->prefix_b64 = malloc(mdec_b64_len(m->plen) + 1);
	m->end_b64 = malloc(mdec_b64_len(n) + 1);
	if (!m->prefix_b64 || !m->end_b64) {
		free(end);
		return -ENOMEM;
	}
	mdec_b64_encode(m->prefix, m->plen, m->prefix_b64);
	mdec_b64_encode(end, n, m->end_b64);
	free(end);
	return 0;
}

static void mirror_free(struct mirror *m)
{
	for (unsigned i = 0; i < m->nurl; i++)
		free(m->urls[i]);
	free(m->urls);
	free(m->prefix);
	free(m->prefix_b64);
	free(m->end_b64);
	if (m->efd >= 0)
		close(m->efd);
	links_clear(&m->links);
	pthread_mutex_destroy(&m->mu);
	pthread_mutex_destroy(&m->jmu);
	pthread_cond_destroy(&m->jcv);
	free(m);
}

int mirror_start(struct daemon *d, struct reg *r)
{
	struct mirror *m = calloc(1, sizeof(*m));
	int rc;

	if (!m)
		return -ENOMEM;
	m->r = r;
	m->d = d;
	m->o = &r->ro->mirror;
	m->efd = -1;
	pthread_mutex_init(&m->mu, NULL);
	pthread_mutex_init(&m->jmu, NULL);
	{
		/* the request thread's keepalive deadlines are monotonic */
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&m->jcv, &ca);
		pthread_condattr_destroy(&ca);
	}
	m->lease_ttl_s = r->ro->mirror.lease_ttl_s;
	m->plen = strlen(m->o->prefix);
	m->prefix = (uint8_t *)strdup(m->o->prefix);
	rc = m->prefix ? split_urls(m, m->o->urls) : -ENOMEM;
	if (rc == 0)
		rc = set_range(m);
	if (rc == 0) {
		m->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (m->efd < 0)
			rc = -errno;
	}
	if (rc < 0) {
		d_log(D_ERR, "registry %s: etcd mirror: %s", r->name,
		      strerror(-rc));
		mirror_free(m);
		return rc;
	}
	/* resume from what the segment holds; an empty one (new, or
	 * --truncate, which keeps the revision going) ranges first */
	m->start_rev = shmreg_writer_revision(r->w);
	{
		shmreg_stats_t st;

		m->range_first = m->start_rev == 0 ||
			shmreg_stats(shmreg_writer_reader(r->w), &st) < 0 ||
			st.entries == 0;
	}
	if (!m->range_first && (rc = mirror_links_load(m)) < 0) {
		d_log(D_ERR, "registry %s: etcd mirror: the tree's links: %s",
		      r->name, strerror(-rc));
		mirror_free(m);
		return rc;
	}
	m->stale_since = (uint64_t)shm_realtime_ns();
	r->mirror = m;
	arm_poll(d, m);
	rc = pthread_create(&m->watch_thr, NULL, mirror_watch_main, m);
	if (rc == 0) {
		m->watch_started = true;
		rc = pthread_create(&m->req_thr, NULL, mirror_req_main, m);
		m->req_started = rc == 0;
	}
	m->next = mirrors;
	mirrors = m;
	if (rc) {
		d_log(D_ERR, "registry %s: etcd mirror threads: %s", r->name,
		      strerror(rc));
		return -rc;
	}
	d_log(D_INFO, "registry %s mirrors etcd prefix '%s' (%u member%s), "
	      "from revision %llu", r->name, m->o->prefix, m->nurl,
	      m->nurl == 1 ? "" : "s", (unsigned long long)m->start_rev);
	return 0;
}

static void answer(struct mirror *m, struct mjob *j)
{
	struct conn *c = j->c;

	(void)m;
	if (c && j->op == MJ_BATCH && !j->single)
		conn_mirror_batch_done(c, j->id, j->status, j->rev, j->failed,
				       j->status < 0 ? 0 : j->nops);
	else if (c)
		conn_mirror_done(c, j->req_op, j->id, j->status, j->rev,
				 j->deleted);
	free(j->body);
	free(j->cmp);
	free(j->leases);
	free(j->slots);
	free(j->key);
	free(j->val);
	free(j->skey);
	free(j->attrs);
	free(j);
}

/* Answer the waiting writes whose revision the registry has now. */
static void release_waiting(struct mirror *m)
{
	uint64_t cur = shmreg_writer_revision(m->r->w);
	struct mjob **pp = &m->waiting;

	while (*pp) {
		struct mjob *j = *pp;

		if (j->rev > cur) {
			pp = &j->wnext;
			continue;
		}
		*pp = j->wnext;
		answer(m, j);
	}
}

static void take_reply(struct mirror *m, struct mjob *j)
{
	if (j->c && j->status == 0 && j->rev > shmreg_writer_revision(m->r->w)) {
		j->wnext = m->waiting;
		m->waiting = j;
		return;
	}
	answer(m, j);
}

void mirror_cqe(struct daemon *d, struct mirror *m, int res, bool more)
{
	struct mmsg *list, *next;
	uint64_t v;

	if (!more)
		m->polling = false;
	if (res < 0 && res != -ECANCELED)
		d_log_limited(D_ERR, "registry %s: etcd mirror poll: %s",
			      m->r->name, strerror(-res));
	/* reset the counter first: a message linked after the take below
	 * writes it again (see mq_push) */
	if (read(m->efd, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing new since the last take */
	}
	/* pairs with the unlock in mq_push() */
	pthread_mutex_lock(&m->mu);
	list = m->head;
	m->head = m->tail = NULL;
	pthread_mutex_unlock(&m->mu);
	/* bounded by what the threads queued since the last wake-up */
	for (; list; list = next) {
		next = list->next;
		switch (list->kind) {
		case MM_STATE:
			if (list->up && m->stale_since) {
				m->stale_since = 0;
				d_log(D_INFO, "registry %s: etcd watch "
				      "connected", m->r->name);
			} else if (!list->up && !m->stale_since) {
				m->stale_since = (uint64_t)shm_realtime_ns();
				d_log(D_ERR, "registry %s: etcd unreachable: "
				      "serving the last state (stale)",
				      m->r->name);
			}
			break;
		case MM_ADOPT:
			owner_adopted(m, list->pid);
			break;
		case MM_REPLY:
			/* the message is part of the job, which this may
			 * free: nothing of it is touched afterwards */
			take_reply(m, list->job);
			continue;
		default:
			mirror_apply(m, list);
			break;
		}
		mmsg_free(list);
	}
	release_waiting(m);
	if (d->state != D_DONE)
		arm_poll(d, m);
}

void mirror_tick(struct daemon *d, uint64_t now)
{
	(void)d;
	for (struct mirror *m = mirrors; m; m = m->next) {
		struct mjob **pp = &m->waiting;

		/* bounded by the writes in flight: one per connection */
		while (*pp) {
			struct mjob *j = *pp;

			if (now < j->deadline_ns) {
				pp = &j->wnext;
				continue;
			}
			*pp = j->wnext;
			j->status = -ETIMEDOUT;
			answer(m, j);
		}
	}
}

void mirror_stop_all(struct daemon *d)
{
	(void)d;
	while (mirrors) {
		struct mirror *m = mirrors;
		struct mjob *j;

		mirrors = m->next;
		atomic_store_explicit(&m->stop, true, memory_order_relaxed);
		pthread_mutex_lock(&m->jmu);
		pthread_cond_broadcast(&m->jcv);
		pthread_mutex_unlock(&m->jmu);
		if (m->watch_started)
			pthread_join(m->watch_thr, NULL);
		if (m->req_started)
			pthread_join(m->req_thr, NULL);
		/* the threads are gone: what they left is ours alone */
		for (struct mmsg *msg = m->head, *n; msg; msg = n) {
			n = msg->next;
			if (msg->kind == MM_REPLY)
				take_reply(m, msg->job); /* frees msg */
			else
				mmsg_free(msg);
		}
		while ((j = m->jhead)) {
			m->jhead = j->next;
			j->status = -ESHUTDOWN;
			answer(m, j);
		}
		while ((j = m->waiting)) {
			m->waiting = j->wnext;
			j->status = -ESHUTDOWN;
			answer(m, j);
		}
		m->r->mirror = NULL;
		mirror_free(m);
	}
}

uint64_t mirror_stale_since(const struct reg *r)
{
	return r->mirror ? r->mirror->stale_since : 0;
}

/* ---- forwarding ---- */

bool mirror_owns(const struct conn *c, const struct proto_req *q)
{
	if (!c->reg || !c->reg->mirror)
		return false;
	switch (q->op) {
	case PROTO_OP_PUT:
	case PROTO_OP_PUTX:
	case PROTO_OP_DEL:
	case PROTO_OP_DELTREE:
	case PROTO_OP_SETATTRS:
	case PROTO_OP_BATCH:
		return true;
	default:
		return false;
	}
}

static uint8_t *dup_bytes(const void *p, size_t n)
{
	uint8_t *q = malloc(n ? n : 1);

	if (q && n)
		memcpy(q, p, n);
	return q;
}

static bool reserved(const uint8_t *k, size_t klen)
{
	size_t n = strlen(MIRROR_META);

	return klen >= n && !memcmp(k, MIRROR_META, n);
}

/* Whether local @key has attributes now (the sidecar must then go with a
 * put without any). */
static bool has_attrs(struct reg *r, const uint8_t *key, size_t klen)
{
	char one;

	return shmreg_get_attrs(shmreg_writer_reader(r->w), key, klen, &one,
				0) > 0;
}

uint64_t mirror_ttl_s(int64_t ttl_ns)
{
	/* whole seconds, never shorter than asked: proto_check_request()
	 * bounds ttl_ns by SHMREG_TTL_MAX_NS, far below etcd's largest
	 * lease TTL (9e9 s) */
	return ((uint64_t)ttl_ns + 999999999u) / 1000000000u;
}

int mirror_put_refuses(const struct proto_req *o)
{
	const __typeof__(o->u.put) *p = &o->u.put;
	unsigned leases = (p->owner_pid != 0) +
			  ((p->flags & SHMREG_EPHEMERAL) != 0) +
			  (p->ttl_ns > 0);

	/* flags other than SHMREG_EPHEMERAL are not known here */
	if (p->flags & ~SHMREG_EPHEMERAL)
		return -EOPNOTSUPP;
	/* an etcd key has one lease: one owner, or one TTL */
	return leases > 1 ? -EINVAL : 0;
}

void mirror_forward(struct conn *c, const struct proto_req *q)
{
	struct mirror *m = c->reg->mirror;
	bool put = q->op == PROTO_OP_PUT || q->op == PROTO_OP_PUTX;
	const struct proto_attrs *pa = NULL;
	const uint8_t *key;
	struct mjob *j;
	size_t klen;

	if (q->op == PROTO_OP_BATCH) {
		mirror_forward_batch(c, q); /* batch.c */
		return;
	}
	key = put ? q->u.put.key : q->op == PROTO_OP_SETATTRS
		  ? q->u.setattrs.key : q->u.del.key;
	klen = put ? q->u.put.klen : q->op == PROTO_OP_SETATTRS
		   ? q->u.setattrs.klen : q->u.del.klen;
	if (reserved(key, klen)) {
		conn_mirror_done(c, q->op, q->id, -EINVAL, 0, 0);
		return;
	}
	if (put) {
		int err = mirror_put_refuses(q);

		/* a pid owner is watched before its key exists in etcd: if
		 * it exits meanwhile, the revoke is queued after this put */
		if (!err && q->u.put.owner_pid)
			err = owner_watch(c->d, q->u.put.owner_pid, c->reg);
		if (err < 0) {
			conn_mirror_done(c, q->op, q->id, err, 0, 0);
			return;
		}
	}
	/* parents, and deletes that must respect them: tree.c */
	if ((put && mirror_tree_put(m, q)) || q->op == PROTO_OP_DEL ||
	    q->op == PROTO_OP_DELTREE) {
		mirror_forward_tree(c, q);
		return;
	}
	j = calloc(1, sizeof(*j));
	if (!j) {
		conn_mirror_done(c, q->op, q->id, -ENOMEM, 0, 0);
		return;
	}
	if (put) {
		j->op = MJ_PUT;
		if (q->u.put.owner_pid) {
			j->owner = MO_PID;
			j->owner_id = (uint64_t)q->u.put.owner_pid;
		} else if (q->u.put.flags & SHMREG_EPHEMERAL) {
			j->owner = MO_CONN;
			j->owner_id = c->serial;
			c->mirror_eph = true;
		} else if (q->u.put.ttl_ns > 0) {
			j->owner = MO_TTL;
			j->owner_id = mirror_ttl_s(q->u.put.ttl_ns);
		}
		j->expect_rev = q->u.put.expect_rev;
		j->vlen = q->u.put.vlen;
		j->val = dup_bytes(q->u.put.val, j->vlen);
		pa = &q->u.put.attrs;
		j->sidecar = pa->n || has_attrs(c->reg, key, klen);
	} else {
		j->op = MJ_SETATTRS;
		pa = &q->u.setattrs.attrs;
	}
	if (pa && pa->n) {
		j->alen = pa->blen;
		j->attrs = dup_bytes(pa->block, pa->blen);
	}
	j->key = malloc(m->plen + klen);
	j->klen = m->plen + klen;
	j->sklen = m->plen + strlen(MIRROR_ATTRS) + klen;
	j->skey = malloc(j->sklen);
	if (!j->key || !j->skey || (put && !j->val) || (j->alen && !j->attrs)) {
		free(j->key);
		free(j->skey);
		free(j->val);
		free(j->attrs);
		free(j);
		conn_mirror_done(c, q->op, q->id, -ENOMEM, 0, 0);
		return;
	}
	memcpy(j->key, m->prefix, m->plen);
	memcpy(j->key + m->plen, key, klen);
	memcpy(j->skey, m->prefix, m->plen);
	memcpy(j->skey + m->plen, MIRROR_ATTRS, strlen(MIRROR_ATTRS));
	memcpy(j->skey + m->plen + strlen(MIRROR_ATTRS), key, klen);
	mirror_job_send(c, q, j);
}

void mirror_job_send(struct conn *c, const struct proto_req *q,
		     struct mjob *j)
{
	struct mirror *m = c->reg->mirror;

	j->c = c;
	j->req_op = q->op;
	j->id = q->id;
	j->deadline_ns = d_now_ns() + m->o->timeout_ns;
	conn_mirror_wait(c);
	mirror_job_push(m, j);
}

void mirror_job_push(struct mirror *m, struct mjob *j)
{
	j->next = NULL;
	/* the unlock publishes the job; pairs with the lock in
	 * mirror_req_main() */
	pthread_mutex_lock(&m->jmu);
	if (m->jtail)
		m->jtail->next = j;
	else
		m->jhead = j;
	m->jtail = j;
	pthread_cond_signal(&m->jcv);
	pthread_mutex_unlock(&m->jmu);
}

/* An owner ended: revoke its lease (if it has one; the request thread
 * knows).  Out of memory here leaves the lease alive (logged) until this
 * daemon ends; then its TTL removes the keys. */
static void owner_revoke(struct mirror *m, enum mowner_kind kind, uint64_t id)
{
	struct mjob *j = calloc(1, sizeof(*j));

	if (!j) {
		d_log(D_ERR, "registry %s: out of memory revoking an owner's "
		      "lease", m->r->name);
		return;
	}
	j->op = MJ_REVOKE;
	j->owner = kind;
	j->owner_id = id;
	j->deadline_ns = d_now_ns() + m->o->timeout_ns;
	mirror_job_push(m, j);
}

/* The request thread adopted a previous daemon's lease of @pid: watch the
 * pid, and if it exited meanwhile revoke the lease. */
static void owner_adopted(struct mirror *m, pid_t pid)
{
	int rc = owner_watch(m->d, pid, m->r);

	if (rc < 0)
		owner_revoke(m, MO_PID, (uint64_t)pid);
}

void mirror_pid_exited(struct reg *r, pid_t pid)
{
	if (r->mirror)
		owner_revoke(r->mirror, MO_PID, (uint64_t)pid);
}

void mirror_conn_closed(struct conn *c)
{
	if (c->mirror_eph && c->reg && c->reg->mirror)
		owner_revoke(c->reg->mirror, MO_CONN, c->serial);
	c->mirror_eph = false;
}
