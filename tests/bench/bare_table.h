/* SPDX-License-Identifier: MIT */
/*
 * bare_table.h - the reference that shmreg's get and put are measured
 * against: a seqcount hash table stripped to probe + seq + copy.
 *
 * The same design as a shmreg segment's index (open addressing, linear
 * probing, 128-byte slots holding key and value inline, one seqcount per
 * slot, XXH3-64 of the key, home = the hash's top bits), with everything
 * else left out: no header, no handle, no geometry validation, no retry
 * budget, no expiry, no revision, no change ring, no waiter notification,
 * no crash journal.  What shmreg costs beyond this table is the price of
 * those guarantees, and that price is what the benchmarks report (as the
 * ratio shmreg / bare, measured in the same process, rounds interleaved).
 *
 * The table is a file in the registry's directory (tmpfs), mapped
 * PROT_READ by the readers and read-write by its one writer, exactly as a
 * segment is.  Keys and values together must fit a slot (BARE_INLINE
 * bytes); the benchmarks use 16 B keys and 64 B values.
 *
 * Memory ordering: the kernel's seqcount, as in shm/seqcount.h (writer:
 * seq odd relaxed, release fence, relaxed data stores, seq even release;
 * reader: seq acquire, relaxed data loads, acquire fence, seq reload).
 */
#ifndef BARE_TABLE_H
#define BARE_TABLE_H

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#define BARE_SLOT   128u
#define BARE_INLINE 112u

struct bare_slot {
	_Atomic uint32_t seq;
	uint32_t tag;              /* low 32 bits of the key's hash */
	uint16_t klen;             /* 0: empty */
	uint16_t vlen;
	uint32_t pad;
	uint8_t data[BARE_INLINE]; /* key, then value */
};
_Static_assert(sizeof(struct bare_slot) == BARE_SLOT, "bare slot is 128 B");

struct bare_table {
	struct bare_slot *slots;
	uint64_t mask;             /* slots - 1 (a power of two) */
	unsigned shift;            /* 64 - log2(slots) */
	size_t bytes;
};

static inline uint64_t bare_hash(const void *key, size_t klen)
{
	return XXH3_64bits(key, klen);
}

/* Map @fd (@slots slots) with @prot and fill in *@t. */
static inline int bare_map(struct bare_table *t, int fd, uint64_t slots,
			   int prot, int flags)
{
	void *p;

	t->bytes = slots * BARE_SLOT;
	p = mmap(NULL, t->bytes, prot, MAP_SHARED | flags, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return -errno;
	t->slots = p;
	t->mask = slots - 1;
	t->shift = (unsigned)(64 - __builtin_ctzll(slots));
	return 0;
}

/* Create the table file at @path with @slots slots (a power of two) and
 * map it read-write.  Returns 0 or -errno. */
static inline int bare_create(struct bare_table *t, const char *path,
			      uint64_t slots)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int rc;

	if (fd < 0)
		return -errno;
	rc = posix_fallocate(fd, 0, (off_t)(slots * BARE_SLOT));
	if (rc) {
		close(fd);
		return -rc;
	}
	return bare_map(t, fd, slots, PROT_READ | PROT_WRITE, MAP_POPULATE);
}

/* Map an existing table file read-only, as a reader maps a segment. */
static inline int bare_open_ro(struct bare_table *t, const char *path,
			       uint64_t slots)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	return bare_map(t, fd, slots, PROT_READ, 0);
}

static inline void bare_close(struct bare_table *t)
{
	munmap(t->slots, t->bytes);
}

static inline uint64_t bare_word(const uint8_t *p)
{
	return atomic_load_explicit((const _Atomic uint64_t *)(const void *)p,
				    memory_order_relaxed);
}

/* Look @key up; copy its value (a multiple of 8 bytes, at most @cap) into
 * @buf.  Returns the value length or -ENOENT. */
static inline ssize_t bare_get(const struct bare_table *t, const void *key,
			       size_t klen, void *buf, size_t cap)
{
	uint64_t h = bare_hash(key, klen);
	uint64_t i = h >> t->shift;
	uint32_t tag = (uint32_t)h;

	for (uint64_t d = 0; d <= t->mask; d++, i = (i + 1) & t->mask) {
		const struct bare_slot *s = &t->slots[i];
		uint32_t s0 = atomic_load_explicit(&s->seq,
						   memory_order_acquire);
		uint64_t w1 = bare_word((const uint8_t *)s + 8);
		uint16_t kl = (uint16_t)w1, vl = (uint16_t)(w1 >> 16);
		uint32_t tg = atomic_load_explicit(
			(const _Atomic uint32_t *)&s->tag, memory_order_relaxed);
		bool same = kl == klen && tg == tag;
		size_t n = vl < cap ? vl : cap;

		if (same) {
			for (size_t k = 0; k + 8 <= klen; k += 8)
				same &= bare_word(s->data + k) ==
					*(const uint64_t *)(const void *)
						((const uint8_t *)key + k);
			if (same)
				for (size_t k = 0; k + 8 <= n; k += 8) {
					uint64_t w = bare_word(s->data + klen +
							       k);
					memcpy((uint8_t *)buf + k, &w, 8);
				}
		}
		atomic_thread_fence(memory_order_acquire);
		if ((s0 & 1) ||
		    atomic_load_explicit(&s->seq, memory_order_relaxed) != s0) {
			d--; /* torn: read this slot again */
			continue;
		}
		if (kl == 0)
			return -ENOENT;
		if (same)
			return vl;
	}
	return -ENOENT;
}

