/* SPDX-License-Identifier: MIT */
/*
 * handoff.c - growth, compaction and takeover: build a new segment, rename
 * it over the registry's name, retire the old one.
 *
 * How it works.  The writer never resizes a segment in place (a reader
 * touching a page past the end of a shrunk file gets SIGBUS, and a moved
 * region would invalidate every reader's validated geometry).  Instead:
 *
 *   1. create SEGMENT.new.PID, reserve its full size (fallocate), map it;
 *   2. copy every live entry into it, re-inserted at its home in the new
 *      index and re-packed into the new arena; copy the change ring with
 *      its revisions unchanged.  A key's home is its hash's top bits, so
 *      walking the old index in order visits homes in order: the copy
 *      writes the new index front to back (two neighbouring new slots per
 *      old one after a doubling) instead of at random;
 *   3. store RETIRED in the old header's state (release), then the new
 *      one's magic (release), and rename the new file over the name: from
 *      now on shmreg_open finds the new one.  Retiring first means a writer
 *      killed between these steps leaves the old segment RETIRED, so its
 *      readers follow once the next writer has taken over;
 *   4. wake every waiter: each reader's next call sees RETIRED and maps
 *      the name anew (reader/map.c); the revision continues where it was,
 *      so watchers resume without losing an event;
 *   5. unmap the old file.  It is not truncated: readers still mapping it
 *      keep reading a consistent (frozen) registry until they follow.
 *
 * Growth copies the writer's own segment, whose bytes it wrote itself: an
 * inline slot is copied as it is, with no rehash (the slot keeps the whole
 * hash).  A takeover of a crashed writer's segment instead reads it through
 * the same validating code as any reader (shm/lookup.c), so it copies only
 * entries that validate; a slot left odd by the crash was restored from
 * the undo record first (index_undo_restore).
 *
 * Cost: O(entries + ring_events) once per doubling, so amortised O(1) per
 * put; the writer pauses for the copy, readers never do.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "attr_index.h"
#include "internal.h"
#include "hash.h"
#include "lookup.h"
#include "notify.h"
#include "prepare.h"
#include "ring.h"
#include "ring_read.h"
#include "seqcount.h"
#include "validate.h"

uint64_t index_cap_for(uint64_t entries)
{
	uint64_t cap = 8;

	/* the smallest power of two that holds @entries at the load limit */
	while (cap < (UINT64_C(1) << 62) &&
	       entries * SHM_LOAD_DEN > cap * SHM_LOAD_NUM)
		cap <<= 1;
	return cap;
}

static int scratch_reserve(struct shmreg_writer *w, size_t need)
{
	void *p;

	if (need <= w->scratch_cap)
		return 0;
	p = realloc(w->scratch, need);
	if (!p)
		return -ENOMEM;
	w->scratch = p;
	w->scratch_cap = need;
	return 0;
}

/* Account for an entry placed in the new segment. */
static void count_entry(struct shmreg_writer *w, const struct shm_slot *s)
{
	w->entries++;
	w->bytes_used += s->klen + s->vlen;
	if (s->owner_pid > 0)
		w->owned++;
	if (w->revision < s->mod_rev)
		w->revision = s->mod_rev;
}

/* Place slot image @ns (built for the new segment) at its first free slot.
 * The new segment is not yet visible: plain stores, no seqcount or undo. */
static int place(struct shmreg_writer *w, const struct shm_slot *ns)
{
	uint64_t i;
	int rc = index_free_slot(w, (uint64_t)ns->hash_hi << 32 | ns->tag, &i);

	if (rc < 0)
		return rc;
	memcpy((uint8_t *)shm_slot_at(&w->map, i) + 4, (const uint8_t *)ns + 4,
	       SHM_SLOT_SIZE - 4);
	count_entry(w, ns);
	return 0;
}

/* Growth: copy the writer's own segment.  Inline slots move as they are;
 * an extern entry's object is copied into the new arena. */
