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

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "shmreg.h"
#include "geometry.h"
#include "hash.h"
#include "seqcount.h"

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
 * shm_entry_read() of the copy *@s of the slot at @slot, taken at seqcount
 * @s0 (even), but -EPROTO where it says -EAGAIN and the slot's seqcount is
 * still @s0.  The writer writes an object before a slot refers to it and
 * frees it only after that slot is rewritten, which moves its seqcount: an
 * object that does not read whole under an unchanged slot is corrupt (as in
 * a segment adopted in place, which is not scanned: writer/adopt.c), and
 * -EAGAIN would have the caller retry it until its budget runs out.
 */
int shm_entry_read_stable(const struct shm_map *m,
			  const struct shm_slot *slot, uint32_t s0,
			  const struct shm_slot *s, void *key, void *buf,
			  size_t cap);

/*
 * Find @key (hash @hash).  On success returns the value length (which may
 * exceed @cap; min(len, cap) bytes are copied into @buf), stores the slot
 * copy's header words in *@slot (may be NULL).  Returns -ENOENT, -EAGAIN
 * (retry budget spent: the entry kept changing, or a slot stayed odd, as
 * when the writer died mid-change) or -EPROTO.  Expired entries are not
 * filtered here (see shm_expired).
 */
ssize_t shm_lookup(const struct shm_map *m, const void *key, size_t klen,
		   uint64_t hash, void *buf, size_t cap, struct shm_slot *slot);

/* Fill a public info struct from a validated slot copy. */
void shm_fill_info(shmreg_info_t *info, const struct shm_slot *s);

/* How many slots the inlined fast path walks before it hands over to the
 * full lookup: a hit at a load of 3/4 is within 4 slots of home 99 % of the
 * time, so this bounds the inlined code, not the answers. */
#define SHM_FAST_PROBE 8u

/*
 * The common case, inlined into shmreg_get: the key is present, inline,
 * does not expire, and nothing is being written where the walk goes.  Walks
 * the probe sequence exactly as probe() in lookup.c does (same seqcount
 * discipline), for at most SHM_FAST_PROBE slots, with no call and no copy
 * through a buffer, and reads nothing but the slots themselves (geometry
 * from the handle's validated copy, no header field): in a loop of gets the
 * CPU then keeps several gets' misses in flight.  Returns the value length,
 * or -EAGAIN for "not the common case" (absent, extern, odd, expiring, or
 * further than SHM_FAST_PROBE): the caller then runs the full shm_lookup(),
 * which also makes an absent answer safe against moving deletes.
 *
 * A slot that does not match is skipped without validating its seqcount: a
 * torn read of it can only make the walk go on or hand over to the full
 * lookup, and only a validated hit is ever returned.
 */
static inline ssize_t shm_lookup_fast(const struct shm_map *m, const void *key,
				      size_t klen, uint64_t hash, void *buf,
				      size_t cap, shmreg_info_t *info)
{
	const uint8_t *index = m->base + m->g.index_off;
	uint64_t mask = m->g.index_cap - 1;
	uint64_t i = shm_home(&m->g, hash);
	uint32_t tag = shm_tag(hash);

	/* No prefetch of the home slot's second line (the value): measured
	 * against the bare seqcount table in the same run it bought nothing,
	 * and in a loop of gets every instruction of a get is a slot of the
	 * reorder window that overlaps consecutive gets' misses. */
	for (unsigned d = 0; d < SHM_FAST_PROBE; d++, i = (i + 1) & mask) {
		const struct shm_slot *s = (const struct shm_slot *)
			(index + i * (uint64_t)SHM_SLOT_SIZE);
		const _Atomic uint64_t *word = (const _Atomic uint64_t *)s;
		uint32_t s0 = seq_read_begin(&s->seq);
		uint32_t t = atomic_load_explicit(
			(const _Atomic uint32_t *)&s->tag, SHM_DATA_LOAD_ORDER);
		/* word 1 {klen, kind, flags, vlen} and word 4 (expiry)
		 * decide, in registers; the revisions and the owner are read
		 * only when asked for */
		uint64_t w1 = atomic_load_explicit(&word[1], SHM_DATA_LOAD_ORDER);
		uint64_t exp = atomic_load_explicit(&word[4],
						    SHM_DATA_LOAD_ORDER);
		size_t sklen = (uint16_t)w1, vlen = (uint32_t)(w1 >> 32), n;
		uint64_t mod = 0, create = 0, w5 = 0;
		bool same;

		if (sklen == 0)
			return -EAGAIN; /* absent: the full path confirms it */
		if (t != tag || sklen != klen)
			continue; /* another key (a torn read of one, at worst) */
		if ((uint8_t)(w1 >> 16) != SHM_KIND_INLINE ||
		    klen + vlen > SHM_SLOT_INLINE || exp != 0)
			return -EAGAIN;
		if (info) {
			mod = atomic_load_explicit(&word[2],
						   SHM_DATA_LOAD_ORDER);
			create = atomic_load_explicit(&word[3],
						      SHM_DATA_LOAD_ORDER);
			w5 = atomic_load_explicit(&word[5],
						  SHM_DATA_LOAD_ORDER);
		}
		n = vlen < cap ? vlen : cap;
		same = shm_small_eq(s->data, key, klen);
		if (same && n)
			shm_small_copy(buf, s->data + klen, n);
		if (seq_read_retry(&s->seq, s0))
			return -EAGAIN;
		if (!same)
			continue;
		if (info) {
			info->mod_rev = mod;
			info->create_rev = create;
			info->expires_at_ns = 0;
			info->owner_pid = (int32_t)(uint32_t)w5;
			info->flags = (uint8_t)(w1 >> 24);
			info->vlen = (uint32_t)vlen;
		}
		return (ssize_t)vlen;
	}
	return -EAGAIN;
}

/* Is CLOCK_REALTIME now at or past @deadline_ns? */
bool shm_deadline_passed(int64_t deadline_ns);

/* Has this entry expired at CLOCK_REALTIME now?  Inline: most entries never
 * expire, and those cost no call and no clock read. */
static inline bool shm_expired(const struct shm_slot *s)
{
	return s->expires_at_ns != 0 && shm_deadline_passed(s->expires_at_ns);
}


/* Back off between retries: spin first, then yield the CPU (a writer that
 * was preempted mid-section on this CPU then gets to finish). */
void shm_backoff(unsigned attempt);

#endif /* SHM_LOOKUP_H */
