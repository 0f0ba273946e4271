/* SPDX-License-Identifier: MIT */
/*
 * req.c - the request thread: clients' writes, one at a time, to etcd.
 *
 * A plain put is /v3/kv/put; a put with expect_rev is a txn comparing the
 * key's mod_revision (or, for SHMREG_REV_ABSENT, its create_revision with
 * 0: absent), whose failure is the local -EEXIST; a delete is
 * /v3/kv/deleterange of the one key, and deleting nothing is -ENOENT (etcd
 * uses no revision for it, as the local writer does not).  Each job is
 * bounded by its deadline (--etcd-timeout): a member that does not answer
 * is -ETIMEDOUT, no member reachable -EAGAIN.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../daemon.h"
#include "internal.h"

static char *b64(const uint8_t *p, size_t n)
{
	char *s = malloc(mdec_b64_len(n) + 1);

	if (s)
		mdec_b64_encode(p, n, s);
	return s;
}

/* The request body of @j, malloc'd, and the gateway path in *@path. */
static char *job_body(const struct mjob *j, const char **path)
{
	char *k = b64(j->key, j->klen), *v = NULL, *body = NULL;
	size_t n;

	if (!k)
		return NULL;
	if (j->op == MJ_PUT) {
		v = b64(j->val, j->vlen);
		if (!v)
			goto out;
	}
	n = strlen(k) * 2 + (v ? strlen(v) : 0) + 256;
	body = malloc(n);
	if (!body)
		goto out;
	if (j->op == MJ_DEL) {
		*path = "/v3/kv/deleterange";
		snprintf(body, n, "{\"key\":\"%s\"}", k);
	} else if (!j->expect_rev) {
		*path = "/v3/kv/put";
		snprintf(body, n, "{\"key\":\"%s\",\"value\":\"%s\"}", k, v);
	} else {
		bool absent = j->expect_rev == SHMREG_REV_ABSENT;

		*path = "/v3/kv/txn";
		snprintf(body, n, "{\"compare\":[{\"key\":\"%s\",\"target\":"
			 "\"%s\",\"result\":\"EQUAL\",\"%s\":\"%llu\"}],"
			 "\"success\":[{\"request_put\":{\"key\":\"%s\","
			 "\"value\":\"%s\"}}]}", k,
			 absent ? "CREATE" : "MOD",
			 absent ? "create_revision" : "mod_revision",
			 absent ? 0ull : (unsigned long long)j->expect_rev, k, v);
	}
out:
	free(k);
	free(v);
	return body;
}

static void run_job(struct hclient *hc, struct mjob *j)
{
	const char *path = NULL;
	char *body = job_body(j, &path);
	uint64_t now = d_now_ns();
	long left_ms = j->deadline_ns > now
			       ? (long)((j->deadline_ns - now) / 1000000) : 0;
	struct hbuf out;
	int64_t rev = 0, deleted = 0;
	bool ok = false;
	int st;

	if (!body) {
		j->status = -ENOMEM;
		return;
	}
	if (left_ms <= 0) {
		free(body);
		j->status = -ETIMEDOUT;
		return;
	}
	st = hclient_post(hc, path, body, left_ms, &out);
	free(body);
	if (st < 0) {
		j->status = st == -ECANCELED ? -ESHUTDOWN : st;
		return;
	}
	if (st != 200) {
		int code = mdec_error_code(out.p, out.len);

		/* 14 Unavailable, 4 DeadlineExceeded: the cluster has no
		 * leader right now; anything else is a request etcd refused */
		j->status = code == 14 ? -EAGAIN : code == 4 ? -ETIMEDOUT
							    : -EIO;
		hbuf_free(&out);
		return;
	}
	if (mdec_write(out.p, out.len, &rev, j->op == MJ_DEL ? &deleted : NULL,
		       j->op == MJ_PUT && j->expect_rev ? &ok : NULL) < 0) {
		hbuf_free(&out);
		j->status = -EIO;
		return;
	}
	hbuf_free(&out);
	if (j->op == MJ_DEL && deleted == 0)
		j->status = -ENOENT;
	else if (j->op == MJ_PUT && j->expect_rev && !ok)
		j->status = -EEXIST;
	else
		j->status = 0;
	j->rev = (uint64_t)rev;
	j->deleted = (uint64_t)deleted;
}

void *mirror_req_main(void *arg)
{
	struct mirror *m = arg;
	struct hclient hc;

	if (hclient_init(&hc, m->urls, m->nurl, &m->stop) < 0)
		return NULL;
	for (;;) {
		struct mjob *j;
		struct mmsg *msg;

		pthread_mutex_lock(&m->jmu);
		while (!m->jhead &&
		       !atomic_load_explicit(&m->stop, memory_order_relaxed))
			pthread_cond_wait(&m->jcv, &m->jmu);
		j = m->jhead;
		if (j) {
			m->jhead = j->next;
			if (!m->jhead)
				m->jtail = NULL;
		}
		pthread_mutex_unlock(&m->jmu);
		if (!j)
			break; /* stopping, nothing left */
		if (atomic_load_explicit(&m->stop, memory_order_relaxed))
			j->status = -ESHUTDOWN;
		else
			run_job(&hc, j);
		msg = &j->reply; /* allocated with the job: always sent */
		msg->kind = MM_REPLY;
		msg->job = j;
		mq_push(m, msg);
	}
	hclient_free(&hc);
	return NULL;
}
