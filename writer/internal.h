/* SPDX-License-Identifier: MIT */
/*
 * internal.h - the embedded writer's private state, shared by the files of
 * libshmreg_writer.  Nothing here is shared memory: the writer's heap state
 * (allocator queues, owner lists) is rebuilt whenever a segment is built.
 */
#ifndef WRITER_INTERNAL_H
#define WRITER_INTERNAL_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "shmreg_writer.h"
#include "clock.h"
#include "expire.h"
#include "geometry.h"
#include "layout.h"

#define SHMREG_EXPORT __attribute__((visibility("default")))

/* ---- arena allocator (alloc.c) ---- */

#define ALLOC_CLASSES 64

/* FIFO of freed block offsets of one size class (a growable ring). */
struct free_fifo {
	uint64_t *offs;
	size_t head, len, cap;
};

struct alloc {
	uint64_t bump;                        /* next never-used arena byte,
	                                       * relative to arena_off */
	uint64_t size;                        /* arena bytes */
	struct free_fifo fifo[ALLOC_CLASSES];
};

/* Block size of the class serving @need bytes; 0 when none can. */
uint64_t alloc_class_size(uint64_t need);
void alloc_reset(struct alloc *a, uint64_t arena_size);
void alloc_free_all(struct alloc *a);
/* Hand out a block of class size @size: 0 and its segment offset in *@off,
 * -ENOSPC when the arena is exhausted (the caller grows the registry), or
 * -ENOMEM. */
int alloc_block(struct alloc *a, const struct shm_geom *g, uint64_t size,
		uint64_t *off);
/* Queue a block for reuse (FIFO).  -ENOMEM leaks the block until the next
 * handoff compacts the arena; nothing is lost. */
int alloc_release(struct alloc *a, uint64_t off, uint64_t size);

/* ---- owner lists (owners.c) ---- */

struct owner_list;
struct owners {
	struct owner_list **buckets;
	size_t nbuckets, count;
};

/* Does the entry @key still belong to @pid? (used to drop stale keys) */
typedef bool (*owners_still_owned_fn)(void *ctx, pid_t pid, const void *key,
				      size_t klen);
/* The owners_still_owned_fn of a writer (@ctx): is @key's entry @pid's? */
bool writer_owns(void *ctx, pid_t pid, const void *key, size_t klen);
/* Record that a put made @pid the owner of @key. */
int owners_add(struct owners *o, pid_t pid, const void *key, size_t klen,
	       owners_still_owned_fn owned, void *ctx);
/* Detach @pid's key list; the caller walks it with owner_list_* and frees it. */
struct owner_list *owners_take(struct owners *o, pid_t pid);
size_t owner_list_len(const struct owner_list *l);
const void *owner_list_key(const struct owner_list *l, size_t i, size_t *klen);
void owner_list_free(struct owner_list *l);
void owners_free(struct owners *o);
/* The pidfd watching @pid's list (-1: none or no list); give the list one
 * (false: no list, or it has one: the caller closes @fd). */
int owners_pidfd(struct owners *o, pid_t pid);
bool owners_set_pidfd(struct owners *o, pid_t pid, int fd);
/* @pid was gone when it was to be watched: reap it on the next round. */
void owners_mark_dead(struct owners *o, pid_t pid);
pid_t owners_next_dead(struct owners *o);
void owners_each(struct owners *o, void (*fn)(void *ctx, pid_t pid),
		 void *ctx);

/* ---- owner liveness (reap.c) ---- */

/* Is @pid alive?  0, or -ESRCH. */
int owner_check(struct shmreg_writer *w, pid_t pid);
/* After a put made @pid an owner: watch it when the host asked for
 * shmreg_writer_owner_fd(). */
void owner_watch(struct shmreg_writer *w, pid_t pid);
void owner_close(struct shmreg_writer *w);

/* ---- attribute index bookkeeping (attrs.c) ---- */

