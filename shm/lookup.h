/* SPDX-License-Identifier: MIT */
/*
 * lookup.h - lock-free reads of a mapped segment: one slot, one object, one
 * key, one cluster.  Used by the reader library and by a writer recovering a
 * segment it did not write (whose bytes it trusts no more than a reader).
 *
 * Everything here treats the segment as untrusted: offsets and lengths are
 * bounds-checked before they are followed, loops are bounded, and torn or
 * corrupt bytes yield -EAGAIN (retry) or -EPROTO, never a fault.
 */
#ifndef SHM_LOOKUP_H
#define SHM_LOOKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shmreg.h"
#include "geometry.h"

/* Retry budget of one read: optimistic spins, then spins with a yield. */
#define SHM_SPIN_TRIES   64
#define SHM_YIELD_TRIES  256

/* Copy slot @i into *@out under its seqcount.  Returns 0, or -EAGAIN when
 * the slot is being written (odd or moved during the copy). */
int shm_slot_copy(const struct shm_map *m, uint64_t i, struct shm_slot *out);

/* Is this validated slot copy internally consistent (lengths within limits,
 * an extern reference inside the arena)?  Corruption only: a torn copy never
 * gets here.  */
bool shm_slot_sane(const struct shm_map *m, const struct shm_slot *s);

/*
 * Read the value of the entry whose validated slot copy is @s: the inline
 * bytes, or the arena object it references.  Copies the key into @key (at
 * least SHMREG_KEY_MAX bytes) and min(vlen, @cap) value bytes into @buf.
 * Returns 0; -EAGAIN when the object was being (re)written or no longer
 * belongs to this version of the entry (the caller re-reads the slot);
 * -EPROTO when the object is corrupt.
 */
int shm_entry_read(const struct shm_map *m, const struct shm_slot *s,
		   void *key, void *buf, size_t cap);

/*
 * Find @key (hash @hash).  On success returns the value length (which may
 * exceed @cap; min(len, cap) bytes are copied into @buf), stores the slot
 * copy in *@slot and its index in *@index (either may be NULL).  Returns
 * -ENOENT, -EAGAIN (retry budget spent: the entry kept changing, or a
 * slot stayed odd, as when the writer died mid-change) or -EPROTO.
 * Expired entries are not filtered here (see shm_expired).
 */
ssize_t shm_lookup(const struct shm_map *m, const void *key, size_t klen,
		   uint64_t hash, void *buf, size_t cap, struct shm_slot *slot,
		   uint64_t *index);

/* Has this entry expired at CLOCK_REALTIME now? */
bool shm_expired(const struct shm_slot *s);

/* Fill a public info struct from a validated slot copy. */
void shm_fill_info(shmreg_info_t *info, const struct shm_slot *s);

/* Back off between retries: spin first, then yield the CPU (a writer that
 * was preempted mid-section on this CPU then gets to finish). */
void shm_backoff(unsigned attempt);

#endif /* SHM_LOOKUP_H */
