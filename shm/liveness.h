/* SPDX-License-Identifier: MIT */
/*
 * liveness.h - is the registry's writer alive?
 *
 * Two tests, the first preferred:
 *
 * 1. The lock.  The writer holds an open-file-description write lock
 *    (F_OFD_SETLK) on the lock file SEGMENT_PATH.lock for as long as it
 *    serves the registry.  A reader that may open the file (the writer's
 *    uid, or root: the writer makes it mode 0600 so that nobody else can
 *    take a read lock there and keep every writer out) asks with
 *    F_OFD_GETLK, which takes nothing.  It cannot be fooled by a reused
 *    pid or a pid of another pid namespace, and it sees a death at once.
 *
 * 2. The pid.  Anyone else reads the writer's pid and start time from the
 *    segment header (writer_pid, writer_start = /proc/PID/stat field 22)
 *    and asks the kernel about that pid (shm_pid_test below).  The same
 *    test covers a lock file that is missing, or not held although a
 *    writer runs (it was removed or replaced under the writer: then the
 *    lock file at the name is not the one the writer locked).
 *
 * What the pid test can tell: a process of that pid and start time that
 * is not a zombie is the writer (a pid is reused only after the old one
 * is reaped, and a new process has a later start time); no process of
 * that pid (ESRCH), or one with another start time, or a zombie, means
 * the writer died.  What it cannot tell: with /proc mounted hidepid=1/2
 * (or not mounted) only kill(pid, 0) answers, and EPERM ("exists, not
 * yours") cannot tell the writer from a process that reused its pid: that
 * answer is "alive" (only a sure death is reported as one).  A reader in
 * another pid namespace than the writer sees another process, or none,
 * under that number: its answer is wrong, so readers across pid namespaces
 * must be able to open the lock file (run as the writer's uid, or root).
 */
#ifndef SHM_LIVENESS_H
#define SHM_LIVENESS_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Returns 1 when the writer of @segment_path is alive (as far as can be
 * told: see above), 0 when it is certainly not (died or closed), or
 * -errno when the question could not be answered (-ENOENT: no lock file
 * and no segment to ask: no writer ever ran there). */
int shm_writer_alive(const char *segment_path);

/* Did the writer certainly go away?  True for "not alive" and for "no
 * lock file and no segment" (its writer never ran or it was removed),
 * false while one lives and when the question could not be answered
 * (-EMFILE, -ENOMEM, ...): only a sure death is reported as one. */
static inline bool shm_writer_gone(const char *segment_path)
{
	int alive = shm_writer_alive(segment_path);

	return alive == 0 || alive == -ENOENT;
}

/* Fill @buf (of @cap bytes) with the lock file path of @segment_path.
 * Returns 0 or -ENAMETOOLONG. */
int shm_lock_path(char *buf, size_t cap, const char *segment_path);

/* shm_pid_test() answers */
#define SHM_PID_DEAD     0  /* certainly not that process any more */
#define SHM_PID_ALIVE    1  /* that pid with that start time, running */
#define SHM_PID_UNKNOWN  2  /* a process of that pid exists; which one
			     * could not be told (hidepid, no /proc, or
			     * @start 0) */

/* Is process @pid, started at @start (clock ticks since boot, as in
 * /proc/PID/stat field 22; 0: unknown), still running?  @pid <= 0 is no
 * process (SHM_PID_DEAD): never a process group. */
int shm_pid_test(int32_t pid, uint64_t start);

/* The start time of process @pid (0: this process) in clock ticks since
 * boot, and in *@state (may be NULL) its state letter; 0 when unknown. */
uint64_t shm_proc_start(pid_t pid, char *state);

#endif /* SHM_LIVENESS_H */
