/* SPDX-License-Identifier: MIT */
/*
 * expire.h - the writer's deadline queue and the expiry sweep (expire.c).
 * Private memory of the writer, never shared: it is rebuilt from the
 * segment's slots when the writer first sweeps a registry it took over.
 */
#ifndef WRITER_EXPIRE_H
#define WRITER_EXPIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One deadline: the entry with key hash @hash expires at @at
 * (CLOCK_REALTIME ns).  An element whose entry was deleted or put again
 * since is stale; the sweep drops it when it reaches the top. */
struct expiry_ent {
	int64_t at;
	uint64_t hash;
};

struct expiry {
	struct expiry_ent *heap;   /* binary min-heap on at */
	size_t n, cap;
	size_t compacted;          /* n after the last rebuild or compaction */
	bool active;               /* built: puts push their deadlines */
	int tfd;                   /* timerfd (CLOCK_REALTIME), or -1 */
	int64_t armed;             /* deadline it is armed for, 0 = none */
};

struct shmreg_writer;

/* A put committed an entry of key hash @hash expiring at @at (!= 0). */
void expiry_note(struct shmreg_writer *w, int64_t at, uint64_t hash);
void expiry_free(struct shmreg_writer *w);

#endif /* WRITER_EXPIRE_H */