/* Where each entry hash sits in each pair's posting array: the writer's
 * private map from (pair hash, entry hash) to the element's position, so
 * that removing an entry from a pair is O(1) (swap with the last).  refs
 * counts the entries with that key hash carrying the pair (more than one
 * only when two keys share an XXH3-64); 0 marks an empty cell. */
struct apos {
	uint64_t phash, ehash;
	uint32_t pos, refs;
};

struct apos_map {
	struct apos *tab;
	size_t cap, n;              /* cap: a power of two, or 0 */
};

/* ---- the writer ---- */

/* The highest revision a registry may reach: puts return revisions as
 * int64_t, and no real registry gets near (2^32 commits a second for 68
 * years), so a segment recording a revision past it is corrupt. */
#define WRITER_REV_MAX ((uint64_t)INT64_MAX - UINT32_MAX)

struct notify;

struct shmreg_writer {
	char path[PATH_MAX];       /* segment path */
	int lock_fd;               /* holds the OFD write lock */
	int seg_fd;                /* current segment */
	struct shm_map map;        /* current segment, mapped read-write */
	mode_t mode;
	shmreg_writer_opts_t opts;
	uint64_t revision;         /* last committed revision */
	uint64_t last_generation;  /* of the segment replaced by a truncate */
	uint64_t key_reserved;     /* our copy of hdr->ring_key_reserved */
	uint64_t entries, bytes_used;
	uint64_t arena_live;       /* block bytes of live objects */
	uint64_t owned;            /* live entries with an owner pid */
	unsigned batch_depth;
	struct alloc alloc;
	struct owners owners;
	struct notify *notify;
	shmreg_t *reader;          /* lazily opened (shmreg_writer_reader) */
	uint8_t *scratch;          /* handoff copy buffer */
	size_t scratch_cap;
	uint64_t attr_pairs;       /* occupied attribute index slots */
	uint64_t attr_cap_min;     /* attribute index slots the next
	                            * handoff gives at least */
	struct apos_map apos;
	int owner_ep;              /* epoll set of owner pidfds, or -1 */
	int owner_ev;              /* eventfd in it: an owner found dead */
	struct expiry expiry;      /* deadlines of TTL entries (expire.c) */
	bool keep_expiry;          /* shmreg_writer_set_attrs: the put keeps
	                            * keep_expires_at instead of a new TTL */
	int64_t keep_expires_at;
	int64_t since_ns;          /* CLOCK_REALTIME of the first claim:
	                            * hdr->writer_since_ns */
	int64_t rate_ns[2];        /* our copy of the header's rate line */
	uint64_t rate_rev[2];
	uint64_t rate_tsc;         /* the TSC at rate_due()'s last clock
	                            * read (x86-64) */
	/* a mirror's revisions (revision.c): while hold_rev != 0 every
	 * change is revision hold_rev and its ring record SHM_OP_MANY;
	 * slot_mod_rev/slot_create_rev, when nonzero, are what the next
	 * put stores in its slot instead of its commit revision */
	uint64_t hold_rev;
	uint64_t slot_mod_rev, slot_create_rev;
	/* persistence (writer/persist/): NULL without a data directory */
	struct persist *plog;
	/* persist_committed, set with plog.  commit.h's inline commit_end
	 * calls it through this pointer because shmregd compiles its own copy
	 * of the mirror's commits (revision.c), where the library's local
	 * persist_committed cannot be named. */
	void (*plog_committed)(struct shmreg_writer *w);
	uint64_t replay_create_rev; /* recovery: the put's create_rev, 0 =
	                             * the usual rule */
	/* the next index growth's segment, made ahead (prepare.c): asked
	 * for when entries reach prep_at */
	struct seg_prep *prep;
	uint64_t prep_at;
};

/* The revision the next change commits as (see revision.c). */
static inline uint64_t writer_next_rev(const struct shmreg_writer *w)
{
	return w->hold_rev ? w->hold_rev : w->revision + 1;
}


