/* SPDX-License-Identifier: MIT */
/*
 * shmreg_inline.h - shmreg_get() compiled into its caller.  Included by
 * shmreg.h; programs do not include it themselves, and nothing named
 * shmreg__* here is API.
 *
 * Why.  In a loop of gets over a large registry each get is a cache miss
 * (and, on 4 KiB pages, a TLB miss), and the loop runs as fast as the
 * number of gets whose misses the CPU keeps in flight at once: every
 * instruction of a get takes a slot of the reorder window that the next
 * gets' misses need.  Behind a library call a get also pays its argument
 * checks, the registers the function saves and restores, and the call
 * and return; inlined, the checks fold against what the caller knows (a
 * constant key length, a buffer on its stack, no metadata asked for) and
 * the caller's registers serve.  Measured in one process, the same lookup
 * ran at 1.28-1.41 times a bare seqcount table as the library's function
 * and at 1.13-1.17 times it inlined (docs/benchmarks.md, "Fifth pass").
 * liburing does the same with its ring helpers.
 *
 * When.  The get is inlined where the key length is a compile-time
 * constant of 8 to 16 bytes, on x86-64 with SSE2, with GCC or Clang
 * optimising, in C, outside ThreadSanitizer (whose model has no fences),
 * and unless SHMREG_NO_INLINE_GET is defined.  It answers when the entry
 * is inline, never expires and has a value of at most 64 bytes, within
 * SHMREG__PROBE slots of home, and nothing else needs doing: a NULL
 * argument, metadata asked for (@info), any other entry, absence, a slot
 * being written, a segment being replaced - all of it goes to the
 * library's shmreg_get(), which decides exactly as before.  Every other
 * call site calls the library.  Taking shmreg_get's address gives the
 * library's function.
 *
 * What it reads, and the ABI.  The handle's first word (its current
 * mapping), that mapping's first word (the segment's address) and its
 * copy of the index's shift, the segment's state word and the index's
 * slots.  The offsets below are therefore part of the ABI of one
 * MAJOR.MINOR, which the shared library's soname carries (libshmreg.so.0.1
 * is never loaded for a program built against 0.2), and the library
 * checks at compile time that they are its own (reader/get.c).  A format
 * change that moves any of them is a minor version change.
 *
 * Memory ordering: the slot's seqcount, as everywhere in shmreg (the
 * kernel's seqlock protocol).  shmreg__seq_begin_tag() is an acquire load
 * (of the seqcount and the tag beside it), so no load of the slot moves
 * before it; the slot's other words are relaxed atomic
 * loads and its key and value plain vector loads of the read-only mapping,
 * none of whose results is acted upon before the check; shmreg__seq_retry()
 * issues an acquire fence, which pairs with the release fence the writer
 * issues after making the seqcount odd (seq_write_begin()), then reloads
 * the seqcount: a reader whose loads saw any store of a write section sees
 * an odd or a newer seqcount there and discards them.  The handle's
 * mapping is loaded with acquire, pairing with the release store by which
 * the library publishes a new mapping when it follows a segment handoff,
 * so the mapping's fields are seen complete.
 *
 * Bounds: a slot's data holds SHMREG__SLOT_INLINE bytes; the loads span
 * data[0 .. klen + 64) with klen <= 16, inside the slot whatever it says,
 * and the probe is bounded by SHMREG__PROBE whatever the slots say.  The
 * segment's bytes only ever feed the one decision.
 */
#ifndef SHMREG_INLINE_H
#define SHMREG_INLINE_H

#include <emmintrin.h>
#include <string.h>

#define SHMREG__INLINE \
	static __inline__ __attribute__((__always_inline__, __artificial__))

__extension__ typedef unsigned __int128 shmreg__u128;

