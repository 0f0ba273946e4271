/* SPDX-License-Identifier: MIT */
/*
 * writer.c - the embedded writer: open, put, delete, batches, close.
 *
 * Every change is one commit:
 *
 *   commit_seq odd                    (snapshot readers: a commit is open)
 *   write the slot(s)                 (each under its seqcount, journaled)
 *   append the change-ring record     (the common put writes it first, see
 *                                      put_common())
 *   store the revision (release)      (everything above is now visible to
 *                                      whoever sees the new revision)
 *   commit_seq even                   (at the end of the outermost batch)
 *   wake the key's waiters
 *
 * Growth happens before a change, never in the middle of one: when the
 * index would pass its load limit or the arena has no block left, the
 * writer hands off to a larger segment (handoff.c) and then applies the
 * change there.  A failed handoff leaves the registry as it was and the
 * change is refused with -ENOMEM/-ENOSPC; nothing stored is lost.
 */
#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "internal.h"
#include "hash.h"
#include "lookup.h"
#include "notify.h"
#include "paths.h"
#include "prefetch.h"
#include "prepare.h"
#include "commit.h"
#include "ring.h"
#include "slot_write.h"
#include "seqcount.h"
#include "validate.h"

#define DEFAULT_ENTRIES  1024u
#define DEFAULT_ARENA    (UINT64_C(1) << 20)
#define DEFAULT_RING     65536u
#define MAX_RING         (1u << 24)
#define MAX_INITIAL      (UINT64_C(1) << 34)

/* ---- fork: children of the writer process are not the writer ---- */

/*
 * A pre-fork server's master is the writer and forks its workers.  A worker
 * that inherited the lock file descriptor would keep the lock's open file
 * description alive after the master died: readers would never learn that
 * the writer is gone and no new writer could take over.  So each child
 * closes its copies at once (the parent's lock is unaffected: an OFD lock
 * goes away only when the last descriptor of its open file is closed).
 */
static pthread_mutex_t writers_lock = PTHREAD_MUTEX_INITIALIZER;
static struct writer_link {
	struct writer_link *next;
	struct shmreg_writer *w;
} *writers;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* The helpers' locks are held across a fork (prepare.c, "fork()"). */
static void prepare_fork(void)
{
	pthread_mutex_lock(&writers_lock);
	for (struct writer_link *l = writers; l; l = l->next)
		prep_fork_prepare(l->w);
}

static void parent_after_fork(void)
{
	for (struct writer_link *l = writers; l; l = l->next)
		prep_fork_parent(l->w);
	pthread_mutex_unlock(&writers_lock);
}

static void child_after_fork(void)
{
	/* single-threaded here: the list is ours */
	for (struct writer_link *l = writers; l; l = l->next) {
		close(l->w->lock_fd);
		close(l->w->seg_fd);
		l->w->lock_fd = l->w->seg_fd = -1;
		persist_after_fork(l->w); /* the data directory's lock too */
		prep_fork_child(l->w);    /* no helper thread here */
	}
	pthread_mutex_init(&writers_lock, NULL);
}

static void install_atfork(void)
{
	pthread_atfork(prepare_fork, parent_after_fork, child_after_fork);
}

static int writers_add(struct shmreg_writer *w)
{
	struct writer_link *l = malloc(sizeof(*l));

	if (!l)
		return -ENOMEM;
	pthread_once(&atfork_once, install_atfork);
	pthread_mutex_lock(&writers_lock);
	l->w = w;
	l->next = writers;
	writers = l;
	pthread_mutex_unlock(&writers_lock);
	return 0;
}

static void writers_remove(struct shmreg_writer *w)
{
	pthread_mutex_lock(&writers_lock);
	for (struct writer_link **pp = &writers; *pp; pp = &(*pp)->next) {
		if ((*pp)->w == w) {
			struct writer_link *l = *pp;

			*pp = l->next;
			free(l);
			break;
		}
	}
	pthread_mutex_unlock(&writers_lock);
}

/* ---- entries ---- */

