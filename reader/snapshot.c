/* SPDX-License-Identifier: MIT */
/*
 * snapshot.c - shmreg_read_begin and shmreg_read_validate: did a group of
 * reads see one committed state?
 *
 * How it works.  Every commit of the writer - one change, or a whole batch
 * (shmreg_writer_batch_begin/end), or the removal of a dead owner's
 * entries - holds the header's commit_seq odd from before its first store
 * to a slot, object, posting array or pair slot until after its last
 * (writer/writer.c commit_begin/commit_end).  So commit_seq is a seqcount
 * over the whole registry, and a group of reads is a read section of it:
 *
 *   token = read_begin    s0 = load(commit_seq, acquire), even; with the
 *                         segment's generation
 *   gets, finds, lists    each validated on its own as always
 *   read_validate         fence(acquire); commit_seq == s0 still, and the
 *                         mapping still the one of that generation
 *
 * By the argument of shm/seqcount.h (the acquire load pairs with the
 * release store of seq_write_end in commit_end, the acquire fence with the
 * release fence of seq_write_begin in commit_begin), when validate passes
 * no store of any commit was read that the state at begin did not already
 * hold: every read saw that one state, a batch all or nothing.  A handoff
 * to a new segment changes the generation, so one between begin and
 * validate is -EAGAIN, whichever segment each read went to.  Reads outside
 * a snapshot are not touched: they cost what they always did.
 *
 * Bounds: read_begin waits out an open commit for at most SHM_SPIN_TRIES +
 * SHM_YIELD_TRIES backoffs, then hands out a token that validate refuses.
 */
#include <errno.h>

#include "internal.h"
#include "lookup.h"
#include "seqcount.h"

/* A token: the generation's low 32 bits, then commit_seq's 32. */
static inline uint64_t token_of(const struct shm_map *m, uint32_t seq)
{
	return (uint64_t)(uint32_t)m->generation << 32 | seq;
}

SHMREG_EXPORT uint64_t shmreg_read_begin(shmreg_t *r)
{
	const struct shm_map *m;
	uint32_t s = 1;

	if (!r)
		return 1; /* odd: validate refuses it */
	m = reader_map(r);
	for (unsigned attempt = 0; attempt < SHM_SPIN_TRIES + SHM_YIELD_TRIES;
	     attempt++) {
		/* pairs with the release store of seq_write_end() in
		 * commit_end() */
		s = seq_read_begin(&m->hdr->commit_seq);
		if (!(s & 1))
			break;
		shm_backoff(attempt);
	}
	return token_of(m, s);
}

SHMREG_EXPORT int shmreg_read_validate(shmreg_t *r, uint64_t token)
{
	const struct shm_map *m;

	if (!r)
		return -EINVAL;
	/* follows a handoff: a new segment has a new generation */
	m = reader_map(r);
	if ((uint32_t)(token >> 32) != (uint32_t)m->generation)
		return -EAGAIN;
	/* pairs with the release fence of seq_write_begin() in
	 * commit_begin(): a read that saw any store of a later commit makes
	 * this re-check see its odd commit_seq or a later value */
	if (seq_read_retry(&m->hdr->commit_seq, (uint32_t)token))
		return -EAGAIN;
	return 0;
}
