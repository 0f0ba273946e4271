/* SPDX-License-Identifier: MIT */
/* Description: 64 processes await one key and 16 more await 16 other keys
 * (each in a wait slot of its own); one put wakes all 64 (each counts
 * exactly one futex wake-up and returns the value) while the 16 others stay
 * asleep, and each of those is later woken exactly once, by its own key. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmreg.h"
#include "shmreg_writer.h"
#include "waitfile.h"
#include "await_common.h"

#define NAME    "awmany"
#define NMAIN   64
#define NOTHER  16
#define HOT     "hot-key"

struct result {
	int64_t ret;
	uint64_t wakeups;
	uint32_t value_ok;
	int mode;            /* waitfile_debug_mode() */
};

static struct result *res;
static char other_keys[NOTHER][24];

static int waiter(struct tc_child *c, void *arg)
{
	int idx = (int)(intptr_t)arg;
	const char *key = idx < NMAIN ? HOT : other_keys[idx - NMAIN];
	char buf[32], want[32];
	shmreg_t *r;
	uint64_t w0;
	ssize_t n;
	int ret;

	(void)c;
	/* no liveness checks while asleep: "still asleep" must mean "not
	 * woken", not "between two slices" */
	waitfile_debug_set_slice(60 * 1000000000LL);
	ret = shmreg_open(NAME, 0, &r);
	TC_CHECK(ret == 0, "open: %s", strerror(-ret));
	res[idx].mode = waitfile_debug_mode(r);
	w0 = waitfile_debug_wakeups();
	n = shmreg_await(r, key, strlen(key), buf, sizeof(buf), NULL,
			 20000000000LL);
	res[idx].wakeups = waitfile_debug_wakeups() - w0;
	res[idx].ret = n;
	snprintf(want, sizeof(want), "v:%s", key);
	res[idx].value_ok = n == (ssize_t)strlen(want) &&
			    !memcmp(buf, want, (size_t)n);
	shmreg_close(r);
	return 0;
}

int main(void)
{
	shmreg_writer_opts_t o = { .flags = SHMREG_WRITER_TRUNCATE };
	struct tc_child *kids[NMAIN + NOTHER];
	uint32_t used[NOTHER + 1];
	struct shm_wait_hdr *wh;
	shmreg_writer_t *w;
	char val[32];
	int nused = 0, ret;
	uint64_t t0;

	tc_init("await_many", 120);
	aw_require_proc_syscall();
	tc_dir();
	res = tc_shared(sizeof(*res) * (NMAIN + NOTHER));

	/* other keys, each in a slot of its own and none in HOT's */
	used[nused++] = aw_slot_of(HOT);
	for (unsigned u = 0, k = 0; k < NOTHER; u++) {
		char key[24];
		int clash = 0;

		snprintf(key, sizeof(key), "other-%u", u);
		for (int j = 0; j < nused; j++)
			clash |= used[j] == aw_slot_of(key);
		if (clash)
			continue;
		used[nused++] = aw_slot_of(key);
		memcpy(other_keys[k++], key, sizeof(key));
	}

	ret = shmreg_writer_open(NAME, &o, &w);
	TC_CHECK(ret == 0, "writer_open: %s", strerror(-ret));
	wh = aw_map_waitfile(NAME);
	for (int i = 0; i < NMAIN + NOTHER; i++) {
		char role[16];

		snprintf(role, sizeof(role), "waiter%d", i);
		kids[i] = tc_spawn(role, waiter, (void *)(intptr_t)i);
	}
	/* everyone asleep on its slot word before the put */
	for (int i = 0; i < NMAIN + NOTHER; i++)
		aw_wait_asleep(kids[i]->pid, 30000);
	TC_EQ(aw_load(&aw_slot(wh, aw_slot_of(HOT))->waiters), NMAIN,
	      "waiters registered on the hot slot");
	for (int k = 0; k < NOTHER; k++)
		TC_EQ(aw_load(&aw_slot(wh, used[k + 1])->waiters), 1,
		      "waiters on another key's slot");

	/* one put wakes all 64 */
	snprintf(val, sizeof(val), "v:%s", HOT);
	t0 = tc_now_ns();
	TC_CHECK(shmreg_writer_put(w, HOT, strlen(HOT), val, strlen(val),
				   NULL) > 0, "put hot");
	for (int i = 0; i < NMAIN; i++)
		tc_child_join(kids[i], 30000);
	tc_log("one put woke %d waiters; the last returned after %.2f ms",
	       NMAIN, aw_ms_since(t0));
	for (int i = 0; i < NMAIN; i++) {
		TC_EQ(res[i].mode, 2, "waiter registered in the wait file");
		TC_EQ(res[i].ret, (int64_t)strlen(val), "await of the hot key");
		TC_CHECK(res[i].value_ok, "waiter %d: wrong value", i);
		TC_EQ(res[i].wakeups, 1, "wake-ups of a hot waiter");
	}
	TC_EQ(aw_load(&aw_slot(wh, aw_slot_of(HOT))->waiters), 0,
	      "hot slot waiters after all returned");

	/* the others were not woken: still asleep, still registered, and
	 * each counts exactly one wake-up (its own key's) in the end */
	for (int k = 0; k < NOTHER; k++) {
		struct tc_child *c = kids[NMAIN + k];

		TC_CHECK(!c->reaped && kill(c->pid, 0) == 0,
			 "waiter of %s ended early", other_keys[k]);
		TC_EQ(aw_in_futex(c->pid), 1, "other-key waiter still asleep");
		TC_EQ(aw_load(&aw_slot(wh, used[k + 1])->waiters), 1,
		      "other slot still has its waiter");
	}
	for (int k = 0; k < NOTHER; k++) {
		int i = NMAIN + k;

		snprintf(val, sizeof(val), "v:%s", other_keys[k]);
		TC_CHECK(shmreg_writer_put(w, other_keys[k],
					   strlen(other_keys[k]), val,
					   strlen(val), NULL) > 0, "put other");
		tc_child_join(kids[i], 30000);
		TC_EQ(res[i].ret, (int64_t)strlen(val), "await of another key");
		TC_CHECK(res[i].value_ok, "waiter %d: wrong value", i);
		TC_EQ(res[i].wakeups, 1,
		      "wake-ups of another key's waiter (the hot put must "
		      "not have woken it)");
	}
	for (int i = 0; i < NMAIN + NOTHER; i++)
		tc_child_free(kids[i]);
	shmreg_writer_close(w);
	munmap(wh, SHM_WAIT_FILE_SIZE);
	tc_log("ok");
	return 0;
}
