/* SPDX-License-Identifier: MIT */
/* hash.h - the key hash (XXH3-64) and the tag a slot keeps of it. */
#ifndef SHM_HASH_H
#define SHM_HASH_H

#include <stddef.h>
#include <stdint.h>

/* xxHash inlined: libshmreg exports no XXH* symbol and needs no libxxhash
 * at run time (it may be preloaded into any process), and a get's hash is
 * compiled into the get, where the CPU can overlap it with the previous
 * get's memory access instead of waiting for a call to return. */
#define XXH_INLINE_ALL
#pragma GCC diagnostic push
/* gcc 12 reports, after inlining into a call with a short constant key,
 * the loads of longer-length branches that the length test never takes */
#pragma GCC diagnostic ignored "-Warray-bounds"
#pragma GCC diagnostic ignored "-Wstringop-overread"
#include <xxhash.h>
#pragma GCC diagnostic pop

/* XXH3-64 of the key bytes, seed 0.  Part of the format: changing it is a
 * format version change.  A key's home slot is the hash's top bits
 * (shm_home() in geometry.h); the slot keeps the low 32 bits as its tag
 * and the high 32 bits beside, so the writer has the whole hash. */
static inline uint64_t shm_hash(const void *key, size_t len)
{
	return XXH3_64bits(key, len);
}

static inline uint32_t shm_tag(uint64_t hash)
{
	return (uint32_t)hash;
}

static inline uint32_t shm_hash_hi(uint64_t hash)
{
	return (uint32_t)(hash >> 32);
}

#endif /* SHM_HASH_H */
