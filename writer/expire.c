/* SPDX-License-Identifier: MIT */
/*
 * expire.c - the expiry sweep: remove entries whose TTL has passed, in
 * bounded chunks the host's event loop drives, each removal an ordinary
 * delete (a revision and a delete event, descendants with it).
 *
 * What readers see.  An entry is invisible from its deadline on (every
 * read path checks expires_at_ns against CLOCK_REALTIME, shm_expired):
 * the sweep only reclaims it and tells watchers.  So the sweep's lateness
 * never shows as a stale value, only as a delete event that arrives after
 * the deadline (docs/guarantees.md, "Expiry").
 *
 * How due entries are found.  A binary min-heap of {deadline, key hash} in
 * the writer's private memory, so a sweep costs the entries it removes, not
 * a scan of the registry.  Every put that gives an entry a deadline pushes
 * one element (O(log n)); nothing is removed from the heap when the entry
 * is deleted or put again: the element goes stale, and the sweep drops it
 * when it reaches the top, finding no entry of that hash due.  Stale
 * elements whose deadlines lie far ahead are dropped by a compaction when
 * the heap has doubled since the last one (each element is checked against
 * the index: O(heap) once per doubling, amortised O(1) per put).  Keying by
 * hash, not slot, keeps the heap valid across growth handoffs (slots move,
 * hashes and deadlines do not).  The heap is built on the first call of
 * shmreg_writer_expiry_fd() or shmreg_writer_expire(), by one scan of the
 * slots, which is also how a registry taken over from an earlier writer
 * (adopted in place or copied after a crash) gets its deadlines: they are
 * absolute, stored in each slot, so they survive the restart.  A host that
 * never sweeps pays nothing (no heap, no pushes).
 *
 * When to sweep.  A timerfd on CLOCK_REALTIME, armed (TFD_TIMER_ABSTIME)
 * at the heap's smallest deadline: readable when something is due.  An
 * absolute realtime timer follows clock steps, as the deadlines do.  Each
 * shmreg_writer_expire() call drains it and re-arms it; when it stopped at
 * its bound with more due, the deadline it arms lies in the past, so the
 * descriptor is readable again at once and the host's loop comes back after
 * serving whatever else is ready: chunks interleave with requests.
 *
 * Bounds.  One call removes at most @max entries plus the subtree of the
 * last one (a subtree goes in one commit, whatever its size), and pops at
 * most 2 * @max + 64 heap elements (stale ones included), each O(log n)
 * plus one probe path.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "clock.h"
#include "commit.h"
#include "expire.h"
#include "hash.h"
#include "internal.h"
#include "lookup.h"

#define COMPACT_MIN 4096u /* no compaction below this many stale */

/* ---- the heap ---- */

