/* SPDX-License-Identifier: MIT */
/*
 * recover.c - rebuild the registry from its data directory on open.
 *
 * How it works.  The records are applied to a private segment first (the
 * registry's name plus ".recover", which no reader opens), into an index
 * sized for the entries up front (no growth on the way for the common
 * case): the roots of a hash-ordered snapshot (version 2) without
 * attributes by the bulk insert (bulk_load.c), front to back through the
 * index; every other record through the writer's own put and delete with
 * the record's revision, create_rev and deadline imposed, each O(1).
 * Readers of the registry keep reading the old segment meanwhile and never
 * see a half-built state.  At the end one handoff copies the
 * private segment to the registry's name and retires the old segment, so
 * readers already mapped follow (writer/handoff.c).
 *
 * When the estimate of the entries (every PUT record counts) was far too
 * high - a log of many changes to few keys - the private segment is
 * copied once more into one of the right size; else it is renamed into
 * place as it is (as a handoff renames its new segment).
 *
 * What readers see.  The contents are what the files hold, never the old
 * segment's: a change a reader saw but that had not reached the log (the
 * durability mode allowed it to be lost) is gone.  The revision goes on
 * past both: the larger of the files' highest revision and the old
 * segment's plus one (that one revision has no change event, so a watcher
 * that had seen the old segment's last event gets -ERANGE and lists
 * again, as after a truncation).  persist_open() logs a MARK record of it
 * before the first change, so no later recovery starts below it, whether
 * or not the segment survives.
 *
 * Entries whose parent is missing (an owner-bound parent, which is not
 * restored, or an expired one) are dropped, as their parent's removal
 * would have removed them; expired entries are dropped too.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "commit.h"
#include "internal.h"
#include "notify.h"
#include "persist.h"

struct wsink {
	struct shmreg_writer *w;
	char real[PATH_MAX];
	int64_t now;
	uint64_t old_rev;         /* the old segment's revision, 0: none */
	bool have_old;
	uint64_t top_rev;         /* the highest revision applied so far */
};

_Static_assert(PREC_INLINE_MAX == SHM_SLOT_INLINE, "inline bytes");

static int ws_begin(void *ctx, uint64_t entries, uint64_t big_bytes)
{
	struct wsink *s = ctx;
	struct shmreg_writer *w = s->w;
	/* size classes round up: twice the bytes leaves room for that and
	 * for growth before the first handoff */
	uint64_t arena = 2 * big_bytes;
	struct shm_map old;
	int fd;

	/* the old segment: its revision and generation go on */
	if (segment_map_existing(s->real, &fd, &old) == 0) {
		s->have_old = true;
		s->old_rev = atomic_load_explicit(&old.hdr->revision,
						  memory_order_acquire);
		w->last_generation = old.generation;
		segment_unmap(&old);
		close(fd);
	}
	if (entries < w->opts.initial_entries)
		entries = w->opts.initial_entries;
	if (arena < w->opts.initial_arena)
		arena = w->opts.initial_arena;
	if (snprintf(w->path, sizeof(w->path), "%s.recover", s->real) >=
	    (int)sizeof(w->path))
		return -ENAMETOOLONG;
	return handoff(w, NULL, index_cap_for(entries), arena);
}

static void del_key(struct shmreg_writer *w, const struct prec *r)
{
	w->revision = r->rev - 1;
	if (shmreg_writer_del(w, r->key, r->klen) == -ENOTEMPTY) {
		w->revision = r->rev - 1;
		(void)shmreg_writer_del_tree(w, r->key, r->klen);
	}
}

static int ws_apply(void *ctx, const struct prec *r, const uint8_t *raw,
		    size_t size)
{
	struct wsink *s = ctx;
	struct shmreg_writer *w = s->w;
	shmreg_attr_t attrs[SHMREG_ATTRS_MAX];
	shmreg_put_opts_t o = { 0 };
	int64_t rc;

	(void)raw;
	(void)size;
	if (r->op == PREC_DEL ||
	    (r->expires_at && r->expires_at <= s->now)) {
		del_key(w, r);
		return 0;
	}
	if (r->nattrs) {
		prec_attrs_decode(r->attrs, r->alen, r->nattrs, attrs);
		o.attrs = attrs;
		o.nattrs = r->nattrs;
	}
	if (r->plen) {
		o.parent = r->parent;
		o.parent_len = r->plen;
	}
	/*
	 * The put commits as w->revision + 1.  A growth inside it (a
	 * handoff) raises w->revision to the highest mod_rev it copies
	 * (handoff.c, count_entry): harmless while the records come in
	 * revision order (the logs), not for a snapshot's (hash order, then
	 * parents first), whose revisions are imposed on the slot instead.
	 */
	bool ascending = r->rev > s->top_rev;

	if (ascending)
		s->top_rev = r->rev;
	w->revision = r->rev - 1;
	/* a plain entry put once takes the writer's fast path (all-zero
	 * options), which sets what the record says; anything else imposes
	 * its deadline and create_rev on the general path */
	if (ascending && r->create_rev == r->rev && !r->expires_at &&
	    !r->nattrs && !r->plen)
		return (rc = shmreg_writer_put(w, r->key, r->klen, r->val,
					       r->vlen, NULL)) < 0 ? (int)rc : 0;
	w->keep_expiry = true;
	w->keep_expires_at = r->expires_at;
	w->replay_create_rev = r->create_rev;
	if (!ascending) {
		w->slot_mod_rev = r->rev;
		w->slot_create_rev = r->create_rev;
	}
	rc = shmreg_writer_put(w, r->key, r->klen, r->val, r->vlen, &o);
	w->keep_expiry = false;
	w->replay_create_rev = 0;
	w->slot_mod_rev = w->slot_create_rev = 0;
	if (rc == -ENOENT || rc == -ELOOP) {
		/* its parent is gone: so is the entry */
		del_key(w, r);
		return 0;
	}
	return rc < 0 ? (int)rc : 0;
}

