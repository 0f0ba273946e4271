/* SPDX-License-Identifier: MIT */
/* hash.c - XXH3-64 inlined, so libshmreg exports no XXH* symbol and needs
 * no libxxhash at run time (it may be preloaded into any process). */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "hash.h"

uint64_t shm_hash(const void *key, size_t len)
{
	return XXH3_64bits(key, len);
}