int entry_build(struct shmreg_writer *w, struct shm_slot *s, const void *key,
		size_t klen, const void *val, size_t vlen, uint64_t hash)
{
	struct shm_ext_ref ref;
	struct shm_obj *o;
	uint64_t off, size;
	int rc;

	s->tag = shm_tag(hash);
	s->hash_hi = shm_hash_hi(hash);
	s->klen = (uint16_t)klen;
	s->vlen = (uint32_t)vlen;
	if (klen + vlen <= SHM_SLOT_INLINE) {
		s->kind = SHM_KIND_INLINE;
		/* the segment is readable by others: no stack bytes in it */
		shm_zero_fixed(s->data, SHM_SLOT_INLINE);
		/* inline copies, no library call: this is on every put */
		shm_small_copy(s->data, key, klen);
		if (vlen)
			shm_small_copy(s->data + klen, val, vlen);
		return 0;
	}
	memset(s->data, 0, sizeof(s->data));
	size = alloc_class_size(SHM_OBJ_HDR + klen + vlen);
	rc = alloc_block(&w->alloc, &w->map.g, size, &off);
	if (rc < 0)
		return rc;
	o = (struct shm_obj *)(w->map.base + off);
	/* The block may be a reused one that a slow reader is still
	 * copying: rewrite it inside its seqcount so that reader retries. */
	seq_write_begin(&o->seq);
	struct shm_obj oh = { .klen = (uint32_t)klen, .vlen = (uint32_t)vlen,
			      .mod_rev = s->mod_rev, .hash = hash };
	shm_store_words((uint8_t *)o + 8, (uint8_t *)&oh + 8, SHM_OBJ_HDR - 8);
	shm_store_wide((uint8_t *)o + SHM_OBJ_HDR, key, klen);
	if (vlen)
		shm_store_wide((uint8_t *)o + SHM_OBJ_HDR + klen, val, vlen);
	seq_write_end(&o->seq);
	s->kind = SHM_KIND_EXTERN;
	ref.obj_off = off;
	ref.obj_size = size;
	memcpy(s->data, &ref, sizeof(ref));
	w->arena_live += size;
	return 0;
}

void entry_release(struct shmreg_writer *w, const struct shm_slot *s)
{
	struct shm_ext_ref ref;

	if (s->kind == SHM_KIND_INLINE)
		return;
	memcpy(&ref, s->data, sizeof(ref));
	w->arena_live -= ref.obj_size;
	/* on -ENOMEM the block stays unused until the next handoff */
	(void)alloc_release(&w->alloc, ref.obj_off, ref.obj_size);
}

/* ---- commits ---- */


SHMREG_EXPORT int shmreg_writer_batch_begin(shmreg_writer_t *w)
{
	if (!w || w->batch_depth == UINT32_MAX)
		return -EINVAL;
	commit_begin(w);
	return 0;
}

SHMREG_EXPORT int shmreg_writer_batch_end(shmreg_writer_t *w)
{
	if (!w || w->batch_depth == 0)
		return -EINVAL;
	commit_end(w, 0);
	return w->plog && w->batch_depth == 0 ? persist_error(w) : 0;
}

/* ---- growth ---- */

static int grow_index(struct shmreg_writer *w)
{
	return handoff(w, &w->map, 2 * w->map.g.index_cap,
		       w->map.g.arena_size);
}

static int grow_arena(struct shmreg_writer *w, uint64_t need)
{
	uint64_t arena = 2 * (w->arena_live + need);

	if (arena < w->opts.initial_arena)
		arena = w->opts.initial_arena;
	/* live data small but the arena fragmented: same size, compacted */
	if (arena < w->map.g.arena_size && w->arena_live + need >
					       w->map.g.arena_size / 2)
		arena = w->map.g.arena_size;
	return handoff(w, &w->map, w->map.g.index_cap, arena);
}

/* ---- put and delete ---- */

bool writer_owns(void *ctx, pid_t pid, const void *key, size_t klen)
{
	struct shmreg_writer *w = ctx;
	struct shm_slot s;

	return index_find(w, key, klen, shm_hash(key, klen), &s) >= 0 &&
	       s.owner_pid == pid;
}

/* Remove the entry at slot @i (a validated copy in @old) as revision @rev
 * with its delete event, or silently (rev 0). */
void remove_at(struct shmreg_writer *w, uint64_t i,
		      const struct shm_slot *old, const void *key, size_t klen,
		      uint64_t hash, uint64_t rev)
{
	commit_begin(w);
	index_remove(w, i);
	attrs_update(w, old, NULL, hash);
	entry_release(w, old);
	w->entries--;
	w->bytes_used -= old->klen + old->vlen;
	if (old->owner_pid > 0)
		w->owned--;
	if (rev)
		ring_append(w, rev, SHM_OP_DEL, key, klen, hash);
	if (rev && w->plog) /* persistence hook */
		persist_log_del(w, rev, key, klen);
	commit_end(w, rev);
	if (rev && w->notify)
		notify_key(w->notify, hash);
}

/* The entry's slot and object: with attributes, a rich object. */
static int build_opts(struct shmreg_writer *w, struct shm_slot *ns,
		      const void *key, size_t klen, const void *val,
		      size_t vlen, uint64_t hash, const shmreg_put_opts_t *opts)
{
	if (opts->nattrs || opts->parent)
		return attrs_entry_build(w, ns, key, klen, val, vlen, hash,
					 opts);
	return entry_build(w, ns, key, klen, val, vlen, hash);
}

