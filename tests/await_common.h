/* SPDX-License-Identifier: MIT */
/*
 * await_common.h - helpers of the await and watch suites: look into the
 * wait file from outside, and know when another process is asleep in a
 * futex wait (so that a test's put really has to wake it).
 *
 * Header-only (static functions): each suite is one .c file plus tc.c.
 */
#ifndef TESTS_AWAIT_COMMON_H
#define TESTS_AWAIT_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/tc.h"
#include "hash.h"
#include "wait_layout.h"

/* The wait slot of @key (as the writer and the waiters compute it). */
static inline uint32_t aw_slot_of(const char *key)
{
	return shm_wait_slot_of(shm_hash(key, strlen(key)));
}

/* Map registry @name's wait file read-only (the test only observes). */
static inline struct shm_wait_hdr *aw_map_waitfile(const char *name)
{
	char path[PATH_MAX];
	void *p;
	int fd;

	snprintf(path, sizeof(path), "%s/shmreg.%s.wait", tc_dir(), name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	TC_CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
	p = mmap(NULL, SHM_WAIT_FILE_SIZE, PROT_READ, MAP_SHARED, fd, 0);
	TC_CHECK(p != MAP_FAILED, "mmap %s: %s", path, strerror(errno));
	close(fd);
	return p;
}

static inline struct shm_wait_slot *aw_slot(struct shm_wait_hdr *h,
					    uint32_t i)
{
	return &shm_wait_slots(h)[i];
}

static inline uint32_t aw_load(_Atomic uint32_t *p)
{
	return atomic_load_explicit(p, memory_order_acquire);
}

/* 1 when process @pid is inside a futex system call now, 0 when not, -1
 * when /proc/PID/syscall cannot tell (not readable here). */
static inline int aw_in_futex(pid_t pid)
{
	char path[64], buf[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/syscall", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	return strtol(buf, NULL, 10) == SYS_futex;
}

/*
 * Skip the test (exit 77) when this kernel does not show what a process is
 * blocked in (/proc/PID/syscall needs CONFIG_HAVE_ARCH_TRACEHOOK): the
 * suites need to know that a waiter sleeps before they wake it, or their
 * wake-up counts would mean nothing.
 */
static inline void aw_require_proc_syscall(void)
{
	if (aw_in_futex(getpid()) < 0) {
		tc_log("SKIP: /proc/PID/syscall is not readable here");
		exit(TC_SKIP);
	}
}

/*
 * Wait (polling /proc, up to @timeout_ms) until process @pid sleeps in a
 * futex call: the only futex call our waiters make is the wait on the slot
 * word, after registering and re-checking.  Fails the test if the process
 * does not get there in time.  Call aw_require_proc_syscall() first.
 */
static inline void aw_wait_asleep(pid_t pid, int timeout_ms)
{
	uint64_t end = tc_now_ns() + (uint64_t)timeout_ms * 1000000u;
	struct timespec ts = { 0, 200000 };
	int st;

	/* bounded by timeout_ms */
	while ((st = aw_in_futex(pid)) != 1) {
		TC_CHECK(st == 0, "process %d: /proc/PID/syscall unreadable",
			 (int)pid);
		TC_CHECK(tc_now_ns() < end, "process %d never slept in a "
			 "futex wait within %d ms", (int)pid, timeout_ms);
		nanosleep(&ts, NULL);
	}
}

/* Elapsed milliseconds since @t0 (tc_now_ns). */
static inline double aw_ms_since(uint64_t t0)
{
	return (double)(tc_now_ns() - t0) / 1e6;
}

#endif /* TESTS_AWAIT_COMMON_H */
