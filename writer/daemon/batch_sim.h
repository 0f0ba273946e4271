/* SPDX-License-Identifier: MIT */
/*
 * batch_sim.h - the registry as a BATCH would leave it, without changing
 * it: the dry run that lets shmregd apply a batch all or nothing.
 *
 * The state is the writer's segment (read through its own reader) under
 * an overlay of the keys the batch's earlier operations touched.  batch.c
 * asks each operation's question of it (does the key exist, at which
 * mod_rev, has it children, is the parent below the key) and records the
 * operation's effect, exactly as the writer would answer and change.
 */
#ifndef SHMREGD_BATCH_SIM_H
#define SHMREGD_BATCH_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shmreg.h"

struct sim;

/* A simulation over the registry @rd whose revision is @rev.  NULL on
 * -ENOMEM. */
struct sim *sim_new(shmreg_t *rd, uint64_t rev);
void sim_free(struct sim *s);

/* Does @key exist in the simulated state?  1 (and its mod_rev), 0, or
 * -errno (-ENOMEM, or the reader's error). */
int sim_exists(struct sim *s, const void *key, size_t klen,
	       uint64_t *mod_rev);
/* Has @key children?  1, 0 or -errno. */
int sim_has_children(struct sim *s, const void *key, size_t klen);
/* Is @node @key itself or one of its descendants?  1, 0 or -errno. */
int sim_below(struct sim *s, const void *key, size_t klen, const void *node,
	      size_t nlen);

/* The effects.  The keys (and @parent) must stay valid as long as @s:
 * they point into the request.  Each returns 0 or -ENOMEM. */
/* A put: @key exists with a new revision, under @parent (NULL: a root). */
int sim_put(struct sim *s, const void *key, size_t klen, const void *parent,
	    size_t plen);
/* An attribute update: a new revision, the parent kept. */
int sim_touch(struct sim *s, const void *key, size_t klen);
/* A delete of an entry without children. */
int sim_del(struct sim *s, const void *key, size_t klen);
/* A tree delete: @key and every descendant go, one revision each.
 * Returns how many (>= 1) or -errno. */
int64_t sim_del_tree(struct sim *s, const void *key, size_t klen);

/* The revision the operations so far would have brought the registry to. */
uint64_t sim_revision(const struct sim *s);

#endif /* SHMREGD_BATCH_SIM_H */
