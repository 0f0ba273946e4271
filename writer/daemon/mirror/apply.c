/* SPDX-License-Identifier: MIT */
/*
 * apply.c - the loop thread's half of the mirror: etcd's revisions into the
 * registry, each as the same revision locally (writer/shmreg_mirror.h).
 *
 * An etcd key P + K is the local entry K; its attributes are the value of
 * the sidecar key P + MIRROR_ATTRS + K (absent: none).  Within one
 * revision, a key's event and its sidecar's are one local change:
 *   - a put of K takes the attributes of a sidecar put in the same
 *     revision, none after a sidecar delete, else keeps the ones it has;
 *   - a sidecar change alone (another etcd client wrote it) re-puts K with
 *     its value and etcd's revisions unchanged, and the new attributes;
 *   - a delete of K deletes the entry (its sidecar's delete is part of it).
 * A revision with one local change is that change, at that revision.  A
 * revision with several (a txn, a range delete, an expired lease) is one
 * commit whose changes all carry it.  A resync (first start, or compacted
 * past the mirror) replaces the contents in one commit at the range's
 * revision: keys etcd no longer has are deleted, the others put with their
 * own etcd mod_revision and create_revision.  A revision at or below the
 * registry's own was applied already (a watch resumed on another member
 * may resend it) and is skipped.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../daemon.h"
#include "internal.h"
#include "shmreg_mirror.h"

/* What an etcd key is to the registry. */
enum kclass { K_OTHER, K_ENTRY, K_SIDECAR };

/* The local key of etcd key @kv and whether it is an entry or an
 * attribute sidecar; K_OTHER for the prefix itself, shmreg's other
 * reserved keys and keys over the limit. */
static enum kclass classify(const struct mirror *m, const struct mkv *kv,
			    const uint8_t **k, size_t *klen)
{
	size_t ml = strlen(MIRROR_META), al = strlen(MIRROR_ATTRS);
	const uint8_t *p;
	size_t n;

	if (kv->klen <= m->plen || memcmp(kv->key, m->prefix, m->plen))
		return K_OTHER;
	p = kv->key + m->plen;
	n = kv->klen - m->plen;
	if (n >= ml && !memcmp(p, MIRROR_META, ml)) {
		if (n <= al || memcmp(p, MIRROR_ATTRS, al) ||
		    n - al > SHMREG_KEY_MAX)
			return K_OTHER;
		*k = p + al;
		*klen = n - al;
		return K_SIDECAR;
	}
	if (n > SHMREG_KEY_MAX)
		return K_OTHER;
	*k = p;
	*klen = n;
	return K_ENTRY;
}

/* Attributes for a put: from the sidecar value @sv (@have: there is one;
 * else none), or, with @keep, the ones local @k has now.  @buf holds the
 * current ones' bytes.  Returns the count (0 when none or bad: logged). */
static int attrs_for(struct mirror *m, const uint8_t *k, size_t klen,
		     bool have, const uint8_t *sv, size_t svlen, bool keep,
		     uint8_t *buf, size_t cap, shmreg_attr_t *a)
{
	int n;

	if (keep) {
		ssize_t len = shmreg_get_attrs(shmreg_writer_reader(m->r->w),
					       k, klen, buf, cap);

		if (len <= 0 || (size_t)len > cap)
			return 0;
		sv = buf;
		svlen = (size_t)len;
	} else if (!have) {
		return 0;
	}
	n = mdec_attrs(sv, svlen, a, SHMREG_ATTRS_MAX);
	if (n < 0) {
		d_log_limited(D_ERR, "registry %s: a bad attribute sidecar in "
			      "etcd: the entry is mirrored without attributes",
			      m->r->name);
		return 0;
	}
	return n;
}

