/* SPDX-License-Identifier: MIT */
/* hash.h - the key hash (XXH3-64) and where it sends a key in the index. */
#ifndef SHM_HASH_H
#define SHM_HASH_H

#include <stddef.h>
#include <stdint.h>

/* XXH3-64 of the key bytes, seed 0.  Part of the format: changing it is a
 * format version change. */
uint64_t shm_hash(const void *key, size_t len);

/* Home slot of @hash in an index of @cap slots: Lemire's fastrange, a
 * multiply instead of a modulo, which lets the index have any size (sized to
 * the load limit, not rounded up to a power of two).  It uses the high bits
 * of the hash; the slot tag keeps the low 32. */
static inline uint64_t shm_home(uint64_t hash, uint64_t cap)
{
	return (uint64_t)(((unsigned __int128)hash * cap) >> 64);
}

static inline uint32_t shm_tag(uint64_t hash)
{
	return (uint32_t)hash;
}

#endif /* SHM_HASH_H */