/*
 * A put's cache misses, started as soon as its key's hash is known: both
 * lines of the key's home slot (the probe reads the first, the put writes
 * both) and the key's wait-file word (the wake-up check reads it).  A
 * prefetch retires at once, unlike a load, so the put's own work up to the
 * probe (the new slot image, the ring record, the rate clock) runs while
 * the lines come, instead of after the probe's load reached the head of
 * the reorder buffer.
 */
static inline void put_prefetch(const struct shmreg_writer *w, uint64_t hash)
{
	const uint8_t *s = (const uint8_t *)shm_slot_at(
		&w->map, shm_home(&w->map.g, hash));

	shm_prefetch(s);
	shm_prefetch(s + SHM_LINE);
	if (w->notify)
		shm_prefetch(notify_slot(w->notify, hash));
}

static int64_t put_general(struct shmreg_writer *w, const void *key,
			   size_t klen, const void *val, size_t vlen,
			   const shmreg_put_opts_t *opts);

static const shmreg_put_opts_t put_defaults;

/*
 * The common put, in one pass: an entry that fits its slot, no options,
 * replacing an inline entry that neither expires nor has an owner or
 * inserting into an index below its load limit, within SHM_FAST_PROBE
 * slots of home.  It does what the general path below does for that case
 * (the same commit, journal, ring record and wake-up), minus the general
 * path's second look at the old entry, its options and its growth checks;
 * anything else it hands to put_general() before changing anything but
 * record R (below).  Its caller has validated the arguments, admitted the
 * persistence record and started the key's misses (put_prefetch()).
 * Returns what shmreg_writer_put() returns.
 *
 * The order is for the CPU's reorder window.  A loop of puts is as fast as
 * the misses of consecutive puts overlap, and the next put's miss starts
 * (at its prefetch) only if that prefetch enters the window while this
 * put's first load of its slot, the probe, still waits at the window's
 * head: everything after that load in program order up to the next put's
 * prefetch must fit the window, and its stores the store queue, where a
 * store waits until the load before it retires (on the benchmark machine,
 * measured with the bare writer: about 100 instructions or 20 stores
 * more per put and its misses no longer overlap at all).  Instructions
 * before the load retire while the line comes.  So whatever does not read
 * the slot comes first: the revision, the slot's new image (in the undo
 * record, armed for the home slot: slot_write.h), the rate clock, the
 * stats the put does not change and the change-ring record; after the
 * probe only what needs the old slot or must follow the slot's stores, and
 * the commit's opening (below).  A replace stores only the slot's words
 * that change, and the counts only when they change.
 *
 * The ring record before the slot: a watcher reads record R only once it
 * loaded a revision >= R with acquire (reader/watch.c), and the revision is
 * stored last, so it cannot tell the record came first.  When the put then
 * turns out not to be the common case, the general path writes record R
 * again (the same revision: nothing was committed) before publishing it; if
 * that path fails, record R stays unread (above the revision) until the
 * next commit, which is R again, rewrites it.  What the early record costs:
 * record R - ring_events, which commit R overwrites anyway, is gone from
 * the start of put R, so a watcher exactly ring_events behind gets -ERANGE
 * (the signal to resync) also when put R fails; and the general path's
 * second record takes the key's bytes in the key byte ring again (only for
 * the rare puts that leave this path after the probe: a long probe, an
 * expiring, owned or out-of-line old entry, the growth point).
 *
 * @logged: the registry has persistence (a compile-time constant in each
 * of the two instances below).
 */