static void sift_up(struct expiry_ent *h, size_t i)
{
	struct expiry_ent e = h[i];

	while (i > 0 && h[(i - 1) / 2].at > e.at) {
		h[i] = h[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h[i] = e;
}

static void sift_down(struct expiry_ent *h, size_t n, size_t i)
{
	struct expiry_ent e = h[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= n)
			break;
		if (c + 1 < n && h[c + 1].at < h[c].at)
			c++;
		if (h[c].at >= e.at)
			break;
		h[i] = h[c];
		i = c;
	}
	h[i] = e;
}

static int heap_push(struct expiry *x, int64_t at, uint64_t hash)
{
	if (x->n == x->cap) {
		size_t nc = x->cap ? 2 * x->cap : 256;
		void *p = realloc(x->heap, nc * sizeof(*x->heap));

		if (!p)
			return -ENOMEM;
		x->heap = p;
		x->cap = nc;
	}
	x->heap[x->n] = (struct expiry_ent){ .at = at, .hash = hash };
	sift_up(x->heap, x->n++);
	return 0;
}

static struct expiry_ent heap_pop(struct expiry *x)
{
	struct expiry_ent top = x->heap[0];

	x->heap[0] = x->heap[--x->n];
	if (x->n)
		sift_down(x->heap, x->n, 0);
	return top;
}

static void heapify(struct expiry *x)
{
	for (size_t i = x->n / 2; i-- > 0;)
		sift_down(x->heap, x->n, i);
}

/* ---- the timer ---- */

/* Arm the timer at the smallest deadline (disarm when none).  @force:
 * the timer may have fired since it was armed (a one-shot absolute timer
 * is then disarmed), so set it even when the deadline is the same. */
static void arm(struct expiry *x, bool force)
{
	int64_t at = x->n ? x->heap[0].at : 0;
	struct itimerspec its = { 0 };

	if (x->tfd < 0 || (at == x->armed && !force))
		return;
	/* a put's deadline is now + ttl > 0, but an adopted segment's may be
	 * anything: one at or before the epoch is due at once (1 ns; 0
	 * would disarm, a negative value is refused) */
	if (x->n && at <= 0)
		at = 1;
	its.it_value.tv_sec = at / 1000000000;
	its.it_value.tv_nsec = at % 1000000000;
	/* fails only for a bad descriptor or value, neither possible here */
	(void)timerfd_settime(x->tfd, TFD_TIMER_ABSTIME, &its, NULL);
	x->armed = at;
}

static void drain(struct expiry *x)
{
	uint64_t fired;

	/* nonblocking: EAGAIN when it has not fired */
	if (x->tfd >= 0)
		(void)!read(x->tfd, &fired, sizeof(fired));
}

/* ---- building and compacting ---- */

/* Is the element @e still some entry's deadline? */
static bool live(struct shmreg_writer *w, const struct expiry_ent *e)
{
	return index_find_deadline(w, e->hash, e->at, e->at) >= 0;
}

static void compact(struct shmreg_writer *w)
{
	struct expiry *x = &w->expiry;
	size_t keep = 0;

	for (size_t i = 0; i < x->n; i++)
		if (live(w, &x->heap[i]))
			x->heap[keep++] = x->heap[i];
	x->n = keep;
	heapify(x);
	x->compacted = keep;
}

/* The deadlines of every entry in the segment: one scan of the slots. */
static int activate(struct shmreg_writer *w)
{
	struct expiry *x = &w->expiry;
	const struct shm_map *m = &w->map;

	if (x->active)
		return 0;
	x->n = 0;
	for (uint64_t i = 0; i < m->g.index_cap; i++) {
		const struct shm_slot *s = shm_slot_at(m, i);

		if (s->klen == 0 || s->expires_at_ns == 0)
			continue;
		x->n++; /* counted first: one allocation */
	}
	x->cap = x->n > 256 ? x->n : 256;
	x->heap = malloc(x->cap * sizeof(*x->heap));
	if (!x->heap) {
		x->cap = x->n = 0;
		return -ENOMEM;
	}
	x->n = 0;
	for (uint64_t i = 0; i < m->g.index_cap && x->n < x->cap; i++) {
		const struct shm_slot *s = shm_slot_at(m, i);

		if (s->klen == 0 || s->expires_at_ns == 0)
			continue;
		x->heap[x->n++] = (struct expiry_ent){
			.at = s->expires_at_ns, .hash = slot_hash(s) };
	}
	heapify(x);
	x->compacted = x->n;
	x->active = true;
	return 0;
}

void expiry_note(struct shmreg_writer *w, int64_t at, uint64_t hash)
{
	struct expiry *x = &w->expiry;

	if (!x->active)
		return;
	if (x->n >= 2 * x->compacted + COMPACT_MIN)
		compact(w);
	if (heap_push(x, at, hash) < 0) {
		/* out of memory: the entry is still invisible at its
		 * deadline; it is swept once the heap is rebuilt (the
		 * next call of shmreg_writer_expire after a failed push
		 * rebuilds it) */
		x->active = false;
		free(x->heap);
		x->heap = NULL;
		x->n = x->cap = 0;
		return;
	}
	if (x->armed == 0 || at < x->armed)
		arm(x, false);
}

void expiry_free(struct shmreg_writer *w)
{
	struct expiry *x = &w->expiry;

	free(x->heap);
	if (x->tfd >= 0)
		close(x->tfd);
	memset(x, 0, sizeof(*x));
	x->tfd = -1;
}

/* ---- removal ---- */

/* Remove every entry of key hash @hash due at @now (more than one only
 * when two keys share an XXH3-64).  Returns how many went, subtrees
 * included. */
static int64_t expire_hash(struct shmreg_writer *w, uint64_t hash, int64_t now)
{
	uint8_t key[SHMREG_KEY_MAX];
	int64_t total = 0;

	/* each round removes an entry of the hash, or ends the loop */
	for (;;) {
		int64_t at = index_find_deadline(w, hash, INT64_MIN, now), n;
		const struct shm_slot *s;
		const uint8_t *k;
		size_t klen;

		if (at < 0)
			return total;
		s = shm_slot_at(&w->map, (uint64_t)at);
		k = index_slot_key(&w->map, s);
		klen = s->klen;
		if (!k || klen > SHMREG_KEY_MAX)
			return total; /* an adopted slot failing its bounds */
		memcpy(key, k, klen);
		n = tree_remove_entry(w, key, klen);
		if (n <= 0)
			return total;
		total += n;
	}
}

/* ---- the API ---- */

SHMREG_EXPORT int shmreg_writer_expiry_fd(shmreg_writer_t *w)
{
	struct expiry *x;
	int rc;

	if (!w)
		return -EINVAL;
	x = &w->expiry;
	if (x->tfd >= 0)
		return x->tfd;
	rc = activate(w);
	if (rc < 0)
		return rc;
	x->tfd = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC);
	if (x->tfd < 0)
		return -errno;
	arm(x, true);
	return x->tfd;
}

SHMREG_EXPORT int64_t shmreg_writer_expire(shmreg_writer_t *w, unsigned max)
{
	struct expiry *x;
	int64_t removed = 0, now;
	size_t pops = 0, budget = 2 * (size_t)max + 64;
	bool open = false;
	int rc;

	if (!w)
		return -EINVAL;
	x = &w->expiry;
	rc = activate(w);
	if (rc < 0)
		return rc;
	drain(x);
	now = shm_realtime_ns();
	while (removed < max && x->n && x->heap[0].at <= now &&
	       pops++ < budget) {
		struct expiry_ent e = heap_pop(x);

		/* the chunk is one commit: snapshot readers see it whole */
		if (!open &&
		    index_find_deadline(w, e.hash, INT64_MIN, now) >= 0) {
			commit_begin(w);
			open = true;
		}
		removed += expire_hash(w, e.hash, now);
	}
	if (open)
		commit_end(w, 0);
	arm(x, true);
	return removed;
}
