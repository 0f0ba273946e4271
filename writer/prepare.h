/* SPDX-License-Identifier: MIT */
/*
 * prepare.h - the next segment, made ready ahead of need by a helper
 * thread of the writer (prepare.c has the how and the why).
 */
#ifndef WRITER_PREPARE_H
#define WRITER_PREPARE_H

#include <stddef.h>
#include <stdint.h>

#include "geometry.h"

struct shmreg_writer;

/* The load (entries / index slots) at which the segment of the next index
 * growth is prepared: half the load limit (SHM_LOAD_NUM / SHM_LOAD_DEN,
 * 3/4), i.e. the load a growth leaves behind when it doubles the index
 * there, so that a growing registry asks for the next segment with the
 * very growth (handoff, before its copy).  That gives the helper the
 * growth's copy and the whole way from 3/8 to 3/4 (as many inserts as the
 * registry had at the last growth) to make a segment twice that size: from
 * 1/2, the 263 MiB segment of the growth to 2 M slots took the helper
 * longer (120-180 ms on a 2-vCPU VM) than the writer took to fill the
 * index to 3/4 (~260 k inserts), and the writer waited for it.
 * docs/benchmarks.md, ninth and tenth passes, has the A/Bs. */
#define PREP_LOAD_NUM SHM_LOAD_NUM
#define PREP_LOAD_DEN (2u * SHM_LOAD_DEN)

/* After a handoff (or an open): the entry count at which prep_next() is to
 * be called, UINT64_MAX for never.  Never while the index is still the
 * size opts.initial_entries asked for: a registry sized for its contents
 * (at any load up to 3/4) must not hold a second segment for a growth that
 * may never come; once it has outgrown that, it is growing. */
uint64_t prep_trigger(const struct shmreg_writer *w);

/* The registry reached its trigger: ask the helper thread (started on the
 * first call) for the segment the next index growth builds.  Best effort:
 * without the helper, the growth makes its segment itself, as always.
 * Sets w->prep_at to UINT64_MAX (one request per segment). */
void prep_next(struct shmreg_writer *w);

/* segment_create(): take the prepared segment if it has geometry @g
 * (waiting for the helper if it is still making it): 0 with *@fd, *@base
 * and its temporary name in @tmp_path; else -ENOENT (a prepared segment of
 * another geometry is removed first, so that the two never hold space
 * at once).  A helper that failed (-ENOSPC, ...) also gives -ENOENT: the
 * caller makes the segment itself and reports its own error. */
int prep_take(struct shmreg_writer *w, const struct shm_geom *g, int *fd,
	      void **base, char *tmp_path, size_t tmp_cap);

/* A handoff is done with its old segment @m (unlinked by the rename) and
 * its descriptor @fd: the helper unmaps and closes them (at once here
 * without a helper).  *@m is cleared. */
struct shm_map;
void prep_release(struct shmreg_writer *w, struct shm_map *m, int fd);

/* shmreg_writer_close(): stop and join the helper, remove a prepared
 * segment nobody took. */
void prep_close(struct shmreg_writer *w);

/* fork(): prep_fork_prepare() before it in the parent (holds the helper's
 * lock, so that the child's copy of the state is not torn),
 * prep_fork_parent() after it in the parent, prep_fork_child() in the
 * child: the child has no helper thread and is not the writer, so it
 * forgets the prepared segment (without removing the parent's file). */
void prep_fork_prepare(struct shmreg_writer *w);
void prep_fork_parent(struct shmreg_writer *w);
void prep_fork_child(struct shmreg_writer *w);

/* ---- test hooks: only in the test library (SHMREG_TEST_HOOKS) ---- */

enum prep_state {
	PREP_IDLE,     /* nothing asked for, nothing made */
	PREP_WANTED,   /* asked for, the helper has not started on it */
	PREP_BUSY,     /* the helper is making it */
	PREP_READY,    /* made, waiting for the growth */
	PREP_FAILED,   /* the helper could not make it */
	PREP_OFF,      /* a forked child's copy: never used again */
};

/* The helper's state (PREP_IDLE without a helper) and its last error in
 * *@err. */
enum prep_state prep_debug_state(struct shmreg_writer *w, int *err);

#endif /* WRITER_PREPARE_H */
