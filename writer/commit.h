/* SPDX-License-Identifier: MIT */
/*
 * commit.h - open and close a commit (writer.c has the "how it works": the
 * order of a commit's stores and what each one publishes).  Inline: every
 * put and delete is one.
 *
 * commit_end() is commit_stats_fixed() + commit_stats_counts() +
 * commit_publish(); the common put (put_common() in writer.c) calls the
 * first before its slot's cache miss, the second only when the counts
 * change, and commit_open() / commit_close() around its slot write, so
 * that the stores which do not depend on the slot are not waiting in the
 * reorder window behind its load.
 */
#ifndef WRITER_COMMIT_H
#define WRITER_COMMIT_H

#include "internal.h"
#include "persist/persist.h"
#include "seqcount.h"

static inline void commit_begin(struct shmreg_writer *w)
{
	if (w->batch_depth++ == 0)
		seq_write_begin(&w->map.hdr->commit_seq);
}

/* The header's stats a put into an inline slot never changes (the arena's,
 * owners', attributes'): relaxed stores, read under commit_seq by
 * snapshots (the common put stores these values, which every commit has
 * stored already, before it opens its commit). */
static inline void commit_stats_fixed(struct shmreg_writer *w)
{
	struct shm_hdr *h = w->map.hdr;

	atomic_store_explicit(&h->arena_bump, w->alloc.bump,
			      memory_order_relaxed);
	atomic_store_explicit(&h->arena_live, w->arena_live,
			      memory_order_relaxed);
	atomic_store_explicit(&h->owned, w->owned, memory_order_relaxed);
	atomic_store_explicit(&h->attr_pairs, w->attr_pairs,
			      memory_order_relaxed);
	atomic_store_explicit(&h->attr_postings, w->apos.n,
			      memory_order_relaxed);
}

/* The two every put changes. */
static inline void commit_stats_counts(struct shmreg_writer *w)
{
	struct shm_hdr *h = w->map.hdr;

	atomic_store_explicit(&h->entries, w->entries, memory_order_relaxed);
	atomic_store_explicit(&h->bytes_used, w->bytes_used,
			      memory_order_relaxed);
}

/* Publish revision @rev: the commit's slots and ring record; pairs with
 * the acquire load in shmreg_revision() and the watchers. */
static inline void commit_store_rev(struct shmreg_writer *w,
				    struct shm_hdr *h, uint64_t rev)
{
	w->revision = rev;
	atomic_store_explicit(&h->revision, rev, memory_order_release);
}

/* Close the outermost commit. */
static inline void commit_finish(struct shmreg_writer *w, struct shm_hdr *h,
				 int64_t now)
{
	seq_write_end(&h->commit_seq);
	/* a batch's revision: the last one its operations stored */
	if (now != RATE_NONE)
		rate_commit(w, w->revision, now);
	/* persistence: the commit's log records go out (log_write.c) */
	if (w->plog)
		w->plog_committed(w);
}

/* Publish revision @rev (0: none) and close the commit.  @now: what the
 * caller knows of the rate sample (RATE_READ, RATE_NONE or the time of a
 * due one: rate_due() in internal.h). */
static inline void commit_publish(struct shmreg_writer *w, uint64_t rev,
				  int64_t now)
{
	if (rev)
		commit_store_rev(w, w->map.hdr, rev);
	if (--w->batch_depth == 0)
		commit_finish(w, w->map.hdr, now);
}

/*
 * The common put's commit (put_common() in writer.c): commit_begin() and
 * commit_publish() for one revision, minus their stores of batch_depth
 * when the put is a commit of its own (not inside a batch): stores wait
 * in the store queue behind the slot's miss (writer.c has the argument).
 * Nothing between the two reads batch_depth (a handoff would, for the
 * new segment's commit_seq; the common put makes none inside its commit),
 * so leaving it 0 there is unseen.
 * Returns whether it is; pass that to commit_close().  @h: the writer's
 * header, which the caller holds in a register (the fences of the slot
 * write would have it reloaded from the writer's struct).
 */
static inline bool commit_open(struct shmreg_writer *w, struct shm_hdr *h)
{
	bool outer = w->batch_depth == 0;

	if (outer)
		seq_write_begin(&h->commit_seq);
	else
		w->batch_depth++;
	return outer;
}

static inline void commit_close(struct shmreg_writer *w, struct shm_hdr *h,
				bool outer, uint64_t rev, int64_t now)
{
	if (!outer) {
		commit_publish(w, rev, now);
		return;
	}
	commit_store_rev(w, h, rev);
	commit_finish(w, h, now);
}

static inline void commit_end(struct shmreg_writer *w, uint64_t rev)
{
	commit_stats_counts(w);
	commit_stats_fixed(w);
	commit_publish(w, rev, RATE_READ);
}

#endif /* WRITER_COMMIT_H */
