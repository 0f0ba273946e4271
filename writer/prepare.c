/* SPDX-License-Identifier: MIT */
/*
 * prepare.c - the segment of the next index growth, made ready by a
 * helper thread while the writer goes on putting.
 *
 * Why.  Growing from the defaults to a million entries writes two
 * segments' worth of fresh tmpfs pages (the last segment alone is 256 MiB
 * of index), and about half of that time is the kernel allocating, zeroing
 * and mapping those pages, one fault or one populate call at a time, all
 * of it in the writer's thread while every put waits.  The pages do not
 * depend on anything the writer has yet to do: the next index growth's
 * geometry is known as soon as the registry is on its way there.
 *
 * How.  When the load reaches 3/8 (PREP_LOAD_*: where the last growth at
 * 3/4 left it), the writer asks the helper for the segment grow_index()
 * will build next (prep_next).  A growth that doubles the index leaves
 * that load, so it asks itself, as soon as it has its own new segment and
 * before it copies into it (handoff): the helper's work then overlaps the
 * copy as well as the puts from 3/8 to 3/4.  Else (an open, a takeover)
 * the put that reaches 3/8 asks.  The helper creates the
 * file at a fresh temporary name, reserves its space and populates the
 * whole mapping (segment_make_file): the same steps as a handoff's own,
 * which makes it interchangeable with one.  The growth then takes it
 * (prep_take, from segment_create) if its geometry is the one wanted,
 * waiting if the helper is still at it; a prepared file of another
 * geometry (the attribute index or the arena changed meanwhile) is
 * removed before the handoff makes its own, so the two never hold tmpfs
 * space at once.  The helper making nothing but an empty file, a failure
 * there (-ENOSPC on a full tmpfs) costs nothing: the growth makes its
 * segment itself, as it always did, and reports its own error.
 *
 * The old segment.  Once a growth has renamed the new segment over the
 * name, the old one is unlinked, and the writer's munmap() and close() of
 * it are what frees its pages (unless a reader still maps it): the kernel
 * removing every page from the file, in the thread that makes the last
 * close.  The writer hands that to the helper too (prep_release): it
 * never touches the old mapping again after the handoff, and readers that
 * still map the file keep it alive whoever closes it.
 *
 * Cost.  While the load stays between 3/8 and 3/4, the next segment (twice
 * the current one) exists beside it: a registry that stops growing keeps
 * it until close (or until a change of geometry discards it).  During a
 * growth's copy the old segment, the new one and the one after it exist
 * at once (7 units of space for a registry of 1 that doubles, where the
 * copy alone needs 3): on a tmpfs without that room the helper fails
 * with -ENOSPC, and the growth after makes its own segment.  Hence only
 * for a registry that has outgrown the index its initial_entries asked
 * for (prep_trigger): one sized for its contents never has one, and the
 * first growth past that size (the smallest) is not prepared.
 * One thread per writer, started at the first request, idle on a
 * condition variable between requests, joined at close (which waits for a
 * file the helper is making, then removes it).
 *
 * Memory ordering.  Everything the two threads share (state, the
 * requested or made geometry, fd, mapping, temporary name, stop) is read
 * and written under p->lock only; unlocking in one thread and locking in
 * the other orders them (the mutex's release / acquire).  The helper
 * stores nothing into the mapping itself (the pages are the kernel's
 * zeros), so the mutex is all the writer needs before it writes there.
 *
 * fork().  The child has no helper thread and is not the writer (its
 * copies of the writer's descriptors are closed, the mappings are
 * MADV_DONTFORK): it forgets the state without removing the parent's file
 * (prep_fork_child).  The helper's lock is held across the fork
 * (prep_fork_prepare), so the child's copy of the state is whole.  A fork
 * in the instant between the helper's open() and its madvise() leaves the
 * child one unused descriptor or mapping of the file (memory only, freed
 * when the child exits).
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "prepare.h"

/* The helper's stack: segment_make_file and its temporary name. */
#define PREP_STACK (128u << 10)
/* Old segments waiting for the helper to release them; with more (the
 * helper far behind), the writer releases the next one itself. */
#define PREP_RELEASES 4u