/*
 * The same table read by a program that knows its record size at compile
 * time: 16-byte keys and 64-byte values, as in the benchmarks.  Every load
 * of the slot (the words, the key, the whole value into four 16-byte
 * registers) is made without a branch, the key compared in one vector
 * compare, and the decision is one branch after the seqcount check; the
 * value is stored only then.  This is the fastest read of this design we
 * know how to write (62-75 ns a get in a loop over 1 M keys on the
 * benchmark machine, against 120-135 ns for bare_get() above, whose
 * lengths are run-time values like shmreg_get's): the reference the get's
 * target is measured against.  Returns 64 or -ENOENT.
 */
#define BARE_FIXED_KLEN 16u
#define BARE_FIXED_VLEN 64u

static inline void bare_load16(uint8_t out[16], const uint8_t *p)
{
	memcpy(out, p, 16); /* one vector load */
}

static inline ssize_t bare_get_fixed(const struct bare_table *t,
				     const void *key, void *buf)
{
	uint64_t h = bare_hash(key, BARE_FIXED_KLEN);
	uint64_t i = h >> t->shift;
	uint32_t tag = (uint32_t)h;
	uint64_t k0, k1;

	memcpy(&k0, key, 8), memcpy(&k1, (const uint8_t *)key + 8, 8);
	for (uint64_t d = 0; d <= t->mask; d++, i = (i + 1) & t->mask) {
		const struct bare_slot *s = &t->slots[i];
		uint32_t s0 = atomic_load_explicit(&s->seq,
						   memory_order_acquire);
		uint64_t w1 = bare_word((const uint8_t *)s + 8);
		uint32_t tg = atomic_load_explicit(
			(const _Atomic uint32_t *)&s->tag, memory_order_relaxed);
		uint64_t s0w = bare_word(s->data), s1w = bare_word(s->data + 8);
		uint8_t a[16], b[16], c[16], e[16];
		bool same = (tg == tag) & ((uint16_t)w1 == BARE_FIXED_KLEN) &
			    (((s0w ^ k0) | (s1w ^ k1)) == 0);

		bare_load16(a, s->data + 16), bare_load16(b, s->data + 32);
		bare_load16(c, s->data + 48), bare_load16(e, s->data + 64);
		atomic_thread_fence(memory_order_acquire);
		if ((s0 & 1) ||
		    atomic_load_explicit(&s->seq, memory_order_relaxed) != s0) {
			d--; /* torn: read this slot again */
			continue;
		}
		if (same) {
			uint8_t *o = buf;

			memcpy(o, a, 16), memcpy(o + 16, b, 16);
			memcpy(o + 32, c, 16), memcpy(o + 48, e, 16);
			return BARE_FIXED_VLEN;
		}
		if ((uint16_t)w1 == 0)
			return -ENOENT;
	}
	return -ENOENT;
}

/* Insert or replace @key (the table is never full in the benchmarks). */
static inline void bare_put(struct bare_table *t, const void *key,
			    size_t klen, const void *val, size_t vlen)
{
	uint64_t h = bare_hash(key, klen);
	uint64_t i = h >> t->shift;
	struct bare_slot *s;

	for (;; i = (i + 1) & t->mask) {
		s = &t->slots[i];
		if (s->klen == 0 || (s->tag == (uint32_t)h && s->klen == klen &&
				     memcmp(s->data, key, klen) == 0))
			break;
	}
	uint32_t q = atomic_load_explicit(&s->seq, memory_order_relaxed);

	atomic_store_explicit(&s->seq, q + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	s->tag = (uint32_t)h;
	s->klen = (uint16_t)klen;
	s->vlen = (uint16_t)vlen;
	memcpy(s->data, key, klen);
	memcpy(s->data + klen, val, vlen);
	atomic_store_explicit(&s->seq, q + 2, memory_order_release);
}

#endif /* BARE_TABLE_H */
