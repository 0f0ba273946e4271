/* SPDX-License-Identifier: MIT */
/*
 * seqcount.h - the seqcount primitives, and the only place they live.
 *
 * The protocol is the kernel's (include/linux/seqlock.h) in C11 atomics:
 *
 *   writer                               reader
 *   ------                               ------
 *   store(seq, s+1, relaxed)             s0 = load(seq, acquire)    (A)
 *   fence(release)               (W1)    if (s0 odd) retry
 *   data stores, relaxed atomics         data loads, relaxed atomics
 *   store(seq, s+2, release)     (W2)    fence(acquire)             (R1)
 *                                        s1 = load(seq, relaxed)
 *                                        if (s1 != s0) retry
 *
 * Why a reader that passes the check saw no torn data:
 *  - If a data load read a value stored after W1 (a write section the reader
 *    overlapped), then W1 synchronises-with R1 (fence-fence synchronisation
 *    through that data store), so the odd store before W1 happens-before the
 *    reload after R1: the reload sees s+1 or later and s1 != s0.
 *  - If (A) read the even value stored by W2, everything the writer stored
 *    before W2 happens-before every load after (A): no data load can read an
 *    older value than that section's.
 * So when s0 == s1 and s0 is even, every data load read the values of one
 * and the same write section.  The writer holds exactly one seqcount odd at
 * a time per guarded region; there is one writer, so no writer-side lock.
 *
 * Data in a guarded region is never read as a plain (non-atomic) access by
 * a reader except through shm_copy_wide(), whose argument is given there.
 *
 * ThreadSanitizer does not model fences.  Under TSan (SHM_TSAN) the data
 * loads become acquire loads and the reload an acquire load too, which is
 * stronger than needed and which TSan understands; the generated code on
 * x86 is the same (every load is an acquire load there).
 */
#ifndef SHM_SEQCOUNT_H
#define SHM_SEQCOUNT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "shmreg.h" /* SHMREG__TSAN: the one test for ThreadSanitizer */

#ifdef SHMREG__TSAN
#define SHM_TSAN 1
#else
#define SHM_TSAN 0
#endif

/*
 * Fences and their ThreadSanitizer stand-ins, the one switch between the
 * two builds.  Normally: relaxed data accesses ordered by the fences.
 * Under TSan (which does not model atomic_thread_fence) the fences vanish
 * and the accesses they order carry the ordering themselves: data loads and
 * re-checks become acquire loads, data stores release stores.  That orders
 * the same pairs of accesses (an acquire load keeps every later access
 * after it; a release store keeps every earlier one before it), so the
 * argument above holds unchanged, in terms TSan understands.
 */
#if SHM_TSAN
#define SHM_DATA_LOAD_ORDER  memory_order_acquire
#define SHM_DATA_STORE_ORDER memory_order_release
#define SHM_RECHECK_ORDER    memory_order_acquire
#define shm_fence_acquire()  ((void)0)
#define shm_fence_release()  ((void)0)
#else
#define SHM_DATA_LOAD_ORDER  memory_order_relaxed
#define SHM_DATA_STORE_ORDER memory_order_relaxed
#define SHM_RECHECK_ORDER    memory_order_relaxed
#define shm_fence_acquire()  atomic_thread_fence(memory_order_acquire)
#define shm_fence_release()  atomic_thread_fence(memory_order_release)
#endif

static inline void shm_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

/* ---- reader side ---- */

/* Returns the sequence to pass to seq_read_retry().  An odd value means a
 * write section was open when it was loaded: whatever the caller then reads
 * may be torn.  The caller may still read (walking on is often simpler than
 * branching, and reads of the mapping are always safe), but must not use
 * what it read: seq_read_retry() returns true for an odd start, so the copy
 * is discarded there.  Pairs with the release store in seq_write_end(). */
static inline uint32_t seq_read_begin(const _Atomic uint32_t *seq)
{
	return atomic_load_explicit(seq, memory_order_acquire);
}

/* True when the section read since seq_read_begin() returned @start may be
 * torn (or @start was odd): the caller discards its copy and retries.  One
 * test, not two: the reload is made even for an odd start (harmless, the
 * mapping is always readable), and a loop of gets has one branch fewer
 * that waits on the slot's bytes. */