static inline __attribute__((always_inline)) int64_t
put_common_as(struct shmreg_writer *w, const void *key, size_t klen,
	      const void *val, size_t vlen, uint64_t hash, const bool logged)
{
	struct shm_map *m = &w->map;
	/* in a register: the fences of the slot write would have it
	 * reloaded from w */
	struct shm_hdr *h = m->hdr;
	const uint64_t home = shm_home(&m->g, hash);
	uint64_t i = home, rev = writer_next_rev(w);
	uint32_t tag = shm_tag(hash), hi = shm_hash_hi(hash);
	/* the index's address once: the stores below may alias m's fields
	 * as far as the compiler knows, and would have it reloaded */
	struct shm_slot *slots = shm_slot_at(m, 0), *s = NULL;
	struct shm_wait_slot *wait = w->notify ? notify_slot(w->notify, hash)
					       : NULL;
	/* the outermost commit's rate sample, if one is due */
	int64_t now = w->batch_depth ? RATE_READ : rate_due(w);
	bool exists = false, outer;
	unsigned d;

	inline_image(h, hash, rev, key, klen, val, vlen);
	undo_arm(h, home);
	/* values the header has already (every commit stores them): outside
	 * the commit, unseen */
	commit_stats_fixed(w);
	ring_append(w, rev, SHM_OP_PUT, key, klen, hash);

	for (d = 0; d < SHM_FAST_PROBE; d++, i = shm_next(&m->g, i)) {
		s = &slots[i];
		if (s->klen == 0)
			break;
		if (s->tag != tag || s->hash_hi != hi || s->klen != klen)
			continue;
		if (s->kind != SHM_KIND_INLINE)
			goto general; /* perhaps the key, out of line */
		if (shm_small_eq(s->data, key, klen)) {
			exists = true;
			break;
		}
	}
	if (d == SHM_FAST_PROBE)
		goto general;
	if (exists ? s->expires_at_ns != 0 || s->owner_pid != 0
		   : (w->entries + 1) * SHM_LOAD_DEN >
			     m->g.index_cap * SHM_LOAD_NUM)
		goto general;

	/* the commit opens only here: snapshot readers retry while
	 * commit_seq is odd, and opened before the probe it would be odd
	 * for the slot's miss too, nearly all the time under a loop of puts */
	outer = commit_open(w, h);
	if (exists) {
		uint32_t was = s->vlen; /* the key is the same */
		uint64_t create_rev = s->create_rev;

		index_replace_image(h, i, home, s);
		if (was != vlen) {
			w->bytes_used += vlen - was; /* modulo 2^64 */
			commit_stats_counts(w);
		}
		if (logged) /* persistence hook */
			persist_log_put(w, rev, create_rev, key, klen, val,
					vlen, NULL, 0);
	} else {
		index_insert_image(h, i, s, hash, rev);
		w->entries++;
		w->bytes_used += klen + vlen;
		commit_stats_counts(w);
		if (logged) /* persistence hook */
			persist_log_put(w, rev, rev, key, klen, val, vlen,
					NULL, 0);
	}
	commit_close(w, h, outer, rev, now);
	if (wait)
		notify_key_at(w->notify, wait);
	if (!exists && w->entries >= w->prep_at)
		prep_next(w);
	return logged ? persist_result(w, (int64_t)rev) : (int64_t)rev;
general:
	/* nothing changed but record R, which the general path writes
	 * again (see above), and the undo record, armed for a slot that is
	 * not odd (which a taker-over leaves as it is) */
	return put_general(w, key, klen, val, vlen, &put_defaults);
}

/* put_common_as() for a registry without persistence (the one
 * shmreg_writer_put() jumps to) and with it: no test of w->plog left on
 * the first.  Out of line, with six arguments, so that shmreg_writer_put()
 * reaches it by a jump and saves no registers of its own for it. */
static __attribute__((noinline)) int64_t
put_common(struct shmreg_writer *w, const void *key, size_t klen,
	   const void *val, size_t vlen, uint64_t hash)
{
	return put_common_as(w, key, klen, val, vlen, hash, false);
}

static __attribute__((noinline)) int64_t
put_common_logged(struct shmreg_writer *w, const void *key, size_t klen,
		  const void *val, size_t vlen, uint64_t hash)
{
	return put_common_as(w, key, klen, val, vlen, hash, true);
}

/* The writer's state lets a put take the common path (put_common()):
 * no revision held for a batch of changes, no slot revision or expiry
 * imposed by a replay or set_attrs.  Persistence is checked apart. */
static inline bool put_plain(const struct shmreg_writer *w)
{
	return !w->hold_rev && !w->slot_mod_rev && !w->keep_expiry;
}

/* Every put shmreg_writer_put() does not send straight to put_common():
 * options, values too long for a slot, persistence, bad arguments. */
static __attribute__((noinline)) int64_t
put_other(struct shmreg_writer *w, const void *key, size_t klen,
	  const void *val, size_t vlen, const shmreg_put_opts_t *opts)
{
	int rc = shm_check_put(key, klen, val, vlen, opts);

	if (rc < 0)
		return rc;
	/* persistence: room for the record, or the change is refused */
	if (w->plog) {
		rc = persist_admit(w, persist_put_need(klen, vlen, opts));
		if (rc < 0)
			return rc;
	}
	/* all-zero options (every field, whatever fields the struct gains:
	 * nonzero padding only sends a put the general way) */
	if (opts && memcmp(opts, &put_defaults, sizeof(put_defaults)))
		return put_general(w, key, klen, val, vlen, opts);
	if (klen + vlen <= SHM_SLOT_INLINE && put_plain(w)) {
		uint64_t hash = shm_hash(key, klen);

		put_prefetch(w, hash);
		return w->plog ? put_common_logged(w, key, klen, val, vlen, hash)
			       : put_common(w, key, klen, val, vlen, hash);
	}
	return put_general(w, key, klen, val, vlen, &put_defaults);
}

