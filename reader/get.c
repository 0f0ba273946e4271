/* SPDX-License-Identifier: MIT */
/* get.c - shmreg_get and shmreg_revision: the lock-free read path. */
#include <errno.h>
#include <stddef.h>

#include "internal.h"
#include "hash.h"
#include "liveness.h"
#include "lookup.h"
#include "validate.h"

/* A lookup that found nothing on a mapping that another thread has since
 * replaced (state no longer OPEN/CLOSED) must be redone on the new one. */
static bool map_replaced(const struct shm_map *m)
{
	uint32_t st = atomic_load_explicit(&m->hdr->state, memory_order_acquire);

	return st != SHM_STATE_OPEN && st != SHM_STATE_CLOSED;
}


ssize_t reader_get(shmreg_t *r, const void *key, size_t klen, uint64_t hash,
		   void *buf, size_t cap, shmreg_info_t *info)
{
	struct shm_slot slot;
	ssize_t rc = -EAGAIN;

	/* Bound: one pass per segment handoff seen during this call; more
	 * than a few in one call means something is wrong with the name. */
	for (int pass = 0; pass < 8; pass++) {
		struct shm_map *m = reader_map(r);

		rc = shm_lookup(m, key, klen, hash, buf, cap, &slot);
		if (rc >= 0) {
			if (shm_expired(&slot))
				return -ENOENT;
			if (info)
				shm_fill_info(info, &slot);
			return rc;
		}
		if (rc == -ENOENT && map_replaced(m) &&
		    !(r->flags & SHMREG_OPEN_NOFOLLOW)) {
			/* the successor, if the name holds one, may have it
			 * (reader_follow_now() says why); if not, the retired
			 * segment's answer is the registry's */
			if (reader_follow_now(r, m) == m)
				return rc;
			continue;
		}
		if (rc == -EAGAIN && shm_writer_gone(r->path))
			return -EOWNERDEAD;
		return rc;
	}
	return rc;
}

/* Every get the short get does not answer. */
static __attribute__((noinline)) ssize_t
get_general(shmreg_t *r, const void *key, size_t klen, void *buf, size_t cap,
	    shmreg_info_t *info)
{
	int rc;

	if (!r || (!buf && cap))
		return -EINVAL;
	rc = shm_check_key(key, klen);
	if (rc < 0)
		return rc;

	/* pairs with the release store in reader_follow() */
	struct shm_map *m = atomic_load_explicit(&r->map, memory_order_acquire);
	uint32_t st = atomic_load_explicit(&m->hdr->state, memory_order_acquire);
	uint64_t hash = shm_hash(key, klen);

	if (st == SHM_STATE_OPEN || st == SHM_STATE_CLOSED) {
		/* two inlined copies: the one without info (most gets) keeps
		 * nothing of the entry's metadata in registers or on the
		 * stack */
		ssize_t n = info ? shm_lookup_fast(m, key, klen, hash, buf, cap,
						   info)
				 : shm_lookup_fast(m, key, klen, hash, buf, cap,
						   NULL);

		if (n >= 0)
			return n;
	}
	return reader_get(r, key, klen, hash, buf, cap, info);
}

/*
 * What a short get did not answer, the library's or the one inlined into a
 * program (shmreg_inline.h, as shmreg__get_rest): the full lookup.  Not shmreg_get(), which
 * would walk the short get's slots again, nor get_general(), whose
 * argument checks the short get's caller made (r, key and buf not NULL,
 * no info, klen 8..16).  The hash is computed again here rather than
 * passed: a hash kept for this call would hold a register through every
 * short get's walk, and only a miss pays for it.  Five arguments, so that
 * the library's short get reaches it by a tail call and makes no call it
 * returns from.  Exported for the inline get, whatever this library was
 * built with (its ABI does not depend on SHMREG_INLINE_GET).
 */
static __attribute__((noinline)) ssize_t
get_rest(shmreg_t *r, const void *key, size_t klen, void *buf, size_t cap)
{
	return reader_get(r, key, klen, shm_hash(key, klen), buf, cap, NULL);
}

/* The same function under its exported name; the library's own short get
 * jumps to get_rest() directly, not through its PLT. */
SHMREG_EXPORT ssize_t shmreg__get_rest(shmreg_t *r, const void *key,
				       size_t klen, void *buf, size_t cap)
	__attribute__((alias("get_rest")));

#if SHMREG_INLINE_GET
/* The layout the inline get of shmreg_inline.h reads, which programs
 * compiled against this version's header read: the library's own. */
_Static_assert(offsetof(struct shmreg, map) == 0 &&
		       offsetof(struct shm_map, base) == 0 &&
		       offsetof(struct shm_map, g) +
				       offsetof(struct shm_geom, index_shift) ==
			       SHMREG__MAP_SHIFT,
	       "the handle and mapping words the inline get reads");