static inline bool seq_read_retry(const _Atomic uint32_t *seq, uint32_t start)
{
	/* pairs with the release fence in seq_write_begin(): see above */
	shm_fence_acquire();
	return ((start & 1u) |
		(atomic_load_explicit(seq, SHM_RECHECK_ORDER) ^ start)) != 0;
}

/* ---- writer side (one writer per segment) ---- */

static inline void seq_write_begin(_Atomic uint32_t *seq)
{
	uint32_t s = atomic_load_explicit(seq, memory_order_relaxed);

	/* s + 1 for the even s of every section this writer closed; a count
	 * found odd (bytes damaged in a segment adopted in place, which is
	 * not scanned: writer/adopt.c) stays odd here, so the section ends
	 * even and the slot is readable again, instead of inverted for good */
	atomic_store_explicit(seq, s | 1u, memory_order_relaxed);
	/* orders the odd store before the data stores that follow; pairs
	 * with the acquire fence in seq_read_retry() */
	shm_fence_release();
}

static inline void seq_write_end(_Atomic uint32_t *seq)
{
	uint32_t s = atomic_load_explicit(seq, memory_order_relaxed);

	/* publishes the data stores; pairs with the acquire load in
	 * seq_read_begin() */
	atomic_store_explicit(seq, s + 1, memory_order_release);
}

/*
 * ---- a revision that doubles as a record's seqcount ----
 *
 * A change-ring record (writer/ring.c, shm/ring_read.c) carries no seqcount
 * of its own: its rev field is one.  The writer stores 0 there while it
 * rewrites the record and the record's revision R once it is complete, so 0
 * plays the part of the odd value and R of the even one, and a reader that
 * wants record R checks rev == R before and after its loads.  The argument
 * at the top of this file holds with "s+1" read as 0 and "s+2" as R: a
 * reader whose loads saw any store of a rewrite sees rev != R on the
 * re-check, and one whose first load saw R sees every field of record R.
 * Unlike seq_read_begin(), the reader knows which value to expect, so a
 * different one is decided on at once (older: not written yet; newer:
 * overwritten) without reading the fields.
 */

static inline void seq_rev_write_begin(_Atomic uint64_t *rev)
{
	atomic_store_explicit(rev, 0, memory_order_relaxed);
	/* orders the 0 before the field stores that follow; pairs with the
	 * acquire fence in seq_rev_read_check() */
	shm_fence_release();
}

static inline void seq_rev_write_end(_Atomic uint64_t *rev, uint64_t r)
{
	/* publishes the fields; pairs with the acquire load in
	 * seq_rev_read_begin() */
	atomic_store_explicit(rev, r, memory_order_release);
}

/* The record's rev: the caller reads the fields only when it is the
 * revision it wants. */
static inline uint64_t seq_rev_read_begin(const _Atomic uint64_t *rev)
{
	/* pairs with the release store in seq_rev_write_end() */
	return atomic_load_explicit(rev, memory_order_acquire);
}

/* True when the record still holds revision @want after the caller's field
 * loads, which are then those of record @want; false: discard them (the
 * record is being, or has been, overwritten). */
static inline bool seq_rev_read_check(const _Atomic uint64_t *rev,
				      uint64_t want)
{
	/* pairs with the release fence in seq_rev_write_begin() */
	shm_fence_acquire();
	return atomic_load_explicit(rev, SHM_RECHECK_ORDER) == want;
}

/*
 * ---- a reservation mark ahead of reused bytes ----
 *
 * The change ring's key bytes are reused in place, and guarded by a
 * monotonic mark (hdr->ring_key_reserved) instead of a seqcount: before
 * overwriting bytes the writer moves the mark past them, and a reader that
 * copied bytes then loads the mark and finds out whether any of them were
 * reserved for reuse meanwhile.  The same pair of fences as a write
 * section's opening (seq_write_begin, seq_read_retry): if the copy read a
 * byte stored after the writer's fence, the reload sees the new mark.
 */

static inline void seq_reserve_write(_Atomic uint64_t *mark, uint64_t upto)
{
	atomic_store_explicit(mark, upto, memory_order_relaxed);
	/* orders the mark before the byte stores that follow; pairs with the
	 * acquire fence in seq_reserve_read() */
	shm_fence_release();
}

/* The mark as of after the caller's preceding copy: every reservation
 * made before a byte that copy read is included. */
