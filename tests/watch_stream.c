/* SPDX-License-Identifier: MIT */
/* Description: change-stream completeness: a writer makes 1,000,000 mixed
 * puts and deletes (some in batches, across growth handoffs) over keys of
 * two prefixes; a watcher process of prefix "a/" must see exactly the
 * expected events - same revisions, types and keys, in order, none extra.
 * The writer keeps within half the 65,536-event ring of the watcher. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "shmreg.h"
#include "shmreg_writer.h"
#include "await_common.h"

#define NAME    "wstream"
#define NOPS    1000000u
#define NKEYS   8192u        /* half "a/", half "b/" */
#define LAG_MAX 32768u       /* writer pauses this far ahead of the watcher */

struct shared {
	uint64_t seed;
	uint64_t rev0;              /* revision before the first op */
	_Atomic uint64_t seen_rev;  /* watcher: revision of its last event */
	uint64_t events;            /* watcher: events checked */
	uint64_t gen_end;           /* writer: segment generation at the end */
};

static struct shared *sh;

/* The op sequence, replayed identically by writer and watcher. */
struct gen {
	uint64_t rs;
	uint8_t present[NKEYS];
};

struct op {
	uint32_t k;
	bool del;
};

static struct op gen_next(struct gen *g)
{
	struct op o;

	o.k = (uint32_t)tc_range(&g->rs, 0, NKEYS - 1);
	o.del = g->present[o.k] && tc_range(&g->rs, 0, 9) < 4;
	g->present[o.k] = !o.del;
	return o;
}

static int key_of(char *buf, uint32_t k)
{
	return snprintf(buf, 16, "%c/%05u", k & 1 ? 'b' : 'a', k >> 1);
}

static int watcher(struct tc_child *c, void *arg)
{
	static struct gen g;
	shmreg_watch_t *w;
	shmreg_event_t ev;
	shmreg_t *r;
	char key[16];
	uint64_t rev;
	int ret, klen;

	(void)arg;
	g.rs = sh->seed;
	ret = shmreg_open(NAME, 0, &r);
	TC_CHECK(ret == 0, "open: %s", strerror(-ret));
	ret = shmreg_watch_open(r, "a/", 2, sh->rev0, &w);
	TC_CHECK(ret == 0, "watch_open: %s", strerror(-ret));
	tc_post(c, 'r');
	rev = sh->rev0;
	for (uint32_t i = 0; i < NOPS; i++) {
		struct op o = gen_next(&g);

		rev++;
		if (o.k & 1)
			continue; /* "b/": not ours */
		klen = key_of(key, o.k);
		ret = shmreg_watch_next(w, &ev, 10000000000LL);
		TC_CHECK(ret == 0, "event %llu (op %u, rev %llu): %s",
			 (unsigned long long)sh->events, i,
			 (unsigned long long)rev, strerror(-ret));
		TC_CHECK(ev.rev == rev && ev.klen == (size_t)klen &&
				 !memcmp(ev.key, key, (size_t)klen) &&
				 ev.type == (o.del ? SHMREG_EVENT_DEL
						   : SHMREG_EVENT_PUT),
			 "op %u: want rev %llu %s %s, got rev %llu type %d "
			 "%.*s", i, (unsigned long long)rev,
			 o.del ? "del" : "put", key,
			 (unsigned long long)ev.rev, ev.type, (int)ev.klen,
			 (const char *)ev.key);
		sh->events++;
		atomic_store_explicit(&sh->seen_rev, rev, memory_order_release);
	}
	/* nothing more: the writer's last ops are done (it waited for us) */
	tc_post(c, 'e');
	TC_CHECK(tc_wait_parent(c, 60000) == 'x', "no end");
	ret = shmreg_watch_next(w, &ev, 0);
	TC_EQ(ret, -ETIMEDOUT, "an extra event after the last one");
	shmreg_watch_close(w);
	shmreg_close(r);
	return 0;
}

int main(void)
{
	shmreg_writer_opts_t o = { .flags = SHMREG_WRITER_TRUNCATE,
				   .initial_entries = 1024 };
	static struct gen g;
	static uint8_t val[256];
	shmreg_writer_t *w;
	struct tc_child *c;
	shmreg_stats_t st;
	uint64_t t0, gen0, pauses = 0, nbatch = 0;
	char key[16];
	int ret, klen;

	tc_init("watch_stream", 120);
	tc_dir();
	sh = tc_shared(sizeof(*sh));
	sh->seed = tc_seed();
	g.rs = sh->seed;
	ret = shmreg_writer_open(NAME, &o, &w);
	TC_CHECK(ret == 0, "writer_open: %s", strerror(-ret));
	sh->rev0 = shmreg_writer_revision(w);
	TC_EQ(shmreg_stats(shmreg_writer_reader(w), &st), 0, "stats");
	gen0 = st.generation;
	c = tc_spawn("watcher", watcher, NULL);
	tc_expect(c, 'r', 10000);

	t0 = tc_now_ns();
	for (uint32_t i = 0; i < NOPS; i++) {
		struct op op = gen_next(&g);
		uint64_t want = sh->rev0 + i + 1;
		int64_t rev;

		/* flow control: never more than LAG_MAX ahead of the watcher
		 * (bounded: the watcher either advances or fails, and its
		 * failure closes its pipe; the watchdog ends the rest) */
		while (want - atomic_load_explicit(&sh->seen_rev,
						   memory_order_acquire) >
		       LAG_MAX) {
			TC_CHECK(waitpid(c->pid, NULL, WNOHANG) == 0,
				 "watcher ended early");
			pauses++;
			sched_yield();
		}
		/* every 1000 ops, ten in one batch */
		if (i % 1000 == 0 && i + 10 <= NOPS) {
			TC_EQ(shmreg_writer_batch_begin(w), 0, "batch_begin");
			nbatch++;
		}
		klen = key_of(key, op.k);
		if (op.del) {
			rev = shmreg_writer_del(w, key, (size_t)klen);
		} else {
			memcpy(val, &i, sizeof(i));
			/* sizes 4..255: inline and out of line, so both the
			 * index and the arena grow */
			rev = shmreg_writer_put(w, key, (size_t)klen, val,
						4 + i % 252, NULL);
		}
		TC_CHECK(rev == (int64_t)want,
			 "op %u: revision %lld, want %llu", i,
			 (long long)rev, (unsigned long long)want);
		if (i % 1000 == 9 && i >= 9)
			TC_EQ(shmreg_writer_batch_end(w), 0, "batch_end");
	}
	tc_log("%u ops in %.2f s (%llu flow-control pauses, %llu batches)",
	       NOPS, aw_ms_since(t0) / 1e3, (unsigned long long)pauses,
	       (unsigned long long)nbatch);
	tc_expect(c, 'e', 60000);
	tc_tell(c, 'x');
	tc_child_join(c, 30000);
	tc_child_free(c);
	TC_EQ(shmreg_stats(shmreg_writer_reader(w), &st), 0, "stats");
	tc_log("watcher checked %llu events; %llu handoffs during the run",
	       (unsigned long long)sh->events,
	       (unsigned long long)(st.generation - gen0));
	TC_CHECK(sh->events > NOPS / 3, "only %llu events",
		 (unsigned long long)sh->events);
	TC_CHECK(st.generation > gen0, "no growth handoff happened");
	shmreg_writer_close(w);
	tc_log("ok");
	return 0;
}
