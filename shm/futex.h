/* SPDX-License-Identifier: MIT */
/*
 * futex.h - futex wait and wake on 32-bit words in a shared file mapping.
 *
 * Every futex word of shmreg lives in the wait file (shm/wait_layout.h),
 * which the writer and the readers map MAP_SHARED from one tmpfs file, so
 * the kernel keys a word by (inode, page offset) and a wake in one process
 * reaches a waiter in another.  Hence never FUTEX_PRIVATE_FLAG: a private
 * futex is keyed by (mm, address) and would never meet the other side.
 *
 * A waiter may wait on a word it maps PROT_READ: FUTEX_WAIT only reads the
 * word, and the kernel resolves a shared file mapping to its page cache
 * page without asking for write access.  (On an anonymous private mapping
 * the same wait would fail, which is why the words are in a file.)
 *
 * Both return 0/a count or -errno, like the rest of shmreg (errno itself is
 * set by syscall(2) as a side effect; nothing here reads it later).
 */
#ifndef SHM_FUTEX_H
#define SHM_FUTEX_H

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/*
 * Sleep while *@word == @expected, for at most @timeout_ns (< 0: no limit).
 * The kernel compares the word and queues the caller atomically with
 * respect to shm_futex_wake() on the same word: a wake that follows a store
 * which changed the word either finds the caller queued or makes the
 * comparison fail.  That, and nothing weaker, is what the lost-wake-up
 * argument in reader/waitfile.c relies on.
 *
 * Returns 0 when woken (or spuriously), -EAGAIN when the word no longer
 * held @expected, -ETIMEDOUT, -EINTR (a signal handler ran), or -EFAULT.
 */
static inline int shm_futex_wait(const _Atomic uint32_t *word,
				 uint32_t expected, int64_t timeout_ns)
{
	struct timespec ts, *tp = NULL;
	long ret;

	if (timeout_ns >= 0) {
		ts.tv_sec = (time_t)(timeout_ns / 1000000000);
		ts.tv_nsec = (long)(timeout_ns % 1000000000);
		tp = &ts;
	}
	/* FUTEX_WAIT's timeout is relative (measured on CLOCK_MONOTONIC) */
	ret = syscall(SYS_futex, (const uint32_t *)word, FUTEX_WAIT, expected,
		      tp, NULL, 0);
	return ret < 0 ? -errno : 0;
}

/*
 * Wake up to @n waiters (INT_MAX: all) sleeping on @word.  Returns the
 * number woken or -errno.  The caller has already changed the word: a wake
 * without a change can be lost by a waiter that has not compared yet.
 */
static inline int shm_futex_wake(_Atomic uint32_t *word, int n)
{
	long ret = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, n, NULL,
			   NULL, 0);

	return ret < 0 ? -errno : (int)ret;
}

#endif /* SHM_FUTEX_H */