/* The layout read (reader/get.c asserts each against the library's). */
#define SHMREG__MAP_SHIFT    48u   /* the mapping's copy of the index shift */
#define SHMREG__HDR_STATE    16u   /* the segment header's state word */
#define SHMREG__STATE_OPEN   1u    /* a writer serves the segment */
#define SHMREG__STATE_CLOSED 2u    /* its writer closed it cleanly */
#define SHMREG__INDEX_OFF    4096u /* the index follows the header page */
#define SHMREG__SLOT_SIZE    128u
#define SHMREG__SLOT_W1      8u    /* {klen u16, kind u8, flags u8, vlen u32} */
#define SHMREG__SLOT_EXPIRY  32u   /* deadline (ns), 0 = never */
#define SHMREG__SLOT_DATA    48u   /* key, then value */
#define SHMREG__SLOT_INLINE  80u   /* bytes of data */
#define SHMREG__KIND_INLINE  1u
#define SHMREG__PROBE        8u    /* slots walked before asking the library */
#define SHMREG__SHORT_KEY    16u   /* the longest key of the short get */
#define SHMREG__SHORT_VALUE  64u   /* the longest value of the short get */

/* ---- the slot's seqcount, read side (see the top of this file) ---- */

/* The slot's seqcount, and in the same load the tag that follows it: one
 * aligned 8-byte acquire load, single-copy atomic on x86-64, so the tag is
 * read no earlier than the seqcount, as every later load of the slot is.
 * The acquire pairs with the writer's release store of the even seqcount
 * (seq_write_end() in the library): a reader that loads that value sees
 * the whole section it closed.  The tag is slot data like the rest,
 * checked by shmreg__seq_retry(); one load instead of two, in a loop whose
 * speed is its loads per get.  Returns the seqcount, the tag in *@tag. */
SHMREG__INLINE uint32_t
shmreg__seq_begin_tag(const unsigned char *slot, uint32_t *tag)
{
	uint64_t w = __atomic_load_n((const uint64_t *)(const void *)slot,
				     __ATOMIC_ACQUIRE);

	*tag = (uint32_t)(w >> 32); /* little-endian: bytes 4..7 */
	return (uint32_t)w;
}

/* True when what was loaded since shmreg__seq_begin_tag() returned @start may
 * be torn (or @start was odd).  One test, not two: the reload is made even
 * for an odd start (the mapping is always readable). */
SHMREG__INLINE int
shmreg__seq_retry(const unsigned char *slot, uint32_t start)
{
	/* pairs with the writer's release fence after its odd store
	 * (seq_write_begin() in the library) */
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	return ((start & 1u) |
		(__atomic_load_n((const uint32_t *)(const void *)slot,
				 __ATOMIC_RELAXED) ^ start)) != 0;
}

/* ---- the key ---- */

/* XXH3-64 (seed 0) of a key of 8..16 bytes: the format's key hash for
 * these lengths (XXH3's formulas for 4..8 and 9..16 bytes), written out
 * so that the header needs no xxhash.h (get_short checks it against the
 * library's XXH3_64bits for every length). */
SHMREG__INLINE uint64_t
shmreg__hash_8to16(const void *key, size_t klen)
{
	const unsigned char *p = (const unsigned char *)key;
	uint64_t lo, hi, acc;
	shmreg__u128 m;

	if (klen == 8) {
		uint32_t w0, w1;

		memcpy(&w0, p, 4);
		memcpy(&w1, p + 4, 4);
		acc = w1 + ((uint64_t)w0 << 32);
		acc ^= UINT64_C(0xc73ab174c5ecd5a2); /* secret[8..24) folded */
		acc ^= ((acc << 49) | (acc >> 15)) ^ ((acc << 24) | (acc >> 40));
		acc *= UINT64_C(0x9fb21c651e98df25);
		acc ^= (acc >> 35) + klen;
		acc *= UINT64_C(0x9fb21c651e98df25);
		return acc ^ (acc >> 28);
	}
	memcpy(&lo, p, 8);
	memcpy(&hi, p + klen - 8, 8);
	lo ^= UINT64_C(0x6782737bea4239b9); /* secret[24..40) folded */
	hi ^= UINT64_C(0xaf56bc3b0996523a); /* secret[40..56) folded */
	m = (shmreg__u128)lo * hi;
	acc = klen + __builtin_bswap64(lo) + hi +
	      ((uint64_t)m ^ (uint64_t)(m >> 64));
	acc ^= acc >> 37;
	acc *= UINT64_C(0x165667919e3779f9);
	return acc ^ (acc >> 32);
}

