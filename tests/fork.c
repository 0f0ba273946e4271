/* SPDX-License-Identifier: MIT */
/* Description: a reader handle opened in a parent keeps working in forked
 * children (and a grandchild), also across growth handoffs that happen
 * after the fork, while the children read, and in a child forked after the
 * handoff from a parent that has not followed it yet. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmreg.h"
#include "shmreg_writer.h"
#include "common/tc.h"

#define NAME      "fork"
#define NFIRST    100u       /* keys put before the fork */
#define NKEYS     5000u      /* after the growth (initial index: 1024) */
#define NCHILDREN 4

struct shared {
	_Atomic int grown;       /* writer -> children: all NKEYS are in */
	uint64_t gen_first, gen_last, rev_last;
};

static struct shared *sh;
static shmreg_t *r;          /* opened by the parent before any fork */

static int key_of(char *buf, uint32_t i)
{
	return snprintf(buf, 16, "fork:%04u", i);
}

static size_t size_of(uint32_t i)
{
	return i % 3 == 0 ? 500 : 20;   /* out of line and inline */
}

static void check_key(uint32_t i)
{
	static uint8_t buf[1024];
	char key[16];
	int klen = key_of(key, i);
	ssize_t n = shmreg_get(r, key, (size_t)klen, buf, sizeof(buf), NULL);

	TC_CHECK(n == (ssize_t)size_of(i), "get %s: %zd (%s)", key, n,
		 n < 0 ? strerror((int)-n) : "wrong length");
	TC_CHECK(tv_check(buf, (size_t)n, key, (size_t)klen, NULL) == 0,
		 "%s: wrong value", key);
}

static void check_all(uint32_t n)
{
	shmreg_stats_t st;

	for (uint32_t i = 0; i < n; i++)
		check_key(i);
	TC_EQ(shmreg_stats(r, &st), 0, "stats");
	TC_EQ(st.entries, n, "stats.entries");
}

static int writer_main(struct tc_child *c, void *arg)
{
	shmreg_writer_opts_t o = { .flags = SHMREG_WRITER_TRUNCATE,
				   .initial_entries = 1024 };
	static uint8_t val[1024];
	shmreg_writer_t *w;
	shmreg_stats_t st;
	uint64_t rev0;
	char key[16];
	int ret;

	(void)arg;
	ret = shmreg_writer_open(NAME, &o, &w);
	TC_CHECK(ret == 0, "writer_open: %s", strerror(-ret));
	rev0 = shmreg_writer_revision(w);
	for (uint32_t i = 0; i < NKEYS; i++) {
		int klen = key_of(key, i);
		int64_t rev;

		if (i == NFIRST) {
			TC_EQ(shmreg_stats(shmreg_writer_reader(w), &st), 0,
			      "stats");
			sh->gen_first = st.generation;
			tc_post(c, 'o');
			TC_EQ(tc_wait_parent(c, 20000), 'g', "go");
		}
		tv_build(val, size_of(i), key, (size_t)klen, i);
		rev = shmreg_writer_put(w, key, (size_t)klen, val, size_of(i),
					NULL);
		TC_EQ(rev, rev0 + i + 1, "put revision");
	}
	TC_EQ(shmreg_stats(shmreg_writer_reader(w), &st), 0, "stats");
	sh->gen_last = st.generation;
	sh->rev_last = st.revision;
	atomic_store_explicit(&sh->grown, 1, memory_order_release);
	tc_post(c, 'd');
	TC_EQ(tc_wait_parent(c, 30000), 'q', "quit");
	shmreg_writer_close(w);
	return 0;
}

static int grandchild_main(struct tc_child *c, void *arg)
{
	(void)c, (void)arg;
	check_all(NKEYS);
	return 0;
}

/* A child of the parent's pre-fork handle: reads the first keys, then keeps
 * reading while the writer grows the registry, then checks everything. */
