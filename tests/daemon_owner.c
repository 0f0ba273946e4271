/* SPDX-License-Identifier: MIT */
/* Description: shmregd owner-bound entries: 100 processes register entries
 * under their own pid and exit (every third by kill -9); all of each one's
 * entries are gone within 10 ms of its exit (as a pidfd reports it); a
 * dead or zombie pid is refused with -ESRCH and nothing is written. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sched.h>

#include "common/tc.h"
#include "daemon_harness.h"

#define PROCS 100
#define KEYS 3             /* per process, put by itself */
#define LIMIT_NS 10000000ull

static struct dh h;
static uint64_t *exit_ns;  /* shared: when each child called _exit */

static void key_of(char *buf, int i, int j)
{
	snprintf(buf, 32, "own:%03d:%d", i, j);
}

static int child(struct tc_child *self, void *arg)
{
	int i = (int)(intptr_t)arg;
	shmreg_client_t *c = dh_connect(&h);
	shmreg_put_opts_t o = { .owner_pid = getpid() };
	char key[32];
	int b;

	for (int j = 0; j < KEYS; j++) {
		int64_t rev;

		key_of(key, i, j);
		rev = shmreg_put(c, key, strlen(key), "alive", 5, &o);
		TC_CHECK(rev > 0, "put %s: %s", key, strerror((int)-rev));
	}
	tc_post(self, 'r');
	b = tc_wait_parent(self, 60000);
	TC_CHECK(b == 'x', "parent said %d", b);
	/* the connection stays open: only the pid's exit may remove the
	 * entries (they are not SHMREG_EPHEMERAL) */
	exit_ns[i] = tc_now_ns();
	_exit(0);
}

static int quick_exit_child(struct tc_child *self, void *arg)
{
	(void)self;
	(void)arg;
	return 0;
}

