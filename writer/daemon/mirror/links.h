/* SPDX-License-Identifier: MIT */
/*
 * links.h - a mirror's copy of etcd's parent links (docs/multi-host.md):
 * for each child key, the parent its link key in etcd names and the
 * link's mod_revision.  The loop thread's only (no lock): kept from the
 * watch's events and the resync's range, so a write knows which link key
 * it replaces or deletes, and an entry put again keeps its parent.
 */
#ifndef SHMREGD_MIRROR_LINKS_H
#define SHMREGD_MIRROR_LINKS_H

#include <stddef.h>
#include <stdint.h>

struct mlink {
	struct mlink *next;         /* hash chain */
	uint64_t hash;
	int64_t rev;                /* the link key's mod_revision */
	uint32_t clen, plen;
	uint8_t key[];              /* child, then parent */
};

struct mlinks {
	struct mlink **tab;
	size_t mask;                /* tab has mask + 1 chains */
	size_t n;
};

/* The link of @child, or NULL. */
const struct mlink *links_get(const struct mlinks *t, const void *child,
			      size_t clen);
/* @child's link names @parent, written at @rev.  Returns 0 or -ENOMEM
 * (the table is as before). */
int links_set(struct mlinks *t, const void *child, size_t clen,
	      const void *parent, size_t plen, int64_t rev);
/* Forget @child's link (none: nothing). */
void links_del(struct mlinks *t, const void *child, size_t clen);
/* Forget every link (and free the table). */
void links_clear(struct mlinks *t);

static inline const uint8_t *mlink_parent(const struct mlink *l)
{
	return l->key + l->clen;
}

#endif /* SHMREGD_MIRROR_LINKS_H */