static int copy_own(struct shmreg_writer *w, const struct shm_map *src)
{
	for (uint64_t i = 0; i < src->g.index_cap; i++) {
		const struct shm_slot *s = shm_slot_at(src, i);
		struct shm_slot ns;
		struct shm_ext_ref ref;
		const uint8_t *o;
		int rc;

		if (s->klen == 0)
			continue;
		memcpy(&ns, s, sizeof(ns));
		if (s->kind == SHM_KIND_EXTERN) {
			memcpy(&ref, s->data, sizeof(ref));
			o = src->base + ref.obj_off + SHM_OBJ_HDR;
			rc = entry_build(w, &ns, o, s->klen, o + s->klen,
					 s->vlen, (uint64_t)s->hash_hi << 32 |
							  s->tag);
			if (rc < 0)
				return rc;
		} else if (s->kind == SHM_KIND_RICH) {
			const uint8_t *a, *parent;
			uint32_t alen, nattrs, plen;

			/* bounds-checked: the segment may be an adopted one */
			rc = attrs_of_slot(src, s, &a, &alen, &nattrs, &parent,
					   &plen);
			if (rc < 0)
				return rc;
			memcpy(&ref, s->data, sizeof(ref));
			o = src->base + ref.obj_off + SHM_OBJ_HDR + SHM_RICH_HDR;
			rc = attrs_entry_build_raw(w, &ns, o, s->klen,
						   o + s->klen, s->vlen,
						   (uint64_t)s->hash_hi << 32 |
							   s->tag,
						   a, alen, nattrs, parent, plen);
			if (rc < 0)
				return rc;
		}
		rc = place(w, &ns);
		if (rc < 0)
			return rc;
	}
	/*
	 * The attribute index is copied whole, not rebuilt by an
	 * attrs_update() per entry: that regrew every posting array from its
	 * smallest block, leaving each outgrown block behind in the new
	 * arena (the copy cannot reuse them: other size classes, and the
	 * FIFO's quarantine), so a copy could need the posting bytes several
	 * times over.  An index growth keeps the arena's size, and with live
	 * data near it such a copy failed with -ENOSPC: a put refused while
	 * the registry could still grow (issue 9, tests/attrs_growth.c).
	 * Copied as they are, the arrays take exactly what they took.
	 */
	return attrs_copy_index(w, src);
}

/* Insert one validated entry of a segment taken over after a crash. */
static int copy_entry(struct shmreg_writer *w, const struct shm_slot *old,
		      const uint8_t *key, const uint8_t *val,
		      const uint8_t *attrs, uint32_t alen, uint32_t nattrs,
		      const uint8_t *parent, uint32_t plen)
{
	uint64_t hash = shm_hash(key, old->klen);
	struct shm_slot ns, dup;
	int64_t at;
	int rc;

	if (shm_tag(hash) != old->tag || old->mod_rev > WRITER_REV_MAX)
		return -EPROTO; /* corrupt: skipped (the revision would pass it) */
	/* A writer that died in the middle of a backward shift leaves one
	 * entry in two slots: keep the newer copy (in the slot of the older
	 * one, so that the cluster keeps no hole). */
	at = index_find(w, key, old->klen, hash, &dup);
	if (at >= 0) {
		if (dup.mod_rev >= old->mod_rev)
			return 0;
		attrs_update(w, &dup, NULL, hash);
		entry_release(w, &dup);
		w->entries--;
		w->bytes_used -= dup.klen + dup.vlen;
		if (dup.owner_pid > 0)
			w->owned--;
	}
	memset(&ns, 0, sizeof(ns));
	ns.mod_rev = old->mod_rev;
	ns.create_rev = old->create_rev;
	ns.expires_at_ns = old->expires_at_ns;
	ns.owner_pid = old->owner_pid;
	ns.flags = old->flags;
	if (old->kind == SHM_KIND_RICH) {
		rc = attrs_entry_build_raw(w, &ns, key, old->klen, val,
					   old->vlen, hash, attrs, alen,
					   nattrs, parent, plen);
	} else {
		rc = entry_build(w, &ns, key, old->klen, val, old->vlen, hash);
	}
	if (rc < 0)
		return rc;
	if (at >= 0) {
		memcpy((uint8_t *)shm_slot_at(&w->map, (uint64_t)at) + 4,
		       (const uint8_t *)&ns + 4, SHM_SLOT_SIZE - 4);
		count_entry(w, &ns);
	} else {
		rc = place(w, &ns);
		if (rc < 0)
			return rc;
	}
	if (ns.kind == SHM_KIND_RICH)
		attrs_update(w, NULL, &ns, hash);
	if (old->owner_pid > 0)
		(void)owners_add(&w->owners, old->owner_pid, key, old->klen,
				 writer_owns, w);
	return 0;
}

/* Pairs in well-formed attribute bytes (two strings each). */
static uint32_t count_pairs(const uint8_t *a, uint32_t alen)
{
	uint32_t strings = 0;

	for (uint32_t i = 0; i < alen; i++)
		strings += a[i] == 0;
	return strings / 2;
}

