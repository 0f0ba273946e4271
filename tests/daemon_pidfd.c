/* SPDX-License-Identifier: MIT */
/* Description: shmregd stops watching an owner pid once it owns no
 * entries: 40 live processes own entries (one pidfd each), then their
 * entries are deleted, replaced under another owner, re-put without an
 * owner, or removed with their ephemeral connection; the daemon's owner
 * count and its open descriptors (/proc/PID/fd) return to their baseline,
 * while a pid that still owns an entry stays watched and its exit still
 * removes that entry. */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/tc.h"
#include "daemon_harness.h"

#define NPROC 40
#define KEYS 2             /* entries per process */

static struct dh h;

static int sleeper(struct tc_child *self, void *arg)
{
	(void)arg;
	/* lives until the parent says so (or dies) */
	tc_wait_parent(self, 100000);
	return 0;
}

static unsigned fd_count(pid_t pid)
{
	char path[64];
	struct dirent *e;
	unsigned n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	TC_CHECK(d, "%s: %s", path, strerror(errno));
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static shmreg_daemon_stats_t dstats(shmreg_client_t *c)
{
	shmreg_daemon_stats_t ds;

	TC_EQ(shmreg_client_stats(c, NULL, &ds), 0, "stats");
	return ds;
}

/* Bounded wait: the pidfds close at once, the polls' cancellations
 * complete in the next loop iterations. */
static void wait_fds(shmreg_client_t *c, unsigned want_fds,
		     uint64_t want_owners, const char *when)
{
	uint64_t deadline = tc_now_ns() + 10ull * 1000000000;
	unsigned fds;
	uint64_t owners;

	for (;;) {
		fds = fd_count(h.pid);
		owners = dstats(c).owners;
		if (fds == want_fds && owners == want_owners)
			break;
		TC_CHECK(tc_now_ns() < deadline, "%s: %u fds (want %u), %llu "
			 "owners (want %llu) after 10 s", when, fds, want_fds,
			 (unsigned long long)owners,
			 (unsigned long long)want_owners);
		poll(NULL, 0, 10);
	}
	tc_log("%s: %u fds, %llu owners", when, fds,
	       (unsigned long long)owners);
}

static void key_of(char *buf, int i, int j)
{
	snprintf(buf, 32, "pid:%02d:%d", i, j);
}

int main(void)
{
	struct tc_child *k[NPROC];
	shmreg_client_t *c, *eph;
	shmreg_t *r;
	unsigned base;
	char key[32];

	tc_init("daemon_pidfd", 90);
	dh_init(&h, "pidfd");
	dh_start(&h, NULL);
	c = dh_connect(&h);
	r = dh_open(&h);
	for (int i = 0; i < NPROC; i++)
		k[i] = tc_spawn("sleeper", sleeper, NULL);
	TC_EQ(dstats(c).owners, 0, "no owners at first");
	/* the daemon's descriptors with one client connected */
	base = fd_count(h.pid);
	eph = dh_connect(&h);

	/* KEYS entries per pid: one pidfd per pid; the processes 30..39
	 * put theirs as ephemeral entries of the second connection */
	for (int i = 0; i < NPROC; i++) {
		shmreg_put_opts_t o = { .owner_pid = k[i]->pid };

		if (i >= 30)
			o.flags = SHMREG_EPHEMERAL;
		for (int j = 0; j < KEYS; j++) {
			key_of(key, i, j);
			TC_CHECK(shmreg_put(i >= 30 ? eph : c, key,
					    strlen(key), "v", 1, &o) > 0,
				 "put %s", key);
		}
	}
	wait_fds(c, base + 1 + NPROC, NPROC, "every pid owns entries");

	/* 0..9: deleted; 10..19: replaced, owned by pid 0 now; 20..29:
	 * re-put without owner; 30..39: their connection closes.  Pid 0
	 * keeps one entry back (0:1 is not deleted) */
	for (int i = 0; i < 30; i++) {
		for (int j = 0; j < KEYS; j++) {
			shmreg_put_opts_t o = { .owner_pid = k[0]->pid };

			if (i == 0 && j == 1)
				continue;
			key_of(key, i, j);
			if (i < 10)
				TC_CHECK(shmreg_del(c, key, strlen(key)) > 0,
					 "del %s", key);
			else
				TC_CHECK(shmreg_put(c, key, strlen(key), "w",
						    1, i < 20 ? &o : NULL) > 0,
					 "re-put %s", key);
		}
	}
	shmreg_disconnect(eph);
	/* pid 0 owns 0:1 and the 20 keys of 10..19 */
	wait_fds(c, base + 1, 1, "only pid 0 owns entries");

	/* pid 0 loses the 10..19 keys: still watched for 0:1 */
	for (int i = 10; i < 20; i++)
		for (int j = 0; j < KEYS; j++) {
			key_of(key, i, j);
			TC_CHECK(shmreg_del(c, key, strlen(key)) > 0,
				 "del %s", key);
		}
	wait_fds(c, base + 1, 1, "pid 0 owns one entry");

	/* and its exit still removes it */
	tc_tell(k[0], 'x');
	tc_child_join(k[0], 10000);
	key_of(key, 0, 1);
	TC_EQ(dh_wait_gone(r, key, 10000), 0, "entry of the exited owner");
	wait_fds(c, base, 0, "no owner left");

	for (int i = 1; i < NPROC; i++) {
		tc_tell(k[i], 'x');
		tc_child_join(k[i], 10000);
		tc_child_free(k[i]);
	}
	tc_child_free(k[0]);
	TC_EQ(dstats(c).owner_deletes, 1, "one entry removed by an exit");
	shmreg_close(r);
	shmreg_disconnect(c);
	TC_EQ(dh_stop(&h, SIGTERM), 0, "daemon exit");
	dh_cleanup(&h);
	tc_log("ok");
	return 0;
}
