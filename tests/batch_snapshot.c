/* Description: batch atomicity for snapshot readers: a token moves
 * between 200 keys, one batch per move (its old holder cleared, its new
 * one set), with handoffs to larger segments inside some of the batches;
 * two reader processes count the holders of the token inside
 * shmreg_read_begin/shmreg_read_validate and must count exactly one in
 * every validated snapshot - or, exactly, none of the 200 keys present at
 * all when the snapshot's revision shows the registry as the writer's
 * open made it, before the first batch.  (The readers start before the
 * writer exists, so a snapshot of that empty registry is a correct
 * answer; counting it as a torn batch made this test fail under load,
 * issue 9.) */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmreg.h"
#include "shmreg_writer.h"
#include "common/tc.h"

#define NKEYS    200
#define NREADERS 2
#define MOVES    6000
#define MIN_SNAPS 200 /* validated snapshots per reader, at least */

struct shared {
	_Atomic int stop;
	_Atomic unsigned long snaps[NREADERS], bad[NREADERS], tries[NREADERS];
	_Atomic unsigned long torn[NREADERS]; /* refused, and not one holder:
	                                        * what validation caught */
	_Atomic unsigned long empty[NREADERS]; /* validated, nothing there */
	_Atomic uint64_t empty_rev;            /* highest revision of those */
	_Atomic uint64_t open_rev;             /* the writer's after open,
	                                        * UINT64_MAX until known */
};

static void key_of(unsigned i, char *k)
{
	snprintf(k, 32, "tok/%03u", i);
}

static int reader(struct tc_child *c, void *arg)
{
	struct shared *sh = arg;
	unsigned id = c->name[6] - '0';
	shmreg_t *r = NULL;

	tc_set_role(c->name);
	for (int t = 0; t < 2000 && shmreg_open("batch", 0, &r) < 0; t++)
		tc_wait_parent(c, 5);
	TC_CHECK(r, "open");
	tc_post(c, 'R');
	while (!atomic_load(&sh->stop)) {
		uint64_t tok = shmreg_read_begin(r);
		/* inside the snapshot: the revision of the state it saw */
		uint64_t rev = shmreg_revision(r), seen;
		unsigned holders = 0, absent = 0;

		for (unsigned i = 0; i < NKEYS; i++) {
			char k[32], v[4];
			ssize_t n;

			key_of(i, k);
			n = shmreg_get(r, k, strlen(k), v, sizeof(v), NULL);
			if (n == 1 && v[0] == '1')
				holders++;
			else if (n != 1)
				absent++;
		}
		atomic_fetch_add(&sh->tries[id], 1);
		if (shmreg_read_validate(r, tok) != 0) {
			if (holders != 1 || absent)
				atomic_fetch_add(&sh->torn[id], 1);
			continue;
		}
		atomic_fetch_add(&sh->snaps[id], 1);
		if (holders == 0 && absent == NKEYS) {
			/* the registry before its first batch: checked
			 * against the open's revision at the end */
			atomic_fetch_add(&sh->empty[id], 1);
			seen = atomic_load(&sh->empty_rev);
			while (rev > seen &&
			       !atomic_compare_exchange_weak(&sh->empty_rev,
							     &seen, rev))
				;
			continue;
		}
		if (holders != 1 || absent) {
			tc_log("validated snapshot with %u holders, %u absent",
			       holders, absent);
			atomic_fetch_add(&sh->bad[id], 1);
		}
	}
	shmreg_close(r);
	return 0;
}

static void put(shmreg_writer_t *w, const char *k, const char *v)
{
	int64_t rev = shmreg_writer_put(w, k, strlen(k), v, strlen(v), NULL);

	TC_CHECK(rev > 0, "put %s: %lld", k, (long long)rev);
}