/* Every put that fits a slot together passes shm_check_put() with no
 * options, so the entry's shape test below needs no other validation. */
_Static_assert(SHM_SLOT_INLINE <= SHMREG_KEY_MAX &&
		       SHM_SLOT_INLINE <= SHMREG_VALUE_MAX,
	       "a key and value that fit a slot are valid");

/* The longest key of XXH3's short formulas (0..16 bytes). */
#define PUT_SHORT_KEY 16u

/* The common put's shape, but for the key's length: a value that fits the
 * slot beside the key, no options, a writer in its plain state. */
static inline __attribute__((always_inline)) bool
put_common_shape(const struct shmreg_writer *w, size_t klen, const void *val,
		 size_t vlen, const shmreg_put_opts_t *opts)
{
	return vlen <= SHM_SLOT_INLINE - klen && (val || !vlen) && !opts &&
	       !w->plog && put_plain(w);
}

/* The common put's entry for a key of @lo to @hi bytes (constants): the
 * key hashed, its misses started, then the jump to put_common().  Told
 * the range, the compiler inlines only XXH3's formulas for it. */
static inline __attribute__((always_inline)) int64_t
put_enter(struct shmreg_writer *w, const void *key, size_t klen,
	  const void *val, size_t vlen, size_t lo, size_t hi)
{
	uint64_t hash;

	if (klen < lo || klen > hi)
		__builtin_unreachable();
	hash = shm_hash(key, klen);
	put_prefetch(w, hash);
	return put_common(w, key, klen, val, vlen, hash);
}

/* Keys of 17 to SHM_SLOT_INLINE bytes: XXH3's formulas for them take
 * registers that the entry below, kept for short keys, would otherwise
 * save and restore on every put. */
static __attribute__((noinline)) int64_t
put_entry_long(struct shmreg_writer *w, const void *key, size_t klen,
	       const void *val, size_t vlen, const shmreg_put_opts_t *opts)
{
	if (key && klen - (PUT_SHORT_KEY + 1) < SHM_SLOT_INLINE - PUT_SHORT_KEY &&
	    put_common_shape(w, klen, val, vlen, opts))
		return put_enter(w, key, klen, val, vlen, PUT_SHORT_KEY + 1,
				 SHM_SLOT_INLINE);
	return put_other(w, key, klen, val, vlen, opts);
}

/* The entry: the shape of the common put tested in as few instructions as
 * it takes, the key hashed and its misses started, then a jump to
 * put_common() (put_common() has the reason).  Everything else goes
 * through put_entry_long() and put_other(), which validates. */
SHMREG_EXPORT int64_t shmreg_writer_put(shmreg_writer_t *w, const void *key,
					size_t klen, const void *val,
					size_t vlen,
					const shmreg_put_opts_t *opts)
{
	if (!w)
		return -EINVAL;
	if (key && klen - 1 < PUT_SHORT_KEY &&
	    put_common_shape(w, klen, val, vlen, opts))
		return put_enter(w, key, klen, val, vlen, 1, PUT_SHORT_KEY);
	return put_entry_long(w, key, klen, val, vlen, opts);
}

/* Every other put (options, out-of-line values, growth, expired or owned
 * entries, long probes): out of line, so that its registers and stack do
 * not weigh on the common put's entry and exit. */