static inline uint64_t seq_reserve_read(const _Atomic uint64_t *mark)
{
	/* pairs with the release fence in seq_reserve_write() */
	shm_fence_acquire();
	return atomic_load_explicit(mark, SHM_RECHECK_ORDER);
}

/* ---- copying guarded data ----
 * Word copies use relaxed atomics so that a racing read is not a data race;
 * @n is a multiple of 8 and both pointers are 8-byte aligned. */

static inline void shm_load_words(void *dst, const void *src, size_t n)
{
	const _Atomic uint64_t *s = (const _Atomic uint64_t *)src;
	uint64_t *d = (uint64_t *)dst;

	for (size_t i = 0; i < n / 8; i++)
		d[i] = atomic_load_explicit(&s[i], SHM_DATA_LOAD_ORDER);
}

static inline void shm_store_words(void *dst, const void *src, size_t n)
{
	_Atomic uint64_t *d = (_Atomic uint64_t *)dst;
	const uint64_t *s = (const uint64_t *)src;

	for (size_t i = 0; i < n / 8; i++)
		atomic_store_explicit(&d[i], s[i], SHM_DATA_STORE_ORDER);
}

/*
 * Copy @n bytes of a large guarded region (an arena object's key or value)
 * that the writer may be overwriting.  It is the exception to the rule that
 * guarded data is read only by word-sized relaxed atomic loads: a copy wider
 * than a word, inside the object's single seqcount (shm_small_eq() and
 * shm_small_copy() below rest on the same argument).  It is safe because:
 *  - the bytes copied are never interpreted before seq_read_retry() has
 *    validated them, so a torn copy is only ever discarded;
 *  - the source lies in a shared mapping that the compiler cannot see into
 *    and that the reader maps PROT_READ, so memcpy can only load from it;
 *  - bounds were checked against the mapping before the call, so whatever
 *    the racing bytes are, no address outside the object is touched.
 * Under TSan, which would (rightly, by the letter of C11) flag the racing
 * plain loads, it copies byte by byte with relaxed atomic loads instead.
 * The writer side writes objects with shm_store_wide().
 */
static inline void shm_copy_wide(void *dst, const void *src, size_t n)
{
#if SHM_TSAN
	const _Atomic uint8_t *s = (const _Atomic uint8_t *)src;
	uint8_t *d = (uint8_t *)dst;

	for (size_t i = 0; i < n; i++)
		d[i] = atomic_load_explicit(&s[i], SHM_DATA_LOAD_ORDER);
#else
	memcpy(dst, src, n);
#endif
}

/*
 * Compare and copy the short keys and values of inline entries (at most
 * SHM_SLOT_INLINE bytes), under the same argument as shm_copy_wide().  Not
 * memcmp/memcpy: a library call with a variable length costs a get as much
 * as a third of its time in a loop of gets, because its branches and its
 * indirect call keep the CPU from running ahead to the next get's miss.
 * Eight bytes at a time, the last eight overlapping the previous ones
 * (never outside either buffer).
 */
static inline uint64_t shm_word_at(const void *p)
{
	uint64_t w;

	memcpy(&w, p, 8); /* a fixed size: one unaligned load */
	return w;
}

static inline bool shm_small_eq(const void *seg, const void *key, size_t n)
{
#if SHM_TSAN
	uint8_t tmp[n ? n : 1];

	shm_copy_wide(tmp, seg, n);
	return memcmp(tmp, key, n) == 0;
#else
	const uint8_t *a = seg, *b = key;

	if (n < 8)
		return memcmp(a, b, n) == 0;
	if (n <= 16) /* two words, the second overlapping: no loop */
		return ((shm_word_at(a) ^ shm_word_at(b)) |
			(shm_word_at(a + n - 8) ^ shm_word_at(b + n - 8))) == 0;
	for (size_t i = 0; i + 8 < n; i += 8)
		if (shm_word_at(a + i) != shm_word_at(b + i))
			return false;
	return shm_word_at(a + n - 8) == shm_word_at(b + n - 8);
#endif
}

/*
 * Fixed-size block moves (@n a compile-time constant, a multiple of 8):
 * sixteen bytes a step, which gcc emits as vector moves.  Not memcpy or
 * memset of the block: for blocks over 64 bytes gcc picks the microcoded
 * rep movs / rep stos, which stall the front end of a CPU that could be
 * starting the next put's memory access meanwhile (measured: most of a
 * put's time besides its own cache miss).  shm_copy_fixed() is for
 * private memory and for the undo record (which only a writer taking over
 * after a crash reads); shm_store_fixed() stores into a guarded region
 * inside a write section, under the argument of shm_store_wide().
 */
