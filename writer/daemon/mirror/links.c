/* SPDX-License-Identifier: MIT */
/* links.c - the child -> parent table of a mirror (links.h): chained
 * hashing on the child key, doubled when it holds more links than
 * chains. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "links.h"

static struct mlink **slot(const struct mlinks *t, const void *child,
			   size_t clen, uint64_t h)
{
	struct mlink **pp = &t->tab[h & t->mask];

	/* bounded by the chain: about one link per chain */
	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->hash == h && (*pp)->clen == clen &&
		    !memcmp((*pp)->key, child, clen))
			break;
	return pp;
}

const struct mlink *links_get(const struct mlinks *t, const void *child,
			      size_t clen)
{
	if (!t->tab)
		return NULL;
	return *slot(t, child, clen, shm_hash(child, clen));
}

static int grow(struct mlinks *t)
{
	size_t n = t->tab ? 2 * (t->mask + 1) : 64;
	struct mlink **tab = calloc(n, sizeof(*tab));

	if (!tab)
		return -ENOMEM;
	for (size_t i = 0; t->tab && i <= t->mask; i++) {
		for (struct mlink *l = t->tab[i], *next; l; l = next) {
			next = l->next;
			l->next = tab[l->hash & (n - 1)];
			tab[l->hash & (n - 1)] = l;
		}
	}
	free(t->tab);
	t->tab = tab;
	t->mask = n - 1;
	return 0;
}

int links_set(struct mlinks *t, const void *child, size_t clen,
	      const void *parent, size_t plen, int64_t rev)
{
	uint64_t h = shm_hash(child, clen);
	struct mlink **pp, *l;

	if ((!t->tab || t->n > t->mask) && grow(t) < 0)
		return -ENOMEM;
	l = malloc(sizeof(*l) + clen + plen);
	if (!l)
		return -ENOMEM;
	l->hash = h;
	l->rev = rev;
	l->clen = (uint32_t)clen;
	l->plen = (uint32_t)plen;
	memcpy(l->key, child, clen);
	memcpy(l->key + clen, parent, plen);
	pp = slot(t, child, clen, h);
	if (*pp) {
		l->next = (*pp)->next;
		free(*pp);
	} else {
		l->next = NULL;
		t->n++;
	}
	*pp = l;
	return 0;
}

void links_del(struct mlinks *t, const void *child, size_t clen)
{
	struct mlink **pp, *l;

	if (!t->tab)
		return;
	pp = slot(t, child, clen, shm_hash(child, clen));
	l = *pp;
	if (l) {
		*pp = l->next;
		free(l);
		t->n--;
	}
}

void links_clear(struct mlinks *t)
{
	for (size_t i = 0; t->tab && i <= t->mask; i++) {
		for (struct mlink *l = t->tab[i], *next; l; l = next) {
			next = l->next;
			free(l);
		}
	}
	free(t->tab);
	t->tab = NULL;
	t->mask = 0;
	t->n = 0;
}
