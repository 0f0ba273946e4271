/* SPDX-License-Identifier: MIT */
/* Description: shmregd --max-connections-per-uid: uid 65534, allowed to
 * write, tries to open 20 connections with a limit of 8 per uid: exactly 8
 * succeed and the rest are turned away at accept, while root still opens
 * its own 8 and every put gets a revision; once 65534's connections close
 * its slots are free again.  Needs root; skips otherwise. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/tc.h"
#include "daemon_harness.h"

#define NOBODY 65534
#define PER_UID 8
#define TRIES 20

static struct dh h;

/* uid 65534: try TRIES connections, keep those that succeed until told,
 * then close them and check that PER_UID fit again. */
static int greedy(struct tc_child *self, void *arg)
{
	shmreg_client_t *c[TRIES];
	int ok = 0, b;

	(void)arg;
	dh_become(NOBODY, NOBODY);
	for (int i = 0; i < TRIES; i++) {
		int ret = shmreg_connect(h.sock, h.reg, &c[ok]);

		if (ret == 0) {
			TC_CHECK(shmreg_put(c[ok], "nobody", 6, "v", 1,
					    NULL) > 0, "put as uid 65534");
			ok++;
			continue;
		}
		TC_CHECK(ret == -ECONNRESET || ret == -EPIPE,
			 "connection %d over the limit: %d (%s)", i, ret,
			 strerror(-ret));
	}
	TC_EQ(ok, PER_UID, "connections of uid 65534");
	tc_post(self, 'c');
	b = tc_wait_parent(self, 60000);
	TC_CHECK(b == 'x', "parent said %d", b);
	for (int i = 0; i < ok; i++)
		shmreg_disconnect(c[i]);
	/* the daemon notices the closes asynchronously: retry each slot
	 * within a bounded time */
	for (int i = 0; i < PER_UID; i++) {
		uint64_t deadline = tc_now_ns() + 10ull * 1000000000;
		int ret;

		while ((ret = shmreg_connect(h.sock, h.reg, &c[i])) != 0) {
			TC_CHECK(tc_now_ns() < deadline,
				 "slot %d not free again: %s", i,
				 strerror(-ret));
			poll(NULL, 0, 10);
		}
	}
	for (int i = 0; i < PER_UID; i++)
		shmreg_disconnect(c[i]);
	return 0;
}

int main(void)
{
	static const char *const args[] = {
		"--allow-uid", "0", "--allow-uid", "65534",
		"--max-connections", "32", "--max-connections-per-uid", "8",
		"--idle-timeout", "0", NULL
	};
	shmreg_client_t *w[PER_UID], *extra = NULL;
	shmreg_daemon_stats_t ds;
	struct tc_child *k;
	int ret;

	tc_init("daemon_peruid", 90);
	dh_need_root("run a client under another uid");
	dh_init(&h, NULL);
	dh_reg_in_dir(&h, "reg");
	dh_start(&h, args);

	k = tc_spawn("greedy", greedy, NULL);
	tc_expect(k, 'c', 60000);
	for (int i = 0; i < PER_UID; i++) {
		w[i] = dh_connect(&h);
		TC_CHECK(shmreg_put(w[i], "root", 4, "v", 1, NULL) > 0,
			 "root put %d", i);
	}
	ret = shmreg_connect(h.sock, h.reg, &extra);
	TC_CHECK(ret == -ECONNRESET || ret == -EPIPE,
		 "root's 9th connection: %d (%s)", ret, strerror(-ret));
	TC_EQ(shmreg_client_stats(w[0], NULL, &ds), 0, "stats");
	TC_EQ(ds.connections, 2 * PER_UID, "connections of both uids");
	TC_EQ(ds.refused, 0, "both uids may write");

	tc_tell(k, 'x');
	tc_child_join(k, 60000);
	tc_child_free(k);
	for (int i = 0; i < PER_UID; i++)
		shmreg_disconnect(w[i]);
	TC_EQ(dh_stop(&h, SIGTERM), 0, "daemon exit");
	dh_cleanup(&h);
	tc_log("ok");
	return 0;
}