/* Put entry @k = @kv's value, with etcd's revisions and @n attributes. */
static void put_entry(struct mirror *m, const uint8_t *k, size_t klen,
		      const struct mkv *kv, const shmreg_attr_t *a, int n)
{
	shmreg_writer_t *w = m->r->w;
	shmreg_put_opts_t o = { .attrs = a, .nattrs = (uint32_t)n };
	int64_t rc;

	if (kv->vlen > SHMREG_VALUE_MAX) {
		d_log_limited(D_ERR, "registry %s: etcd value of %zu bytes not "
			      "mirrored: over the limit", m->r->name, kv->vlen);
		return;
	}
	shmreg_writer_mirror_slot(w, (uint64_t)kv->mod_rev,
				  (uint64_t)(kv->create_rev ? kv->create_rev
							    : kv->mod_rev));
	rc = shmreg_writer_put(w, k, klen, kv->val, kv->vlen, n ? &o : NULL);
	if (rc == -EINVAL || rc == -E2BIG) {
		/* attributes the writer refuses: the value still counts */
		d_log_limited(D_ERR, "registry %s: etcd attributes refused "
			      "(%s): mirrored without them", m->r->name,
			      strerror((int)-rc));
		rc = shmreg_writer_put(w, k, klen, kv->val, kv->vlen, NULL);
	}
	shmreg_writer_mirror_slot(w, 0, 0);
	if (rc < 0)
		d_log_limited(D_ERR, "registry %s: mirroring a put: %s",
			      m->r->name, strerror((int)-rc));
}

static void del_entry(struct mirror *m, const uint8_t *k, size_t klen)
{
	shmreg_writer_t *w = m->r->w;
	int64_t rc = shmreg_writer_del(w, k, klen);

	if (rc == -ENOTEMPTY)
		rc = shmreg_writer_del_tree(w, k, klen);
	if (rc < 0 && rc != -ENOENT)
		d_log_limited(D_ERR, "registry %s: mirroring a delete: %s",
			      m->r->name, strerror((int)-rc));
}

/* The sidecar event of local key @k in @ev[0..n), or NULL. */
static const struct mev *sidecar_of(const struct mirror *m,
				    const struct mev *ev, size_t n,
				    const uint8_t *k, size_t klen)
{
	for (size_t i = 0; i < n; i++) {
		const uint8_t *sk;
		size_t sklen;

		if (classify(m, &ev[i].kv, &sk, &sklen) == K_SIDECAR &&
		    sklen == klen && !memcmp(sk, k, klen))
			return &ev[i];
	}
	return NULL;
}

/* The entry event of local key @k in @ev[0..n): is there one? */
static bool entry_event(const struct mirror *m, const struct mev *ev,
			size_t n, const uint8_t *k, size_t klen)
{
	for (size_t i = 0; i < n; i++) {
		const uint8_t *ek;
		size_t eklen;

		if (classify(m, &ev[i].kv, &ek, &eklen) == K_ENTRY &&
		    eklen == klen && !memcmp(ek, k, klen))
			return true;
	}
	return false;
}

/* Apply event @e (of the revision's @ev[0..n)); returns whether it was a
 * local change of its own (false: folded into its key's event). */
static bool apply_one(struct mirror *m, const struct mev *ev, size_t n,
		      const struct mev *e, bool dry)
{
	static uint8_t buf[SHMREG_ATTRS_MAX *
			   (SHMREG_ATTR_NAME_MAX + SHMREG_ATTR_VALUE_MAX + 2)];
	shmreg_attr_t a[SHMREG_ATTRS_MAX];
	const struct mev *sc;
	const uint8_t *k;
	size_t klen;
	int na;

	switch (classify(m, &e->kv, &k, &klen)) {
	case K_ENTRY:
		if (dry)
			return true;
		if (e->del) {
			del_entry(m, k, klen);
			return true;
		}
		sc = sidecar_of(m, ev, n, k, klen);
		na = attrs_for(m, k, klen, sc && !sc->del,
			       sc ? sc->kv.val : NULL, sc ? sc->kv.vlen : 0,
			       !sc, buf, sizeof(buf), a);
		put_entry(m, k, klen, &e->kv, a, na);
		return true;
	case K_SIDECAR: {
		shmreg_info_t info;
		struct mkv cur = { 0 };
		ssize_t vlen;
		uint8_t *val;

		if (entry_event(m, ev, n, k, klen))
			return false; /* its key's event applies it */
		/* a sidecar written alone: the entry, if there is one, gets
		 * the new attributes with its value and revisions */
		vlen = shmreg_get(shmreg_writer_reader(m->r->w), k, klen, NULL,
				  0, &info);
		if (vlen < 0)
			return false;
		if (dry)
			return true;
		val = malloc((size_t)vlen + 1);
		if (!val)
			return true;
		vlen = shmreg_get(shmreg_writer_reader(m->r->w), k, klen, val,
				  (size_t)vlen + 1, &info);
		if (vlen >= 0 && (size_t)vlen == info.vlen) {
			cur.val = val;
			cur.vlen = (size_t)vlen;
			cur.mod_rev = (int64_t)info.mod_rev;
			cur.create_rev = (int64_t)info.create_rev;
			na = attrs_for(m, k, klen, !e->del, e->kv.val,
				       e->kv.vlen, false, buf, sizeof(buf), a);
			put_entry(m, k, klen, &cur, a, na);
		}
		free(val);
		return true;
	}
	default:
		return false;
	}
}

