/* SPDX-License-Identifier: MIT */
/* geometry.c - plan a new segment's regions and validate a mapped header. */
#include <errno.h>

#include "shmreg.h"
#include "geometry.h"

#define ALIGN_UP(x, a) (((x) + ((a) - 1)) & ~((uint64_t)(a) - 1))

/* Sanity caps: far beyond any real registry, small enough that no sum of
 * regions below can overflow 64 bits. */
#define MAX_INDEX_CAP   (UINT64_C(1) << 36)
#define MAX_RING_EVENTS (UINT64_C(1) << 24)
#define MAX_ARENA       (UINT64_C(1) << 46)
#define MAX_ATTR_CAP    (UINT64_C(1) << 32)
#define KEY_BYTES_PER_EVENT 64u

static int is_pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

static void layout(struct shm_geom *g)
{
	g->index_shift = (unsigned)(64 - __builtin_ctzll(g->index_cap));
	g->index_off = SHM_HEADER_SIZE;
	g->ring_off = g->index_off + g->index_cap * SHM_SLOT_SIZE;
	g->ring_key_off = g->ring_off + g->ring_events * SHM_RING_REC;
	g->attr_shift = (unsigned)(64 - __builtin_ctzll(g->attr_cap));
	g->attr_off = ALIGN_UP(g->ring_key_off + g->ring_key_bytes, SHM_LINE);
	g->arena_off = ALIGN_UP(g->attr_off + g->attr_cap * SHM_PAIR_SIZE, 4096);
	g->segment_size = ALIGN_UP(g->arena_off + g->arena_size, 4096);
}

int shm_geom_plan(struct shm_geom *g, uint64_t index_cap, uint64_t ring_events,
		  uint64_t attr_cap, uint64_t arena_size)
{
	if (index_cap < 8 || !is_pow2(index_cap) || !is_pow2(ring_events) ||
	    ring_events < 64 || attr_cap < 8 || !is_pow2(attr_cap))
		return -EINVAL;
	if (index_cap > MAX_INDEX_CAP || ring_events > MAX_RING_EVENTS ||
	    arena_size > MAX_ARENA || attr_cap > MAX_ATTR_CAP)
		return -E2BIG;
	g->index_cap = index_cap;
	g->attr_cap = attr_cap;
	g->ring_events = ring_events;
	/* Room for an average key of 64 B per event, and always for the
	 * longest key twice over (a key never wraps, see writer/ring.c). */
	g->ring_key_bytes = ring_events * KEY_BYTES_PER_EVENT;
	if (g->ring_key_bytes < 4 * SHMREG_KEY_MAX)
		g->ring_key_bytes = 4 * SHMREG_KEY_MAX;
	g->arena_size = ALIGN_UP(arena_size, 4096);
	layout(g);
	return 0;
}

int shm_geom_check(const void *base, size_t size, struct shm_geom *g)
{
	const struct shm_hdr *h = base;
	struct shm_geom want;

	if (size < SHM_HEADER_SIZE || h->magic != SHM_MAGIC ||
	    h->version != SHM_VERSION || h->header_size != SHM_HEADER_SIZE ||
	    h->slot_size != SHM_SLOT_SIZE)
		return -EPROTO;
	/* Recompute every derived offset from the primary sizes instead of
	 * trusting the stored ones, then require that they agree: one check
	 * covers overlap, alignment and overflow. */
	if (h->index_cap < 8 || !is_pow2(h->index_cap) ||
	    h->index_cap > MAX_INDEX_CAP ||
	    !is_pow2(h->ring_events) || h->ring_events > MAX_RING_EVENTS ||
	    !is_pow2(h->ring_key_bytes) || h->ring_key_bytes < 4 * SHMREG_KEY_MAX ||
	    h->ring_key_bytes > MAX_RING_EVENTS * KEY_BYTES_PER_EVENT ||
	    h->arena_size > MAX_ARENA || (h->arena_size & 4095) ||
	    h->attr_cap < 8 || !is_pow2(h->attr_cap) ||
	    h->attr_cap > MAX_ATTR_CAP)
		return -EPROTO;
	want.index_cap = h->index_cap;
	want.ring_events = h->ring_events;
	want.ring_key_bytes = h->ring_key_bytes;
	want.arena_size = h->arena_size;
	want.attr_cap = h->attr_cap;
	layout(&want);
	if (want.index_off != h->index_off || want.ring_off != h->ring_off ||
	    want.attr_off != h->attr_off ||
	    want.arena_off != h->arena_off ||
	    want.segment_size != h->segment_size || want.segment_size > size)
		return -EPROTO;
	*g = want;
	return 0;
}