/* ---- commit-rate samples (rate.c) ---- */

/* What the caller of rate_commit() knows: RATE_READ, nothing (the clock
 * is read there); RATE_NONE, no sample is due; or the time of the sample
 * that is due (rate_due()). */
#define RATE_READ INT64_C(0)
#define RATE_NONE INT64_C(-1)

/* rate_due() reads the clock at most once per this many TSC ticks (x86-64):
 * 0.3 ms at 3 GHz, 2 ms even at 500 MHz: a sample is late by less than
 * the coarse clock's own resolution (4 ms at HZ=250). */
#define RATE_TSC_SKIP (UINT64_C(1) << 20)

/*
 * The rate clock: its time if a commit now is to take a new sample (the
 * newer one at least SHM_RATE_NS old, or the clock stepped back: the
 * window must never be negative), else RATE_NONE.  Inline, for a caller
 * that reads it ahead of its commit (the common put, writer.c).
 *
 * On x86-64 the TSC first: one instruction (Linux's vDSO reads it for its
 * own clocks), where clock_gettime() is a call of about 130 instructions
 * (measured in a KVM guest), which a loop of puts pays as reorder-window
 * room.  A TSC that went back or jumped (another CPU, a VM migrated) only
 * makes the difference large: the clock is read then.
 */
static inline int64_t rate_due(struct shmreg_writer *w)
{
	int64_t now;

#if defined(__x86_64__)
	uint64_t tsc = __builtin_ia32_rdtsc();

	if (tsc - w->rate_tsc < RATE_TSC_SKIP)
		return RATE_NONE;
	w->rate_tsc = tsc;
#endif
	now = shm_realtime_coarse_ns();
	if (now - w->rate_ns[1] < SHM_RATE_NS && now >= w->rate_ns[1])
		return RATE_NONE;
	return now;
}

/* After the commit of @rev: a new rate sample if one is due (@now, above;
 * RATE_NONE is not passed). */
void rate_commit(struct shmreg_writer *w, uint64_t rev, int64_t now);
/* Write our samples into @h (a handoff's new segment). */
struct shm_hdr;
void rate_publish(struct shmreg_writer *w, struct shm_hdr *h);

/* ---- segment files (segment.c) ---- */

int segment_lock(struct shmreg_writer *w);
/* Create, size and map a new segment file at a temporary name, with its
 * header filled in but not yet valid (no magic).  *@fd and *@m describe it. */
int segment_create(struct shmreg_writer *w, const struct shm_geom *g,
		   uint64_t generation, int *fd, struct shm_map *m,
		   char *tmp_path, size_t tmp_cap);
/* Create a file of @g's size beside @path at a fresh temporary name (in
 * @tmp_path), reserve its space, map it read-write (not inherited by forked
 * children) and populate its first @populate bytes.  Needs nothing of the
 * writer but its path and mode: the helper thread calls it too
 * (prepare.c). */
int segment_make_file(const char *path, mode_t mode,
		      const struct shm_geom *g, size_t populate, int *fd,
		      void **base, char *tmp_path, size_t tmp_cap);
/* Record in @h that this process (pid, start time) serves the segment
 * under its lock file (dev, ino): what readers that may not open the lock
 * file test for liveness (shm/liveness.h).  A segment adopted in place
 * must be claimed too, or those readers see its last writer, dead. */
struct shm_hdr;
void segment_claim(struct shmreg_writer *w, struct shm_hdr *h);
/* Make the new segment valid and give it the registry's name. */
int segment_publish(struct shmreg_writer *w, struct shm_map *m,
		    const char *tmp_path);
void segment_unmap(struct shm_map *m);
/* Map an existing segment read-write (recovery).  -ENOENT, -EPROTO. */
int segment_map_existing(const char *path, int *fd, struct shm_map *m);

/* ---- in-place takeover (adopt.c) ---- */

