/* SPDX-License-Identifier: MIT */
/*
 * map.c - open a registry, validate it, and follow segment handoffs.
 *
 * How following works.  The writer replaces a segment by renaming a new
 * file over the name and then storing RETIRED in the old header's state
 * (see writer/handoff.c).  Every call checks the state of the mapping it is
 * about to read (reader_map); on RETIRED it maps whatever the name holds now
 * and swaps the handle's current mapping (an atomic pointer).  The old
 * mapping cannot simply be unmapped: another thread of this process may be
 * in the middle of reading it.  Instead its address range is overlaid, in
 * place, with anonymous zero pages: the retired file's memory is released at
 * once, the addresses stay valid, and a thread still reading there sees
 * zeros - a slot of zeros is empty, a header of zeros has state 0 - which
 * never validate as an entry; such a reader finds "absent", re-checks the
 * state, and retries on the current mapping.  The overlays are kept until
 * shmreg_close, except that beyond the newest RETIRED_KEEP, those older than
 * RETIRED_GRACE_NS are unmapped (each is a VMA of the process).
 *
 * Following takes a small lock so that two threads do not map the same new
 * segment twice.  The lock word holds the pid of the process that took it:
 * a child forked while a thread of its parent held it (that thread does not
 * exist in the child) finds a foreign pid there and takes the lock over.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "internal.h"
#include "liveness.h"
#include "paths.h"

struct retired_map {
	struct retired_map *next;
	struct shm_map *map;
	int64_t since;             /* CLOCK_MONOTONIC ns of the overlay */
};

/* Overlays kept per handle before old ones are unmapped for good, and how
 * old an overlay must be before that.  Each overlay is one VMA; without a
 * bound, a reader living through very many handoffs would run into
 * vm.max_map_count.  No call reads one mapping for anything like
 * RETIRED_GRACE_NS: a read is a bounded number of attempts, and a thread
 * that some other thread of its process saw stuck that long (stopped by a
 * debugger, say) is the one case this gives up. */
#define RETIRED_KEEP      64
#define RETIRED_GRACE_NS  (INT64_C(10) * 1000 * 1000 * 1000)

/* How many times open or follow re-reads the name when it finds a segment
 * that is already retired (handoffs in quick succession). */
#define OPEN_TRIES 16

/* How often a reader looks for the successor of a retired segment that is
 * still at the name (see reader_follow). */
#define FOLLOW_RETRY_NS (1000 * 1000)

static void map_free(struct shm_map *m)
{
	if (m->base)
		munmap(m->base, m->size);
	free(m);
}

/*
 * Map the file at @path and validate it.  Returns 0 or -errno.  Never
 * blocks: O_NONBLOCK, so a FIFO put at the name (anyone may create files
 * in /dev/shm) is refused as -EPROTO instead of waiting for a writer of
 * the FIFO forever.  @follow: a symbolic link at the last component is
 * followed (an absolute path the caller gave, which it chose) or refused
 * with -ELOOP (a registry name: $SHMREG_DIR/shmreg.NAME is a name in a
 * shared directory that writers never make a link, so a link there is
 * someone else's, pointing at whatever they want read as this registry).
 */
static int map_file(const char *path, bool follow, struct shm_map **out)
{
	struct shm_map *m;
	struct stat st;
	void *base;
	int fd, rc;

	fd = shm_open_file(path, O_RDONLY, 0, follow, &st);
	if (fd < 0)
		return fd;
	if (!S_ISREG(st.st_mode) || st.st_size < (off_t)SHM_HEADER_SIZE) {
		rc = -EPROTO;
		goto out_close;
	}
	base = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		rc = -errno;
		goto out_close;
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		munmap(base, (size_t)st.st_size);
		rc = -ENOMEM;
		goto out_close;
	}
	m->base = base;
	m->size = (size_t)st.st_size;
	m->hdr = base;
	m->dev = st.st_dev;
	m->ino = st.st_ino;
	rc = shm_geom_check(base, m->size, &m->g);
	if (rc < 0) {
		map_free(m);
		goto out_close;
	}
	m->generation = m->hdr->generation;
	m->writer_pid = m->hdr->writer_pid;
	*out = m;
	rc = 0;
out_close:
	close(fd);
	return rc;
}

static uint32_t map_state(const struct shm_map *m)
{
	return atomic_load_explicit(&m->hdr->state, memory_order_acquire);
}

/* Map what the name holds now, preferring a segment that is not retired. */
static int map_current(const char *path, bool follow, struct shm_map **out)
{
	int rc = -EPROTO;

	for (int i = 0; i < OPEN_TRIES; i++) {
		struct shm_map *m = NULL;

		rc = map_file(path, follow, &m);
		if (rc < 0)
			return rc;
		/* A retired segment at the name is about to be renamed over
		 * (or its writer died just before; the next one takes over):
		 * look again a few times, then take it - it is consistent. */
		if (map_state(m) != SHM_STATE_RETIRED || i == OPEN_TRIES - 1) {
			*out = m;
			return 0;
		}
		map_free(m);
		sched_yield();
	}
	return rc;
}