/* Takeover after a crash: copy every entry that validates. */
static int copy_validated(struct shmreg_writer *w, const struct shm_map *src)
{
	for (uint64_t i = 0; i < src->g.index_cap; i++) {
		struct shm_slot s;
		uint8_t *key, *attrs, *val, *parent;
		uint32_t alen, nattrs, plen;
		int rc;

		/* a slot that will not validate or makes no sense is
		 * corruption (the undo record covered the crash): skip it */
		if (shm_slot_copy(src, i, &s) < 0 || s.klen == 0 ||
		    !shm_slot_sane(src, &s))
			continue;
		rc = scratch_reserve(w, 2 * SHMREG_KEY_MAX +
					SHM_ATTR_BYTES_MAX + (size_t)s.vlen);
		if (rc < 0)
			return rc;
		key = w->scratch;
		parent = key + SHMREG_KEY_MAX;
		attrs = parent + SHMREG_KEY_MAX;
		val = attrs + SHM_ATTR_BYTES_MAX;
		alen = nattrs = plen = 0;
		if (s.kind == SHM_KIND_RICH) {
			/* key, value, attributes and parent of one version,
			 * all validated (shm/attr_read.c) */
			if (shm_rich_read(src, &s, key, val, s.vlen, attrs,
					  SHM_ATTR_BYTES_MAX, &alen, parent,
					  &plen) < 0)
				continue;
			nattrs = count_pairs(attrs, alen);
		} else if (shm_entry_read(src, &s, key, val, s.vlen) < 0) {
			continue;
		}
		rc = copy_entry(w, &s, key, val, attrs, alen, nattrs, parent,
				plen);
		if (rc < 0 && rc != -EPROTO)
			return rc;
	}
	return 0;
}

/* Copy the ring's records that the old segment still holds; the new ring
 * starts after the last one that could not be read. */
static void copy_ring(struct shmreg_writer *w, const struct shm_map *src)
{
	uint64_t cur = atomic_load_explicit(&src->hdr->revision,
					    memory_order_acquire);
	uint64_t first = shm_ring_oldest(src, cur);
	uint8_t key[SHMREG_KEY_MAX];

	if (cur > w->revision)
		cur = w->revision; /* never copy records past our revision */
	if (cur >= w->map.g.ring_events && first < cur - w->map.g.ring_events + 1)
		first = cur - w->map.g.ring_events + 1;
	for (uint64_t rev = first; rev && rev <= cur; rev++) {
		struct shm_ring_event ev;

		if (shm_ring_read(src, rev, &ev, key) < 0) {
			first = rev + 1;
			continue;
		}
		ring_append(w, rev, ev.op, key, ev.klen, ev.hash);
	}
	atomic_store_explicit(&w->map.hdr->ring_first_rev,
			      first ? first : 1, memory_order_relaxed);
}

int handoff_plan(const struct shmreg_writer *w, const struct shm_map *src,
		 uint64_t index_cap, uint64_t arena_size, struct shm_geom *g)
{
	uint64_t attr_cap = attr_cap_for(w->attr_pairs);
	int rc;

	if (src && src->g.attr_cap > attr_cap)
		attr_cap = src->g.attr_cap;
	if (w->attr_cap_min > attr_cap)
		attr_cap = w->attr_cap_min;
	rc = shm_geom_plan(g, index_cap, w->opts.ring_events, attr_cap,
			   arena_size);
	return rc == -E2BIG ? -ENOMEM : rc;
}

