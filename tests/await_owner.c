/* SPDX-License-Identifier: MIT */
/* Description: waiters learn when the writer goes away.  Blocked await,
 * watch_key and watch_next return -ESHUTDOWN when the writer closes (woken
 * by the close, not by their liveness slice), and -EOWNERDEAD within the
 * 100 ms slice (asserted < 300 ms, printed) when it is killed with
 * SIGKILL; events committed before the death are still delivered first.
 * A waiter killed while waiting leaves a stale count that breaks neither
 * the writer nor the other waiters of its slot. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "shmreg.h"
#include "shmreg_writer.h"
#include "waitfile.h"
#include "await_common.h"

#define NWAIT 3  /* await, watch_key, watch_next */

struct result {
	int64_t ret;
	uint64_t wakeups;
	uint64_t t_ret;        /* tc_now_ns() when the call returned */
	uint64_t events;       /* watch_next: events seen before the end */
};

struct shared {
	const char *name;
	uint64_t since;        /* mod_rev of "k" (watch_key), revision at
	                        * open (watch_next) */
	uint64_t pending;      /* events the watcher must deliver first */
	struct result r[NWAIT];
};

static struct shared *sh;

static int waiter(struct tc_child *c, void *arg)
{
	int kind = (int)(intptr_t)arg;
	struct result *me = &sh->r[kind];
	shmreg_watch_t *wt = NULL;
	shmreg_event_t ev;
	shmreg_t *r;
	char buf[16];
	uint64_t w0;
	int ret;

	ret = shmreg_open(sh->name, 0, &r);
	TC_CHECK(ret == 0, "open: %s", strerror(-ret));
	if (kind == 2) {
		ret = shmreg_watch_open(r, "", 0, sh->since, &wt);
		TC_CHECK(ret == 0, "watch_open: %s", strerror(-ret));
	}
	tc_post(c, 'r');
	w0 = waitfile_debug_wakeups();
	switch (kind) {
	case 0:
		me->ret = shmreg_await(r, "absent", 6, buf, sizeof(buf), NULL,
				       -1);
		break;
	case 1:
		me->ret = shmreg_watch_key(r, "k", 1, sh->since, -1, NULL);
		break;
	default:
		/* bounded by the events committed before the end */
		while ((ret = shmreg_watch_next(wt, &ev, -1)) == 0)
			me->events++;
		me->ret = ret;
		break;
	}
	me->t_ret = tc_now_ns();
	me->wakeups = waitfile_debug_wakeups() - w0;
	shmreg_watch_close(wt);
	shmreg_close(r);
	return 0;
}

static void start_waiters(struct tc_child **kids)
{
	static const char *names[NWAIT] = { "await", "watch_key",
					    "watch_next" };

	memset(sh->r, 0, sizeof(sh->r));
	for (int i = 0; i < NWAIT; i++) {
		kids[i] = tc_spawn(names[i], waiter, (void *)(intptr_t)i);
		tc_expect(kids[i], 'r', 10000);
	}
	for (int i = 0; i < NWAIT; i++)
		aw_wait_asleep(kids[i]->pid, 10000);
}

/* ---- writer close ---- */

static void closing(void)
{
	shmreg_writer_opts_t o = { .flags = SHMREG_WRITER_TRUNCATE };
	struct tc_child *kids[NWAIT];
	shmreg_writer_t *w;
	uint64_t t0;
	int64_t rev;
	int ret;

	sh->name = "owclose";
	ret = shmreg_writer_open(sh->name, &o, &w);
	TC_CHECK(ret == 0, "writer_open: %s", strerror(-ret));
	rev = shmreg_writer_put(w, "k", 1, "1", 1, NULL);
	TC_CHECK(rev > 0, "put");
	sh->since = (uint64_t)rev;
	start_waiters(kids);
	t0 = tc_now_ns();
	shmreg_writer_close(w);
	for (int i = 0; i < NWAIT; i++) {
		tc_child_join(kids[i], 10000);
		tc_log("close: %s returned %lld after %.2f ms", kids[i]->name,
		       (long long)sh->r[i].ret,
		       (double)(sh->r[i].t_ret - t0) / 1e6);
		TC_EQ(sh->r[i].ret, -ESHUTDOWN, kids[i]->name);
		/* woken by the close's notify_all, not by a liveness slice
		 * (a slice's timeout is not counted as a wake-up) */
		TC_CHECK(sh->r[i].wakeups >= 1, "%s: not woken by the close",
			 kids[i]->name);
		tc_child_free(kids[i]);
	}
	TC_EQ(sh->r[2].events, 0, "events after the watch's start");
}

/* ---- writer killed ---- */

static int writer_main(struct tc_child *c, void *arg)
{
	shmreg_writer_opts_t o = { .flags = SHMREG_WRITER_TRUNCATE };
	shmreg_writer_t *w;
	int64_t rev;
	int ret;

	(void)arg;
	ret = shmreg_writer_open(sh->name, &o, &w);
	TC_CHECK(ret == 0, "writer_open: %s", strerror(-ret));
	rev = shmreg_writer_put(w, "k", 1, "1", 1, NULL);
	TC_CHECK(rev > 0, "put");
	sh->since = (uint64_t)rev;
	tc_post(c, 'w');
	/* the watcher starts from here: these two it must deliver */
	TC_CHECK(tc_wait_parent(c, 30000) == 'p', "no go");
	TC_CHECK(shmreg_writer_put(w, "x1", 2, "", 0, NULL) > 0, "put");
	TC_CHECK(shmreg_writer_put(w, "x2", 2, "", 0, NULL) > 0, "put");
	tc_post(c, 'p');
	/* wait to be killed: the parent's SIGKILL ends this */
	tc_wait_parent(c, 60000);
	return 1;
}