/* Make the cleanly closed segment @m (mapped read-write from @fd) the
 * writer's own, in place.  Returns 0, or -EAGAIN when it was not closed
 * cleanly (the caller recovers by copying; @m and @fd stay the caller's). */
int writer_adopt(struct shmreg_writer *w, struct shm_map *m, int fd);

/* ---- index (index.c) ---- */

/* Find @key in the writer's current segment: the slot index (and in
 * *@copy, unless NULL, the slot's first line: its header words and an
 * extern reference), or -1, and
 * then in *@free_slot the empty slot where it would go (UINT64_MAX when
 * none lies within SHM_PROBE_LIMIT slots of its home). */
int64_t index_lookup(struct shmreg_writer *w, const void *key, size_t klen,
		     uint64_t hash, struct shm_slot *copy, uint64_t *free_slot);
/* index_lookup() without the free slot. */
int64_t index_find(struct shmreg_writer *w, const void *key, size_t klen,
		   uint64_t hash, struct shm_slot *copy);
/* First empty slot on @hash's probe path, in *@slot.  Returns 0, or
 * -ENOSPC when none lies within SHM_PROBE_LIMIT slots of the home. */
int index_free_slot(struct shmreg_writer *w, uint64_t hash, uint64_t *slot);
/* First slot on @hash's probe path holding an entry of that hash with a
 * deadline (expires_at_ns != 0) in [@lo, @hi], or -1 (the expiry sweep). */
int64_t index_find_deadline(struct shmreg_writer *w, uint64_t hash,
			    int64_t lo, int64_t hi);
/* The key bytes of a slot of @m, or NULL when an extern reference leaves
 * the arena (a segment adopted in place is never followed unchecked). */
const uint8_t *index_slot_key(const struct shm_map *m,
			      const struct shm_slot *s);
/* The full hash of an entry, from the two halves its slot keeps. */
static inline uint64_t slot_hash(const struct shm_slot *s)
{
	return (uint64_t)s->hash_hi << 32 | s->tag;
}
/* index_write(): writer/slot_write.h */
/* Remove the entry at slot @i by backward shift. */
void index_remove(struct shmreg_writer *w, uint64_t i);
/* Restore an armed undo record of @m (recovery). */
void index_undo_restore(struct shm_map *m);

/* ---- objects and entries (writer.c) ---- */

/* Build the slot for an entry (writing its arena object when it does not
 * fit inline).  Returns 0, or -ENOSPC when the arena is exhausted. */
int entry_build(struct shmreg_writer *w, struct shm_slot *s, const void *key,
		size_t klen, const void *val, size_t vlen, uint64_t hash);
void entry_release(struct shmreg_writer *w, const struct shm_slot *s);

/* ---- attributes (attrs.c) ---- */

/* Build the slot of an entry with attributes: a SHM_KIND_RICH object
 * holding key, value and the @alen attribute bytes @enc (@nattrs
 * "name\0value\0" pairs).  Returns 0, -ENOSPC or -E2BIG. */
int attrs_entry_build_raw(struct shmreg_writer *w, struct shm_slot *s,
			  const void *key, size_t klen, const void *val,
			  size_t vlen, uint64_t hash, const uint8_t *enc,
			  uint32_t alen, uint32_t nattrs, const void *parent,
			  uint32_t plen);
/* The same from put options with attributes or a parent (checked by the
 * caller). */
int attrs_entry_build(struct shmreg_writer *w, struct shm_slot *s,
		      const void *key, size_t klen, const void *val,
		      size_t vlen, uint64_t hash,
		      const shmreg_put_opts_t *opts);
/* Before a put with attributes or a parent: grow (hand off) so that the
 * commit finds room for the entry's object, its postings and new pair
 * slots.  Returns 0, or -ENOMEM/-ENOSPC (nothing changed). */
int attrs_reserve(struct shmreg_writer *w, size_t klen, size_t vlen,
		  const shmreg_put_opts_t *opts);
