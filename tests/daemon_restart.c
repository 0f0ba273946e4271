/* SPDX-License-Identifier: MIT */
/* Description: shmregd restart: after a kill -9 a new daemon replaces the
 * stale socket, takes the registry over with its contents, drops the
 * entries of connections and owner pids that are gone and watches the
 * owners still alive; a second daemon on a busy socket or registry refuses
 * to start. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/tc.h"
#include "daemon_harness.h"

static struct dh h;

static int sleeper(struct tc_child *self, void *arg)
{
	(void)arg;
	tc_post(self, 's');
	tc_wait_parent(self, 60000);
	return 0;
}

/* Holds an ephemeral entry on an open connection until killed. */
static int eph_holder(struct tc_child *self, void *arg)
{
	shmreg_client_t *c = dh_connect(&h);
	shmreg_put_opts_t o = { .flags = SHMREG_EPHEMERAL };

	(void)arg;
	TC_CHECK(shmreg_put(c, "eph:x", 5, "e", 1, &o) > 0, "eph put");
	tc_post(self, 'e');
	tc_wait_parent(self, 60000);
	return 0;
}

/* Run shmregd with @args and expect it to refuse to start: exit 1. */
static void expect_refusal(const char *what, const char *sock, const char *reg)
{
	const char *bin = getenv("SHMREGD");
	pid_t pid;
	int st;

	pid = fork();
	TC_CHECK(pid >= 0, "fork");
	if (pid == 0) {
		execl(bin, bin, "--registry", reg, "--socket", sock, "--quiet",
		      (char *)NULL);
		_exit(127);
	}
	TC_EQ(waitpid(pid, &st, 0), pid, "waitpid");
	TC_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1,
		 "%s: second daemon status 0x%x", what, st);
}

int main(void)
{
	struct tc_child *live, *dead, *holder;
	shmreg_put_opts_t o = { 0 };
	shmreg_daemon_stats_t ds;
	shmreg_client_t *c;
	shmreg_t *r;
	char other[160];
	uint64_t rev;

	tc_init("daemon_restart", 90);
	dh_init(&h, "restart");
	dh_start(&h, NULL);
	r = dh_open(&h);

	/* one daemon per socket, one writer per registry */
	snprintf(other, sizeof(other), "%s/other.sock", h.dir);
	expect_refusal("same socket", h.sock, "another-registry");
	expect_refusal("same registry", other, h.reg);

	live = tc_spawn("live", sleeper, NULL);
	dead = tc_spawn("dead", sleeper, NULL);
	holder = tc_spawn("holder", eph_holder, NULL);
	tc_expect(live, 's', 10000);
	tc_expect(dead, 's', 10000);
	tc_expect(holder, 'e', 10000);
	c = dh_connect(&h);
	o.owner_pid = live->pid;
	TC_CHECK(shmreg_put(c, "own:live", 8, "l", 1, &o) > 0, "put live");
	o.owner_pid = dead->pid;
	TC_CHECK(shmreg_put(c, "own:dead", 8, "d", 1, &o) > 0, "put dead");
	TC_CHECK(shmreg_put(c, "plain", 5, "p", 1, NULL) > 0, "put plain");
	shmreg_disconnect(c);

	/* the daemon dies without a word; so does one owner, and the
	 * ephemeral entry's connection is left dangling */
	TC_EQ(dh_stop(&h, SIGKILL), 128 + SIGKILL, "daemon killed");
	tc_child_kill(dead, 10000);
	tc_child_free(dead);
	TC_EQ(shmreg_get(r, "own:dead", 8, NULL, 0, NULL), 1,
	      "nobody removed it while no daemon ran");

	dh_start(&h, NULL); /* replaces the stale socket */
	/* taken over before it served: no waiting needed */
	TC_EQ(shmreg_get(r, "own:dead", 8, NULL, 0, NULL), -ENOENT,
	      "entry of an owner that died meanwhile");
	TC_EQ(shmreg_get(r, "eph:x", 5, NULL, 0, NULL), -ENOENT,
	      "entry of a connection of the old daemon");
	TC_EQ(shmreg_get(r, "own:live", 8, NULL, 0, NULL), 1, "live owner");
	TC_EQ(shmreg_get(r, "plain", 5, NULL, 0, NULL), 1, "plain entry");
	c = dh_connect(&h);
	TC_EQ(shmreg_client_stats(c, NULL, &ds), 0, "stats");
	TC_EQ(ds.owners, 1, "the live owner is watched again");
	rev = (uint64_t)shmreg_ping(c);
	TC_EQ(rev, shmreg_revision(r), "revision carried over");

	/* and its exit is noticed by the new daemon */
	tc_child_kill(live, 10000);
	tc_child_free(live);
	TC_EQ(dh_wait_gone(r, "own:live", 5000), 0, "live owner exited");

	tc_child_kill(holder, 10000);
	tc_child_free(holder);
	shmreg_disconnect(c);
	shmreg_close(r);
	TC_EQ(dh_stop(&h, SIGINT), 0, "clean exit on SIGINT");
	dh_cleanup(&h);
	tc_log("ok");
	return 0;
}
