/* SPDX-License-Identifier: MIT */
/*
 * membarrier.h - the asymmetric fence of the wake-up protocol: a writer
 * that commits without a store-load fence, and waiters that pay for one on
 * its behalf, with membarrier(2), when they go to sleep.
 *
 * Why.  The lost-wake-up argument (writer/notify.c) is Dekker's pattern:
 * the writer stores the revision then loads the waiter count, a waiter
 * stores the count then loads the revision, and one of the two must see
 * the other's store.  With a seq_cst fence on both sides that costs the
 * writer an mfence per commit, which also stops the CPU from starting the
 * next put's memory access before this one's stores drained: measured, the
 * largest single cost of a put after its cache miss.  Waiting is the rare
 * side, so it takes the heavy half:
 *
 *   writer (every commit)            waiter (before it sleeps)
 *   store revision (release)         waiters += 1 (seq_cst RMW)
 *   compiler barrier          (Lw)   membarrier(GLOBAL_EXPEDITED)   (Hr)
 *   load waiters                     re-check the segment
 *
 * membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) returns only after every
 * running thread of every process registered with
 * MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED has executed a full memory
 * barrier at some point P during the call (a thread not running passes one
 * when it is switched out).  If the writer's P comes before its load of
 * the count, that load follows the waiter's increment (which came before
 * the call): the writer sees the waiter and wakes it.  If P comes after
 * the writer's store of the revision, the store is visible when the call
 * returns: the waiter's re-check sees the commit and does not sleep.  P
 * cannot fall between the two in a way that defeats both, since the full
 * barrier at P orders the store before the load.  So Lw + Hr do what the
 * two seq_cst fences did.
 *
 * Fallbacks.  A writer whose registration fails (an old kernel, a seccomp
 * filter) keeps the seq_cst fence on its side (notify_key), which pairs
 * with the seq_cst fence the waiter also keeps.  A waiter whose call fails
 * cannot know that no writer relies on it, so it sleeps in short slices
 * (reader/waitfile.c): a wake-up it might miss costs it one slice.
 */
#ifndef SHM_MEMBARRIER_H
#define SHM_MEMBARRIER_H

#include <stdbool.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Writer, once per process: may commits skip the store-load fence? */
static inline bool shm_membarrier_register(void)
{
	return syscall(SYS_membarrier,
		       MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0) == 0;
}

/* Waiter, after registering and before its re-check (Hr above).  Returns
 * false when the kernel refused: the caller must not trust that a commit
 * racing with its re-check wakes it. */
static inline bool shm_membarrier_heavy(void)
{
	return syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0,
		       0) == 0;
}

#endif /* SHM_MEMBARRIER_H */