/* Inside a commit: the entry with key hash @ehash goes from slot image
 * @old (NULL: absent) to @new (NULL: removed); update the postings of
 * the pairs that differ.  Both objects must still be in the arena. */
void attrs_update(struct shmreg_writer *w, const struct shm_slot *old,
		  const struct shm_slot *new, uint64_t ehash);
/* The attribute bytes and parent key of a slot of the writer's segment,
 * bounds-checked: 0 and *@a, *@alen, *@nattrs, *@parent, *@plen (none
 * for an entry that is not rich), or -EPROTO. */
int attrs_of_slot(const struct shm_map *m, const struct shm_slot *s,
		  const uint8_t **a, uint32_t *alen, uint32_t *nattrs,
		  const uint8_t **parent, uint32_t *plen);
/* Growth: copy the attribute index of the writer's own segment @src into
 * its new one (w->map), each posting array into a block of the size it
 * had, so the copy needs exactly the arena the source used and w->apos
 * stays valid.  Returns 0, or -ENOSPC (the new arena is too small). */
int attrs_copy_index(struct shmreg_writer *w, const struct shm_map *src);
/* Pair slot of pair hash @ph in the writer's segment, or NULL. */
const struct shm_pair *attrs_pair(const struct shm_map *m, uint64_t ph);

/* ---- trees (tree.c) ---- */

/* May @key get the parent @parent?  0, -ENOENT (no such parent), -ELOOP
 * (the parent is @key or below it), -EPROTO. */
int tree_check_parent(struct shmreg_writer *w, const void *key, size_t klen,
		      const void *parent, size_t plen);
/* Does @key have children? */
bool tree_has_children(struct shmreg_writer *w, const void *key,
		       size_t klen);
/* Inside a commit: remove @key and its descendants, expired ones too
 * (each its own revision and delete event).  Returns how many, or
 * -ENOMEM (nothing removed). */
int64_t tree_remove(struct shmreg_writer *w, const void *key, size_t klen);
/* tree_remove(), or when collecting the subtree runs out of memory, the
 * entry alone: what an owner's exit and an expiry remove.  Returns how
 * many went (0: no such key). */
int64_t tree_remove_entry(struct shmreg_writer *w, const void *key,
			  size_t klen);
/* Rebuild the position map of an adopted segment's attribute index and
 * check it against the entries.  Returns 0, or -EAGAIN when they do not
 * agree (the caller recovers by copying) or -ENOMEM. */
int attrs_adopt(struct shmreg_writer *w);
void apos_free(struct apos_map *p);

/* Remove the entry at slot @i (validated copy @old) as revision @rev, with
 * its delete event (rev 0: silently, with no revision), in a commit of its
 * own or the caller's. */
void remove_at(struct shmreg_writer *w, uint64_t i, const struct shm_slot *old,
	       const void *key, size_t klen, uint64_t hash, uint64_t rev);

/* ---- change ring: ring_append() in writer/ring.h ---- */

/* ---- growth and takeover (handoff.c) ---- */

/* Index slots for @entries at the load limit. */
uint64_t index_cap_for(uint64_t entries);

/* Build a new segment of @index_cap slots and an arena of @arena_size bytes
 * holding every entry of @src (NULL: none) and its change ring, rename it
 * over the name and retire @src (unmapping it when it is the writer's own).
 * Entries are read through the validating reader path, so @src may be a
 * crashed writer's segment.  Returns 0 or -errno; on failure the writer's
 * current segment is untouched and stays in service. */
/* The geometry handoff() plans for the same arguments. */
int handoff_plan(const struct shmreg_writer *w, const struct shm_map *src,
		 uint64_t index_cap, uint64_t arena_size, struct shm_geom *g);
int handoff(struct shmreg_writer *w, struct shm_map *src, uint64_t index_cap,
	    uint64_t arena_size);
/* Smallest attribute index (a power of two >= 8) for @pairs at the load
 * limit. */
uint64_t attr_cap_for(uint64_t pairs);


#endif /* WRITER_INTERNAL_H */