static void apply_events(struct mirror *m, struct mmsg *msg)
{
	shmreg_writer_t *w = m->r->w;
	size_t changes = 0;
	bool many;
	int rc;

	if (msg->rev <= shmreg_writer_revision(w))
		return; /* applied already */
	/* bounded by the revision's events, twice */
	for (size_t i = 0; i < msg->nev; i++)
		changes += apply_one(m, msg->ev, msg->nev, &msg->ev[i], true);
	many = changes > 1;
	rc = shmreg_writer_mirror_begin(w, msg->rev, many);
	if (rc < 0) {
		d_log(D_ERR, "registry %s: etcd revision %llu: %s",
		      m->r->name, (unsigned long long)msg->rev, strerror(-rc));
		return;
	}
	if (many)
		shmreg_writer_batch_begin(w);
	for (size_t i = 0; i < msg->nev; i++)
		apply_one(m, msg->ev, msg->nev, &msg->ev[i], false);
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

/* The kv of etcd key @prefix+@mid+@k in the sorted range, or NULL. */
static const struct mkv *range_find(const struct mirror *m,
				    const struct mrange *rng, const char *mid,
				    const void *k, size_t klen)
{
	size_t ml = strlen(mid);
	struct mkv probe = { 0 };
	const struct mkv *hit;
	uint8_t *full;

	if (!rng->nkv)
		return NULL;
	full = malloc(m->plen + ml + klen);
	if (!full)
		return NULL;
	memcpy(full, m->prefix, m->plen);
	memcpy(full + m->plen, mid, ml);
	memcpy(full + m->plen + ml, k, klen);
	probe.key = full;
	probe.klen = m->plen + ml + klen;
	hit = bsearch(&probe, rng->kvs, rng->nkv, sizeof(probe), kv_cmp);
	free(full);
	return hit;
}

struct stale {
	struct mirror *m;
	const struct mrange *rng;
	uint8_t **keys;
	size_t *lens;
	size_t n, cap;
};

/* shmreg_list callback: remember local keys etcd no longer has. */
static int collect_stale(const void *key, size_t klen, const void *val,
			 size_t vlen, const shmreg_info_t *info, void *arg)
{
	struct stale *s = arg;

	(void)val, (void)vlen, (void)info;
	if (range_find(s->m, s->rng, "", key, klen))
		return 0;
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
	size_t kept = 0;
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
	for (size_t i = 0; i < msg->rng.nkv; i++) {
		static uint8_t buf[1];
		shmreg_attr_t a[SHMREG_ATTRS_MAX];
		const struct mkv *kv = &msg->rng.kvs[i], *sc;
		const uint8_t *k;
		size_t klen;
		int na;

		if (classify(m, kv, &k, &klen) != K_ENTRY)
			continue;
		sc = range_find(m, &msg->rng, MIRROR_ATTRS, k, klen);
		na = attrs_for(m, k, klen, sc != NULL, sc ? sc->val : NULL,
			       sc ? sc->vlen : 0, false, buf, 0, a);
		put_entry(m, k, klen, kv, a, na);
		kept++;
	}
	shmreg_writer_batch_end(w);
	shmreg_writer_mirror_end(w, msg->rev);
	d_log(D_INFO, "registry %s: resynced from etcd at revision %llu "
	      "(%zu keys, %zu removed)", m->r->name,
	      (unsigned long long)msg->rev, kept, s.n);
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
