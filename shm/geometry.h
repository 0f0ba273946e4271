/* SPDX-License-Identifier: MIT */
/*
 * geometry.h - a segment's validated geometry and the bounds checks that
 * every reader-side access goes through.
 *
 * The geometry is copied out of the header once, when a segment is mapped,
 * and validated against the mapping's size; it is never reread.  Any offset
 * or length found later inside the segment (slot, object, ring record) is
 * checked against it before it is followed: the segment is untrusted input
 * (a torn read, a corrupt file or a hostile process with write access can
 * put any bytes there), and no bytes may make a reader touch memory outside
 * its mapping.
 */
#ifndef SHM_GEOMETRY_H
#define SHM_GEOMETRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layout.h"

struct shm_geom {
	uint64_t segment_size;
	uint64_t index_off;
	uint64_t index_cap;        /* a power of two */
	unsigned index_shift;      /* 64 - log2(index_cap) */
	uint64_t ring_off;
	uint64_t ring_events;
	uint64_t ring_key_off;     /* = ring_off + ring_events * SHM_RING_REC */
	uint64_t ring_key_bytes;
	uint64_t attr_off;         /* attribute index (64-byte aligned) */
	uint64_t attr_cap;         /* pair slots, a power of two */
	unsigned attr_shift;       /* 64 - log2(attr_cap) */
	uint64_t arena_off;
	uint64_t arena_size;
};

/* A mapped segment, read-only for readers and read-write for the writer. */
struct shm_map {
	uint8_t *base;
	size_t size;               /* bytes mapped (= file size at map time) */
	struct shm_hdr *hdr;       /* = base */
	struct shm_geom g;         /* validated copy */
	uint64_t generation;       /* copy of hdr->generation */
	int32_t writer_pid;        /* copy of hdr->writer_pid */
	uint64_t dev, ino;         /* identity of the mapped file */
};

/* Compute the geometry of a new segment: @index_cap slots, @ring_events
 * records (power of two), @attr_cap attribute index slots (power of two,
 * >= 8), @arena_size bytes.  Returns 0 or -EINVAL/-E2BIG on absurd
 * sizes. */
int shm_geom_plan(struct shm_geom *g, uint64_t index_cap, uint64_t ring_events,
		  uint64_t attr_cap, uint64_t arena_size);

/* Validate the header at @base (of @size mapped bytes): magic, version,
 * sizes, and that every region lies inside the mapping without overlap.
 * Fills *@g.  Returns 0 or -EPROTO. */
int shm_geom_check(const void *base, size_t size, struct shm_geom *g);

/* Home slot of @hash: its top log2(index_cap) bits.  The top bits, not the
 * low ones: neighbouring slots then hold neighbouring hashes, so a doubling
 * sends slot i's entries to slots 2i and 2i + 1 (a sequential copy), and
 * the wait file's slot groups (the top 14 bits) are runs of index slots. */
static inline uint64_t shm_home(const struct shm_geom *g, uint64_t hash)
{
	return hash >> g->index_shift;
}

/* The slot after @i, wrapping at the end of the index. */
static inline uint64_t shm_next(const struct shm_geom *g, uint64_t i)
{
	return (i + 1) & (g->index_cap - 1);
}

static inline struct shm_slot *shm_slot_at(const struct shm_map *m, uint64_t i)
{
	return (struct shm_slot *)(m->base + m->g.index_off +
				   i * (uint64_t)SHM_SLOT_SIZE);
}

static inline struct shm_ring_rec *shm_ring_at(const struct shm_map *m,
					       uint64_t rev)
{
	return (struct shm_ring_rec *)(m->base + m->g.ring_off +
				       (rev & (m->g.ring_events - 1)) *
					       (uint64_t)SHM_RING_REC);
}

/* Home slot of a pair hash in the attribute index, and the slot after
 * @i (wrapping). */
static inline uint64_t shm_pair_home(const struct shm_geom *g, uint64_t hash)
{
	return hash >> g->attr_shift;
}

static inline uint64_t shm_pair_next(const struct shm_geom *g, uint64_t i)
{
	return (i + 1) & (g->attr_cap - 1);
}

static inline struct shm_pair *shm_pair_at(const struct shm_map *m,
					   uint64_t i)
{
	return (struct shm_pair *)(m->base + m->g.attr_off +
				   i * (uint64_t)SHM_PAIR_SIZE);
}

/* Is [off, off + len) inside the arena?  Overflow-safe. */
static inline bool shm_in_arena(const struct shm_geom *g, uint64_t off,
				uint64_t len)
{
	return off >= g->arena_off && off <= g->segment_size &&
	       len <= g->arena_off + g->arena_size - off &&
	       off + len <= g->arena_off + g->arena_size;
}

#endif /* SHM_GEOMETRY_H */