int handoff(struct shmreg_writer *w, struct shm_map *src, uint64_t index_cap,
	    uint64_t arena_size)
{
	char tmp[PATH_MAX + 32];
	struct shm_geom g;
	struct shm_map from = { 0 }, fresh;
	struct alloc saved = w->alloc;
	uint64_t saved_rev = w->revision, saved_entries = w->entries;
	uint64_t saved_bytes = w->bytes_used, saved_live = w->arena_live;
	uint64_t saved_owned = w->owned;
	uint64_t saved_reserved = w->key_reserved;
	bool own = src == &w->map, asked;
	uint32_t old_state = 0;
	int fd, rc;

	struct apos_map saved_apos = w->apos;
	uint64_t saved_pairs = w->attr_pairs;

	rc = handoff_plan(w, src, index_cap, arena_size, &g);
	if (rc < 0)
		return rc;
	if (src)
		from = *src;
	rc = segment_create(w, &g, (from.base ? from.generation
					      : w->last_generation) + 1,
			    &fd, &fresh, tmp, sizeof(tmp));
	if (rc < 0)
		return rc;

	memset(&w->alloc, 0, sizeof(w->alloc));
	alloc_reset(&w->alloc, g.arena_size);
	w->map = fresh;
	/* The next growth's segment, asked for before this copy when the
	 * copy leaves the registry at its trigger (a doubling does): the
	 * helper then makes it while the writer copies, not only while the
	 * puts after the copy fill the index (prepare.c, "How").  Here, not
	 * later: prep_trigger() and prep_next() plan from w->map, now the
	 * new segment, and from w->attr_pairs, which the copy rebuilds from
	 * 0 below (to the same count) */
	asked = own && saved_entries >= prep_trigger(w);
	if (asked)
		prep_next(w);
	w->entries = w->bytes_used = w->arena_live = w->key_reserved = 0;
	w->owned = 0;
	/* the attribute index: copied from the writer's own segment with
	 * its position map as it is (copy_own), else rebuilt as the entries
	 * are copied */
	if (!own)
		memset(&w->apos, 0, sizeof(w->apos));
	w->attr_pairs = 0;
	rc = !from.base ? 0 : own ? copy_own(w, &from) : copy_validated(w, &from);
	if (rc < 0)
		goto fail;
	if (from.base)
		copy_ring(w, &from);
	else
		atomic_store_explicit(&w->map.hdr->ring_first_rev,
				      w->revision + 1, memory_order_relaxed);

	struct shm_hdr *h = w->map.hdr;
	/* a handoff inside a batch: the new segment's commit is open too, so
	 * that the batch's end (seq_write_end) leaves it even */
	atomic_store_explicit(&h->commit_seq, w->batch_depth ? 1 : 0,
			      memory_order_relaxed);
	atomic_store_explicit(&h->revision, w->revision, memory_order_relaxed);
	atomic_store_explicit(&h->entries, w->entries, memory_order_relaxed);
	atomic_store_explicit(&h->bytes_used, w->bytes_used, memory_order_relaxed);
	atomic_store_explicit(&h->arena_bump, w->alloc.bump, memory_order_relaxed);
	atomic_store_explicit(&h->arena_live, w->arena_live, memory_order_relaxed);
	atomic_store_explicit(&h->owned, w->owned, memory_order_relaxed);
	atomic_store_explicit(&h->attr_pairs, w->attr_pairs,
			      memory_order_relaxed);
	atomic_store_explicit(&h->attr_postings, w->apos.n,
			      memory_order_relaxed);
	rate_publish(w, h);
	/* Retire the old segment *before* the rename: a writer killed
	 * between the two must not leave a segment that is no longer at the
	 * name but still says OPEN, which its readers would never leave.
	 * Until the rename lands, a reader that sees RETIRED finds the same
	 * file at the name and keeps reading this one (reader_follow).
	 * Pairs with the acquire load of state in reader_map(). */
	if (from.base) {
		old_state = atomic_exchange_explicit(&from.hdr->state,
						     SHM_STATE_RETIRED,
						     memory_order_acq_rel);
	}
	rc = segment_publish(w, &w->map, tmp);
	if (rc < 0) {
		/* the one way back from RETIRED: nothing replaced it */
		if (from.base)
			atomic_store_explicit(&from.hdr->state, old_state,
					      memory_order_release);
		goto fail_published;
	}

	if (w->notify)
		notify_all(w->notify);
	if (own)
		prep_release(w, &from, w->seg_fd);
	w->seg_fd = fd;
	w->prep_at = asked ? UINT64_MAX : prep_trigger(w);
	alloc_free_all(&saved);
	if (!own)
		apos_free(&saved_apos);
	return 0;

fail:
	unlink(tmp);
fail_published:
	segment_unmap(&w->map);
	close(fd);
	alloc_free_all(&w->alloc);
	w->alloc = saved;
	w->map = from;
	w->revision = saved_rev;
	w->entries = saved_entries;
	w->bytes_used = saved_bytes;
	w->arena_live = saved_live;
	w->owned = saved_owned;
	w->key_reserved = saved_reserved;
	if (!own) {
		apos_free(&w->apos);
		w->apos = saved_apos;
	}
	w->attr_pairs = saved_pairs;
	return rc;
}
