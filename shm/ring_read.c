/* SPDX-License-Identifier: MIT */
/*
 * ring_read.c - lock-free read of one change-ring record and its key.
 *
 * A record's rev field is its seqcount: the writer stores 0 (relaxed), a
 * release fence, the fields, then rev (release); see writer/ring.c.  The key
 * bytes live in a separate byte ring; before overwriting any of them the
 * writer advances ring_key_reserved past them (relaxed store, release
 * fence), so a reader that copied the key and then (after an acquire fence)
 * finds ring_key_reserved no more than ring_key_bytes past the key's end
 * knows the bytes were not being overwritten during its copy.
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
	uint64_t v0, v1, pos, reserved, kb = m->g.ring_key_bytes;
	uint32_t op, klen;
	uint64_t hash;

	if (rev == 0)
		return -EINVAL;
	/* pairs with the release store of rev in ring_append() */
	v0 = atomic_load_explicit(&r->rev, memory_order_acquire);
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
	/* pairs with the release fence in ring_append() */
	shm_fence_acquire();
	v1 = atomic_load_explicit(&r->rev, SHM_RECHECK_ORDER);
	if (v1 != rev)
		return -ERANGE;
	if ((op != SHM_OP_PUT && op != SHM_OP_DEL) || klen == 0 ||
	    klen > SHMREG_KEY_MAX || (pos & (kb - 1)) + klen > kb)
		return -EPROTO;
	shm_copy_wide(key, m->base + m->g.ring_key_off + (pos & (kb - 1)), klen);
	/* pairs with the release fence after the reservation store in
	 * ring_append(): bytes reserved before our copy ended are seen */
	shm_fence_acquire();
	reserved = atomic_load_explicit(&h->ring_key_reserved,
					SHM_RECHECK_ORDER);
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
