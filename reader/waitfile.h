/* SPDX-License-Identifier: MIT */
/*
 * waitfile.h - the reader's side of the wait file (shmreg.NAME.wait): map
 * it, register as a waiter, and sleep in bounded slices until a condition
 * holds.  Shared by await.c (shmreg_await, shmreg_watch_key) and watch.c
 * (the change stream).
 */
#ifndef READER_WAITFILE_H
#define READER_WAITFILE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "internal.h"

/* A waiter checks that the writer is still alive at least this often
 * (after every slice of this length without a result), so a writer killed
 * without closing is noticed within 100 ms plus scheduling delay. */
#define WAIT_SLICE_NS  100000000LL

/* A waiter that cannot register in the wait file (it may not write it, or
 * there is none) is never woken by the writer on purpose: it re-checks on
 * its own after at most this long.  See docs/await.md, "Polling". */
#define WAIT_POLL_NS   10000000LL

/*
 * The condition a wait is for.  Returns true when the wait is over, with
 * the value to return in *@res (a length, 0, or -errno); false to keep
 * waiting.  Called once before the waiter touches the wait file (the fast
 * path: the condition may already hold), then after every wake-up, always
 * after the waiter registered.  It must read the segment only (shmreg_get,
 * the ring), never the wait file.
 */
typedef bool (*wait_check_fn)(shmreg_t *r, void *arg, ssize_t *res);

/*
 * Wait until @check says done, for at most @timeout_ns (< 0: no limit,
 * 0: check once, never block), on the wait slot of @key (@klen bytes), or
 * on the global slot when @key is NULL.  Besides @check's own results it
 * returns
 *   -ETIMEDOUT   the time ran out
 *   -ESHUTDOWN   the writer closed the registry (or the segment was retired
 *                and the handle may not follow: SHMREG_OPEN_NOFOLLOW)
 *   -EOWNERDEAD  the writer died (checked every WAIT_SLICE_NS)
 * A retired segment is followed (reader_map) and the wait goes on.  Signals
 * do not end the wait: it resumes with the time that remains.  Never
 * returns -EAGAIN (a check that cannot decide yet just waits on).  The key
 * is hashed only if the first check does not decide: a present key costs
 * what shmreg_get costs.
 */
ssize_t wait_until(shmreg_t *r, const void *key, size_t klen,
		   int64_t timeout_ns, wait_check_fn check, void *arg);

/* Waiters registered in @r's wait file now (key slots and the change
 * stream's): a hint, as the counts are (shm/wait_layout.h); 0 when there is
 * no wait file this process can map.  Reads only pages the writer or a
 * waiter ever touched (mincore), so it never backs new tmpfs pages. */
uint64_t waitfile_count_waiters(shmreg_t *r);

/* ---- test hooks: only in the test library (SHMREG_TEST_HOOKS) ---- */

/* Number of times a futex wait of this process returned because its word
 * had changed (woken, or the word moved before it slept): each is one
 * wake-up caused by the writer (or by a scribbling process).  Timeouts and
 * signals are not counted.  Costs one relaxed atomic add per wake-up. */
uint64_t waitfile_debug_wakeups(void);

/* Set the liveness slice of this process's registered waits (ns; <= 0:
 * back to WAIT_SLICE_NS).  A test that sets it far beyond its await
 * timeouts turns any lost wake-up into a -ETIMEDOUT: with the default, the
 * slice's re-check would quietly rescue it within 100 ms. */
void waitfile_debug_set_slice(int64_t ns);

/* How a wait on @r would wait now: 2 registered in the wait file, 1 mapped
 * read-only (polling, WAIT_POLL_NS), 0 no usable wait file (polling). */
int waitfile_debug_mode(shmreg_t *r);

#endif /* READER_WAITFILE_H */