static __attribute__((noinline)) int64_t
put_general(struct shmreg_writer *w, const void *key, size_t klen,
	    const void *val, size_t vlen, const shmreg_put_opts_t *opts)
{
	/* hashed again: six arguments keep put_common()'s call of this
	 * a jump */
	uint64_t hash = shm_hash(key, klen);
	struct shm_slot old, ns;
	uint64_t rev, i, gen;
	bool exists;
	int64_t at;
	int rc;

	/* a dead owner's entry would never be removed (set_attrs keeps the
	 * owner it has) */
	if (opts->owner_pid > 0 && !w->keep_expiry) {
		rc = owner_check(w, opts->owner_pid);
		if (rc < 0)
			return rc;
	}
	at = index_lookup(w, key, klen, hash, &old, &i);
	if (at >= 0 && shm_expired(&old)) {
		/* the expired entry leaves as the sweep would take it (its
		 * delete event, its subtree), then the put inserts anew */
		tree_remove_entry(w, key, klen);
		at = index_lookup(w, key, klen, hash, &old, &i);
	}
	gen = w->map.generation;
	exists = at >= 0;
	if (opts->expect_rev == SHMREG_REV_ABSENT ? exists
	    : opts->expect_rev && (!exists || old.mod_rev != opts->expect_rev))
		return -EEXIST;
	if (at < 0 && (w->entries + 1) * SHM_LOAD_DEN >
			      w->map.g.index_cap * SHM_LOAD_NUM) {
		rc = grow_index(w);
		if (rc < 0)
			return rc;
	}
	if (opts->parent) {
		rc = tree_check_parent(w, key, klen, opts->parent,
				       opts->parent_len);
		if (rc < 0)
			return rc;
	}
	if (opts->nattrs || opts->parent) {
		rc = attrs_reserve(w, klen, vlen, opts);
		if (rc < 0)
			return rc;
	}

	rev = writer_next_rev(w);
	/* the header words; entry_build fills (and zero-pads) the data */
	shm_zero_fixed(&ns, offsetof(struct shm_slot, data));
	ns.mod_rev = w->slot_mod_rev ? w->slot_mod_rev : rev;
	ns.create_rev = w->slot_create_rev ? w->slot_create_rev
		      : w->replay_create_rev ? w->replay_create_rev
		      : exists ? old.create_rev : rev;
	ns.expires_at_ns = w->keep_expiry ? w->keep_expires_at
					  : shm_ttl_deadline_ns(opts->ttl_ns);
	ns.owner_pid = opts->owner_pid;
	ns.flags = (uint8_t)opts->flags;
	rc = build_opts(w, &ns, key, klen, val, vlen, hash, opts);
	if (rc == -ENOSPC) {
		rc = grow_arena(w, alloc_class_size(SHM_OBJ_HDR + klen + vlen));
		if (rc == 0)
			rc = build_opts(w, &ns, key, klen, val, vlen, hash, opts);
	}
	if (rc < 0)
		return rc;
	/* a handoff moved everything: find the slot again */
	if (w->map.generation != gen)
		at = index_lookup(w, key, klen, hash, &old, &i);
	if (at >= 0) {
		i = (uint64_t)at;
	} else if (i == UINT64_MAX) {
		/* SHM_PROBE_LIMIT taken slots after the key's home: only a
		 * hash flood builds such a cluster at this load */
		entry_release(w, &ns);
		return -ENOSPC;
	}

	commit_begin(w);
	index_write(w, i, &ns);
	attrs_update(w, at >= 0 ? &old : NULL, &ns, hash);
	if (at >= 0) {
		entry_release(w, &old);
		w->bytes_used -= old.klen + old.vlen;
		w->owned -= old.owner_pid > 0;
	} else {
		w->entries++;
	}
	w->owned += ns.owner_pid > 0;
	w->bytes_used += klen + vlen;
	ring_append(w, rev, SHM_OP_PUT, key, klen, hash);
	if (w->plog) /* persistence hook */
		persist_log_put(w, rev, ns.create_rev, key, klen, val, vlen,
				opts, ns.expires_at_ns);
	commit_end(w, rev);
	if (w->notify)
		notify_key(w->notify, hash);
	if (w->entries >= w->prep_at)
		prep_next(w);
	/* a deadline new for this key (not one kept by set_attrs, which the
	 * queue has already; a replay's imposed one is new) */
	if (ns.expires_at_ns &&
	    !(at >= 0 && old.expires_at_ns == ns.expires_at_ns))
		expiry_note(w, ns.expires_at_ns, hash);
	if (opts->owner_pid > 0 && !(at >= 0 && old.owner_pid == opts->owner_pid))
		if (owners_add(&w->owners, opts->owner_pid, key, klen,
			       writer_owns, w) == 0)
			owner_watch(w, opts->owner_pid);
	return w->plog ? persist_result(w, (int64_t)rev) : (int64_t)rev;
}

SHMREG_EXPORT int64_t shmreg_writer_del(shmreg_writer_t *w, const void *key,
					size_t klen)
{
	struct shm_slot old;
	uint64_t hash, rev;
	int64_t at;
	int rc;

	if (!w)
		return -EINVAL;
	rc = shm_check_key(key, klen);
	if (rc < 0)
		return rc;
	hash = shm_hash(key, klen);
	at = index_find(w, key, klen, hash, &old);
	if (at < 0)
		return -ENOENT;
	if (shm_expired(&old)) {
		/* absent for the caller; the expiry it was waiting for
		 * happens now (its own revisions and delete events) */
		tree_remove_entry(w, key, klen);
		return -ENOENT;
	}
	if (tree_has_children(w, key, klen))
		return -ENOTEMPTY;
	if (w->plog && (rc = persist_admit(w, prec_size(klen, 0, 0, 0))) < 0)
		return rc;
	rev = writer_next_rev(w);
	remove_at(w, (uint64_t)at, &old, key, klen, hash, rev);
	return w->plog ? persist_result(w, (int64_t)rev) : (int64_t)rev;
}

