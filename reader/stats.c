/* SPDX-License-Identifier: MIT */
/* stats.c - shmreg_stats: counters from the header, read without locks. */
#include <errno.h>
#include <stdbool.h>

#include "clock.h"
#include "internal.h"
#include "seqcount.h"
#include "waitfile.h"

static uint64_t load64(const _Atomic uint64_t *p)
{
	return atomic_load_explicit(p, memory_order_relaxed);
}

/*
 * Commits per second from the header's rate samples (writer/rate.c has the
 * how-it-works): the commits since the newest sample that is at least
 * SHM_RATE_NS old, over the time since it; with none that old yet (a
 * writer younger than that), the oldest there is.  A few tries at a
 * consistent copy, then 0: stats never wait for the writer.
 */
static double commit_rate(const struct shm_hdr *h, uint64_t rev)
{
	int64_t t[2], now = shm_realtime_coarse_ns();
	uint64_t rv[2];
	int i;

	for (i = 0; i < 4; i++) {
		uint32_t s = seq_read_begin(&h->rate_seq);

		for (int k = 0; k < 2; k++) {
			t[k] = atomic_load_explicit(&h->rate_ns[k],
						    memory_order_relaxed);
			rv[k] = atomic_load_explicit(&h->rate_rev[k],
						     memory_order_relaxed);
		}
		if (!seq_read_retry(&h->rate_seq, s))
			break;
	}
	if (i == 4)
		return 0;
	/* the samples are the segment's, so untrusted: a time outside
	 * (0, now) is no sample, and is never subtracted from now */
	bool ok0 = t[0] > 0 && t[0] < now, ok1 = t[1] > 0 && t[1] < now;

	i = (ok1 && now - t[1] >= SHM_RATE_NS) || !ok0 ? 1 : 0;
	if (!(i ? ok1 : ok0) || rev < rv[i])
		return 0;
	return (double)(rev - rv[i]) * 1e9 / (double)(now - t[i]);
}

SHMREG_EXPORT int shmreg_stats(shmreg_t *r, shmreg_stats_t *st)
{
	const struct shm_map *m;
	const struct shm_hdr *h;
	int64_t since, now;

	if (!r || !st)
		return -EINVAL;
	m = reader_map(r);
	h = m->hdr;
	/* Each counter is exact on its own; together they are a near
	 * snapshot (no seqcount: stats are advisory and must never wait). */
	st->entries = load64(&h->entries);
	st->bytes_used = load64(&h->bytes_used);
	st->arena_used = load64(&h->arena_bump);
	st->revision = atomic_load_explicit(&h->revision, memory_order_acquire);
	st->segment_bytes = m->g.segment_size;
	st->index_capacity = m->g.index_cap;
	st->arena_bytes = m->g.arena_size;
	st->ring_capacity = m->g.ring_events;
	st->generation = m->generation;
	/* live, not the copy made at map time: a writer that adopts a
	 * closed segment in place records itself there */
	st->writer_pid = atomic_load_explicit(
		(const _Atomic int32_t *)&m->hdr->writer_pid,
		memory_order_relaxed);
	st->state = reader_writer_state(r, m);
	st->attr_pairs = load64(&h->attr_pairs);
	st->attr_capacity = m->g.attr_cap;
	st->index_entries = load64(&h->attr_postings);
	st->owned = load64(&h->owned);
	st->waiters = waitfile_count_waiters(r);
	st->writes_per_sec = commit_rate(h, st->revision);
	since = atomic_load_explicit(&h->writer_since_ns,
				     memory_order_relaxed);
	now = shm_realtime_ns();
	/* a closed or dead registry has no writer to be up */
	st->uptime_ns = st->state == SHMREG_STATE_OPEN && since > 0 &&
				now > since ? (uint64_t)(now - since) : 0;
	return 0;
}
