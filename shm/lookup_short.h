/* SPDX-License-Identifier: MIT */
/*
 * lookup_short.h - the short get: a key of SHM_SHORT_KEY_MIN..SHM_SHORT_KEY
 * bytes whose entry is inline, never expires and has a value of at most
 * SHM_SHORT_VALUE bytes, read the way a program that knows its record sizes
 * would read it.  x86-64 (SSE2) only; elsewhere, and under ThreadSanitizer,
 * SHM_HAVE_SHORT_GET is 0 and every get takes shm_lookup_fast().
 *
 * Why a second inlined lookup.  In a loop of gets over a large registry
 * each get is a cache miss (and, on 4 KiB pages, a TLB miss), and the loop
 * is as fast as the number of gets whose misses the CPU keeps in flight at
 * once.  Every instruction of a get, and above all every load and store
 * (stack spills, saved registers, a call's return), takes a slot of the
 * reorder window and of the load and store queues that the next gets'
 * misses need.  Measured in one process against the bare seqcount table
 * with its sizes compiled in (docs/benchmarks.md), shmreg_get on
 * shm_lookup_fast() cost about 1.8 times the table, and on this shape 1.2
 * to 1.4 times.  What makes the difference:
 *  - every load of a slot is made without a branch on its bytes (the
 *    words, the key as one vector, 64 value bytes into four vector
 *    registers), all the tests fold into one word, and the one decision is
 *    taken after the slot's seqcount check;
 *  - the key length is a compile-time constant in each copy (the caller
 *    has one per length), so no register holds it and the hash of the key
 *    is the one for that length;
 *  - the vector registers are not saved across calls, so the walk needs few
 *    general registers and almost no stack;
 *  - only a validated hit stores to the caller's buffer, and the get makes
 *    no call it returns from: a partial value (shorter than 64 bytes, or a
 *    smaller buffer) is stored by shm_short_store(), reached by a tail call
 *    with the four registers as its arguments.  (A memcpy call there, even
 *    on a path never taken, made every get save registers and ran the
 *    loop of gets a quarter slower.)
 *
 * Memory ordering: the slot's seqcount as everywhere (shm/seqcount.h).  The
 * seq is read by seq_read_begin() (acquire: the data loads cannot move
 * before it), the vector loads are plain loads of the read-only mapping
 * under the argument of shm_copy_wide() (nothing loaded is acted upon before
 * the check), and seq_read_retry() (its acquire fence pairs with the
 * writer's release fence in seq_write_begin()) validates them.
 *
 * Bounds: the slot's data holds SHM_SLOT_INLINE (80) bytes; the loads span
 * data[0 .. klen + 64) with klen <= 16, inside the slot whatever the slot
 * says, and the segment's bytes only ever feed the one decision.
 */
#ifndef SHM_LOOKUP_SHORT_H
#define SHM_LOOKUP_SHORT_H

#include "hash.h"
#include "layout.h"
#include "lookup.h"
#include "seqcount.h"

#define SHM_SHORT_KEY_MIN 8u
#define SHM_SHORT_KEY     16u
#define SHM_SHORT_VALUE   64u

#if defined(__SSE2__) && !SHM_TSAN
#define SHM_HAVE_SHORT_GET 1

#include <emmintrin.h>
#include <stddef.h>
#include <string.h>
#include <sys/types.h>

_Static_assert(SHM_SHORT_KEY + SHM_SHORT_VALUE <= SHM_SLOT_INLINE,
	       "the short get's loads stay inside the slot");

/* A key of @klen (8..16, a constant) bytes at @p as one vector: its first
 * and its last eight bytes (overlapping, or one word for 8, zero above). */
static inline __attribute__((always_inline)) __m128i
shm_short_key_vec(const uint8_t *p, size_t klen)
{
	__m128i lo;

	if (klen == 16)
		return _mm_loadu_si128((const __m128i *)(const void *)p);
	lo = _mm_loadl_epi64((const __m128i *)(const void *)p);
	if (klen == 8)
		return lo;
	return _mm_castpd_si128(_mm_loadh_pd(_mm_castsi128_pd(lo),
			(const double *)(const void *)(p + klen - 8)));
}

