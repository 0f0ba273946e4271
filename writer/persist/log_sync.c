/* SPDX-License-Identifier: MIT */
/*
 * log_sync.c - the embedded writer's batch-mode fdatasync, on a thread of
 * its own.
 *
 * Why.  An fdatasync blocks for the disk flush (milliseconds) and its
 * writeback work is charged to the caller; made by the writer's thread
 * every batch_ms it stalled the put loop and cost a third of a batch-mode
 * put.  Here the commit path only publishes how far the log is written
 * (plog_syncer_note); the thread fdatasyncs at most once per batch_ms
 * while there are unsynced bytes, so an idle writer's last records are
 * synced within about batch_ms too, without another change.  The writer
 * puts its records into the stage (log_stage.c); the thread copies them
 * into the log file just before each fdatasync.
 *
 * Who touches what.  The writer's thread owns struct persist; the sync
 * thread touches only struct plog_syncer:
 *   mu       held by the sync thread except while it waits on cv, so
 *            also across its fdatasync; the writer takes it only to wake
 *            an idle thread and around a rotation (plog_syncer_pause),
 *            which therefore never overlaps a sync of the old file
 *   fd, synced, stop   under mu
 *   written  the writer's pos_written, published after each flush
 *   idle     the thread waits without a deadline (nothing unsynced)
 *   err      -EIO once an fdatasync failed (latched, read by admission)
 *   syncs    the thread's completed fdatasync calls (relaxed)
 *
 * Ordering.  The records are stores into the shared mapping, the stage
 * (then `staged`: log_stage.c) or pwrite, made before the writer's store
 * to `written`; the thread's load of
 * `written` that sees them is acquire, so its fdatasync comes after those
 * stores and covers them (store release / load acquire of `written`).
 * Lost wake-ups: the writer stores `written` and then loads `idle`; the
 * thread stores `idle` and then loads `written`, both seq_cst, so at
 * least one sees the other's store (Dekker): either the thread sees the
 * new position and does not sleep, or the writer sees it idle and wakes
 * it, taking mu, which the thread holds from its store of `idle` until
 * pthread_cond_wait releases it, so the signal cannot come too early.
 *
 * Fork.  In a child the thread does not exist and mu may be held by it:
 * the child never touches the syncer (persist_after_fork, persist_close).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "persist.h"

struct plog_syncer {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;        /* CLOCK_MONOTONIC */
	int fd;                   /* the log to sync (rotation swaps it) */
	struct pstage *stage;     /* copied into fd before each sync, or
	                           * NULL (log_stage.c) */
	uint64_t synced;          /* log position known to be synced */
	bool stop;
	int64_t batch_ns;
	_Atomic uint64_t written;
	_Atomic bool idle;
	_Atomic int err;
	_Atomic uint64_t syncs;
};

static void wait_until(struct plog_syncer *s, int64_t deadline_ns)
{
	struct timespec ts = { .tv_sec = deadline_ns / 1000000000,
			       .tv_nsec = deadline_ns % 1000000000 };

	(void)pthread_cond_timedwait(&s->cv, &s->mu, &ts);
}

