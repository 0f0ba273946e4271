/* SPDX-License-Identifier: MIT */
/*
 * apply.c - the loop thread's half of the mirror: etcd's revisions into the
 * registry, each as the same revision locally (writer/shmreg_mirror.h).
 *
 * A revision with one change of the prefix is that change, at that
 * revision.  A revision with several (a txn, a range delete, an expired
 * lease) is one commit whose changes all carry it.  A resync (first start,
 * or compacted past the mirror) replaces the contents in one commit at
 * the range's revision: keys etcd no longer has are deleted, the others
 * put with their own etcd mod_revision and create_revision.  A revision
 * at or below the registry's own was applied already (a watch resumed on
 * another member may resend it) and is skipped.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../daemon.h"
#include "internal.h"
#include "shmreg_mirror.h"

/* The local key of etcd key @k: the prefix stripped.  False when it is
 * not one the registry can hold (the prefix itself, too long). */
static bool local_key(const struct mirror *m, const struct mkv *kv,
		      const uint8_t **k, size_t *klen)
{
	if (kv->klen <= m->plen || memcmp(kv->key, m->prefix, m->plen))
		return false;
	*k = kv->key + m->plen;
	*klen = kv->klen - m->plen;
	return *klen <= SHMREG_KEY_MAX;
}

static void put_kv(struct mirror *m, const struct mkv *kv)
{
	shmreg_writer_t *w = m->r->w;
	const uint8_t *k;
	size_t klen;
	int64_t rc;

	if (!local_key(m, kv, &k, &klen) || kv->vlen > SHMREG_VALUE_MAX) {
		d_log_limited(D_ERR, "registry %s: etcd key of %zu bytes "
			      "(value %zu) not mirrored: over the limits",
			      m->r->name, kv->klen, kv->vlen);
		return;
	}
	shmreg_writer_mirror_slot(w, (uint64_t)kv->mod_rev,
				  (uint64_t)(kv->create_rev ? kv->create_rev
							    : kv->mod_rev));
	rc = shmreg_writer_put(w, k, klen, kv->val, kv->vlen, NULL);
	shmreg_writer_mirror_slot(w, 0, 0);
	if (rc < 0)
		d_log_limited(D_ERR, "registry %s: mirroring a put: %s",
			      m->r->name, strerror((int)-rc));
}

static void del_key(struct mirror *m, const struct mkv *kv)
{
	shmreg_writer_t *w = m->r->w;
	const uint8_t *k;
	size_t klen;
	int64_t rc;

	if (!local_key(m, kv, &k, &klen))
		return;
	rc = shmreg_writer_del(w, k, klen);
	if (rc == -ENOTEMPTY)
		rc = shmreg_writer_del_tree(w, k, klen);
	if (rc < 0 && rc != -ENOENT)
		d_log_limited(D_ERR, "registry %s: mirroring a delete: %s",
			      m->r->name, strerror((int)-rc));
}

static void apply_events(struct mirror *m, struct mmsg *msg)
{
	shmreg_writer_t *w = m->r->w;
	bool many = msg->nev > 1;
	int rc;

	if (msg->rev <= shmreg_writer_revision(w))
		return; /* applied already */
	rc = shmreg_writer_mirror_begin(w, msg->rev, many);
	if (rc < 0) {
		d_log(D_ERR, "registry %s: etcd revision %llu: %s",
		      m->r->name, (unsigned long long)msg->rev, strerror(-rc));
		return;
	}
	if (many)
		shmreg_writer_batch_begin(w);
	for (size_t i = 0; i < msg->nev; i++) {
		if (msg->ev[i].del)
			del_key(m, &msg->ev[i].kv);
		else
			put_kv(m, &msg->ev[i].kv);
	}
	if (many)
		shmreg_writer_batch_end(w);
	if (shmreg_writer_mirror_end(w, msg->rev) < 0)
		d_log(D_ERR, "registry %s: etcd revision %llu not applied "
		      "whole", m->r->name, (unsigned long long)msg->rev);
}

/* ---- resync ---- */