/* A key of @klen (8..16, a constant) bytes at @p as one vector: its first
 * and its last eight bytes (overlapping, or one word for 8, zero above). */
SHMREG__INLINE __m128i
shmreg__key_vec(const unsigned char *p, size_t klen)
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

/* ---- the short get ---- */

/* Store @n (< 64) bytes of the four value registers to @buf and return
 * @vlen: a copy through the stack. */
static __inline__ ssize_t
shmreg__store_partial(void *buf, size_t n, uint32_t vlen, __m128i v0,
		      __m128i v1, __m128i v2, __m128i v3)
{
	unsigned char tmp[SHMREG__SHORT_VALUE];

	_mm_storeu_si128((__m128i *)(void *)tmp, v0);
	_mm_storeu_si128((__m128i *)(void *)(tmp + 16), v1);
	_mm_storeu_si128((__m128i *)(void *)(tmp + 32), v2);
	_mm_storeu_si128((__m128i *)(void *)(tmp + 48), v3);
	memcpy(buf, tmp, n);
	return (ssize_t)vlen;
}

/* How the short get stores a value shorter than 64 bytes (or into a
 * smaller buffer).  Inlined into a program, the copy above; the library's
 * shmreg_get must make no call it returns from, so it reaches the copy
 * through a function of its own by a tail call (reader/get.c). */
#ifdef SHMREG__LIBRARY
ssize_t shmreg__short_store(void *buf, size_t n, uint32_t vlen, __m128i v0,
			    __m128i v1, __m128i v2, __m128i v3);
#define SHMREG__SHORT_STORE shmreg__short_store
#else
#define SHMREG__SHORT_STORE shmreg__store_partial
#endif

/*
 * Walk at most SHMREG__PROBE slots from @hash's home in the index at
 * @index (slot numbers: @hash >> @shift).  Every load of a slot is made
 * without a branch on its bytes (the words, the key as one vector, 64
 * value bytes in four vector registers), all the tests fold into one word,
 * and the one decision is taken after the seqcount check; only a validated
 * hit stores to @buf.  Returns the value length of a hit (its min(vlen,
 * @cap) bytes stored), or -1: not here in this shape (absent, another
 * kind, an expiry, a longer value, an odd or torn slot, further than
 * SHMREG__PROBE), for the library to decide.
 */
SHMREG__INLINE ssize_t
shmreg__short_lookup(const unsigned char *index, unsigned shift,
		     const void *key, size_t klen, uint64_t hash, void *buf,
		     size_t cap)
{
	uint64_t mask = UINT64_MAX >> shift;
	uint64_t i = hash >> shift;
	__m128i k = shmreg__key_vec((const unsigned char *)key, klen);
	uint32_t tag = (uint32_t)hash;
	/* word 1's {klen, kind} of the entry wanted */
	uint64_t want = klen | ((uint64_t)SHMREG__KIND_INLINE << 16);
	unsigned d;

	for (d = 0; d < SHMREG__PROBE; d++, i = (i + 1) & mask) {
		const unsigned char *s = index + i * (uint64_t)SHMREG__SLOT_SIZE;
		const unsigned char *vp = s + SHMREG__SLOT_DATA + klen;
		uint32_t t;
		uint32_t s0 = shmreg__seq_begin_tag(s, &t);
		uint64_t w1 = __atomic_load_n((const uint64_t *)(const void *)
					      (s + SHMREG__SLOT_W1),
					      __ATOMIC_RELAXED);
		uint64_t expiry = __atomic_load_n(
			(const uint64_t *)(const void *)(s + SHMREG__SLOT_EXPIRY),
			__ATOMIC_RELAXED);
		__m128i skey = shmreg__key_vec(s + SHMREG__SLOT_DATA, klen);
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
				((vlen + SHMREG__SHORT_VALUE - 1) >> 7);

		if (shmreg__seq_retry(s, s0))
			return -1;
		if (diff == 0) {
			if (__builtin_expect(vlen == SHMREG__SHORT_VALUE &&
						     cap >= SHMREG__SHORT_VALUE,
					     1)) {
				unsigned char *o = (unsigned char *)buf;

				_mm_storeu_si128((__m128i *)(void *)o, v0);
				_mm_storeu_si128((__m128i *)(void *)(o + 16), v1);
				_mm_storeu_si128((__m128i *)(void *)(o + 32), v2);
				_mm_storeu_si128((__m128i *)(void *)(o + 48), v3);
				return SHMREG__SHORT_VALUE;
			}
			{
				ssize_t n = SHMREG__SHORT_STORE(
					buf, vlen < cap ? vlen : cap, vlen,
					v0, v1, v2, v3);

				if (n < 0)
					__builtin_unreachable(); /* vlen */
				return n;
			}
		}
		if ((uint16_t)w1 == 0)
			return -1; /* absent: the library confirms it */
	}
	return -1;
}

