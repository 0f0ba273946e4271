/* SPDX-License-Identifier: MIT */
/*
 * revision.c - commit at a revision the caller gives: shmregd's etcd mirror
 * (writer/daemon/mirror/) makes the local revision of every change equal to
 * etcd's mod_revision, so revisions mean the same on every host.
 *
 * How it works.  The change ring holds one record per revision, at index
 * rev mod ring_events, and a watcher reads every revision in turn.  etcd's
 * revisions are dense over the whole cluster, but a mirror sees only its
 * prefix's, so two problems arise, and each gets a record kind of its own
 * (shm/layout.h):
 *  - gaps (revisions of other prefixes): shmreg_writer_mirror_begin()
 *    commits SHM_OP_NOP records for them first, so the ring stays dense
 *    and watchers skip them.  Only the last ring_events of a gap are
 *    written: older ones would be overwritten by the gap itself.
 *  - several changes at one revision (an etcd txn, a range delete, a lease
 *    revoked with several keys, a resync): each change is committed as the
 *    same revision (hold_rev, see writer_next_rev()) and the record says
 *    SHM_OP_MANY: a watcher cannot stream them key by key and resyncs.
 * The slots' own mod_rev/create_rev may be set apart from the commit
 * revision (a resync loads entries of older revisions in one commit).
 */
#include <errno.h>

#include "commit.h"
#include "internal.h"
#include "ring.h"
#include "shmreg_mirror.h"

/* Commit NOP records for w->revision + 1 .. @to (> w->revision). */
static void skip_to(struct shmreg_writer *w, uint64_t to)
{
	static const uint8_t nokey; /* a NOP has no key; memcpy wants one */
	uint64_t from = w->revision + 1;
	uint64_t n = w->map.g.ring_events;

	/* bounded by ring_events records: older ones would be overwritten */
	if (to - from >= n)
		from = to - n + 1;
	commit_begin(w);
	for (uint64_t r = from; r <= to; r++)
		ring_append(w, r, SHM_OP_NOP, &nokey, 0, 0);
	commit_end(w, to);
}

int shmreg_writer_mirror_begin(shmreg_writer_t *w, uint64_t rev,
			       bool many)
{
	if (!w || w->hold_rev || w->slot_mod_rev)
		return -EINVAL;
	if (rev <= w->revision || rev > WRITER_REV_MAX)
		return -ERANGE;
	if (rev - 1 > w->revision)
		skip_to(w, rev - 1);
	if (many)
		w->hold_rev = rev;
	return 0;
}

int shmreg_writer_mirror_slot(shmreg_writer_t *w,
			       uint64_t mod_rev,
			       uint64_t create_rev)
{
	if (!w || mod_rev > WRITER_REV_MAX || create_rev > mod_rev ||
	    (mod_rev && !create_rev))
		return -EINVAL;
	w->slot_mod_rev = mod_rev;
	w->slot_create_rev = create_rev;
	return 0;
}

int shmreg_writer_mirror_end(shmreg_writer_t *w, uint64_t rev)
{
	if (!w)
		return -EINVAL;
	w->hold_rev = 0;
	w->slot_mod_rev = w->slot_create_rev = 0;
	/* no change was committed at @rev (a delete of an absent key, an
	 * event filtered out): the revision still passes */
	if (rev > w->revision && rev <= WRITER_REV_MAX)
		skip_to(w, rev);
	return rev == w->revision ? 0 : -ERANGE;
}