SHMREG_EXPORT int64_t shmreg_writer_del_owner(shmreg_writer_t *w, pid_t pid)
{
	struct owner_list *l;
	int64_t removed = 0;

	if (!w || pid <= 0)
		return -EINVAL;
	/* an owner's entries are logged as deletes; a full log must not
	 * keep them alive, so no admission check here */
	l = owners_take(&w->owners, pid);
	if (!l)
		return 0;
	commit_begin(w);
	for (size_t k = 0; k < owner_list_len(l); k++) {
		size_t klen;
		const void *key = owner_list_key(l, k, &klen);
		uint64_t hash = shm_hash(key, klen);
		struct shm_slot old;
		int64_t at = index_find(w, key, klen, hash, &old);

		if (at < 0 || old.owner_pid != pid)
			continue; /* stale: deleted or re-owned since */
		/* the entry and its subtree, in this commit */
		removed += tree_remove_entry(w, key, klen);
	}
	commit_end(w, 0);
	owner_list_free(l);
	return removed;
}

SHMREG_EXPORT uint64_t shmreg_writer_revision(shmreg_writer_t *w)
{
	return w ? w->revision : 0;
}

SHMREG_EXPORT shmreg_t *shmreg_writer_reader(shmreg_writer_t *w)
{
	if (!w)
		return NULL;
	if (!w->reader && shmreg_open(w->path, 0, &w->reader) < 0)
		w->reader = NULL;
	return w->reader;
}

/* ---- open and close ---- */

static int check_opts(shmreg_writer_opts_t *o)
{
	if (o->flags & ~(SHMREG_WRITER_TRUNCATE | SHMREG_WRITER_KEEP_PREFIX |
			 SHMREG_WRITER_GROUP))
		return -EINVAL;
	if (o->durability > SHMREG_DURABILITY_SYNC || o->batch_ms > 60000 ||
	    o->reserved || (o->data_dir && !o->data_dir[0]))
		return -EINVAL;
	if (o->mode & ~0777u)
		return -EINVAL;
	if (o->ring_events == 0)
		o->ring_events = DEFAULT_RING;
	if (o->ring_events < 1024 || o->ring_events > MAX_RING ||
	    (o->ring_events & (o->ring_events - 1)))
		return -EINVAL;
	if (o->initial_entries == 0)
		o->initial_entries = DEFAULT_ENTRIES;
	if (o->initial_arena == 0)
		o->initial_arena = DEFAULT_ARENA;
	if (o->initial_entries > MAX_INITIAL || o->initial_arena > MAX_INITIAL)
		return -EINVAL;
	return 0;
}

/* Count what a segment we are taking over holds, to size the new one. */
static void survey(const struct shm_map *m, uint64_t *entries,
		   uint64_t *arena)
{
	*entries = *arena = 0;
	for (uint64_t i = 0; i < m->g.index_cap; i++) {
		struct shm_slot s;

		if (shm_slot_copy(m, i, &s) < 0 || s.klen == 0 ||
		    !shm_slot_sane(m, &s))
			continue;
		(*entries)++;
		if (s.kind == SHM_KIND_EXTERN)
			*arena += alloc_class_size(SHM_OBJ_HDR + s.klen + s.vlen);
		/* a rich object and its postings: at most this much */
		if (s.kind == SHM_KIND_RICH)
			*arena += alloc_class_size(SHM_OBJ_HDR + SHM_RICH_HDR +
						   s.klen + s.vlen +
						   SHM_ATTR_BYTES_MAX) +
				  SHMREG_ATTRS_MAX * 32;
	}
}

/* Take the registry over from a previous writer: in place when it closed
 * cleanly (adopt.c), else (a crash) mend the slot it may have been writing
 * and copy everything that validates into a fresh segment that readers
 * follow to. */
static int take_over(struct shmreg_writer *w)
{
	struct shm_map old;
	uint64_t entries, arena;
	int fd, rc;

	rc = segment_map_existing(w->path, &fd, &old);
	if (rc < 0)
		return rc;
	if (writer_adopt(w, &old, fd) == 0)
		return 0;
	index_undo_restore(&old);
	/* a commit cut off between its slot and its revision: the revision
	 * must still pass every mod_rev in the table (copy_entry raises it) */
	w->revision = atomic_load_explicit(&old.hdr->revision,
					   memory_order_acquire);
	survey(&old, &entries, &arena);
	if (entries < w->opts.initial_entries)
		entries = w->opts.initial_entries;
	arena = 2 * arena;
	if (arena < w->opts.initial_arena)
		arena = w->opts.initial_arena;
	rc = handoff(w, &old, index_cap_for(entries), arena);
	segment_unmap(&old);
	close(fd);
	return rc;
}