_Static_assert(offsetof(struct shm_hdr, state) == SHMREG__HDR_STATE &&
		       SHM_STATE_OPEN == SHMREG__STATE_OPEN &&
		       SHM_STATE_CLOSED == SHMREG__STATE_CLOSED &&
		       SHM_HEADER_SIZE == SHMREG__INDEX_OFF,
	       "the header fields the inline get reads (shm_geom_check() "
	       "refuses an index anywhere but after the header page)");
_Static_assert(SHM_SLOT_SIZE == SHMREG__SLOT_SIZE &&
		       offsetof(struct shm_slot, seq) == 0 &&
		       offsetof(struct shm_slot, tag) == 4 &&
		       offsetof(struct shm_slot, klen) == SHMREG__SLOT_W1 &&
		       offsetof(struct shm_slot, kind) == SHMREG__SLOT_W1 + 2 &&
		       offsetof(struct shm_slot, vlen) == SHMREG__SLOT_W1 + 4 &&
		       offsetof(struct shm_slot, expires_at_ns) ==
			       SHMREG__SLOT_EXPIRY &&
		       offsetof(struct shm_slot, data) == SHMREG__SLOT_DATA &&
		       SHM_SLOT_INLINE == SHMREG__SLOT_INLINE &&
		       SHM_KIND_INLINE == SHMREG__KIND_INLINE &&
		       SHM_FAST_PROBE == SHMREG__PROBE,
	       "the slot fields the inline get reads");
_Static_assert(SHMREG__SHORT_KEY + SHMREG__SHORT_VALUE <= SHM_SLOT_INLINE,
	       "the short get's loads stay inside the slot");

/* The short get's store of a value shorter than 64 bytes (or into a
 * smaller buffer), out of line and reached by a tail call: a memcpy call
 * inside shmreg_get, even on a path never taken, made it save six
 * registers and keep a frame on every get, and ran a loop of gets a
 * quarter slower (docs/benchmarks.md). */
__attribute__((noinline)) ssize_t
shmreg__short_store(void *buf, size_t n, uint32_t vlen, __m128i v0,
		    __m128i v1, __m128i v2, __m128i v3)
{
	return shmreg__store_partial(buf, n, vlen, v0, v1, v2, v3);
}

/*
 * The short get (shmreg__short_get() of shmreg_inline.h, the code a
 * program with a constant key length has inlined) of a key of @klen
 * bytes, a constant wherever this is inlined, for the callers the
 * header's inlining does not reach: a key length known only at run time,
 * 8-byte keys, bindings.  Anything it does not answer goes to the full
 * lookup.
 */
static inline __attribute__((always_inline)) ssize_t
short_get(shmreg_t *r, const void *key, size_t klen, void *buf, size_t cap)
{
	ssize_t n = shmreg__short_get(r, key, klen, shm_hash(key, klen), buf,
				      cap);

	if (n >= 0)
		return n;
	return get_rest(r, key, klen, buf, cap);
}

/* One copy per key length of 8..15 bytes, each a function of its own. */
#define SHORT_GET(KLEN)                                                       \
	static __attribute__((noinline)) ssize_t get_short##KLEN(             \
		shmreg_t *r, const void *key, void *buf, size_t cap)          \
	{                                                                     \
		return short_get(r, key, KLEN, buf, cap);                      \
	}

SHORT_GET(8)
SHORT_GET(9)
SHORT_GET(10)
SHORT_GET(11)
SHORT_GET(12)
SHORT_GET(13)
SHORT_GET(14)
SHORT_GET(15)
#endif

SHMREG_EXPORT ssize_t shmreg_get(shmreg_t *r, const void *key, size_t klen,
				 void *buf, size_t cap, shmreg_info_t *info)
{
#if SHMREG_INLINE_GET
	if (r && key && buf && !info) {
		/* A 16-byte key (a UUID, two 64-bit ids, a digest) in this
		 * function itself: in a loop of gets that measured 1.2-1.4
		 * times the bare table, against 1.7 for the same code one
		 * jump further (docs/benchmarks.md). */
		if (klen == 16)
			return short_get(r, key, 16, buf, cap);
		/* the other short keys: the copy of their length, by a tail
		 * call (the arguments stay where they came in) */
		switch (klen) {
		case 8: return get_short8(r, key, buf, cap);
		case 9: return get_short9(r, key, buf, cap);
		case 10: return get_short10(r, key, buf, cap);
		case 11: return get_short11(r, key, buf, cap);
		case 12: return get_short12(r, key, buf, cap);
		case 13: return get_short13(r, key, buf, cap);
		case 14: return get_short14(r, key, buf, cap);
		case 15: return get_short15(r, key, buf, cap);
		}
	}
#endif
	return get_general(r, key, klen, buf, cap, info);
}

SHMREG_EXPORT uint64_t shmreg_revision(shmreg_t *r)
{
	if (!r)
		return 0;
	/* pairs with the release store of the revision in the writer's
	 * commit: everything the commit wrote is visible after this load */
	return atomic_load_explicit(&reader_map(r)->hdr->revision,
				    memory_order_acquire);
}
