/* SPDX-License-Identifier: MIT */
/*
 * owners.c - which keys each owner process put, so that removing a dead
 * owner's entries costs its own entries, not a scan of the registry.
 *
 * A list may hold keys that the owner no longer owns (deleted since, or put
 * again by someone else); shmreg_writer_del_owner checks each entry's
 * owner_pid before deleting it.  Such stale keys are dropped whenever a
 * list has doubled since it was last compacted, so a long-lived owner that
 * churns keys keeps a list proportional to what it owns (amortised O(1)).
 * A key is added only when a put makes @pid its owner (not on every put
 * by the same owner), so a list never holds one key twice for live entries.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

struct owner_list {
	struct owner_list *next;  /* hash chain */
	pid_t pid;
	size_t len, cap;
	size_t compacted;         /* len after the last compaction */
	int pidfd;                /* watched by shmreg_writer_owner_fd, or
	                           * -1 (reap.c) */
	bool dead;                /* found gone when it was to be watched */
	struct {
		uint8_t *key;
		size_t klen;
	} *keys;
};

static size_t bucket_of(const struct owners *o, pid_t pid)
{
	return ((uint64_t)(uint32_t)pid * UINT64_C(0x9E3779B97F4A7C15)) >> 32 &
	       (o->nbuckets - 1);
}

static struct owner_list **find(struct owners *o, pid_t pid)
{
	struct owner_list **pp = &o->buckets[bucket_of(o, pid)];

	while (*pp && (*pp)->pid != pid)
		pp = &(*pp)->next;
	return pp;
}

static int rehash(struct owners *o)
{
	size_t nb = o->nbuckets ? 2 * o->nbuckets : 64;
	struct owner_list **nbk = calloc(nb, sizeof(*nbk));
	struct owners tmp = { .buckets = nbk, .nbuckets = nb };

	if (!nbk)
		return -ENOMEM;
	for (size_t b = 0; b < o->nbuckets; b++) {
		for (struct owner_list *l = o->buckets[b], *next; l; l = next) {
			size_t nbkt = bucket_of(&tmp, l->pid);

			next = l->next;
			l->next = nbk[nbkt];
			nbk[nbkt] = l;
		}
	}
	free(o->buckets);
	o->buckets = nbk;
	o->nbuckets = nb;
	return 0;
}

/* Drop the keys that @pid no longer owns.  O(len), run when the list has
 * doubled since the last run: amortised O(1) per add. */
static void compact(struct owner_list *l, owners_still_owned_fn owned,
		    void *ctx)
{
	size_t keep = 0;

	for (size_t i = 0; i < l->len; i++) {
		if (owned(ctx, l->pid, l->keys[i].key, l->keys[i].klen))
			l->keys[keep++] = l->keys[i];
		else
			free(l->keys[i].key);
	}
	l->len = keep;
	l->compacted = keep;
}

int owners_add(struct owners *o, pid_t pid, const void *key, size_t klen,
	       owners_still_owned_fn owned, void *ctx)
{
	struct owner_list **pp, *l;
	uint8_t *copy;

	if (o->count >= o->nbuckets && rehash(o) < 0)
		return -ENOMEM;
	pp = find(o, pid);
	l = *pp;
	if (!l) {
		l = calloc(1, sizeof(*l));
		if (!l)
			return -ENOMEM;
		l->pid = pid;
		l->pidfd = -1;
		*pp = l;
		o->count++;
	}
	if (l->len >= 2 * l->compacted + 16)
		compact(l, owned, ctx);
	if (l->len == l->cap) {
		size_t nc = l->cap ? 2 * l->cap : 8;
		void *p = realloc(l->keys, nc * sizeof(*l->keys));

		if (!p)
			return -ENOMEM;
		l->keys = p;
		l->cap = nc;
	}
	copy = malloc(klen);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, key, klen);
	l->keys[l->len].key = copy;
	l->keys[l->len].klen = klen;
	l->len++;
	return 0;
}

struct owner_list *owners_take(struct owners *o, pid_t pid)
{
	struct owner_list **pp, *l;

	if (!o->nbuckets)
		return NULL;
	pp = find(o, pid);
	l = *pp;
	if (l) {
		*pp = l->next;
		l->next = NULL;
		o->count--;
	}
	return l;
}

size_t owner_list_len(const struct owner_list *l)
{
	return l ? l->len : 0;
}

const void *owner_list_key(const struct owner_list *l, size_t i, size_t *klen)
{
	*klen = l->keys[i].klen;
	return l->keys[i].key;
}

int owners_pidfd(struct owners *o, pid_t pid)
{
	struct owner_list *l = o->nbuckets ? *find(o, pid) : NULL;

	return l ? l->pidfd : -1;
}

bool owners_set_pidfd(struct owners *o, pid_t pid, int fd)
{
	struct owner_list *l = o->nbuckets ? *find(o, pid) : NULL;

	if (!l || l->pidfd >= 0)
		return false;
	l->pidfd = fd;
	return true;
}

void owners_mark_dead(struct owners *o, pid_t pid)
{
	struct owner_list *l = o->nbuckets ? *find(o, pid) : NULL;

	if (l)
		l->dead = true;
}

pid_t owners_next_dead(struct owners *o)
{
	for (size_t b = 0; b < o->nbuckets; b++)
		for (struct owner_list *l = o->buckets[b]; l; l = l->next)
			if (l->dead)
				return l->pid;
	return 0;
}

void owners_each(struct owners *o, void (*fn)(void *ctx, pid_t pid),
		 void *ctx)
{
	/* collect first: @fn may change the lists' fields, not the chains */
	for (size_t b = 0; b < o->nbuckets; b++)
		for (struct owner_list *l = o->buckets[b]; l; l = l->next)
			fn(ctx, l->pid);
}

void owner_list_free(struct owner_list *l)
{
	if (!l)
		return;
	/* closing the pidfd also takes it out of the epoll set */
	if (l->pidfd >= 0)
		close(l->pidfd);
	for (size_t i = 0; i < l->len; i++)
		free(l->keys[i].key);
	free(l->keys);
	free(l);
}

void owners_free(struct owners *o)
{
	for (size_t b = 0; b < o->nbuckets; b++) {
		for (struct owner_list *l = o->buckets[b], *next; l; l = next) {
			next = l->next;
			owner_list_free(l);
		}
	}
	free(o->buckets);
	memset(o, 0, sizeof(*o));
}