static int kv_cmp(const void *a, const void *b)
{
	const struct mkv *x = a, *y = b;
	size_t n = x->klen < y->klen ? x->klen : y->klen;
	int c = memcmp(x->key, y->key, n);

	return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

struct stale {
	struct mirror *m;
	const struct mrange *rng;
	uint8_t **keys;
	size_t *lens;
	size_t n, cap;
	int err;
};

/* shmreg_list callback: remember local keys etcd no longer has. */
static int collect_stale(const void *key, size_t klen, const void *val,
			 size_t vlen, const shmreg_info_t *info, void *arg)
{
	struct stale *s = arg;
	struct mkv probe = { 0 };
	uint8_t *full;

	(void)val, (void)vlen, (void)info;
	full = malloc(s->m->plen + klen);
	if (!full)
		return -ENOMEM;
	memcpy(full, s->m->prefix, s->m->plen);
	memcpy(full + s->m->plen, key, klen);
	probe.key = full;
	probe.klen = s->m->plen + klen;
	if (s->rng->nkv && bsearch(&probe, s->rng->kvs, s->rng->nkv,
				   sizeof(probe), kv_cmp)) {
		free(full);
		return 0;
	}
	free(full);
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		uint8_t **k = realloc(s->keys, cap * sizeof(*k));
		size_t *l;

		if (!k)
			return -ENOMEM;
		s->keys = k;
		l = realloc(s->lens, cap * sizeof(*l));
		if (!l)
			return -ENOMEM;
		s->lens = l;
		s->cap = cap;
	}
	s->keys[s->n] = malloc(klen);
	if (!s->keys[s->n])
		return -ENOMEM;
	memcpy(s->keys[s->n], key, klen);
	s->lens[s->n++] = klen;
	return 0;
}

static void apply_resync(struct mirror *m, struct mmsg *msg)
{
	shmreg_writer_t *w = m->r->w;
	struct stale s = { .m = m, .rng = &msg->rng };
	ssize_t n;
	int rc;

	if (msg->rev <= shmreg_writer_revision(w)) {
		/* etcd is behind the registry: another cluster, or one
		 * restored from a backup.  Serving it would mix histories. */
		d_log(D_ERR, "registry %s: etcd's revision %llu is not above "
		      "the registry's %llu: not resyncing (remove the "
		      "registry, shmregctl rm-registry, to mirror this "
		      "cluster)", m->r->name,
		      (unsigned long long)msg->rev,
		      (unsigned long long)shmreg_writer_revision(w));
		return;
	}
	/* etcd returns a range in key order; sort anyway, it is untrusted
	 * and bsearch needs it */
	if (msg->rng.nkv)
		qsort(msg->rng.kvs, msg->rng.nkv, sizeof(*msg->rng.kvs),
		      kv_cmp);
	n = shmreg_list(shmreg_writer_reader(w), NULL, 0, collect_stale, &s);
	if (n < 0) {
		d_log(D_ERR, "registry %s: resync: listing: %s", m->r->name,
		      strerror((int)-n));
		goto out;
	}
	rc = shmreg_writer_mirror_begin(w, msg->rev, true);
	if (rc < 0) {
		d_log(D_ERR, "registry %s: resync at %llu: %s", m->r->name,
		      (unsigned long long)msg->rev, strerror(-rc));
		goto out;
	}
	shmreg_writer_batch_begin(w);
	for (size_t i = 0; i < s.n; i++) {
		int64_t r = shmreg_writer_del_tree(w, s.keys[i], s.lens[i]);

		if (r < 0 && r != -ENOENT)
			d_log_limited(D_ERR, "registry %s: resync delete: %s",
				      m->r->name, strerror((int)-r));
	}
	for (size_t i = 0; i < msg->rng.nkv; i++)
		put_kv(m, &msg->rng.kvs[i]);
	shmreg_writer_batch_end(w);
	shmreg_writer_mirror_end(w, msg->rev);
	d_log(D_INFO, "registry %s: resynced from etcd at revision %llu "
	      "(%zu keys, %zu removed)", m->r->name,
	      (unsigned long long)msg->rev, msg->rng.nkv, s.n);
out:
	for (size_t i = 0; i < s.n; i++)
		free(s.keys[i]);
	free(s.keys);
	free(s.lens);
}

void mirror_apply(struct mirror *m, struct mmsg *msg)
{
	switch (msg->kind) {
	case MM_RESYNC:
		apply_resync(m, msg);
		break;
	case MM_EVENTS:
		apply_events(m, msg);
		break;
	default:
		break;
	}
}