SHMREG_EXPORT int shmreg_open(const char *name, int flags, shmreg_t **out)
{
	shmreg_t *r;
	struct shm_map *m;
	int rc;

	if (!out || (flags & ~(int)SHMREG_OPEN_NOFOLLOW))
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	rc = shm_resolve_path(name, r->path, sizeof(r->path));
	if (rc < 0)
		goto fail;
	r->follow_link = name && name[0] == '/';
	rc = map_current(r->path, r->follow_link, &m);
	if (rc < 0)
		goto fail;
	r->flags = flags;
	atomic_init(&r->map, m);
	atomic_init(&r->follow_lock, 0);
	*out = r;
	return 0;
fail:
	free(r);
	return rc == -ENAMETOOLONG ? -EINVAL : rc;
}

SHMREG_EXPORT void shmreg_close(shmreg_t *r)
{
	if (!r)
		return;
	for (struct retired_map *t = r->retired, *next; t; t = next) {
		next = t->next;
		map_free(t->map);
		free(t);
	}
	map_free(atomic_load_explicit(&r->map, memory_order_relaxed));
	free(r);
}

static void follow_lock(shmreg_t *r)
{
	int me = getpid();

	for (;;) {
		int holder = 0;

		if (atomic_compare_exchange_weak_explicit(
			    &r->follow_lock, &holder, me,
			    memory_order_acquire, memory_order_relaxed))
			return;
		/* a holder from the process we were forked from is gone */
		if (holder != 0 && holder != me &&
		    atomic_compare_exchange_strong_explicit(
			    &r->follow_lock, &holder, me,
			    memory_order_acquire, memory_order_relaxed))
			return;
		sched_yield();
	}
}

static void follow_unlock(shmreg_t *r)
{
	atomic_store_explicit(&r->follow_lock, 0, memory_order_release);
}

/* Unmap overlays beyond the RETIRED_KEEP newest that are older than the
 * grace period (the list is newest first).  Under the follow lock. */
static void reclaim_retired(shmreg_t *r, int64_t now)
{
	struct retired_map **pp = &r->retired;
	unsigned kept = 0;

	while (*pp) {
		struct retired_map *t = *pp;

		if (++kept > RETIRED_KEEP && now - t->since > RETIRED_GRACE_NS) {
			*pp = t->next;
			map_free(t->map);
			free(t);
			continue;
		}
		pp = &t->next;
	}
}

/* reader_follow() and reader_follow_now(); @throttled: at most one look
 * at the name per FOLLOW_RETRY_NS. */
static struct shm_map *follow(shmreg_t *r, struct shm_map *seen,
			      bool throttled)
{
	struct shm_map *cur, *fresh;
	struct retired_map *t;

	if (r->flags & SHMREG_OPEN_NOFOLLOW)
		return seen;
	/* A segment is retired just before its successor is renamed over
	 * the name (writer/handoff.c), and stays at the name if its writer
	 * died in between: look again at most every FOLLOW_RETRY_NS, not on
	 * every call, and keep reading the retired one meanwhile (it is
	 * consistent: nobody writes it any more, or not for long). */
	if (throttled &&
	    shm_monotonic_coarse_ns() < atomic_load_explicit(&r->follow_after,
							     memory_order_relaxed))
		return seen;
	follow_lock(r);
	cur = atomic_load_explicit(&r->map, memory_order_acquire);
	if (cur != seen)
		goto out; /* another thread followed already */
	t = malloc(sizeof(*t));
	if (!t || map_current(r->path, r->follow_link, &fresh) < 0) {
		free(t);
		goto out; /* keep reading the retired one: still consistent */
	}
	if (fresh->dev == cur->dev && fresh->ino == cur->ino) {
		map_free(fresh); /* nothing newer under the name yet */
		free(t);
		atomic_store_explicit(&r->follow_after,
				      shm_monotonic_coarse_ns() +
					      FOLLOW_RETRY_NS,
				      memory_order_relaxed);
		goto out;
	}
	/* pairs with the acquire load in reader_map() of another thread */
	atomic_store_explicit(&r->map, fresh, memory_order_release);
	/* Overlay the old range with zero pages (see the top of this file).
	 * If that fails, keep the old mapping: reading it stays safe, it
	 * only holds the retired file's memory until shmreg_close. */
	(void)mmap(cur->base, cur->size, PROT_READ,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	t->map = cur;
	t->since = shm_monotonic_coarse_ns();
	t->next = r->retired;
	r->retired = t;
	reclaim_retired(r, t->since);
	cur = fresh;
out:
	follow_unlock(r);
	return cur;
}

struct shm_map *reader_follow(shmreg_t *r, struct shm_map *seen)
{
	return follow(r, seen, true);
}

struct shm_map *reader_follow_now(shmreg_t *r, struct shm_map *seen)
{
	return follow(r, seen, false);
}

struct shm_map *reader_map(shmreg_t *r)
{
	/* pairs with the release store in reader_follow() */
	struct shm_map *m = atomic_load_explicit(&r->map, memory_order_acquire);
	uint32_t st = map_state(m);

	if (st == SHM_STATE_RETIRED)
		return reader_follow(r, m);
	if (st == 0) /* overlaid by another thread: it has a newer one */
		return atomic_load_explicit(&r->map, memory_order_acquire);
	return m;
}

int reader_writer_state(shmreg_t *r, const struct shm_map *m)
{
	uint32_t st = map_state(m);

	if (st == SHM_STATE_CLOSED)
		return SHMREG_STATE_CLOSED;
	return shm_writer_gone(r->path) ? SHMREG_STATE_DEAD
					: SHMREG_STATE_OPEN;
}
