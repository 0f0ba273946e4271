/* SPDX-License-Identifier: MIT */
/* stats.c - shmreg_stats: counters from the header, read without locks. */
#include <errno.h>

#include "internal.h"

static uint64_t load64(const _Atomic uint64_t *p)
{
	return atomic_load_explicit(p, memory_order_relaxed);
}

SHMREG_EXPORT int shmreg_stats(shmreg_t *r, shmreg_stats_t *st)
{
	const struct shm_map *m;
	const struct shm_hdr *h;

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
	return 0;
}
