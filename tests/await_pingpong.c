/* SPDX-License-Identifier: MIT */
/* Description: lost-wake-up stress: two processes, each the writer of one
 * registry and a reader of the other, ping-pong 200,000 rounds through
 * shmreg_await on a fresh key per round (across growth handoffs), with a
 * 2 s timeout and the liveness slice pushed past it, so that a single lost
 * wake-up would surface as a -ETIMEDOUT: zero are allowed. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmreg.h"
#include "shmreg_writer.h"
#include "waitfile.h"
#include "await_common.h"

#define ROUNDS     200000u
#define TIMEOUT_NS 2000000000LL

struct side {
	const char *mine;     /* registry this side writes */
	const char *theirs;   /* registry it awaits in */
	int first;            /* 1: puts before awaiting (the "ping" side) */
};

struct result {
	uint64_t rounds;
	uint64_t timeouts;
	uint64_t wakeups;     /* futex wake-ups of this side */
	uint64_t ns;
};

static struct result *res;

static void key_of(char *buf, uint32_t i)
{
	snprintf(buf, 16, "k%u", i);
}

static int side_main(struct tc_child *c, void *arg)
{
	const struct side *s = arg;
	struct result *me = &res[s->first];
	shmreg_writer_opts_t o = { .flags = SHMREG_WRITER_TRUNCATE };
	shmreg_writer_t *w;
	shmreg_t *r;
	char key[16];
	uint32_t val, got;
	uint64_t t0, w0;
	ssize_t n;
	int ret;

	/* a lost wake-up must not be rescued by the liveness re-check */
	waitfile_debug_set_slice(60 * 1000000000LL);
	ret = shmreg_writer_open(s->mine, &o, &w);
	TC_CHECK(ret == 0, "writer_open %s: %s", s->mine, strerror(-ret));
	tc_post(c, 'w');
	TC_CHECK(tc_wait_parent(c, 10000) == 'g', "no go");
	ret = shmreg_open(s->theirs, 0, &r);
	TC_CHECK(ret == 0, "open %s: %s", s->theirs, strerror(-ret));

	t0 = tc_now_ns();
	w0 = waitfile_debug_wakeups();
	for (uint32_t i = 0; i < ROUNDS; i++) {
		key_of(key, i);
		if (s->first) {
			val = i;
			TC_CHECK(shmreg_writer_put(w, key, strlen(key), &val,
						   sizeof(val), NULL) > 0,
				 "put %s", key);
		}
		n = shmreg_await(r, key, strlen(key), &got, sizeof(got), NULL,
				 TIMEOUT_NS);
		if (n == -ETIMEDOUT) {
			me->timeouts++;
			tc_log("round %u: await %s timed out", i, key);
			break;
		}
		TC_CHECK(n == sizeof(got) && got == i,
			 "round %u: await %s returned %zd (value %u)", i, key,
			 n, got);
		if (!s->first) {
			val = i;
			TC_CHECK(shmreg_writer_put(w, key, strlen(key), &val,
						   sizeof(val), NULL) > 0,
				 "put %s", key);
		}
		me->rounds++;
	}
	me->ns = tc_now_ns() - t0;
	me->wakeups = waitfile_debug_wakeups() - w0;
	/* close only once the other side is done awaiting in our registry
	 * (a close would end its waits with -ESHUTDOWN) */
	tc_post(c, 'd');
	TC_CHECK(tc_wait_parent(c, 60000) == 'c', "no close");
	shmreg_close(r);
	shmreg_writer_close(w);
	return 0;
}

int main(void)
{
	static const struct side ping = { "ppA", "ppB", 1 };
	static const struct side pong = { "ppB", "ppA", 0 };
	struct tc_child *a, *b;

	tc_init("await_pingpong", 120);
	tc_dir();
	res = tc_shared(2 * sizeof(*res));
	a = tc_spawn("ping", side_main, (void *)&ping);
	b = tc_spawn("pong", side_main, (void *)&pong);
	tc_expect(a, 'w', 10000);
	tc_expect(b, 'w', 10000);
	tc_tell(a, 'g');
	tc_tell(b, 'g');
	tc_expect(a, 'd', 100000);
	tc_expect(b, 'd', 100000);
	tc_tell(a, 'c');
	tc_tell(b, 'c');
	tc_child_join(a, 10000);
	tc_child_join(b, 10000);
	tc_child_free(a);
	tc_child_free(b);
	for (int i = 0; i < 2; i++)
		tc_log("%s: %llu rounds, %llu timeouts, %llu futex wake-ups, "
		       "%.2f s (%.1f us per round trip)", i ? "ping" : "pong",
		       (unsigned long long)res[i].rounds,
		       (unsigned long long)res[i].timeouts,
		       (unsigned long long)res[i].wakeups, res[i].ns / 1e9,
		       res[i].rounds ? res[i].ns / 1e3 / res[i].rounds : 0.0);
	for (int i = 0; i < 2; i++) {
		TC_EQ(res[i].timeouts, 0, "timeouts (lost wake-ups)");
		TC_EQ(res[i].rounds, ROUNDS, "rounds");
	}
	/* the waits really slept and were woken (not all found the key on
	 * the first look): at least a tenth of the rounds on each side */
	TC_CHECK(res[0].wakeups + res[1].wakeups >= ROUNDS / 10,
		 "only %llu futex wake-ups in %u rounds",
		 (unsigned long long)(res[0].wakeups + res[1].wakeups), ROUNDS);
	tc_log("ok");
	return 0;
}