/* A root of a hash-ordered snapshot: the bulk insert, unless it hands
 * the record back to the put path. */
static int ws_load_root(void *ctx, const struct prec *r, uint64_t hash)
{
	struct wsink *s = ctx;
	int rc;

	if (r->expires_at && r->expires_at <= s->now)
		return 0; /* expired: not restored (no earlier record has it) */
	if (r->rev > s->top_rev)
		s->top_rev = r->rev;
	rc = pbulk_put(s->w, r, hash);
	return rc > 0 ? ws_apply(ctx, r, NULL, 0) : rc;
}

static void retire_old(const char *path);

/* The private segment becomes the registry: the same steps as a
 * handoff's publication (writer/handoff.c): the revision, the old
 * segment retired, the rename, every waiter woken. */
static int publish_private(struct shmreg_writer *w, const char *priv,
			   uint64_t rev)
{
	struct shm_hdr *h = w->map.hdr;

	/* an empty commit: the header's counters (the bulk insert stores
	 * none) and the revision, as every commit stores them */
	commit_begin(w);
	commit_end(w, rev);
	/* the ring holds replayed records, not the history before rev:
	 * a watcher from before it resyncs (-ERANGE) */
	atomic_store_explicit(&h->ring_first_rev, rev + 1,
			      memory_order_relaxed);
	retire_old(w->path);
	/* pairs with the acquire load of the header by readers that map
	 * the file at the name after the rename */
	atomic_thread_fence(memory_order_release);
	if (rename(priv, w->path) < 0)
		return -errno;
	if (w->notify)
		notify_all(w->notify);
	return 0;
}

/* The old segment at the name: retired, so that its readers follow. */
static void retire_old(const char *path)
{
	struct shm_map old;
	int fd;

	if (segment_map_existing(path, &fd, &old) < 0)
		return;
	atomic_store_explicit(&old.hdr->state, SHM_STATE_RETIRED,
			      memory_order_release);
	segment_unmap(&old);
	close(fd);
}

int precover(struct shmreg_writer *w, int dfd, struct preplay_res *res)
{
	struct wsink s = { .w = w, .now = shm_realtime_ns() };
	struct psink sink = { .ctx = &s, .begin = ws_begin, .apply = ws_apply,
			      .load_root = ws_load_root };
	unsigned flags = PREPLAY_TORN_TAIL;
	char priv[PATH_MAX];
	uint64_t rev;
	int rc;

	if (w->opts.flags & SHMREG_WRITER_KEEP_PREFIX)
		flags |= PREPLAY_KEEP_PREFIX;
	/* the mode it is opened with is taken for the mode it ran in */
	if (w->opts.durability == SHMREG_DURABILITY_NONE)
		flags |= PREPLAY_UNSYNCED_LOGS;
	memcpy(s.real, w->path, sizeof(s.real));
	rc = pdir_replay(dfd, w->opts.data_dir, UINT64_MAX, flags, &sink, res);
	memcpy(priv, w->path, sizeof(priv));
	memcpy(w->path, s.real, sizeof(w->path));
	if (rc == 0) {
		/* the index the entries (or opts.initial_entries) need */
		uint64_t want = index_cap_for(w->entries > w->opts.initial_entries
					      ? w->entries
					      : w->opts.initial_entries);

		rev = res->max_rev;
		if (s.have_old && s.old_rev + 1 > rev)
			rev = s.old_rev + 1;
		if (want * 4 <= w->map.g.index_cap) {
			w->revision = rev;
			retire_old(w->path);
			rc = handoff(w, &w->map, want, w->map.g.arena_size);
		} else {
			rc = publish_private(w, priv, rev);
		}
	}
	if (rc < 0 || strcmp(priv, w->path))
		unlink(priv);
	return rc;
}
