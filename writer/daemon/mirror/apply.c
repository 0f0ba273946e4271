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
 * Parents (tree.c has the encoding): a link key's events first update the
 * mirror's copy of the links (links.h), then
 *   - a put of K takes the parent K's link names, if that link is in
 *     effect: its parent exists here and was created no later than the
 *     link (a link that outlived its parent, deleted by another etcd
 *     client, names nothing, even after the parent is put again); else
 *     K is a root.  Within a revision, a put whose parent is put later in
 *     it waits for it; one whose parent is still missing, or below it (a
 *     cycle other etcd clients wrote), is a root;
 *   - a link changed alone re-puts its child with its value, revisions
 *     and attributes and the parent now in effect;
 *   - a delete of K while it has children here (another etcd client
 *     deleted it directly) first makes the children roots, in the same
 *     commit: etcd still holds them.
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
enum kclass { K_OTHER, K_ENTRY, K_SIDECAR, K_LINK };

/* A link key's parent (K_LINK; its child is the local key). */
struct kparent {
	const uint8_t *p;
	size_t len;
};

/* The local key of etcd key @kv and whether it is an entry, an attribute
 * sidecar or a parent link (then its parent in *@par, which may be NULL
 * when not wanted); K_OTHER for the prefix itself, shmreg's other
 * reserved keys and keys over the limit. */
static enum kclass classify_link(const struct mirror *m, const struct mkv *kv,
				 const uint8_t **k, size_t *klen,
				 struct kparent *par)
{
	size_t ml = strlen(MIRROR_META), al = strlen(MIRROR_ATTRS);
	size_t ll = strlen(MIRROR_LINKS);
	struct kparent ignored;
	const uint8_t *p;
	size_t n;

