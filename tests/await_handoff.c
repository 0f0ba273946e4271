/* SPDX-License-Identifier: MIT */
/* Description: growth handoffs during waits lose nothing.  While an await,
 * a watch_key and a change-stream watcher sleep, the writer grows the
 * registry through several segment handoffs (20,000 new keys, some values
 * out of line); the waiters follow the new segments without reopening,
 * the await and the watch_key return on their keys' later puts, and the
 * watcher sees every one of the 20,002 events, in order, across the
 * handoffs. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "shmreg.h"
#include "shmreg_writer.h"
#include "await_common.h"

#define NAME  "awhandoff"
#define NGROW 20000u

struct shared {
	uint64_t rev0;          /* revision before the growth */
	uint64_t wk_rev;        /* mod_rev of "wk" before the growth */
	int64_t ret[3];
	uint64_t new_rev;       /* watch_key's */
	uint64_t events;        /* watcher's, all checked */
	uint64_t gen[3];        /* generation each waiter's handle ended on */
};

static struct shared *sh;

static void key_of(char *buf, uint32_t i)
{
	snprintf(buf, 16, "g%05u", i);
}

static int waiter(struct tc_child *c, void *arg)
{
	int kind = (int)(intptr_t)arg;
	shmreg_watch_t *w = NULL;
	shmreg_event_t ev;
	shmreg_stats_t st;
	shmreg_t *r;
	char buf[16], key[16];
	int ret;

	ret = shmreg_open(NAME, 0, &r);
	TC_CHECK(ret == 0, "open: %s", strerror(-ret));
	if (kind == 2) {
		ret = shmreg_watch_open(r, "", 0, sh->rev0, &w);
		TC_CHECK(ret == 0, "watch_open: %s", strerror(-ret));
	}
	tc_post(c, 'r');
	switch (kind) {
	case 0:
		sh->ret[0] = shmreg_await(r, "late", 4, buf, sizeof(buf),
					  NULL, 60000000000LL);
		TC_CHECK(sh->ret[0] != 4 || !memcmp(buf, "LATE", 4),
			 "await value");
		break;
	case 1:
		sh->ret[1] = shmreg_watch_key(r, "wk", 2, sh->wk_rev,
					      60000000000LL, &sh->new_rev);
		break;
	default:
		for (uint32_t i = 0; i < NGROW + 2; i++) {
			const char *want = key;

			if (i < NGROW)
				key_of(key, i);
			else
				want = i == NGROW ? "late" : "wk";
			ret = shmreg_watch_next(w, &ev, 60000000000LL);
			TC_CHECK(ret == 0, "event %u: %s", i, strerror(-ret));
			TC_CHECK(ev.rev == sh->rev0 + 1 + i &&
					 ev.type == SHMREG_EVENT_PUT &&
					 ev.klen == strlen(want) &&
					 !memcmp(ev.key, want, ev.klen),
				 "event %u: rev %llu %.*s, want rev %llu %s", i,
				 (unsigned long long)ev.rev, (int)ev.klen,
				 (const char *)ev.key,
				 (unsigned long long)(sh->rev0 + 1 + i), want);
			sh->events++;
		}
		sh->ret[2] = 0;
		shmreg_watch_close(w);
		break;
	}
	TC_EQ(shmreg_stats(r, &st), 0, "stats");
	sh->gen[kind] = st.generation;
	shmreg_close(r);
	return 0;
}

int main(void)
{
	shmreg_writer_opts_t o = { .flags = SHMREG_WRITER_TRUNCATE };
	static const char *names[3] = { "await", "watch_key", "watcher" };
	static char val[2048];
	struct tc_child *kids[3];
	shmreg_writer_t *w;
	shmreg_stats_t st;
	uint64_t gen0;
	char key[16];
	int64_t rev;
	int ret;

	tc_init("await_handoff", 90);
	aw_require_proc_syscall();
	tc_dir();
	sh = tc_shared(sizeof(*sh));
	ret = shmreg_writer_open(NAME, &o, &w);
	TC_CHECK(ret == 0, "writer_open: %s", strerror(-ret));
	rev = shmreg_writer_put(w, "wk", 2, "0", 1, NULL);
	TC_CHECK(rev > 0, "put wk");
	sh->wk_rev = (uint64_t)rev;
	sh->rev0 = (uint64_t)rev;
	TC_EQ(shmreg_stats(shmreg_writer_reader(w), &st), 0, "stats");
	gen0 = st.generation;

	for (int i = 0; i < 3; i++) {
		kids[i] = tc_spawn(names[i], waiter, (void *)(intptr_t)i);
		tc_expect(kids[i], 'r', 10000);
	}
	for (int i = 0; i < 3; i++)
		aw_wait_asleep(kids[i]->pid, 10000);

	/* grow: index and arena, through several handoffs */
	memset(val, 'v', sizeof(val));
	for (uint32_t i = 0; i < NGROW; i++) {
		key_of(key, i);
		rev = shmreg_writer_put(w, key, strlen(key), val,
					i % 10 ? 16 : sizeof(val), NULL);
		TC_CHECK(rev == (int64_t)(sh->rev0 + 1 + i), "put %s: %lld",
			 key, (long long)rev);
	}
	TC_EQ(shmreg_stats(shmreg_writer_reader(w), &st), 0, "stats");
	tc_log("%llu handoffs while the waiters waited",
	       (unsigned long long)(st.generation - gen0));
	TC_CHECK(st.generation >= gen0 + 3, "only %llu handoffs",
		 (unsigned long long)(st.generation - gen0));
	/* nobody returned early: the growth is not what they wait for */
	for (int i = 0; i < 2; i++)
		TC_CHECK(waitpid(kids[i]->pid, NULL, WNOHANG) == 0,
			 "%s returned during the growth", names[i]);

	TC_CHECK(shmreg_writer_put(w, "late", 4, "LATE", 4, NULL) > 0, "late");
	rev = shmreg_writer_put(w, "wk", 2, "1", 1, NULL);
	TC_CHECK(rev > 0, "put wk");
	for (int i = 0; i < 3; i++)
		tc_child_join(kids[i], 60000);
	TC_EQ(sh->ret[0], 4, "await across handoffs");
	TC_EQ(sh->ret[1], 0, "watch_key across handoffs");
	TC_EQ(sh->new_rev, rev, "watch_key's new_rev");
	TC_EQ(sh->events, NGROW + 2, "watcher events across handoffs");
	for (int i = 0; i < 3; i++)
		TC_EQ(sh->gen[i], st.generation,
		      "generation the waiter's handle followed to");
	for (int i = 0; i < 3; i++)
		tc_child_free(kids[i]);
	shmreg_writer_close(w);
	tc_log("ok");
	return 0;
}
