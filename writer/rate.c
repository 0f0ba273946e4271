/* SPDX-License-Identifier: MIT */
/* rate.c - the commit-rate samples of the header's rate line. */
#include "clock.h"
#include "internal.h"
#include "seqcount.h"

/*
 * How it works
 *
 * Readers want "commits per second over the last interval" without a
 * daemon, a timer or a second look at the segment.  So the writer keeps two
 * samples (time, revision) in the header, the newer in [1], and takes a new
 * one at the first commit at least SHM_RATE_NS after the newer: the older
 * is dropped, the newer moves to [0].  A reader then divides the commits
 * since a sample by the time since it (reader/stats.c), choosing the newest
 * sample at least SHM_RATE_NS old, so its window is 1 to 2 intervals long
 * while commits flow, and grows (the rate falling towards 0) once they
 * stop: no commit, no sample, and no timer needed to notice.
 *
 * Cost: one coarse clock read (vDSO, no system call) per commit and, once
 * per interval, five stores to a header line no reader touches per call.
 */

static void rate_store(struct shmreg_writer *w, struct shm_hdr *h)
{
	/* pairs with seq_read_begin()/seq_read_retry() in reader/stats.c */
	seq_write_begin(&h->rate_seq);
	for (int i = 0; i < 2; i++) {
		atomic_store_explicit(&h->rate_ns[i], w->rate_ns[i],
				      SHM_DATA_STORE_ORDER);
		atomic_store_explicit(&h->rate_rev[i], w->rate_rev[i],
				      SHM_DATA_STORE_ORDER);
	}
	seq_write_end(&h->rate_seq);
}

void rate_commit(struct shmreg_writer *w, uint64_t rev, int64_t now)
{
	if (now == RATE_READ && (now = rate_due(w)) == RATE_NONE)
		return;
	w->rate_ns[0] = w->rate_ns[1];
	w->rate_rev[0] = w->rate_rev[1];
	w->rate_ns[1] = now;
	w->rate_rev[1] = rev;
	rate_store(w, w->map.hdr);
}

void rate_publish(struct shmreg_writer *w, struct shm_hdr *h)
{
	rate_store(w, h);
}
