/* SPDX-License-Identifier: MIT */
/*
 * liveness.h - is the registry's writer alive?
 *
 * The writer holds an open-file-description write lock (F_OFD_SETLK) on the
 * lock file SEGMENT_PATH.lock for as long as it serves the registry.  A
 * reader asks with F_OFD_GETLK, which tests without taking a lock: this
 * neither disturbs a writer that is starting nor mistakes a reused pid or a
 * pid of another pid namespace for the writer.
 */
#ifndef SHM_LIVENESS_H
#define SHM_LIVENESS_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>

/* Returns 1 when a writer holds the lock file of @segment_path, 0 when none
 * does (died or closed), or -errno when the lock file cannot be opened
 * (-ENOENT: no writer ever ran there). */
int shm_writer_alive(const char *segment_path);

/* Did the writer certainly go away?  True for "no writer holds the lock"
 * and for "no lock file" (its writer never ran or it was removed), false
 * while one lives and when the question could not be answered (-EMFILE,
 * -ENOMEM, ...): only a sure death is reported as one. */
static inline bool shm_writer_gone(const char *segment_path)
{
	int alive = shm_writer_alive(segment_path);

	return alive == 0 || alive == -ENOENT;
}

/* Fill @buf (of @cap bytes) with the lock file path of @segment_path.
 * Returns 0 or -ENAMETOOLONG. */
int shm_lock_path(char *buf, size_t cap, const char *segment_path);

#endif /* SHM_LIVENESS_H */
