/* SPDX-License-Identifier: MIT */
/* watch.c - the change stream: every put and delete, in revision order. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "layout.h"
#include "ring_read.h"
#include "validate.h"
#include "waitfile.h"

/*
 * How it works.
 *
 * The writer appends one record per committed change to the change ring
 * (revision, op, key) and then stores the revision (release).  A watch is
 * just a cursor, the next revision it owes its caller: shmreg_watch_next()
 * loads the revision (acquire, so every record up to it is complete), reads
 * records from the cursor up to it, skips those whose key lacks the prefix,
 * and returns the first that has it.  Nothing is registered anywhere while
 * a watch is not blocked, so an idle watch costs the writer nothing.
 *
 * When the cursor has caught up, the watch waits on the wait file's global
 * slot, which the writer bumps after any commit while someone waits there
 * (writer/notify.c), and re-reads.  A close, a death or a handoff ends or
 * redirects the wait as for shmreg_await (waitfile.c), but only once every
 * event committed before it was delivered.
 *
 * Handoff.  The new segment starts with a copy of the old ring and
 * revisions go on from the old ones, so after reader_map() follows, the
 * cursor reads on in the new segment as if nothing happened; if the new
 * ring no longer holds the cursor's revision, that is -ERANGE like any
 * other fall-behind.  So is a registry started afresh under the watch
 * (watch_reset()).
 *
 * Falling behind.  The ring keeps the last ring_events records.  A record
 * the writer has overwritten (or is overwriting: it reads as revision 0
 * while being written) is -ERANGE, and stays so for this watch: events
 * were lost and only a resync (list from a fresh revision, then a new
 * watch from it) can make the caller's view whole again.
 */

struct shmreg_watch {
	shmreg_t *r;
	uint64_t next;             /* next revision to read */
	const struct shm_map *map; /* the segment last read (the handle keeps
	                            * every map it used until shmreg_close) */
	uint64_t gen;              /* and its generation */
	int err;                   /* sticky error (-ERANGE), 0 */
	size_t plen;
	shmreg_event_t *ev;        /* where the current call wants its event */
	uint8_t key[SHMREG_KEY_MAX];
	uint8_t prefix[];          /* plen bytes */
};

SHMREG_EXPORT
int shmreg_watch_open(shmreg_t *r, const void *prefix, size_t plen,
		      uint64_t start_rev, shmreg_watch_t **out)
{
	struct shmreg_watch *w;
	struct shm_map *m;
	uint64_t cur;
	int rc;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!r || start_rev == UINT64_MAX)
		return -EINVAL;
	rc = shm_check_prefix(prefix, plen);
	if (rc < 0)
		return rc;
	m = reader_map(r);
	/* pairs with the writer's release store of the revision */
	cur = atomic_load_explicit(&m->hdr->revision, memory_order_acquire);
	if (start_rev < cur && start_rev + 1 < shm_ring_oldest(m, cur))
		return -ERANGE;
	w = calloc(1, sizeof(*w) + plen);
	if (!w)
		return -ENOMEM;
	w->r = r;
	w->next = start_rev + 1;
	w->map = m;
	w->gen = m->generation;
	w->plen = plen;
	if (plen)
		memcpy(w->prefix, prefix, plen);
	*out = w;
	return 0;
}

/*
 * The watch moved to another segment (a handoff was followed).  A handoff
 * builds the new segment from the old one, ring included, and gives it the
 * next generation, so revisions go on.  A segment of a generation not
 * above the last one read was not built from it: the registry was started
 * afresh (a writer opened it with SHMREG_WRITER_TRUNCATE) and its revisions
 * began again; the stream's history is broken, which is -ERANGE as for any
 * events the watch can no longer get.  Returns true (with *@res) then.
 */
static bool watch_reset(struct shmreg_watch *w, const struct shm_map *m,
			ssize_t *res)
{
	if (m->generation > w->gen) {
		w->map = m;
		w->gen = m->generation;
		return false;
	}
	w->err = -ERANGE;
	*res = -ERANGE;
	return true;
}

static bool watch_check(shmreg_t *r, void *arg, ssize_t *res)
{
	struct shmreg_watch *w = arg;
	struct shm_map *m = reader_map(r), *m2;
	struct shm_ring_event e;
	uint64_t cur;
	int ret;

	/* pairs with the writer's release store of the revision, made after
	 * the ring records up to it were complete */
	cur = atomic_load_explicit(&m->hdr->revision, memory_order_acquire);
	if (m != w->map && watch_reset(w, m, res))
		return true;
	/* Bounded: cur is a snapshot (reloaded only when a handoff changes
	 * the map, once per handoff), so at most cur - next + 1 records; and
	 * when that exceeds the ring's size the first read is -ERANGE. */
	while (w->next <= cur) {
		ret = shm_ring_read(m, w->next, &e, w->key);
		if (ret == -EAGAIN) {
			/* The record of a revision <= cur was complete when
			 * cur was stored: now it is being overwritten (we
			 * fell behind), unless another thread of ours
			 * followed a handoff and our old mapping reads as
			 * zeros.  Tell the two apart by the current map. */
			m2 = reader_map(r);
			if (m2 != m) {
				m = m2;
				if (watch_reset(w, m, res))
					return true;
				cur = atomic_load_explicit(
					&m->hdr->revision,
					memory_order_acquire);
				continue;
			}
			ret = -ERANGE;
		}
		if (ret == -ERANGE) {
			w->err = -ERANGE;
			*res = -ERANGE;
			return true;
		}
		if (ret < 0) {
			*res = ret;
			return true;
		}
		w->next++;
		/* an etcd mirror's revisions (layout.h): one that changed
		 * nothing here is skipped; one that changed several keys at
		 * once cannot be streamed key by key, so the watcher must
		 * resync as after falling behind */
		if (e.op == SHM_OP_NOP)
			continue;
		if (e.op == SHM_OP_MANY) {
			w->err = -ERANGE;
			*res = -ERANGE;
			return true;
		}
		if (e.klen < w->plen || memcmp(w->key, w->prefix, w->plen))
			continue;
		w->ev->rev = e.rev;
		w->ev->type = e.op == SHM_OP_DEL ? SHMREG_EVENT_DEL :
						   SHMREG_EVENT_PUT;
		w->ev->key = w->key;
		w->ev->klen = e.klen;
		*res = 0;
		return true;
	}
	return false;
}

SHMREG_EXPORT
int shmreg_watch_next(shmreg_watch_t *w, shmreg_event_t *ev,
		      int64_t timeout_ns)
{
	if (!w || !ev)
		return -EINVAL;
	if (w->err)
		return w->err;
	w->ev = ev;
	return (int)wait_until(w->r, NULL, 0, timeout_ns, watch_check, w);
}

SHMREG_EXPORT
void shmreg_watch_close(shmreg_watch_t *w)
{
	free(w);
}
