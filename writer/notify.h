/* SPDX-License-Identifier: MIT */
/*
 * notify.h - the writer's side of await/watch: wake the readers that wait in
 * the registry's wait file (shmreg.NAME.wait) after a commit.
 *
 * The writer calls these and nothing else; notify.c owns the wait file.
 */
#ifndef WRITER_NOTIFY_H
#define WRITER_NOTIFY_H

#include <stdint.h>
#include <sys/types.h>

struct notify;

/* Create or open the wait file beside @segment_path (segment_path + ".wait")
 * with file mode @mode.  Returns 0 or -errno. */
int notify_open(struct notify **out, const char *segment_path, mode_t mode);

/* After a committed put or delete of a key with XXH3-64 @hash (its revision
 * already stored): wake that key's waiters, if any.  No system call when
 * nobody waits. */
void notify_key(struct notify *n, uint64_t hash);

/* After the segment was closed or retired (handoff): wake every waiter so it
 * re-checks the registry state. */
void notify_all(struct notify *n);

/* Wake everyone (notify_all) and release; NULL allowed. */
void notify_close(struct notify *n);

#endif /* WRITER_NOTIFY_H */
