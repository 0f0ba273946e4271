/* SPDX-License-Identifier: MIT */
/*
 * commit.h - open and close a commit (writer.c has the "how it works": the
 * order of a commit's stores and what each one publishes).  Inline: every
 * put and delete is one.
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

static inline void commit_end(struct shmreg_writer *w, uint64_t rev)
{
	struct shm_hdr *h = w->map.hdr;

	atomic_store_explicit(&h->entries, w->entries, memory_order_relaxed);
	atomic_store_explicit(&h->bytes_used, w->bytes_used,
			      memory_order_relaxed);
	atomic_store_explicit(&h->arena_bump, w->alloc.bump,
			      memory_order_relaxed);
	atomic_store_explicit(&h->arena_live, w->arena_live,
			      memory_order_relaxed);
	atomic_store_explicit(&h->owned, w->owned, memory_order_relaxed);
	atomic_store_explicit(&h->attr_pairs, w->attr_pairs,
			      memory_order_relaxed);
	atomic_store_explicit(&h->attr_postings, w->apos.n,
			      memory_order_relaxed);
	if (rev) {
		w->revision = rev;
		/* publishes the commit's slots and ring record; pairs with
		 * the acquire load in shmreg_revision() and the watchers */
		atomic_store_explicit(&h->revision, rev, memory_order_release);
	}
	if (--w->batch_depth == 0) {
		seq_write_end(&h->commit_seq);
		/* a batch's revision: the last one its operations stored */
		rate_commit(w, w->revision);
		/* persistence: the commit's log records go out (log_write.c) */
		if (w->plog)
			w->plog_committed(w);
	}
}

#endif /* WRITER_COMMIT_H */