	if (kv->klen <= m->plen || memcmp(kv->key, m->prefix, m->plen))
		return K_OTHER;
	p = kv->key + m->plen;
	n = kv->klen - m->plen;
	if (!par)
		par = &ignored;
	if (n > ll && !memcmp(p, MIRROR_LINKS, ll)) {
		if (mdec_link(p + ll, n - ll, &par->p, &par->len, k, klen) < 0 ||
		    par->len > SHMREG_KEY_MAX || *klen > SHMREG_KEY_MAX)
			return K_OTHER;
		return K_LINK;
	}
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

static enum kclass classify(const struct mirror *m, const struct mkv *kv,
			    const uint8_t **k, size_t *klen)
{
	return classify_link(m, kv, k, klen, NULL);
}

/* The parent @k has by its link in effect (see above), or NULL (*@plen
 * 0): the link's parent exists here, created no later than the link. */
static const uint8_t *parent_of(const struct mirror *m, const uint8_t *k,
				size_t klen, size_t *plen)
{
	const struct mlink *l = links_get(&m->links, k, klen);
	shmreg_info_t info;

	*plen = 0;
	if (!l || shmreg_get(shmreg_writer_reader(m->r->w), mlink_parent(l),
			     l->plen, NULL, 0, &info) < 0 ||
	    (int64_t)info.create_rev > l->rev)
		return NULL;
	*plen = l->plen;
	return mlink_parent(l);
}

/* Whether @k's link names a parent that is not here (yet). */
static bool parent_missing(const struct mirror *m, const uint8_t *k,
			   size_t klen)
{
	const struct mlink *l = links_get(&m->links, k, klen);
	size_t plen;

	return l && !parent_of(m, k, klen, &plen);
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

/* Put entry @k = @kv's value, with etcd's revisions, @n attributes and
 * the parent its link gives it. */
static void put_entry(struct mirror *m, const uint8_t *k, size_t klen,
		      const struct mkv *kv, const shmreg_attr_t *a, int n)
{
	shmreg_writer_t *w = m->r->w;
	shmreg_put_opts_t o = { .attrs = a, .nattrs = (uint32_t)n };
	int64_t rc;

	if (!m->rooting)
		o.parent = parent_of(m, k, klen, &o.parent_len);

	if (kv->vlen > SHMREG_VALUE_MAX) {
		d_log_limited(D_ERR, "registry %s: etcd value of %zu bytes not "
			      "mirrored: over the limit", m->r->name, kv->vlen);
		return;
	}
	shmreg_writer_mirror_slot(w, (uint64_t)kv->mod_rev,
				  (uint64_t)(kv->create_rev ? kv->create_rev
							    : kv->mod_rev));
	rc = shmreg_writer_put(w, k, klen, kv->val, kv->vlen, &o);
	if ((rc == -ENOENT || rc == -ELOOP) && o.parent) {
		/* a cycle other etcd clients wrote: a root here */
		d_log_limited(D_ERR, "registry %s: an etcd parent link closes a "
			      "cycle: mirrored as a root", m->r->name);
		o.parent = NULL;
		o.parent_len = 0;
		rc = shmreg_writer_put(w, k, klen, kv->val, kv->vlen, &o);
	}
	if (rc == -EINVAL || rc == -E2BIG) {
		/* attributes the writer refuses: the value still counts */
		d_log_limited(D_ERR, "registry %s: etcd attributes refused "
			      "(%s): mirrored without them", m->r->name,
			      strerror((int)-rc));
		o.attrs = NULL;
		o.nattrs = 0;
		rc = shmreg_writer_put(w, k, klen, kv->val, kv->vlen, &o);
	}
	shmreg_writer_mirror_slot(w, 0, 0);
	if (rc < 0)
		d_log_limited(D_ERR, "registry %s: mirroring a put: %s",
			      m->r->name, strerror((int)-rc));
}

static uint8_t attr_buf[SHMREG_ATTRS_MAX *
			(SHMREG_ATTR_NAME_MAX + SHMREG_ATTR_VALUE_MAX + 2)];

/* Put @k again with its value and revisions: with the attributes of the
 * sidecar value @sv (@have: there is one; else none), or with @keep the
 * ones it has; and the parent in effect (none while m->rooting). */
static void reput(struct mirror *m, const uint8_t *k, size_t klen, bool have,
		  const uint8_t *sv, size_t svlen, bool keep)
{
	shmreg_attr_t a[SHMREG_ATTRS_MAX];
	struct mkv cur = { 0 };
	shmreg_info_t info;
	ssize_t vlen;
	uint8_t *val;
	int na;

	vlen = shmreg_get(shmreg_writer_reader(m->r->w), k, klen, NULL, 0,
			  &info);
	if (vlen < 0)
		return;
	val = malloc((size_t)vlen + 1);
	if (!val) {
		d_log_limited(D_ERR, "registry %s: out of memory mirroring a "
			      "change", m->r->name);
		return;
	}
	vlen = shmreg_get(shmreg_writer_reader(m->r->w), k, klen, val,
			  (size_t)vlen + 1, &info);
	if (vlen >= 0 && (size_t)vlen == info.vlen) {
		cur.val = val;
		cur.vlen = (size_t)vlen;
		cur.mod_rev = (int64_t)info.mod_rev;
		cur.create_rev = (int64_t)info.create_rev;
		na = attrs_for(m, k, klen, have, sv, svlen, keep, attr_buf,
			       sizeof(attr_buf), a);
		put_entry(m, k, klen, &cur, a, na);
	}
	free(val);
}

struct keys {
	uint8_t **k;
	size_t *len;
	size_t n, cap;
};

static int keys_add(const void *key, size_t klen, const void *val,
		    size_t vlen, const shmreg_info_t *info, void *arg)
{
	struct keys *ks = arg;

	(void)val, (void)vlen, (void)info;
	if (ks->n == ks->cap) {
		size_t cap = ks->cap ? ks->cap * 2 : 16;
		uint8_t **k = realloc(ks->k, cap * sizeof(*k));
		size_t *l;

		if (!k)
			return -ENOMEM;
		ks->k = k;
		l = realloc(ks->len, cap * sizeof(*l));
		if (!l)
			return -ENOMEM;
		ks->len = l;
		ks->cap = cap;
	}
	ks->k[ks->n] = malloc(klen ? klen : 1);
	if (!ks->k[ks->n])
		return -ENOMEM;
	memcpy(ks->k[ks->n], key, klen);
	ks->len[ks->n++] = klen;
	return 0;
}

static void keys_free(struct keys *ks)
{
	for (size_t i = 0; i < ks->n; i++)
		free(ks->k[i]);
	free(ks->k);
	free(ks->len);
}

/* Delete @k.  With children here (etcd still has them: another etcd
 * client deleted @k alone) they become roots first; if that fails (out
 * of memory) the subtree goes, and a resync would bring it back. */
static void del_entry(struct mirror *m, const uint8_t *k, size_t klen)
{
	shmreg_writer_t *w = m->r->w;
	int64_t rc = shmreg_writer_del(w, k, klen);

	if (rc == -ENOTEMPTY) {
		struct keys ks = { 0 };
		ssize_t n = shmreg_children(shmreg_writer_reader(w), k, klen,
					    keys_add, &ks);

		m->rooting = true;
		for (size_t i = 0; n >= 0 && i < ks.n; i++)
			reput(m, ks.k[i], ks.len[i], false, NULL, 0, true);
		m->rooting = false;
		keys_free(&ks);
		rc = shmreg_writer_del(w, k, klen);
		if (rc == -ENOTEMPTY) {
			d_log_limited(D_ERR, "registry %s: a deleted parent's "
				      "children could not be made roots: "
				      "deleted with it", m->r->name);
			rc = shmreg_writer_del_tree(w, k, klen);
		}
	}
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

/* How apply_one() takes an event: count it, apply it (or leave it for
 * later: its parent comes later in the revision), or apply it come what
 * may (the revision's last round). */
enum amode { A_COUNT, A_APPLY, A_LATE };

/* Event @e (of the revision's @ev[0..n)) by @mode.  A_COUNT: whether it
 * is a local change of its own, or more than one (false: folded into its
 * key's event; an overcount only costs a watcher a resync, see
 * apply_events); A_APPLY: whether it waits for A_LATE. */
static unsigned apply_one(struct mirror *m, const struct mev *ev, size_t n,
			  const struct mev *e, enum amode mode)
{
	shmreg_attr_t a[SHMREG_ATTRS_MAX];
	shmreg_t *rd = shmreg_writer_reader(m->r->w);
	const struct mev *sc;
	shmreg_info_t info;
	enum kclass cls;
	const uint8_t *k;
	size_t klen;
	int na;

	cls = classify(m, &e->kv, &k, &klen);
	switch (cls) {
	case K_ENTRY:
		if (mode == A_COUNT)
			/* a parent deleted alone re-puts its children */
			return 1u + (e->del && mirror_has_children(m, k, klen));
		if (e->del) {
			del_entry(m, k, klen);
			return false;
		}
		if (mode == A_APPLY && parent_missing(m, k, klen))
			return true;
		sc = sidecar_of(m, ev, n, k, klen);
		na = attrs_for(m, k, klen, sc && !sc->del,
			       sc ? sc->kv.val : NULL, sc ? sc->kv.vlen : 0,
			       !sc, attr_buf, sizeof(attr_buf), a);
		put_entry(m, k, klen, &e->kv, a, na);
		return false;
	case K_SIDECAR:
	case K_LINK:
		if (entry_event(m, ev, n, k, klen))
			return false; /* its key's event applies it */
		/* changed alone (another etcd client): the entry, if there is
		 * one, gets the new attributes, or the parent now in effect
		 * (the links were updated first), with its value and
		 * revisions */
		if (shmreg_get(rd, k, klen, NULL, 0, &info) < 0)
			return false;
		if (mode == A_COUNT)
			return true;
		if (cls == K_SIDECAR) {
			reput(m, k, klen, !e->del, e->kv.val, e->kv.vlen, false);
			return false;
		}
		if (mode == A_APPLY && parent_missing(m, k, klen))
			return true;
		reput(m, k, klen, false, NULL, 0, true);
		return false;
	default:
		return false;
	}
}

/* Etcd key @kv, put (or deleted: @del), into the mirror's copy of the
 * links if it is a link: a put names the child's parent (the newest link
 * of a child wins), a delete forgets the child's link when it is that
 * one. */
static void note_link(struct mirror *m, const struct mkv *kv, bool del)
{
	const struct mlink *l;
	struct kparent par;
	const uint8_t *k;
	size_t klen;

	if (classify_link(m, kv, &k, &klen, &par) != K_LINK)
		return;
	l = links_get(&m->links, k, klen);
	if (del) {
		if (l && l->plen == par.len &&
		    !memcmp(mlink_parent(l), par.p, par.len))
			links_del(&m->links, k, klen);
	} else if ((!l || l->rev <= kv->mod_rev) &&
		   links_set(&m->links, k, klen, par.p, par.len,
			     kv->mod_rev) < 0) {
		d_log_limited(D_ERR, "registry %s: out of memory for a parent "
			      "link", m->r->name);
	}
}

/* The revision's link events, in its order, into the copy. */
static void update_links(struct mirror *m, const struct mev *ev, size_t n)
{
	for (size_t i = 0; i < n; i++)
		note_link(m, &ev[i].kv, ev[i].del);
}

static void apply_events(struct mirror *m, struct mmsg *msg)
{
	shmreg_writer_t *w = m->r->w;
	size_t changes = 0;
	bool many, *late;
	int rc;

	if (msg->rev <= shmreg_writer_revision(w))
		return; /* applied already */
	/* bounded by the revision's events, three times */
	for (size_t i = 0; i < msg->nev; i++)
		changes += apply_one(m, msg->ev, msg->nev, &msg->ev[i], A_COUNT);
	many = changes > 1;
	late = calloc(msg->nev ? msg->nev : 1, sizeof(*late));
	rc = late ? shmreg_writer_mirror_begin(w, msg->rev, many) : -ENOMEM;
	if (rc < 0) {
		d_log(D_ERR, "registry %s: etcd revision %llu: %s",
		      m->r->name, (unsigned long long)msg->rev, strerror(-rc));
		free(late);
		return;
	}
	update_links(m, msg->ev, msg->nev);
	if (many)
		shmreg_writer_batch_begin(w);
	for (size_t i = 0; i < msg->nev; i++)
		late[i] = apply_one(m, msg->ev, msg->nev, &msg->ev[i], A_APPLY);
	/* puts whose parent the revision put after them; one level of that
	 * per round, and a parent that never comes makes a root */
	for (bool again = true; again;) {
		again = false;
		for (size_t i = 0; i < msg->nev; i++)
			if (late[i] && !apply_one(m, msg->ev, msg->nev,
						  &msg->ev[i], A_APPLY))
				late[i] = false, again = true;
	}
	for (size_t i = 0; i < msg->nev; i++)
		if (late[i])
			apply_one(m, msg->ev, msg->nev, &msg->ev[i], A_LATE);
	if (many)
		shmreg_writer_batch_end(w);
	free(late);
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
	struct keys ks;
};

/* shmreg_list callback: remember local keys etcd no longer has. */
static int collect_stale(const void *key, size_t klen, const void *val,
			 size_t vlen, const shmreg_info_t *info, void *arg)
{
	struct stale *s = arg;

	if (range_find(s->m, s->rng, "", key, klen))
		return 0;
	return keys_add(key, klen, val, vlen, info, &s->ks);
}

/* The range's links as the mirror's copy. */
static void resync_links(struct mirror *m, const struct mrange *rng)
{
	links_clear(&m->links);
	for (size_t i = 0; i < rng->nkv; i++)
		note_link(m, &rng->kvs[i], false);
}

/* Put the range's entries, each parent before its children: a round puts
 * those whose parent in effect is put already (or is none); a round that
 * can put none of those left (a cycle other etcd clients wrote) puts
 * them all, as roots where their parent is not there.  Returns the
 * entries put. */
static size_t resync_puts(struct mirror *m, const struct mrange *rng)
{
	bool *done = calloc(rng->nkv ? rng->nkv : 1, sizeof(*done));
	bool force = false;
	size_t kept = 0;

	if (!done) {
		d_log(D_ERR, "registry %s: resync: out of memory", m->r->name);
		return 0;
	}
	/* bounded by the tree's depth rounds over the range, and one */
	for (;;) {
		size_t now = 0, waiting = 0;

		for (size_t i = 0; i < rng->nkv; i++) {
			const struct mkv *kv = &rng->kvs[i], *sc, *pk = NULL;
			shmreg_attr_t a[SHMREG_ATTRS_MAX];
			const struct mlink *l;
			const uint8_t *k;
			size_t klen;
			int na;

			if (done[i])
				continue;
			if (classify(m, kv, &k, &klen) != K_ENTRY) {
				done[i] = true;
				continue;
			}
			l = links_get(&m->links, k, klen);
			if (l)
				pk = range_find(m, rng, "", mlink_parent(l),
						l->plen);
			/* in effect: in the range, created no later than
			 * the link; then put first */
			if (pk && (pk == kv || pk->create_rev > l->rev))
				pk = NULL;
			if (!force && pk && !done[(size_t)(pk - rng->kvs)]) {
				waiting++;
				continue;
			}
			sc = range_find(m, rng, MIRROR_ATTRS, k, klen);
			na = attrs_for(m, k, klen, sc != NULL,
				       sc ? sc->val : NULL, sc ? sc->vlen : 0,
				       false, attr_buf, 0, a);
			/* a root unless its parent is put (the registry's
			 * older state does not count) */
			m->rooting = !pk || !done[(size_t)(pk - rng->kvs)];
			put_entry(m, k, klen, kv, a, na);
			m->rooting = false;
			done[i] = true;
			now++;
		}
		kept += now;
		if (!waiting)
			break;
		force = now == 0;
	}
	free(done);
	return kept;
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
	resync_links(m, &msg->rng);
	shmreg_writer_batch_begin(w);
	for (size_t i = 0; i < s.ks.n; i++) {
		int64_t r = shmreg_writer_del_tree(w, s.ks.k[i], s.ks.len[i]);

		if (r < 0 && r != -ENOENT)
			d_log_limited(D_ERR, "registry %s: resync delete: %s",
				      m->r->name, strerror((int)-r));
	}
	kept = resync_puts(m, &msg->rng);
	shmreg_writer_batch_end(w);
	shmreg_writer_mirror_end(w, msg->rev);
	d_log(D_INFO, "registry %s: resynced from etcd at revision %llu "
	      "(%zu keys, %zu removed)", m->r->name,
	      (unsigned long long)msg->rev, kept, s.ks.n);
out:
	keys_free(&s.ks);
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

struct load {
	struct mirror *m;
	const uint8_t *parent;
	size_t plen;
	int64_t rev;
	int err;
};

static int load_child(const void *key, size_t klen, const void *val,
		      size_t vlen, const shmreg_info_t *info, void *arg)
{
	struct load *ld = arg;

	(void)val, (void)vlen, (void)info;
	ld->err = links_set(&ld->m->links, key, klen, ld->parent, ld->plen,
			    ld->rev);
	return ld->err;
}

int mirror_links_load(struct mirror *m)
{
	shmreg_t *rd = shmreg_writer_reader(m->r->w);
	struct load ld = { .m = m,
			   .rev = (int64_t)shmreg_writer_revision(m->r->w) };
	struct keys ks = { 0 };
	ssize_t n = shmreg_list(rd, NULL, 0, keys_add, &ks);

	/* bounded by the entries, each listed once as a parent */
	for (size_t i = 0; n >= 0 && !ld.err && i < ks.n; i++) {
		ld.parent = ks.k[i];
		ld.plen = ks.len[i];
		n = shmreg_children(rd, ks.k[i], ks.len[i], load_child, &ld);
	}
	keys_free(&ks);
	if (n < 0 || ld.err)
		return n < 0 ? (int)n : ld.err;
	return 0;
}
