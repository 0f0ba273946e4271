/* SPDX-License-Identifier: MIT */
/*
 * notify.h - the writer's side of await/watch: wake the readers that wait in
 * the registry's wait file (shmreg.NAME.wait) after a commit.
 *
 * The writer calls these and nothing else; notify.c owns the wait file.
 */
#ifndef WRITER_NOTIFY_H
#define WRITER_NOTIFY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "wait_layout.h"

/* The writer's mapping of the wait file.  Defined here (not in notify.c)
 * so that notify_key(), on every commit, is inlined. */
struct notify {
	bool asym;                     /* registered for membarrier: commits
	                                * skip the store-load fence (see
	                                * shm/membarrier.h) */
	uint8_t *base;                 /* SHM_WAIT_FILE_SIZE bytes, shared rw */
	struct shm_wait_hdr *hdr;
	struct shm_wait_slot *slots;   /* SHM_WAIT_SLOTS */
};

/* Bump slot @s's word and wake its sleepers (notify.c). */
void notify_wake(struct shm_wait_slot *s, bool force);

/* Create or open the wait file beside @segment_path (segment_path + ".wait")
 * with file mode @mode.  Returns 0 or -errno. */
int notify_open(struct notify **out, const char *segment_path, mode_t mode);

/* The wait slot of a key with XXH3-64 @hash in @n (non-NULL). */
static inline struct shm_wait_slot *notify_slot(const struct notify *n,
						uint64_t hash)
{
	return &n->slots[shm_wait_slot_of(hash)];
}

/* After a committed put or delete of the key whose wait slot is @s
 * (notify_slot(), which the common put computes ahead of its commit; its
 * revision already stored): wake that key's waiters, if any.  No system
 * call when nobody waits.  The lost-wake-up argument is at the top of
 * notify.c. */
static inline void notify_key_at(struct notify *n, struct shm_wait_slot *s)
{
	/* Fw of the argument above: orders the commit's stores (the caller
	 * stored the revision with release before calling) before the loads
	 * of the waiter counts.  Registered for membarrier, only a compiler
	 * barrier (Lw in shm/membarrier.h): the membarrier call (Hr) a
	 * waiter makes before it re-checks (reader/waitfile.c) supplies the
	 * CPU barrier.
	 * Otherwise a seq_cst fence, pairing with the waiter's seq_cst fence
	 * Fr in wait_until() there. */
	if (n->asym)
		atomic_signal_fence(memory_order_seq_cst);
	else
		atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&s->waiters, memory_order_relaxed))
		notify_wake(s, false);
	if (atomic_load_explicit(&n->hdr->global.waiters, memory_order_relaxed))
		notify_wake(&n->hdr->global, false);
}

/* The same for a key with XXH3-64 @hash; @n NULL: nothing to wake. */
static inline void notify_key(struct notify *n, uint64_t hash)
{
	if (n)
		notify_key_at(n, notify_slot(n, hash));
}

/* After the segment was closed or retired (handoff): wake every waiter so it
 * re-checks the registry state. */
void notify_all(struct notify *n);

/* Wake everyone (notify_all) and release; NULL allowed. */
void notify_close(struct notify *n);

#endif /* WRITER_NOTIFY_H */