static void test_dead_pids(shmreg_client_t *c, shmreg_t *r)
{
	shmreg_put_opts_t o = { 0 };
	struct tc_child *k;
	struct pollfd p;
	uint64_t rev = shmreg_revision(r);
	int pidfd;

	/* a reaped pid: no such process */
	k = tc_spawn("dead", quick_exit_child, NULL);
	tc_child_join(k, 10000);
	o.owner_pid = k->pid;
	tc_child_free(k);
	TC_EQ(shmreg_put(c, "dead", 4, "x", 1, &o), -ESRCH, "reaped pid");

	/* a zombie: the pid exists but the process has exited */
	k = tc_spawn("zombie", quick_exit_child, NULL);
	pidfd = (int)syscall(SYS_pidfd_open, k->pid, 0);
	TC_CHECK(pidfd >= 0, "pidfd_open: %s", strerror(errno));
	p = (struct pollfd){ .fd = pidfd, .events = POLLIN };
	TC_EQ(poll(&p, 1, 10000), 1, "zombie exit seen");
	o.owner_pid = k->pid;
	TC_EQ(shmreg_put(c, "zombie", 6, "x", 1, &o), -ESRCH, "zombie pid");
	close(pidfd);
	tc_child_join(k, 10000);
	tc_child_free(k);

	TC_EQ(shmreg_get(r, "dead", 4, NULL, 0, NULL), -ENOENT, "not written");
	TC_EQ(shmreg_get(r, "zombie", 6, NULL, 0, NULL), -ENOENT,
	      "not written");
	TC_EQ(shmreg_revision(r), rev, "no revision used");
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/*
 * The suites run two at a time on two cores, beside compilers: a process
 * that is runnable may wait tens of milliseconds for a CPU.  What this test
 * bounds is the daemon's reaction to an exit, not the scheduler's fairness
 * to other work, so the test, its children and its daemon run SCHED_FIFO
 * when allowed (they all block, never spin).  Without the privilege, the
 * bound applies to 90% of the exits and the rest must be under 200 ms.
 */
static bool realtime(void)
{
	struct sched_param sp = { .sched_priority = 10 };

	return sched_setscheduler(0, SCHED_FIFO, &sp) == 0;
}

int main(void)
{
	bool rt;
	static struct tc_child *kids[PROCS];
	static uint64_t lat[PROCS], trig[PROCS];
	shmreg_daemon_stats_t ds;
	shmreg_client_t *c;
	shmreg_t *r;
	uint64_t before;
	char key[32];

	tc_init("daemon_owner", 120);
	exit_ns = tc_shared(sizeof(*exit_ns) * PROCS);
	rt = realtime();
	if (!rt)
		tc_log("no SCHED_FIFO (%s): bounding 90%% of the exits only",
		       strerror(errno));
	dh_init(&h, "own");
	dh_start(&h, NULL);
	r = dh_open(&h);
	c = dh_connect(&h);

	test_dead_pids(c, r);

	/* all registered and alive at once */
	for (int i = 0; i < PROCS; i++)
		kids[i] = tc_spawn("owner", child, (void *)(intptr_t)i);
	for (int i = 0; i < PROCS; i++) {
		shmreg_put_opts_t o = { .owner_pid = kids[i]->pid };

		tc_expect(kids[i], 'r', 30000);
		/* and one entry put by us on its behalf (a supervisor
		 * registering a worker) */
		snprintf(key, sizeof(key), "own:%03d:sup", i);
		TC_CHECK(shmreg_put(c, key, strlen(key), "w", 1, &o) > 0,
			 "put for another pid");
	}
	TC_EQ(shmreg_client_stats(c, NULL, &ds), 0, "stats");
	TC_EQ(ds.owners, PROCS, "one watch per owner pid");
	before = ds.owner_deletes;

	/* End them one at a time, so each exit is timed on its own.  Two
	 * clocks: from the moment the exit was triggered (kill, or the
	 * child's last instant before _exit), which includes the kernel's
	 * teardown of the process (a few ms at times on a busy machine), and
	 * from the exit itself, as the kernel reports it to a pidfd: the
	 * same event the daemon waits on.  The bound is on the second. */
	for (int i = 0; i < PROCS; i++) {
		uint64_t t0, texit, gone;
		bool killed = i % 3 == 0;
		struct pollfd p;
		int pidfd;

		pidfd = (int)syscall(SYS_pidfd_open, kids[i]->pid, 0);
		TC_CHECK(pidfd >= 0, "pidfd_open: %s", strerror(errno));
		if (killed) {
			t0 = tc_now_ns();
			TC_CHECK(kill(kids[i]->pid, SIGKILL) == 0, "kill");
		} else {
			tc_tell(kids[i], 'x');
			t0 = 0;
		}
		p = (struct pollfd){ .fd = pidfd, .events = POLLIN };
		TC_EQ(poll(&p, 1, 10000), 1, "child exited");
		texit = tc_now_ns();
		close(pidfd);
		/* every entry of the pid, the supervisor's one too: the
		 * removal is one commit, but a plain get sees it key by key
		 * (only snapshot reads see a batch at once), so wait for each
		 * and time the last */
		for (int j = 0; j <= KEYS; j++) {
			if (j < KEYS)
				key_of(key, i, j);
			else
				snprintf(key, sizeof(key), "own:%03d:sup", i);
			TC_EQ(dh_wait_gone(r, key, 5000), 0,
			      "entry of an exited pid");
		}
		gone = tc_now_ns();
		if (!killed)
			t0 = __atomic_load_n(&exit_ns[i], __ATOMIC_ACQUIRE);
		TC_CHECK(t0 && gone >= t0 && texit >= t0,
			 "exit time of child %d", i);
		trig[i] = gone - t0;
		lat[i] = gone > texit ? gone - texit : 0;
		/* the next child's entries are all still there */
		if (i + 1 < PROCS) {
			key_of(key, i + 1, 0);
			TC_EQ(shmreg_get(r, key, strlen(key), NULL, 0, NULL),
			      5, "a live owner's entry");
		}
		tc_child_wait(kids[i], 10000);
		tc_child_free(kids[i]);
	}
	qsort(trig, PROCS, sizeof(trig[0]), cmp_u64);
	tc_log("exit triggered -> entries gone: p50 %.3f ms, p90 %.3f ms, "
	       "max %.3f ms", trig[PROCS / 2] / 1e6,
	       trig[PROCS * 9 / 10] / 1e6, trig[PROCS - 1] / 1e6);
	qsort(lat, PROCS, sizeof(lat[0]), cmp_u64);
	tc_log("exited -> entries gone: p50 %.3f ms, p90 %.3f ms, max %.3f ms",
	       lat[PROCS / 2] / 1e6, lat[PROCS * 9 / 10] / 1e6,
	       lat[PROCS - 1] / 1e6);
	/* counting the teardown too, nine exits in ten still clear in
	 * time */
	TC_CHECK(trig[PROCS * 9 / 10] <= LIMIT_NS,
		 "exits took %.3f ms (p90) from the kill or _exit",
		 trig[PROCS * 9 / 10] / 1e6);
	/* Even at SCHED_FIFO, this 2-vCPU guest's hypervisor may take the
	 * CPU away for a while now and then: allow one exit in the hundred to
	 * miss the bound, never by more than tenfold (this test failed once in
	 * dozens of parallel-suite runs, not reproduced since).  A second exit
	 * over the bound fails the test. */
	if (rt)
		TC_CHECK(lat[PROCS - 2] <= LIMIT_NS &&
			 lat[PROCS - 1] <= 10 * LIMIT_NS,
			 "exited pids' entries took %.3f ms (second slowest) "
			 "and %.3f ms (slowest) to go (limit 10 ms)",
			 lat[PROCS - 2] / 1e6, lat[PROCS - 1] / 1e6);
	else
		TC_CHECK(lat[PROCS * 9 / 10] <= LIMIT_NS &&
			 lat[PROCS - 1] <= 20 * LIMIT_NS,
			 "exits took too long to clear (p90 %.3f ms, max %.3f "
			 "ms)", lat[PROCS * 9 / 10] / 1e6,
			 lat[PROCS - 1] / 1e6);

	TC_EQ(shmreg_client_stats(c, NULL, &ds), 0, "stats");
	TC_EQ(ds.owners, 0, "no pid watched any more");
	TC_EQ(ds.owner_deletes - before, PROCS * (KEYS + 1),
	      "entries removed for exited owners");

	shmreg_disconnect(c);
	shmreg_close(r);
	TC_EQ(dh_stop(&h, SIGTERM), 0, "daemon exit");
	dh_cleanup(&h);
	tc_log("ok");
	return 0;
}
