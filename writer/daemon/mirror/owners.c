/* SPDX-License-Identifier: MIT */
/*
 * owners.c - owner records: which owners' leases this daemon holds, so
 * that a daemon restarted on this host keeps the keys of owners that still
 * run (request thread).
 *
 * Each owner's lease carries one record key of its own, with an empty
 * value, written when the lease is granted:
 *
 *   P + MIRROR_OWNERS + host name + '/' + registry + '/' + tail
 *   tail: "pid/<pid>/<start time>" or "conn/<serial>"
 *
 * It lives exactly as long as the lease: revoked, expired, gone with it.
 * At start, before any write, the request thread ranges the records of
 * its host and registry.  A pid that still runs with the same start time
 * (not a reused pid) is adopted: its lease is kept alive from now on, as
 * if granted here, and the loop watches the pid again (MM_ADOPT), so its
 * exit revokes the lease.  Any other record's lease is revoked at once: a
 * connection died with the old daemon, and so did an owner that exited
 * meanwhile.  When etcd cannot be reached at start nothing is adopted:
 * the old leases end at their TTL.  Other hosts ignore the records (the
 * reserved sub-prefix).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../daemon.h"
#include "internal.h"
#include "liveness.h"
#include "req.h"

/* This host's and registry's record head: P + MIRROR_OWNERS + host + '/'
 * + registry + '/' (malloc'd, *@n bytes). */
static uint8_t *record_head(const struct mirror *m, size_t *n)
{
	char host[256] = "";
	size_t ol = strlen(MIRROR_OWNERS), hl, rl = strlen(m->r->name);
	uint8_t *k;

	if (gethostname(host, sizeof(host) - 1) < 0)
		strcpy(host, "localhost");
	hl = strlen(host);
	k = malloc(m->plen + ol + hl + rl + 2);
	if (!k)
		return NULL;
	memcpy(k, m->prefix, m->plen);
	memcpy(k + m->plen, MIRROR_OWNERS, ol);
	memcpy(k + m->plen + ol, host, hl);
	k[m->plen + ol + hl] = '/';
	memcpy(k + m->plen + ol + hl + 1, m->r->name, rl);
	k[m->plen + ol + hl + 1 + rl] = '/';
	*n = m->plen + ol + hl + rl + 2;
	return k;
}

void owner_record(struct rstate *rs, const struct mlease *l, long timeout_ms)
{
	struct sbuf b = { 0 };
	char tail[64];
	struct hbuf out;
	size_t hn;
	uint8_t *head = record_head(rs->m, &hn), *key;
	int n, rc = -ENOMEM;

	if (l->kind == MO_PID)
		n = snprintf(tail, sizeof(tail), "pid/%d/%llu", (int)l->id,
			     (unsigned long long)shm_proc_start((pid_t)l->id,
								NULL));
	else
		n = snprintf(tail, sizeof(tail), "conn/%llu",
			     (unsigned long long)l->id);
	key = head ? realloc(head, hn + (size_t)n) : NULL;
	if (key) {
		memcpy(key + hn, tail, (size_t)n);
		sb_add(&b, "{\"key\":");
		sb_bytes(&b, key, hn + (size_t)n);
		sb_add(&b, ",\"value\":\"\",\"lease\":\"%lld\"}",
		       (long long)l->lease);
		free(key);
	} else {
		free(head);
	}
	if (b.p && !b.oom)
		rc = call(rs, "/v3/kv/put", b.p, timeout_ms, &out);
	free(b.p);
	if (rc == 0)
		hbuf_free(&out);
	else
		d_log_limited(D_ERR, "registry %s: recording an owner's lease: "
			      "%s (a restarted daemon will not adopt it)",
			      rs->m->r->name, strerror(-rc));
}

/* Adopt or revoke the lease of record @kv (its key after the head:
 * @tail).  Returns whether it was adopted. */
static bool adopt_one(struct rstate *rs, const struct mkv *kv,
		      const uint8_t *tail, size_t n, long timeout_ms)
{
	struct mowner_rec rec;
	struct mlease *l;
	struct mmsg *msg;

	if (kv->lease <= 0 || mdec_owner(tail, n, &rec) < 0)
		return false; /* not a record of ours: left alone */
	if (rec.conn || !rec.start ||
	    shm_pid_test(rec.pid, rec.start) != SHM_PID_ALIVE ||
	    *lease_slot(rs, MO_PID, (uint64_t)rec.pid)) {
		(void)lease_revoke(rs, kv->lease, timeout_ms);
		return false;
	}
	l = calloc(1, sizeof(*l));
	msg = calloc(1, sizeof(*msg));
	if (!l || !msg) {
		free(l);
		free(msg);
		(void)lease_revoke(rs, kv->lease, timeout_ms);
		return false;
	}
	l->kind = MO_PID;
	l->id = (uint64_t)rec.pid;
	l->lease = kv->lease;
	lease_keep(rs, l);
	msg->kind = MM_ADOPT;
	msg->pid = rec.pid;
	mq_push(rs->m, msg);
	return true;
}

void owners_adopt(struct rstate *rs)
{
	struct mirror *m = rs->m;
	long timeout_ms = (long)(m->o->timeout_ns / 1000000);
	size_t hn, adopted = 0, seen = 0;
	uint8_t *head = record_head(m, &hn);
	struct sbuf b = { 0 };
	struct mrange rng;
	struct hbuf out;
	int rc = -ENOMEM;

	if (head) {
		sb_add(&b, "{\"key\":");
		sb_bytes(&b, head, hn);
		head[hn - 1]++; /* '/' + 1: the end of the head's range */
		sb_add(&b, ",\"range_end\":");
		sb_bytes(&b, head, hn);
		sb_add(&b, "}");
	}
	if (b.p && !b.oom)
		rc = call(rs, "/v3/kv/range", b.p, timeout_ms, &out);
	free(b.p);
	if (rc == 0) {
		rc = mdec_range(out.p, out.len, &rng);
		hbuf_free(&out);
	}
	if (rc < 0) {
		d_log(D_ERR, "registry %s: reading the owners' leases of a "
		      "previous daemon: %s (they end at their TTL)", m->r->name,
		      strerror(-rc));
		free(head);
		return;
	}
	head[hn - 1]--;
	/* bounded by the records of this host's registry */
	for (size_t i = 0; i < rng.nkv; i++) {
		const struct mkv *kv = &rng.kvs[i];

		if (kv->klen <= hn || memcmp(kv->key, head, hn))
			continue;
		seen++;
		adopted += adopt_one(rs, kv, kv->key + hn, kv->klen - hn,
				     timeout_ms);
	}
	mdec_range_free(&rng);
	free(head);
	if (adopted)
		rs->next_keepalive_ms = http_now_ms(); /* keep them now */
	if (seen)
		d_log(D_INFO, "registry %s: %zu owner lease%s of a previous "
		      "daemon adopted, %zu revoked", m->r->name, adopted,
		      adopted == 1 ? "" : "s", seen - adopted);
}