/*
 * The short get on @r's current mapping: the mapping (acquire: pairs with
 * the release store by which the library's reader_follow() publishes a
 * followed segment's mapping, so its fields are seen complete), the
 * segment's state (a segment being replaced, or a replaced one, whose
 * pages read as zeros, is left to the library) and the walk.  Returns the
 * value length of a hit, or -1.
 */
SHMREG__INLINE ssize_t
shmreg__short_get(shmreg_t *r, const void *key, size_t klen, uint64_t hash,
		  void *buf, size_t cap)
{
	const unsigned char *m = (const unsigned char *)__atomic_load_n(
		(void *const *)(void *)r, __ATOMIC_ACQUIRE);
	const unsigned char *base = *(const unsigned char *const *)
		(const void *)m;
	unsigned shift = *(const unsigned *)(const void *)
		(m + SHMREG__MAP_SHIFT);
	uint32_t st = __atomic_load_n((const uint32_t *)(const void *)
				      (base + SHMREG__HDR_STATE),
				      __ATOMIC_ACQUIRE);

	if (st != SHMREG__STATE_OPEN && st != SHMREG__STATE_CLOSED)
		return -1;
	return shmreg__short_lookup(base + SHMREG__INDEX_OFF, shift, key, klen,
				    hash, buf, cap);
}

/* The library's full lookup, for what a short get did not answer (@r,
 * @key and @buf not NULL, @klen 8..16, no info): exported for this
 * header, not API (reader/get.c). */
extern ssize_t shmreg__get_rest(shmreg_t *r, const void *key, size_t klen,
				void *buf, size_t cap);

#ifndef SHMREG__LIBRARY
/* shmreg_get() as the caller sees it: the short get, then the library's
 * full lookup (not shmreg_get, which would walk the same slots again);
 * calls the short get does not take go to the library's shmreg_get.
 * (shmreg_get) in the body is the library's function: a function-like
 * macro is not expanded without its parenthesis. */
SHMREG__INLINE ssize_t
shmreg__get_inline(shmreg_t *r, const void *key, size_t klen, void *buf,
		   size_t cap, shmreg_info_t *info)
{
	if (__builtin_constant_p(klen) && klen >= 8 &&
	    klen <= SHMREG__SHORT_KEY && r && key && buf && !info) {
		ssize_t n = shmreg__short_get(r, key, klen,
					      shmreg__hash_8to16(key, klen),
					      buf, cap);

		if (__builtin_expect(n >= 0, 1))
			return n;
		return shmreg__get_rest(r, key, klen, buf, cap);
	}
	return (shmreg_get)(r, key, klen, buf, cap, info);
}

/* As C's own headers may do for any function (C11 7.1.4): a call written
 * shmreg_get(...) is the inline one, each argument evaluated once;
 * &shmreg_get, (shmreg_get)(...) and bindings reach the library's. */
#define shmreg_get(r, key, klen, buf, cap, info) \
	shmreg__get_inline(r, key, klen, buf, cap, info)
#endif

#endif /* SHMREG_INLINE_H */