struct seg_prep {
	pthread_mutex_t lock;
	pthread_cond_t cond;       /* state or stop changed */
	pthread_t thread;
	bool running;              /* started and not yet joined */
	bool stop;                 /* the helper is to return */
	enum prep_state state;
	struct shm_geom g;         /* WANTED, BUSY, READY: its geometry */
	int fd;                    /* READY */
	void *base;
	int err;                   /* FAILED */
	char tmp[PATH_MAX + 32];
	struct prep_release {
		void *base;
		size_t size;
		int fd;
	} rel[PREP_RELEASES];      /* old segments to unmap and close */
	unsigned nrel;
	/* the writer's, copied at the start: the helper reads no writer */
	char path[PATH_MAX];
	mode_t mode;
};

uint64_t prep_trigger(const struct shmreg_writer *w)
{
	uint64_t cap = w->map.g.index_cap;

	if (cap <= index_cap_for(w->opts.initial_entries))
		return UINT64_MAX;
	return cap / PREP_LOAD_DEN * PREP_LOAD_NUM;
}

/* The whole segment: what the handoff's copy and the puts after it touch
 * in the index at random, and the ring and arena they fill. */
static void *prep_main(void *arg)
{
	struct seg_prep *p = arg;
	char tmp[sizeof(p->tmp)];

	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct shm_geom g;
		void *base;
		int fd, rc;

		while (!p->stop && p->state != PREP_WANTED && !p->nrel)
			pthread_cond_wait(&p->cond, &p->lock);
		/* old segments first: their pages go back to the tmpfs
		 * before the next segment takes its own (a growth hands its
		 * old segment over after its copy, so the segment it asked
		 * for before the copy is usually under way by then) */
		if (p->nrel) {
			struct prep_release r = p->rel[--p->nrel];

			pthread_mutex_unlock(&p->lock);
			munmap(r.base, r.size);
			close(r.fd);
			pthread_mutex_lock(&p->lock);
			continue;
		}
		if (p->stop)
			break;
		g = p->g;
		p->state = PREP_BUSY;
		pthread_mutex_unlock(&p->lock);
		rc = segment_make_file(p->path, p->mode, &g, g.segment_size,
				       &fd, &base, tmp, sizeof(tmp));
		pthread_mutex_lock(&p->lock);
		if (rc == 0) {
			p->fd = fd;
			p->base = base;
			memcpy(p->tmp, tmp, sizeof(tmp));
			p->state = PREP_READY;
		} else {
			p->err = rc;
			p->state = PREP_FAILED;
		}
		pthread_cond_broadcast(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* The helper, started with every signal blocked: the application's
 * handlers run in its own threads, never in ours. */
static struct seg_prep *prep_start(const struct shmreg_writer *w)
{
	struct seg_prep *p = calloc(1, sizeof(*p));
	sigset_t all, old;
	pthread_attr_t attr;
	int rc;

	if (!p)
		return NULL;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->fd = -1;
	memcpy(p->path, w->path, sizeof(p->path));
	p->mode = w->mode;
	if (pthread_attr_init(&attr)) {
		free(p);
		return NULL;
	}
	(void)pthread_attr_setstacksize(&attr, PREP_STACK);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&p->thread, &attr, prep_main, p);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (rc) {
		pthread_cond_destroy(&p->cond);
		pthread_mutex_destroy(&p->lock);
		free(p);
		return NULL;
	}
	p->running = true;
	return p;
}

static bool geom_same(const struct shm_geom *a, const struct shm_geom *b)
{
	/* shm_geom_plan() derives the rest from these */
	return a->segment_size == b->segment_size &&
	       a->index_cap == b->index_cap &&
	       a->ring_events == b->ring_events &&
	       a->attr_cap == b->attr_cap && a->arena_size == b->arena_size;
}

/* Remove a READY segment (under p->lock). */
static void prep_discard(struct seg_prep *p)
{
	munmap(p->base, p->g.segment_size);
	close(p->fd);
	unlink(p->tmp);
	p->fd = -1;
	p->base = NULL;
	p->state = PREP_IDLE;
}

void prep_next(struct shmreg_writer *w)
{
	struct seg_prep *p = w->prep;
	struct shm_geom g;

	w->prep_at = UINT64_MAX;
	if (handoff_plan(w, &w->map, 2 * w->map.g.index_cap,
			 w->map.g.arena_size, &g) < 0)
		return; /* the growth itself will fail the same way */
	if (!p) {
		p = prep_start(w);
		if (!p)
			return; /* no thread: the growth makes its own */
		w->prep = p;
	}
	pthread_mutex_lock(&p->lock);
	if (p->state == PREP_READY && !geom_same(&p->g, &g))
		prep_discard(p);
	if (p->state == PREP_IDLE || p->state == PREP_FAILED) {
		p->g = g;
		p->state = PREP_WANTED;
		pthread_cond_broadcast(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
}

int prep_take(struct shmreg_writer *w, const struct shm_geom *g, int *fd,
	      void **base, char *tmp_path, size_t tmp_cap)
{
	struct seg_prep *p = w->prep;
	int rc = -ENOENT;

	if (!p)
		return -ENOENT;
	pthread_mutex_lock(&p->lock);
	/* not started yet: the handoff is as quick making it itself */
	if (p->state == PREP_WANTED)
		p->state = PREP_IDLE;
	/* started: partly done, so waiting is quicker than starting over
	 * (and a file of another geometry must go before ours is made) */
	while (p->state == PREP_BUSY)
		pthread_cond_wait(&p->cond, &p->lock);
	if (p->state == PREP_READY) {
		if (geom_same(&p->g, g) && strlen(p->tmp) < tmp_cap) {
			*fd = p->fd;
			*base = p->base;
			memcpy(tmp_path, p->tmp, strlen(p->tmp) + 1);
			p->fd = -1;
			p->base = NULL;
			rc = 0;
		} else {
			prep_discard(p);
		}
	}
	if (p->state != PREP_OFF)
		p->state = PREP_IDLE;
	pthread_mutex_unlock(&p->lock);
	return rc;
}

void prep_release(struct shmreg_writer *w, struct shm_map *m, int fd)
{
	struct seg_prep *p = w->prep;
	bool queued = false;

	if (p) {
		pthread_mutex_lock(&p->lock);
		if (p->running && p->nrel < PREP_RELEASES) {
			p->rel[p->nrel++] = (struct prep_release){
				.base = m->base, .size = m->size, .fd = fd };
			pthread_cond_broadcast(&p->cond);
			queued = true;
		}
		pthread_mutex_unlock(&p->lock);
	}
	if (queued)
		memset(m, 0, sizeof(*m));
	else {
		segment_unmap(m);
		close(fd);
	}
}

void prep_close(struct shmreg_writer *w)
{
	struct seg_prep *p = w->prep;

	if (!p)
		return;
	if (p->running) {
		pthread_mutex_lock(&p->lock);
		p->stop = true;
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->lock);
		pthread_join(p->thread, NULL);
	}
	/* joined (or a child's copy): no other thread touches p now */
	if (p->state == PREP_READY)
		prep_discard(p);
	/* a child's copy of the condition variable still counts the
	 * parent's helper as a waiter: destroying it would wait forever */
	if (p->state != PREP_OFF) {
		pthread_cond_destroy(&p->cond);
		pthread_mutex_destroy(&p->lock);
	}
	free(p);
	w->prep = NULL;
}

void prep_fork_prepare(struct shmreg_writer *w)
{
	if (w->prep)
		pthread_mutex_lock(&w->prep->lock);
}

void prep_fork_parent(struct shmreg_writer *w)
{
	if (w->prep)
		pthread_mutex_unlock(&w->prep->lock);
}

void prep_fork_child(struct shmreg_writer *w)
{
	struct seg_prep *p = w->prep;

	if (!p)
		return;
	/* the parent's files: our descriptors go, the files stay; the
	 * mappings were not inherited (MADV_DONTFORK) */
	if (p->state == PREP_READY)
		close(p->fd);
	while (p->nrel)
		close(p->rel[--p->nrel].fd);
	p->fd = -1;
	p->base = NULL;
	p->state = PREP_OFF;
	p->running = false;
	/* held by this thread across the fork (prep_fork_prepare) */
	pthread_mutex_unlock(&p->lock);
}

#ifdef SHMREG_TEST_HOOKS
enum prep_state prep_debug_state(struct shmreg_writer *w, int *err)
{
	struct seg_prep *p = w->prep;
	enum prep_state st;

	if (!p)
		return PREP_IDLE;
	pthread_mutex_lock(&p->lock);
	st = p->state;
	*err = p->err;
	pthread_mutex_unlock(&p->lock);
	return st;
}
#endif /* SHMREG_TEST_HOOKS */
