/* SPDX-License-Identifier: MIT */
/*
 * alloc.c - the arena allocator: size classes, bump allocation, FIFO reuse.
 *
 * How it works.  Objects too large for a slot live in the arena, in blocks
 * of a size class: powers of two and the halfway points between them (64,
 * 96, 128, 192, ...), so a block wastes at most a third of itself.  New
 * blocks are cut from the never-used end of the arena (bump).  A freed
 * block goes to the tail of its class's FIFO and is handed out again only
 * from the head, and only once FIFO_QUARANTINE blocks of its class wait
 * (or the bump space is gone): a reader still copying an old object then
 * almost never meets its reuse, and when it does the object's seqcount and
 * mod_rev send it back to the slot (shm/lookup.c).
 *
 * The queues are the writer's private heap state: a handoff builds a fresh
 * segment whose arena holds only live objects, packed, so the queues start
 * empty again and fragmentation never outlives a handoff.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define MIN_CLASS_SHIFT 6 /* 64 B */
#define FIFO_QUARANTINE 8

/* Class k: 2^(6 + k/2), times 1.5 for odd k. */
static uint64_t class_size(unsigned k)
{
	uint64_t base = UINT64_C(1) << (MIN_CLASS_SHIFT + k / 2);

	return (k & 1) ? base + base / 2 : base;
}

static int class_of(uint64_t need, unsigned *k)
{
	for (unsigned c = 0; c < ALLOC_CLASSES; c++) {
		if (class_size(c) >= need) {
			*k = c;
			return 0;
		}
	}
	return -E2BIG;
}

uint64_t alloc_class_size(uint64_t need)
{
	unsigned k;

	return class_of(need, &k) < 0 ? 0 : class_size(k);
}

void alloc_reset(struct alloc *a, uint64_t arena_size)
{
	for (unsigned k = 0; k < ALLOC_CLASSES; k++)
		a->fifo[k].head = a->fifo[k].len = 0;
	a->bump = 0;
	a->size = arena_size;
}

void alloc_free_all(struct alloc *a)
{
	for (unsigned k = 0; k < ALLOC_CLASSES; k++) {
		free(a->fifo[k].offs);
		memset(&a->fifo[k], 0, sizeof(a->fifo[k]));
	}
}

static int fifo_push(struct free_fifo *f, uint64_t off)
{
	if (f->len == f->cap) {
		size_t nc = f->cap ? 2 * f->cap : 64;
		uint64_t *p = malloc(nc * sizeof(*p));

		if (!p)
			return -ENOMEM;
		/* unroll the ring into the new array */
		for (size_t i = 0; i < f->len; i++)
			p[i] = f->offs[(f->head + i) % f->cap];
		free(f->offs);
		f->offs = p;
		f->cap = nc;
		f->head = 0;
	}
	f->offs[(f->head + f->len) % f->cap] = off;
	f->len++;
	return 0;
}

static uint64_t fifo_pop(struct free_fifo *f)
{
	uint64_t off = f->offs[f->head];

	f->head = (f->head + 1) % f->cap;
	f->len--;
	return off;
}

int alloc_block(struct alloc *a, const struct shm_geom *g, uint64_t size,
		uint64_t *off)
{
	struct free_fifo *f;
	unsigned k;

	if (class_of(size, &k) < 0)
		return -E2BIG;
	size = class_size(k);
	f = &a->fifo[k];
	if (f->len > FIFO_QUARANTINE ||
	    (f->len && a->size - a->bump < size)) {
		*off = fifo_pop(f);
		return 0;
	}
	if (a->size - a->bump < size)
		return -ENOSPC;
	*off = g->arena_off + a->bump;
	a->bump += size;
	return 0;
}

int alloc_release(struct alloc *a, uint64_t off, uint64_t size)
{
	unsigned k;

	if (class_of(size, &k) < 0 || class_size(k) != size)
		return -EINVAL;
	return fifo_push(&a->fifo[k], off);
}
