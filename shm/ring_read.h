/* SPDX-License-Identifier: MIT */
/*
 * ring_read.h - read one change-ring record without locks (readers).
 */
#ifndef SHM_RING_READ_H
#define SHM_RING_READ_H

#include <stdint.h>

#include "geometry.h"

struct shm_ring_event {
	uint64_t rev;
	uint32_t op;               /* SHM_OP_PUT / SHM_OP_DEL */
	uint32_t klen;
	uint64_t hash;
};

/*
 * Copy the record of revision @rev and its key (into @key, which holds
 * SHMREG_KEY_MAX bytes).  The caller has seen hdr->revision >= @rev (an
 * acquire load) or accepts -EAGAIN for a record not yet written.
 * Returns 0, -EAGAIN (not written yet / being written), -ERANGE (already
 * overwritten: the reader fell behind the ring) or -EPROTO (corrupt).
 */
int shm_ring_read(const struct shm_map *m, uint64_t rev,
		  struct shm_ring_event *ev, void *key);

/* Oldest revision whose record the ring may still hold, given the current
 * revision @cur (records older than this are certainly overwritten). */
uint64_t shm_ring_oldest(const struct shm_map *m, uint64_t cur);

#endif /* SHM_RING_READ_H */
