/* SPDX-License-Identifier: MIT */
/*
 * stable.c - shmreg_stable_revision: the revision, and whether a commit is
 * being applied, for a cache of values read through one handle (the value
 * cache of lua/resty/shmreg.lua).
 *
 * Why it is enough.  Every change to an entry (put, delete, attributes,
 * expiry removal, an owner's entries, a batch) is made inside a commit of
 * the writer (writer/commit.h): commit_seq is odd from before the
 * commit's first store until after its last, and each change stores its
 * new revision (release) before commit_seq is even again.  So two calls
 * that both find commit_seq even and the same revision saw no change
 * complete between them, and none in progress at either.  A segment
 * handoff copies the entries at their revisions (growth) or goes on from
 * the old revision (takeover, truncation): the revision a handle reads
 * never goes back, so "the same revision" keeps its meaning across one.
 * What no commit marks is expiry: an entry past its deadline is absent at
 * once, before the writer removes it, so a cache must not keep an entry
 * with a deadline on this alone.
 */
#include <errno.h>

#include "internal.h"

SHMREG_EXPORT int shmreg_stable_revision(shmreg_t *r, uint64_t *rev)
{
	const struct shm_map *m;
	uint32_t seq;

	if (!r || !rev)
		return -EINVAL;
	m = reader_map(r); /* follows a handoff, as a get does */
	/*
	 * Pairs with the release store of seq_write_end() in commit_end():
	 * an even value stored there makes the revision that commit stored
	 * before it visible to the load below.  And a commit that began
	 * before a value of it was read (a get's acquire loads of its slot
	 * synchronise with the release fence of seq_write_begin() in
	 * commit_begin()) shows here as odd, or as even with a new revision.
	 */
	seq = atomic_load_explicit(&m->hdr->commit_seq, memory_order_acquire);
	/* pairs with the release store of the revision in commit_end() */
	*rev = atomic_load_explicit(&m->hdr->revision, memory_order_acquire);
	return (seq & 1) ? -EAGAIN : 0;
}
