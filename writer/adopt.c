/* SPDX-License-Identifier: MIT */
/*
 * adopt.c - take over a cleanly closed registry in place: no copy, and no
 * scan that grows with the entries.
 *
 * How it works.  A writer that closes cleanly leaves its segment complete:
 * every commit ended (commit_seq even), no slot write journaled (undo_slot
 * 0), and the header's stats line exact (entries, bytes_used, arena_bump,
 * arena_live and owned are stored at the end of every commit), then it
 * stores CLOSED.  The next writer that finds exactly that state maps the
 * same file read-write, takes its bookkeeping from those header fields and
 * stores OPEN again: readers that have it mapped simply go on reading, and
 * the revision, the change ring and the generation continue where they
 * were.  What the previous writer kept only on its heap is given up, not
 * rebuilt: the queues of freed arena blocks (those blocks are reclaimed by
 * the next handoff, which packs the arena) - and, when some entries have an
 * owner pid (owned != 0), the owner lists are rebuilt by one scan of the
 * index, the one case whose cost grows with the registry.
 *
 * Anything else (a writer that died: state OPEN with the lock free, an
 * armed undo record, an odd commit_seq, counters that do not fit the
 * geometry, or a different change-ring size asked for) is recovery: the
 * segment is copied through the validating reader path (handoff.c).
 *
 * Trust.  The adopted bytes were written by a writer of this registry (the
 * file's owner, type, link count and mode are checked when it is opened,
 * writer/segment.c), but nothing read
 * here is used unchecked: each counter is compared with the geometry, and
 * the writer's own code never follows an offset of a slot it did not write
 * without a bounds check (writer/index.c index_slot_key, entry_release).
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "hash.h"
#include "lookup.h"
#include "seqcount.h"

/* Is @m a cleanly closed segment whose header bookkeeping can be taken as
 * it is? */
static bool adoptable(const struct shmreg_writer *w, const struct shm_map *m)
{
	const struct shm_hdr *h = m->hdr;
	uint64_t entries = atomic_load_explicit(&h->entries,
						memory_order_relaxed);

	return atomic_load_explicit(&h->state, memory_order_acquire) ==
		       SHM_STATE_CLOSED &&
	       atomic_load_explicit(&h->undo_slot, memory_order_relaxed) == 0 &&
	       !(atomic_load_explicit(&h->commit_seq, memory_order_relaxed) &
		 1) &&
	       m->g.ring_events == w->opts.ring_events &&
	       entries * SHM_LOAD_DEN <= m->g.index_cap * SHM_LOAD_NUM &&
	       atomic_load_explicit(&h->owned, memory_order_relaxed) <=
		       entries &&
	       atomic_load_explicit(&h->arena_bump, memory_order_relaxed) <=
		       m->g.arena_size &&
	       atomic_load_explicit(&h->arena_live, memory_order_relaxed) <=
		       m->g.arena_size &&
	       atomic_load_explicit(&h->attr_pairs, memory_order_relaxed) *
			       SHM_LOAD_DEN <=
		       m->g.attr_cap * SHM_LOAD_NUM;
}

/* Rebuild the owner lists: one pass over the index, only when some entry
 * has an owner.  Bounded by index_cap. */
static void relearn_owners(struct shmreg_writer *w)
{
	uint8_t key[SHMREG_KEY_MAX], val[1];

	for (uint64_t i = 0; i < w->map.g.index_cap; i++) {
		struct shm_slot s;

		if (shm_slot_copy(&w->map, i, &s) < 0 || s.klen == 0 ||
		    s.owner_pid <= 0 || !shm_slot_sane(&w->map, &s) ||
		    shm_entry_read(&w->map, &s, key, val, 0) < 0)
			continue;
		(void)owners_add(&w->owners, s.owner_pid, key, s.klen,
				 writer_owns, w);
	}
}

int writer_adopt(struct shmreg_writer *w, struct shm_map *m, int fd)
{
	struct shm_hdr *h = m->hdr;

	if (!adoptable(w, m))
		return -EAGAIN;
	w->map = *m;
	/* the attribute index stays where it is; only the writer's map of
	 * posting positions is rebuilt (and checked against the entries:
	 * a disagreement is recovered by copying) */
	if (atomic_load_explicit(&h->attr_pairs, memory_order_relaxed) &&
	    attrs_adopt(w) < 0) {
		memset(&w->map, 0, sizeof(w->map));
		return -EAGAIN;
	}
	w->seg_fd = fd;
	w->revision = atomic_load_explicit(&h->revision, memory_order_acquire);
	if (w->revision > WRITER_REV_MAX)
		return -EAGAIN; /* corrupt: recovery refuses it (-EPROTO) */
	w->entries = atomic_load_explicit(&h->entries, memory_order_relaxed);
	w->bytes_used = atomic_load_explicit(&h->bytes_used,
					     memory_order_relaxed);
	w->arena_live = atomic_load_explicit(&h->arena_live,
					     memory_order_relaxed);
	w->owned = atomic_load_explicit(&h->owned, memory_order_relaxed);
	w->key_reserved = atomic_load_explicit(&h->ring_key_reserved,
					       memory_order_relaxed);
	alloc_reset(&w->alloc, m->g.arena_size);
	w->alloc.bump = atomic_load_explicit(&h->arena_bump,
					     memory_order_relaxed);
	if (w->owned)
		relearn_owners(w);
	/* the serving writer's identity: pid, start time and lock file, what
	 * readers that may not open the lock file test liveness by */
	segment_claim(w, h);
	w->map.writer_pid = h->writer_pid;
	/* The writer's RW mapping must not be inherited by forked children
	 * (pre-fork workers read through libshmreg, read-only). */
	(void)madvise(w->map.base, w->map.size, MADV_DONTFORK);
	/* CLOSED -> OPEN: the one transition back.  Pairs with the acquire
	 * load of state in readers (reader_writer_state, the waits), which
	 * from now on report a live writer again. */
	atomic_store_explicit(&h->state, SHM_STATE_OPEN, memory_order_release);
	/* Touch the file's times: the one trace of a reopening in place that
	 * a process watching the directory with inotify (IN_ATTRIB) sees,
	 * as it sees a handoff's rename (shmregctl await and watch wait for
	 * a closed registry's next writer that way: reader/ctl/follow.c). */
	(void)futimens(fd, NULL);
	return 0;
}