/*
 * SHMREG_WRITER_TRUNCATE: retire whatever valid segment the name holds, so
 * its readers follow to the empty one.  Revisions and generations go on
 * from the old segment's (they never go back for a reader), and the
 * truncation itself takes one revision that has no change-ring event: a
 * watcher positioned before it finds its next event older than the new
 * ring's first and gets -ERANGE, the signal to resync by listing.
 */
static void retire_existing(struct shmreg_writer *w)
{
	struct shm_map old;
	int fd;

	if (segment_map_existing(w->path, &fd, &old) < 0)
		return;
	w->revision = atomic_load_explicit(&old.hdr->revision,
					   memory_order_acquire) + 1;
	w->last_generation = old.generation;
	atomic_store_explicit(&old.hdr->state, SHM_STATE_RETIRED,
			      memory_order_release);
	segment_unmap(&old);
	close(fd);
}

static void writer_free(struct shmreg_writer *w)
{
	prep_close(w);
	if (w->reader)
		shmreg_close(w->reader);
	if (w->map.base)
		segment_unmap(&w->map);
	if (w->seg_fd >= 0)
		close(w->seg_fd);
	if (w->lock_fd >= 0)
		close(w->lock_fd);
	alloc_free_all(&w->alloc);
	owners_free(&w->owners);
	owner_close(w);
	apos_free(&w->apos);
	expiry_free(w);
	free(w->scratch);
	free(w);
}

SHMREG_EXPORT int shmreg_writer_open(const char *name,
				     const shmreg_writer_opts_t *opts,
				     shmreg_writer_t **out)
{
	struct shmreg_writer *w;
	int rc;

	if (!out)
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->lock_fd = w->seg_fd = w->owner_ep = w->owner_ev = -1;
	w->expiry.tfd = -1;
	w->prep_at = UINT64_MAX;
	if (opts)
		w->opts = *opts;
	rc = check_opts(&w->opts);
	if (rc < 0)
		goto fail;
	w->mode = w->opts.mode ? w->opts.mode : 0644;
	rc = shm_resolve_path(name, w->path, sizeof(w->path));
	if (rc < 0) {
		rc = -EINVAL;
		goto fail;
	}
	rc = segment_lock(w);
	if (rc < 0)
		goto fail;
	rc = notify_open(&w->notify, w->path, w->mode);
	if (rc < 0)
		goto fail;
	if (w->opts.data_dir) {
		/* persistence: the contents come from the directory */
		rc = persist_open(w);
	} else if (w->opts.flags & SHMREG_WRITER_TRUNCATE) {
		retire_existing(w);
		rc = -ENOENT;
	} else {
		rc = take_over(w);
	}
	if (rc == -ENOENT && !w->opts.data_dir)
		rc = handoff(w, NULL, index_cap_for(w->opts.initial_entries),
			     w->opts.initial_arena);
	if (rc < 0)
		goto fail;
	/* however the segment came (made, adopted, recovered) */
	w->prep_at = prep_trigger(w);
	rc = writers_add(w);
	if (rc < 0)
		goto fail;
	*out = w;
	return 0;
fail:
	persist_close(w);
	if (w->notify)
		notify_close(w->notify);
	w->notify = NULL;
	writer_free(w);
	return rc;
}

SHMREG_EXPORT void shmreg_writer_close(shmreg_writer_t *w)
{
	if (!w)
		return;
	writers_remove(w);
	/* a batch left open would leave commit_seq odd for good */
	if (w->batch_depth && w->map.base) {
		w->batch_depth = 1;
		commit_end(w, 0);
	}
	if (w->map.base && w->seg_fd >= 0) {
		/* slot writes leave the undo record armed (their slot even:
		 * slot_write.h); a closed segment has none (adopt.c) */
		atomic_store_explicit(&w->map.hdr->undo_slot, 0,
				      memory_order_relaxed);
		/* pairs with the acquire load of state by readers and
		 * waiters, which then return -ESHUTDOWN; orders the store
		 * above before it for the next writer's adoptable() */
		atomic_store_explicit(&w->map.hdr->state, SHM_STATE_CLOSED,
				      memory_order_release);
	}
	persist_close(w);
	if (w->notify)
		notify_close(w->notify);
	writer_free(w);
}
