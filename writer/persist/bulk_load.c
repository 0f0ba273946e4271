/* SPDX-License-Identifier: MIT */
/*
 * bulk_load.c - recovery's insert of a snapshot's plain roots: a slot
 * written straight into the private segment, no commit around it.
 *
 * Why it is safe.  The segment is recovery's own (NAME.recover, created
 * empty by ws_begin in recover.c, which no reader opens): nothing reads it
 * until publish_private() in recover.c renames it into place after a
 * release fence, so a slot needs no seqcount, the commit no change-ring
 * record (the ring is declared to start after the recovered revision),
 * no wake-up and no log record (the entry comes from the log's files).
 *
 * What it keeps exactly as a put would: the slot image (entry_build: tag,
 * hash_hi, inline data or an arena object), mod_rev, create_rev and the
 * deadline from the record, the index invariant (the first empty slot on
 * the probe path from the home, within SHM_PROBE_LIMIT), the load limit,
 * the writer's counters (entries, bytes_used, arena_live through
 * entry_build; the header's copies are stored by the empty commit of
 * publish_private) and the expiry queue.  Never an owner: owner-bound
 * entries are not logged.
 *
 * Why it is fast.  A version 2 snapshot lists roots by hash, so their homes
 * ascend: the index is written front to back, each page touched once and
 * in order (the hardware prefetcher follows), where a put per entry in
 * any other order is a cache miss and a TLB miss each.
 *
 * One key, one slot.  The caller passes only roots whose key no earlier
 * record has (pass one of replay.c checked the strict order); in case two
 * keys share a hash, a slot of the same hash on the probe path sends the
 * record to the general put path, which compares keys.  The probe reads
 * those slots anyway to find the empty one, so the check is free.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"
#include "persist.h"

int pbulk_put(struct shmreg_writer *w, const struct prec *r, uint64_t hash)
{
	struct shm_map *m = &w->map;
	uint64_t i = shm_home(&m->g, hash);
	uint64_t bound = m->g.index_cap <= SHM_PROBE_LIMIT ? m->g.index_cap
							   : SHM_PROBE_LIMIT + 1;
	struct shm_slot ns;
	int rc;

	if ((w->entries + 1) * SHM_LOAD_DEN > m->g.index_cap * SHM_LOAD_NUM)
		return 1; /* growth: the put path hands off */
	for (uint64_t d = 0;; d++, i = shm_next(&m->g, i)) {
		const struct shm_slot *s;

		if (d == bound)
			return 1; /* the put path refuses it (-ENOSPC) */
		s = shm_slot_at(m, i);
		if (!s->klen)
			break;
		if (slot_hash(s) == hash)
			return 1;
	}
	memset(&ns, 0, offsetof(struct shm_slot, data));
	ns.mod_rev = r->rev;
	ns.create_rev = r->create_rev;
	ns.expires_at_ns = r->expires_at;
	rc = entry_build(w, &ns, r->key, r->klen, r->val, r->vlen, hash);
	if (rc == -ENOSPC)
		return 1; /* the arena is full: the put path grows it */
	if (rc < 0)
		return rc;
	/* the slot's seqcount (its first word) stays 0: even, stable */
	memcpy((uint8_t *)shm_slot_at(m, i) + 4, (const uint8_t *)&ns + 4,
	       SHM_SLOT_SIZE - 4);
	w->entries++;
	w->bytes_used += r->klen + r->vlen;
	if (r->expires_at)
		expiry_note(w, r->expires_at, hash);
	return 0;
}
