/* SPDX-License-Identifier: MIT */
/*
 * wait_layout.h - the wait file (shmreg.NAME.wait): futex words and waiter
 * counts for await and watch, and nothing else.
 *
 * The wait file lies beside the segment (segment path + ".wait").  Unlike
 * the segment, readers map it read-write: a reader about to block adds
 * itself to a slot's waiter count, and the writer, after a commit, wakes a
 * slot only when that count says someone waits there, so a put that nobody
 * waits for costs no system call.
 *
 *   +---------------------+ 0
 *   | identity line       |  magic, version, slot_bits, slots_off, size
 *   | global slot line    |  change-stream watchers; bumped on every commit
 *   |                     |  that finds watchers, and on close/handoff
 *   +---------------------+ SHM_WAIT_HDR_SIZE (= slots_off)
 *   | key slots           |  SHM_WAIT_SLOTS x {word, waiters}: slot i serves
 *   |                     |  every key whose XXH3-64 has top bits i
 *   +---------------------+ SHM_WAIT_FILE_SIZE
 *
 * Everything here is a hint.  Any process that can write the file (the
 * readers) may scribble on it, so neither side ever uses a value read from
 * it as an index, an offset or a length: the geometry is the compile-time
 * constants below, which a reader only compares the header with.  A wrong
 * count or word costs a spurious wake-up (an extra system call, a re-check)
 * or a missed one, which a waiter recovers from at the end of its current
 * time slice (reader/waitfile.c): never wrong data, never a crash, never a
 * wait without bound.  Correct data always comes from the segment.
 *
 * The file is created whole by the writer (written under a temporary name,
 * then linked into place) and never shrinks; it outlives writers, so a
 * waiter registered before a writer restart or a segment handoff is still
 * registered on the same word afterwards.
 *
 * The store/fence/load protocol on these words and why it loses no wake-up
 * is written out in reader/waitfile.c and docs/format.md ("Wait file and
 * the lost-wake-up argument").
 */
#ifndef SHM_WAIT_LAYOUT_H
#define SHM_WAIT_LAYOUT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free");

/* "shmregw^" as little-endian bytes; byte-swapped on the other order */
#define SHM_WAIT_MAGIC     UINT64_C(0x5e77676572686d73)
#define SHM_WAIT_VERSION   1u
#define SHM_WAIT_HDR_SIZE  4096u
/* 16,384 key slots of 8 bytes (128 KiB): with a million keys about 60 share
 * a slot, so a waiter sees a spurious wake-up only when one of those few
 * changes; and tmpfs only backs the pages a waiter or the writer touched. */
#define SHM_WAIT_SLOT_BITS 14u
#define SHM_WAIT_SLOTS     (1u << SHM_WAIT_SLOT_BITS)
#define SHM_WAIT_SLOT_SIZE 8u
#define SHM_WAIT_FILE_SIZE \
	(SHM_WAIT_HDR_SIZE + SHM_WAIT_SLOTS * SHM_WAIT_SLOT_SIZE)
#define SHM_WAIT_LINE      64u
/* Bit 0 of a slot word: "a waiter is asleep (or about to be) on this
 * word".  It lets the writer skip FUTEX_WAKE after a commit when the
 * slot's waiters are all awake (re-checking after an earlier wake-up):
 * under a stream of commits, one system call per sleep, not per commit. */
#define SHM_WAIT_SLEEPING  1u

/*
 * One waiting place: a futex word and the number of processes (threads)
 * that sleep, or are about to sleep, on it.
 */
struct shm_wait_slot {
	_Atomic uint32_t word;    /* futex word: a sequence in bits 31..1 and
	                           * SHM_WAIT_SLEEPING in bit 0.  The writer,
	                           * after a commit that concerns this slot and
	                           * only when waiters != 0, adds 2 and clears
	                           * bit 0 in one RMW (release), and calls
	                           * FUTEX_WAKE only if bit 0 was set.  A
	                           * waiter sets bit 0 (CAS from the value it
	                           * re-checked under) right before FUTEX_WAIT.
	                           * Wraps; only "changed since I looked"
	                           * matters, never its value. */
	_Atomic uint32_t waiters; /* written by readers only: +1 before a waiter
	                           * re-checks and sleeps, -1 when it returns.
	                           * A hint, compared with 0 and nothing else: a
	                           * waiter that died (or a fork child of one)
	                           * never takes itself off, which costs the
	                           * writer one spare FUTEX_WAKE per commit to
	                           * this slot, never a lost wake-up. */
};

/* The header page.  The identity line is written by the writer when it
 * creates the file, magic last, and never again; readers compare it with
 * the constants above when they map the file and never reread it. */
struct shm_wait_hdr {
	/* identity line */
	_Atomic uint64_t magic;   /* SHM_WAIT_MAGIC, stored (release) after
	                           * the rest of the line */
	uint32_t version;         /* SHM_WAIT_VERSION */
	uint32_t slot_bits;       /* SHM_WAIT_SLOT_BITS */
	uint64_t slots_off;       /* SHM_WAIT_HDR_SIZE: first key slot */
	uint64_t file_size;       /* SHM_WAIT_FILE_SIZE; never shrinks */
	int64_t  created_ns;      /* CLOCK_REALTIME at creation (info) */
	uint8_t  pad0[SHM_WAIT_LINE - 40];

	/* global slot line: change-stream watchers (shmreg_watch_next) wait
	 * here.  The writer bumps it after every commit while its waiters
	 * count is non-zero, and on close and handoff (with every key slot).
	 * Alone on its line: watchers' count updates must not share a line
	 * with the key slots the writer reads on every commit. */
	struct shm_wait_slot global;
	uint8_t  pad1[SHM_WAIT_LINE - SHM_WAIT_SLOT_SIZE];
};

/* The wait slot of a key with XXH3-64 @hash: its top SHM_WAIT_SLOT_BITS
 * bits.  The index places keys by the high bits of the same hash, so one
 * wait slot serves a run of neighbouring index slots (a "slot group"). */
static inline uint32_t shm_wait_slot_of(uint64_t hash)
{
	return (uint32_t)(hash >> (64 - SHM_WAIT_SLOT_BITS));
}

/* The key slots, given the base of a mapping of SHM_WAIT_FILE_SIZE bytes. */
static inline struct shm_wait_slot *shm_wait_slots(void *base)
{
	return (struct shm_wait_slot *)((uint8_t *)base + SHM_WAIT_HDR_SIZE);
}

_Static_assert(sizeof(struct shm_wait_slot) == SHM_WAIT_SLOT_SIZE,
	       "wait slot is 8 bytes");
_Static_assert(offsetof(struct shm_wait_slot, waiters) == 4, "wait slot");
_Static_assert(offsetof(struct shm_wait_hdr, created_ns) == 32,
	       "identity line");
_Static_assert(offsetof(struct shm_wait_hdr, global) == SHM_WAIT_LINE,
	       "global slot line");
_Static_assert(sizeof(struct shm_wait_hdr) == 2 * SHM_WAIT_LINE,
	       "header is two lines");
_Static_assert(sizeof(struct shm_wait_hdr) <= SHM_WAIT_HDR_SIZE,
	       "header fits its page");
_Static_assert(SHM_WAIT_FILE_SIZE == 4096u + 131072u, "wait file size");

#endif /* SHM_WAIT_LAYOUT_H */