int main(void)
{
	shmreg_writer_opts_t wo = { .flags = SHMREG_WRITER_TRUNCATE,
				    .initial_entries = 256 };
	struct shared *sh;
	struct tc_child *rd[NREADERS];
	shmreg_writer_t *w;
	shmreg_stats_t st;
	uint64_t rs;
	unsigned holder = 0, fill = 0;
	unsigned long snaps = 0;
	uint64_t gen0, give_up;
	int m;

	tc_init("batch_snapshot", 120);
	tc_dir();
	rs = tc_seed();
	sh = tc_shared(sizeof(*sh));
	atomic_store(&sh->open_rev, UINT64_MAX);
	for (unsigned i = 0; i < NREADERS; i++) {
		char name[16];

		snprintf(name, sizeof(name), "reader%u", i);
		rd[i] = tc_spawn(name, reader, sh);
	}
	TC_EQ(shmreg_writer_open("batch", &wo, &w), 0, "writer open");
	atomic_store(&sh->open_rev, shmreg_writer_revision(w));
	/* every reader validates a snapshot of the empty registry first, so
	 * that state (the one that was miscounted) is checked on every run,
	 * not only when the scheduler happens to leave a reader the window */
	for (unsigned i = 0; i < NREADERS; i++) {
		uint64_t t0 = tc_now_ns();

		tc_expect(rd[i], 'R', 20000);
		while (atomic_load(&sh->empty[i]) == 0) {
			TC_CHECK(tc_now_ns() - t0 < UINT64_C(20000000000),
				 "reader%u saw no empty snapshot in 20 s", i);
			poll(NULL, 0, 1);
		}
	}
	/* the initial state, in one batch too */
	TC_EQ(shmreg_writer_batch_begin(w), 0, "batch");
	for (unsigned i = 0; i < NKEYS; i++) {
		char k[32];

		key_of(i, k);
		put(w, k, i == holder ? "1" : "0");
	}
	TC_EQ(shmreg_writer_batch_end(w), 0, "batch end");
	TC_EQ(shmreg_stats(shmreg_writer_reader(w), &st), 0, "stats");
	gen0 = st.generation;

	give_up = tc_now_ns() + 60000000000ull;
	for (m = 0; m < MOVES ||
		    !tc_counts_reached(sh->snaps, NREADERS, MIN_SNAPS); m++) {
		unsigned next = (unsigned)tc_range(&rs, 0, NKEYS - 1);
		char k[32];
		uint64_t t0;

		TC_CHECK(m < MOVES || tc_now_ns() < give_up, "the readers "
			 "validated only %lu and %lu snapshots in 60 s",
			 atomic_load(&sh->snaps[0]), atomic_load(&sh->snaps[1]));
		TC_EQ(shmreg_writer_batch_begin(w), 0, "batch");
		key_of(holder, k);
		put(w, k, "0");
		/* every 1000th move grows the index inside the batch: the
		 * snapshot must hold across the handoff */
		if (m % 1000 == 999) {
			for (unsigned f = 0; f < 400; f++, fill++) {
				char fk[32];

				snprintf(fk, sizeof(fk), "fill/%06u", fill);
				put(w, fk, "f");
			}
		}
		key_of(next, k);
		put(w, k, "1");
		TC_EQ(shmreg_writer_batch_end(w), 0, "batch end");
		holder = next;
		/* leave the readers a window now and then */
		t0 = tc_now_ns();
		while (tc_now_ns() - t0 < 30000)
			;
	}
	TC_EQ(shmreg_stats(shmreg_writer_reader(w), &st), 0, "stats");
	atomic_store(&sh->stop, 1);
	for (unsigned i = 0; i < NREADERS; i++) {
		tc_child_join(rd[i], 30000);
		tc_log("reader%u: %lu validated snapshots of %lu (%lu of the "
		       "empty registry), %lu wrong; %lu refused ones counted "
		       "another number", i, sh->snaps[i], sh->tries[i],
		       sh->empty[i], sh->bad[i], sh->torn[i]);
		TC_EQ(sh->bad[i], 0, "validated snapshots without one holder");
		TC_CHECK(sh->snaps[i] >= MIN_SNAPS, "reader%u: only %lu validated "
			 "snapshots", i, sh->snaps[i]);
		snaps += sh->snaps[i];
		tc_child_free(rd[i]);
	}
	/* an empty validated snapshot is the registry before the initial
	 * batch, never a state after it */
	TC_CHECK(atomic_load(&sh->empty_rev) <= atomic_load(&sh->open_rev),
		 "a validated snapshot at revision %llu (the initial batch "
		 "began after %llu) held no key",
		 (unsigned long long)atomic_load(&sh->empty_rev),
		 (unsigned long long)atomic_load(&sh->open_rev));
	tc_log("%d moves, %llu handoffs, %lu validated snapshots", m,
	       (unsigned long long)(st.generation - gen0), snaps);
	TC_CHECK(st.generation - gen0 >= 3, "only %llu handoffs",
		 (unsigned long long)(st.generation - gen0));
	shmreg_writer_close(w);
	return 0;
}