static void killing(void)
{
	struct tc_child *kids[NWAIT], *wc;
	double worst = 0;
	uint64_t t0;

	sh->name = "owkill";
	wc = tc_spawn("writer", writer_main, NULL);
	tc_expect(wc, 'w', 10000);
	start_waiters(kids);
	tc_tell(wc, 'p');
	tc_expect(wc, 'p', 10000);
	/* the watcher consumes both events and sleeps again */
	aw_wait_asleep(kids[2]->pid, 10000);
	t0 = tc_now_ns();
	kill(wc->pid, SIGKILL);
	for (int i = 0; i < NWAIT; i++) {
		double ms;

		tc_child_join(kids[i], 10000);
		ms = (double)(sh->r[i].t_ret - t0) / 1e6;
		tc_log("kill -9: %s returned %lld after %.1f ms",
		       kids[i]->name, (long long)sh->r[i].ret, ms);
		TC_EQ(sh->r[i].ret, -EOWNERDEAD, kids[i]->name);
		TC_CHECK(ms < 300, "%s noticed the death after %.1f ms "
			 "(slice 100 ms)", kids[i]->name, ms);
		worst = ms > worst ? ms : worst;
		tc_child_free(kids[i]);
	}
	TC_EQ(sh->r[2].events, 2, "events delivered before -EOWNERDEAD");
	TC_EQ(tc_child_wait(wc, 10000), 0, "reap the writer");
	TC_CHECK(WIFSIGNALED(wc->status) && WTERMSIG(wc->status) == SIGKILL,
		 "writer died of SIGKILL");
	tc_child_free(wc);
	tc_log("slowest notice of the death: %.1f ms", worst);
}

/* ---- a waiter killed while waiting ---- */

static int plain_waiter(struct tc_child *c, void *arg)
{
	shmreg_t *r;
	char buf[16];
	uint64_t w0;
	int ret;

	(void)arg;
	ret = shmreg_open(sh->name, 0, &r);
	TC_CHECK(ret == 0, "open: %s", strerror(-ret));
	tc_post(c, 'r');
	w0 = waitfile_debug_wakeups();
	sh->r[0].ret = shmreg_await(r, "dw", 2, buf, sizeof(buf), NULL,
				    30000000000LL);
	sh->r[0].wakeups = waitfile_debug_wakeups() - w0;
	shmreg_close(r);
	return 0;
}

/* A waiter that dies leaves its count behind (a stale hint): the writer
 * and the other waiters of the slot must not mind. */
static void waiter_dies(void)
{
	shmreg_writer_opts_t o = { .flags = SHMREG_WRITER_TRUNCATE };
	struct shm_wait_hdr *wh;
	struct tc_child *victim, *other;
	shmreg_writer_t *w;
	_Atomic uint32_t *count;
	int ret;

	sh->name = "owdies";
	memset(sh->r, 0, sizeof(sh->r));
	ret = shmreg_writer_open(sh->name, &o, &w);
	TC_CHECK(ret == 0, "writer_open: %s", strerror(-ret));
	wh = aw_map_waitfile(sh->name);
	count = &aw_slot(wh, aw_slot_of("dw"))->waiters;
	victim = tc_spawn("victim", plain_waiter, NULL);
	other = tc_spawn("other", plain_waiter, NULL);
	tc_expect(victim, 'r', 10000);
	tc_expect(other, 'r', 10000);
	aw_wait_asleep(victim->pid, 10000);
	aw_wait_asleep(other->pid, 10000);
	TC_EQ(aw_load(count), 2, "two waiters registered");
	TC_EQ(tc_child_kill(victim, 10000), 0, "kill -9 a waiter");
	TC_EQ(aw_load(count), 2, "the dead waiter's count stays (a hint)");
	TC_CHECK(shmreg_writer_put(w, "dw", 2, "x", 1, NULL) > 0, "put");
	tc_child_join(other, 10000);
	TC_EQ(sh->r[0].ret, 1, "the other waiter got the key");
	TC_EQ(sh->r[0].wakeups, 1, "the other waiter was woken once");
	TC_EQ(aw_load(count), 1, "only the stale count is left");
	/* the writer goes on: commits to the slot (a spare FUTEX_WAKE each) */
	for (int i = 0; i < 100; i++)
		TC_CHECK(shmreg_writer_put(w, "dw", 2, "y", 1, NULL) > 0,
			 "put after a waiter died");
	tc_child_free(victim);
	tc_child_free(other);
	shmreg_writer_close(w);
	munmap(wh, SHM_WAIT_FILE_SIZE);
}

int main(void)
{
	tc_init("await_owner", 60);
	aw_require_proc_syscall();
	tc_dir();
	sh = tc_shared(sizeof(*sh));
	closing();
	killing();
	waiter_dies();
	tc_log("ok");
	return 0;
}
