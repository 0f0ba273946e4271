/* SPDX-License-Identifier: MIT */
/*
 * attr_index.h - the attribute index of a segment, reader side: pair
 * hashes, the attribute bytes of an entry, and lock-free copies of an
 * entry with its attributes and of a pair's posting array.  Used by the
 * reader library (shmreg_find, shmreg_get_attrs) and by a writer copying a
 * segment it does not trust (handoff.c).
 *
 * Like lookup.h, everything here treats the segment as untrusted: every
 * offset and length is checked against the validated geometry before it
 * is followed, every loop has a bound that no segment byte can raise, and
 * nothing copied is interpreted before its seqcount validated it.
 */
#ifndef SHM_ATTR_INDEX_H
#define SHM_ATTR_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shmreg.h"
#include "geometry.h"

/* First posting element of a posting block, in u64 elements. */
#define SHM_POST_FIRST (SHM_OBJ_HDR / 8)

/* The XXH3-64 of the bytes "name=value": a pair's identity in the index.
 * Part of the format. */
uint64_t shm_pair_hash(const char *name, size_t nlen, const char *value,
		       size_t vlen);

/* The identity of "the children of @key" in the attribute index: the
 * XXH3-64 of the key with seed SHM_PARENT_SEED, kept in the pair slots
 * beside the name=value pairs (a parent's children are the entries that
 * carry it as a pseudo-pair).  Part of the format. */
#define SHM_PARENT_SEED UINT64_C(0x746e65726170) /* "parent" */
uint64_t shm_parent_hash(const void *key, size_t klen);

/* Is @a (@alen bytes) exactly @nattrs well-formed "name\0value\0" pairs
 * within the limits of validate.h?  Bounded by @alen. */
bool shm_attrs_wellformed(const uint8_t *a, size_t alen, uint32_t nattrs);

/* Does the well-formed attribute block @a carry the pair name=value? */
bool shm_attrs_have(const uint8_t *a, size_t alen, const char *name,
		    size_t nlen, const char *value, size_t vlen);

/* The offset of the key in the object of an extern or rich slot. */
static inline uint64_t shm_obj_key_off(uint8_t kind)
{
	return kind == SHM_KIND_RICH ? SHM_OBJ_HDR + SHM_RICH_HDR : SHM_OBJ_HDR;
}

/*
 * Read the attributes of the entry whose validated slot copy is @s (a
 * sane SHM_KIND_RICH slot): min(alen, @cap) bytes into @buf, the full
 * length in *@alen.  With @key non-NULL also its key (SHMREG_KEY_MAX
 * bytes of room) and min(vlen, @vcap) value bytes into @val; with
 * @parent non-NULL its parent key (SHMREG_KEY_MAX bytes of room) and its
 * length in *@plen (0: none); all of one version of the object.
 * Returns 0; -EAGAIN when the object was being
 * rewritten or is no longer this version of the entry (re-read the slot);
 * -EPROTO when it is corrupt (lengths that do not fit its block, or
 * attribute bytes that are not well-formed: only when the whole block was
 * copied, @cap >= alen).
 */
int shm_rich_read(const struct shm_map *m, const struct shm_slot *s,
		  void *key, void *val, size_t vcap, void *buf, size_t cap,
		  uint32_t *alen, void *parent, uint32_t *plen);

/*
 * Find the pair @hash and copy its slot into *@out under its seqcount;
 * with @post non-NULL also copy its posting elements (out->count of them,
 * into a malloc'd array stored in *@post, which the caller frees) in the
 * same read section.  Returns 0, -ENOENT (no entry carries the pair),
 * -EAGAIN (retry budget spent), -EPROTO or -ENOMEM.
 */
int shm_pair_read(const struct shm_map *m, uint64_t hash,
		  struct shm_pair *out, uint64_t **post);

#endif /* SHM_ATTR_INDEX_H */