static inline __attribute__((always_inline)) void
shm_copy_fixed(void *dst, const void *src, size_t n)
{
	uint8_t *d = dst;
	const uint8_t *s = src;
	size_t i = 0;

	for (; i + 16 <= n; i += 16)
		memcpy(d + i, s + i, 16);
	if (i < n)
		memcpy(d + i, s + i, 8);
}

static inline void shm_store_wide(void *dst, const void *src, size_t n);

static inline __attribute__((always_inline)) void
shm_store_fixed(void *seg, const void *src, size_t n)
{
#if SHM_TSAN
	shm_store_wide(seg, src, n);
#else
	shm_copy_fixed(seg, src, n);
#endif
}

static const uint8_t shm__zero[128] __attribute__((aligned(16)));

static inline __attribute__((always_inline)) void shm_zero_fixed(void *dst,
								size_t n)
{
	shm_copy_fixed(dst, shm__zero, n);
}

/* shm_zero_fixed() into a guarded region (shm_store_fixed()). */
static inline __attribute__((always_inline)) void
shm_store_zero_fixed(void *seg, size_t n)
{
	shm_store_fixed(seg, shm__zero, n);
}

/* The copy of shm_small_copy() and shm_small_store(), for n >= 8.  gcc -O3
 * unrolls the loop past the bound its callers guarantee (an inline
 * entry's key + value fit the slot's data) and then warns about the paths
 * it made up: the warning is off for this function alone. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpragmas"
#pragma GCC diagnostic ignored "-Wstringop-overflow"
static inline void shm__chunk_copy(uint8_t *d, const uint8_t *s, size_t n)
{
	uint64_t w;

	if (n < 16) {
		w = shm_word_at(s);
		memcpy(d, &w, 8);
		w = shm_word_at(s + n - 8);
		memcpy(d + n - 8, &w, 8);
		return;
	}
	/* Sixteen bytes a step (one vector load and store each), the last
	 * step ending at n and overlapping the one before.  Up to 80 bytes
	 * (an inline entry's data) straight-line, entered by the number of
	 * steps: a 64-byte value is four moves and no loop branch, which in
	 * a loop of gets is a reorder-window slot per byte saved. */
	switch ((n - 1) / 16) {
	case 4:
		memcpy(d + 48, s + 48, 16);
		/* fall through */
	case 3:
		memcpy(d + 32, s + 32, 16);
		/* fall through */
	case 2:
		memcpy(d + 16, s + 16, 16);
		/* fall through */
	case 1:
		memcpy(d, s, 16);
		/* fall through */
	case 0:
		memcpy(d + n - 16, s + n - 16, 16);
		return;
	default:
		for (size_t i = 0; i + 16 < n; i += 16)
			memcpy(d + i, s + i, 16);
		memcpy(d + n - 16, s + n - 16, 16);
	}
}
#pragma GCC diagnostic pop

static inline void shm_small_copy(void *dst, const void *seg, size_t n)
{
#if SHM_TSAN
	shm_copy_wide(dst, seg, n);
#else
	if (n < 8)
		memcpy(dst, seg, n);
	else
		shm__chunk_copy(dst, seg, n);
#endif
}

/* The writer's side of shm_small_copy(): store @n bytes (short: a key or
 * an inline value) into a guarded region inside the caller's write
 * section, under the argument of shm_store_wide(). */
static inline void shm_small_store(void *seg, const void *src, size_t n)
{
#if SHM_TSAN
	shm_store_wide(seg, src, n);
#else
	if (n < 8)
		memcpy(seg, src, n);
	else if (n <= 128)
		shm__chunk_copy(seg, src, n);
	else
		memcpy(seg, src, n);
#endif
}

static inline void shm_store_wide(void *dst, const void *src, size_t n)
{
#if SHM_TSAN
	_Atomic uint8_t *d = (_Atomic uint8_t *)dst;
	const uint8_t *s = (const uint8_t *)src;

	for (size_t i = 0; i < n; i++)
		atomic_store_explicit(&d[i], s[i], SHM_DATA_STORE_ORDER);
#else
	memcpy(dst, src, n);
#endif
}

#endif /* SHM_SEQCOUNT_H */