/* Store @n (< 64: a shorter value, or a smaller buffer) bytes of the four
 * value registers, and return @vlen (>= 0, which lets the caller's test of
 * the result fold away and the call become a tail call). */
ssize_t shm_short_store(void *buf, size_t n, uint32_t vlen, __m128i v0,
			__m128i v1, __m128i v2, __m128i v3);

/*
 * Walk at most SHM_FAST_PROBE slots from @hash's home in the index at
 * @index (slot numbers: @hash >> @shift, all ones >> @shift the mask).
 * Returns the value length of a validated hit (its min(vlen, @cap) bytes
 * stored to @buf), or -EAGAIN for "not here in this shape" (absent,
 * another kind, an expiry, a longer value, an odd or torn slot, further
 * than SHM_FAST_PROBE): the caller then runs the full lookup.
 */
static inline __attribute__((always_inline)) ssize_t
shm_short_lookup(const uint8_t *index, unsigned shift, const void *key,
		 size_t klen, uint64_t hash, void *buf, size_t cap)
{
	uint64_t mask = UINT64_MAX >> shift;
	uint64_t i = hash >> shift;
	__m128i k = shm_short_key_vec(key, klen);
	uint32_t tag = shm_tag(hash);
	/* word 1's {klen, kind} of the entry wanted */
	uint64_t want = klen | ((uint64_t)SHM_KIND_INLINE << 16);

	for (unsigned d = 0; d < SHM_FAST_PROBE; d++, i = (i + 1) & mask) {
		const struct shm_slot *s = (const struct shm_slot *)
			(index + i * (uint64_t)SHM_SLOT_SIZE);
		struct shm_slot_head hd = shm_slot_head_load(s);
		uint32_t s0 = hd.seq, t = hd.tag;
		uint64_t w1 = hd.w1, expiry = hd.expiry;
		__m128i skey = shm_short_key_vec(s->data, klen);
		const uint8_t *vp = s->data + klen;
		__m128i v0 = _mm_loadu_si128((const __m128i *)(const void *)vp);
		__m128i v1 = _mm_loadu_si128(
			(const __m128i *)(const void *)(vp + 16));
		__m128i v2 = _mm_loadu_si128(
			(const __m128i *)(const void *)(vp + 32));
		__m128i v3 = _mm_loadu_si128(
			(const __m128i *)(const void *)(vp + 48));
		uint32_t vlen = (uint32_t)(w1 >> 32);
		unsigned key_same = (unsigned)_mm_movemask_epi8(
			_mm_cmpeq_epi8(skey, k));
		/* every test folded into one word, zero for the entry
		 * wanted: the tag, {klen, kind}, the key, no expiry, and a
		 * value of at most 64 bytes ((vlen + 63) >> 7 is 0 exactly
		 * for vlen <= 64) */
		uint64_t diff = (t ^ tag) | ((w1 ^ want) & 0xffffff) |
				(key_same ^ 0xffff) | expiry |
				((vlen + SHM_SHORT_VALUE - 1) >> 7);

		if (seq_read_retry(&s->seq, s0))
			return -EAGAIN;
		if (diff == 0) {
			if (__builtin_expect(vlen == SHM_SHORT_VALUE &&
						     cap >= SHM_SHORT_VALUE,
					     1)) {
				uint8_t *o = buf;

				_mm_storeu_si128((__m128i *)(void *)o, v0);
				_mm_storeu_si128((__m128i *)(void *)(o + 16), v1);
				_mm_storeu_si128((__m128i *)(void *)(o + 32), v2);
				_mm_storeu_si128((__m128i *)(void *)(o + 48), v3);
				return SHM_SHORT_VALUE;
			}
			ssize_t n = shm_short_store(buf, vlen < cap ? vlen : cap,
						    vlen, v0, v1, v2, v3);

			if (n < 0)
				__builtin_unreachable(); /* it returns vlen */
			return n;
		}
		if ((uint16_t)w1 == 0)
			return -EAGAIN; /* absent: the full path confirms it */
	}
	return -EAGAIN;
}

#else
#define SHM_HAVE_SHORT_GET 0
#endif

#endif /* SHM_LOOKUP_SHORT_H */