static void *sync_main(void *arg)
{
	struct plog_syncer *s = arg;
	int64_t due = 0; /* the next fdatasync no earlier than this */

	pthread_mutex_lock(&s->mu);
	while (!s->stop) {
		uint64_t w = atomic_load_explicit(&s->written,
						  memory_order_acquire);
		int64_t now;
		int rc;

		if (w <= s->synced ||
		    atomic_load_explicit(&s->err, memory_order_relaxed)) {
			/* seq_cst pair with plog_syncer_note (Dekker) */
			atomic_store(&s->idle, true);
			if (atomic_load(&s->written) <= s->synced ||
			    atomic_load_explicit(&s->err,
						 memory_order_relaxed))
				pthread_cond_wait(&s->cv, &s->mu);
			atomic_store_explicit(&s->idle, false,
					      memory_order_relaxed);
			continue;
		}
		now = shm_monotonic_ns();
		if (now < due) {
			wait_until(s, due);
			continue;
		}
		/* at most one sync starts per batch_ns */
		due = now + s->batch_ns;
		/* the stage's records first: up to at least `w` (the writer
		 * publishes `staged` before `written`) */
		rc = s->stage ? pstage_copy(s->stage, s->fd) : 0;
		if (rc == 0)
			rc = fdatasync(s->fd);
		/* counted when done: a test waiting for the count to grow
		 * waits for a sync that has completed */
		atomic_fetch_add_explicit(&s->syncs, 1, memory_order_relaxed);
		if (rc < 0) {
			/* as plog_flush: nothing since the last good sync is
			 * known to be on disk; pairs with the acquire load in
			 * plog_syncer_error */
			atomic_store_explicit(&s->err, -EIO,
					      memory_order_release);
			continue;
		}
		s->synced = w;
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

int plog_syncer_start(struct persist *p)
{
	struct plog_syncer *s = calloc(1, sizeof(*s));
	pthread_condattr_t ca;
	int rc;

	if (!s)
		return -ENOMEM;
	s->fd = p->log_fd;
	s->stage = p->stage;
	s->synced = p->pos_written;
	s->batch_ns = p->batch_ns;
	atomic_init(&s->written, p->pos_written);
	atomic_init(&s->idle, false);
	atomic_init(&s->err, 0);
	atomic_init(&s->syncs, 0);
	pthread_mutex_init(&s->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cv, &ca);
	pthread_condattr_destroy(&ca);
	rc = -pthread_create(&s->thread, NULL, sync_main, s);
	if (rc < 0) {
		pthread_cond_destroy(&s->cv);
		pthread_mutex_destroy(&s->mu);
		free(s);
		return rc;
	}
	p->syncer = s;
	return 0;
}

void plog_syncer_note(struct persist *p)
{
	struct plog_syncer *s = p->syncer;

	/* only this thread stores `written`: its own last value */
	if (atomic_load_explicit(&s->written, memory_order_relaxed) ==
	    p->pos_written)
		return;
	/* seq_cst: releases the records (see Ordering) and pairs with the
	 * thread's store of `idle` (Dekker) */
	atomic_store(&s->written, p->pos_written);
	if (atomic_load(&s->idle) && atomic_exchange(&s->idle, false)) {
		pthread_mutex_lock(&s->mu);
		pthread_cond_signal(&s->cv);
		pthread_mutex_unlock(&s->mu);
	}
}

int plog_syncer_error(const struct persist *p)
{
	/* pairs with the release store after a failed fdatasync */
	return p->syncer ? atomic_load_explicit(&p->syncer->err,
						memory_order_acquire)
			 : 0;
}

uint64_t plog_syncer_syncs(const struct persist *p)
{
	return p->syncer ? atomic_load_explicit(&p->syncer->syncs,
						memory_order_relaxed)
			 : 0;
}

void plog_syncer_pause(struct persist *p)
{
	/* waits out a sync in progress; the thread starts none until
	 * plog_syncer_resume */
	if (p->syncer) {
		pthread_mutex_lock(&p->syncer->mu);
		p->held = true;
	}
}

void plog_syncer_resume(struct persist *p)
{
	struct plog_syncer *s = p->syncer;

	if (!s)
		return;
	p->held = false;
	s->fd = p->log_fd;
	if (!p->unsynced)
		s->synced = p->pos_written; /* the rotation synced it all */
	pthread_mutex_unlock(&s->mu);
	plog_syncer_note(p);
}

void plog_syncer_stop(struct persist *p)
{
	struct plog_syncer *s = p->syncer;

	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->stop = true;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thread, NULL);
	/* the thread is gone: its counters become the writer's */
	p->syncs += atomic_load_explicit(&s->syncs, memory_order_relaxed);
	if (!p->err)
		p->err = atomic_load_explicit(&s->err, memory_order_relaxed);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
	p->syncer = NULL;
}

void plog_syncer_forget(struct persist *p)
{
	/* a forked child's copy: no thread, mu maybe held by the parent's
	 * thread at the fork, so only the memory goes */
	free(p->syncer);
	p->syncer = NULL;
}