static int child_main(struct tc_child *c, void *arg)
{
	uint64_t rs = tc_seed() ^ (uint64_t)(intptr_t)arg, reads = 0;
	shmreg_stats_t st;

	check_all(NFIRST);
	TC_EQ(shmreg_stats(r, &st), 0, "stats");
	TC_EQ(st.generation, sh->gen_first, "generation before the growth");
	tc_post(c, '1');
	TC_EQ(tc_wait_parent(c, 20000), '2', "phase 2");
	/* acquire: pairs with the writer's release store after its last put */
	while (!atomic_load_explicit(&sh->grown, memory_order_acquire)) {
		check_key((uint32_t)tc_range(&rs, 0, NFIRST - 1));
		reads++;
	}
	check_all(NKEYS);
	TC_EQ(shmreg_stats(r, &st), 0, "stats");
	TC_EQ(st.generation, sh->gen_last, "followed the growth");
	TC_EQ(st.revision, sh->rev_last, "revision");
	TC_EQ(shmreg_revision(r), sh->rev_last, "shmreg_revision");
	if ((intptr_t)arg == 0) {
		/* a fork of a fork, after the child followed the handoff */
		struct tc_child *g = tc_spawn("grandchild", grandchild_main,
					      NULL);

		tc_child_join(g, 20000);
		tc_child_free(g);
	}
	tc_log("%llu reads during the growth, then all %u keys",
	       (unsigned long long)reads, NKEYS);
	return 0;
}

/* Forked after the handoff from a parent whose handle still maps the old
 * segment: the child follows on its own. */
static int late_child_main(struct tc_child *c, void *arg)
{
	shmreg_stats_t st;

	(void)c, (void)arg;
	check_all(NKEYS);
	TC_EQ(shmreg_stats(r, &st), 0, "stats");
	TC_EQ(st.generation, sh->gen_last, "late child followed");
	return 0;
}

int main(void)
{
	struct tc_child *wr, *kids[NCHILDREN], *late;
	shmreg_stats_t st;
	int ret;

	tc_init("fork", 55);
	tc_dir();
	tc_seed();
	sh = tc_shared(sizeof(*sh));

	wr = tc_spawn("writer", writer_main, NULL);
	tc_expect(wr, 'o', 10000);
	ret = shmreg_open(NAME, 0, &r);
	TC_CHECK(ret == 0, "shmreg_open: %s", strerror(-ret));
	check_all(NFIRST);

	for (intptr_t i = 0; i < NCHILDREN; i++) {
		char name[16];

		snprintf(name, sizeof(name), "child%d", (int)i + 1);
		kids[i] = tc_spawn(name, child_main, (void *)i);
	}
	for (int i = 0; i < NCHILDREN; i++)
		tc_expect(kids[i], '1', 10000);
	for (int i = 0; i < NCHILDREN; i++)
		tc_tell(kids[i], '2');
	tc_tell(wr, 'g');
	tc_expect(wr, 'd', 30000);
	TC_CHECK(sh->gen_last > sh->gen_first, "the writer did not grow the "
		 "registry (generation %llu)",
		 (unsigned long long)sh->gen_last);

	/* the parent has not called into its handle since the growth */
	late = tc_spawn("late", late_child_main, NULL);
	tc_child_join(late, 20000);
	tc_child_free(late);
	for (int i = 0; i < NCHILDREN; i++) {
		tc_child_join(kids[i], 30000);
		tc_child_free(kids[i]);
	}

	/* the children following did not disturb the parent's handle */
	check_all(NKEYS);
	TC_EQ(shmreg_stats(r, &st), 0, "stats");
	TC_EQ(st.generation, sh->gen_last, "parent followed");
	tc_tell(wr, 'q');
	tc_child_join(wr, 10000);
	tc_child_free(wr);
	TC_EQ(shmreg_stats(r, &st), 0, "stats");
	TC_EQ(st.state, SHMREG_STATE_CLOSED, "state after close");
	check_all(NKEYS);
	shmreg_close(r);
	tc_log("pass");
	return 0;
}
