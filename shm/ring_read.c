/* SPDX-License-Identifier: MIT */
/*
 * ring_read.c - lock-free read of one change-ring record and its key.
 *
 * A record's rev field is its seqcount: the writer stores 0 while it
 * rewrites the record, then the record's revision (seq_rev_write_begin/end
 * in writer/ring.c); the reader checks rev before and after its loads
 * (seq_rev_read_begin/check).  The key bytes live in a separate byte ring;
 * before overwriting any of them the writer advances ring_key_reserved past
 * them (seq_reserve_write), so a reader that copied the key and then finds
 * the mark (seq_reserve_read) no more than ring_key_bytes past the key's
 * end knows the bytes were not being overwritten during its copy.  The
 * ordering argument of both is in shm/seqcount.h.
 */
#include <errno.h>
#include <string.h>

#include "ring_read.h"
#include "seqcount.h"
#include "shmreg.h"

uint64_t shm_ring_oldest(const struct shm_map *m, uint64_t cur)
{
	uint64_t first = atomic_load_explicit(&m->hdr->ring_first_rev,
					      memory_order_relaxed);
	uint64_t oldest = cur >= m->g.ring_events ? cur - m->g.ring_events + 1 : 1;

	return oldest > first ? oldest : first;
}

int shm_ring_read(const struct shm_map *m, uint64_t rev,
		  struct shm_ring_event *ev, void *key)
{
	const struct shm_ring_rec *r = shm_ring_at(m, rev);
	const struct shm_hdr *h = m->hdr;
	uint64_t v0, pos, reserved, kb = m->g.ring_key_bytes;
	uint32_t op, klen;
	uint64_t hash;

	if (rev == 0)
		return -EINVAL;
	v0 = seq_rev_read_begin(&r->rev);
	if (v0 != rev)
		return v0 > rev ? -ERANGE : -EAGAIN;
	op = atomic_load_explicit((const _Atomic uint32_t *)&r->op,
				  SHM_DATA_LOAD_ORDER);
	klen = atomic_load_explicit((const _Atomic uint32_t *)&r->klen,
				    SHM_DATA_LOAD_ORDER);
	pos = atomic_load_explicit((const _Atomic uint64_t *)&r->key_pos,
				   SHM_DATA_LOAD_ORDER);
	hash = atomic_load_explicit((const _Atomic uint64_t *)&r->hash,
				    SHM_DATA_LOAD_ORDER);
	if (!seq_rev_read_check(&r->rev, rev))
		return -ERANGE;
	if (op == SHM_OP_NOP || op == SHM_OP_MANY) {
		/* a mirror's revision without a key of its own (layout.h) */
		if (klen != 0)
			return -EPROTO;
		ev->rev = rev;
		ev->op = op;
		ev->klen = 0;
		ev->hash = hash;
		return 0;
	}
	if ((op != SHM_OP_PUT && op != SHM_OP_DEL) || klen == 0 ||
	    klen > SHMREG_KEY_MAX || (pos & (kb - 1)) + klen > kb)
		return -EPROTO;
	shm_copy_wide(key, m->base + m->g.ring_key_off + (pos & (kb - 1)), klen);
	/* bytes reserved for reuse before our copy ended are seen */
	reserved = seq_reserve_read(&h->ring_key_reserved);
	if (reserved < pos + klen)
		return -EPROTO; /* a key beyond what was ever reserved */
	if (reserved - pos > kb)
		return -ERANGE;
	ev->rev = rev;
	ev->op = op;
	ev->klen = klen;
	ev->hash = hash;
	return 0;
}
