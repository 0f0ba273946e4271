/* SPDX-License-Identifier: MIT */
/* Description: shmreg_await and shmreg_watch_key one behaviour at a time:
 * argument errors, a present key, timeouts (0, finite), a put waking a
 * sleeping waiter with exactly one wake-up, signals that do not end a wait,
 * watch_key on put and delete, no wake-up (and no word change) when nobody
 * waits, and a closed registry. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shmreg.h"
#include "shmreg_writer.h"
#include "waitfile.h"
#include "await_common.h"

#define NAME "awbasic"

struct shared {
	_Atomic uint32_t signals;   /* SIGUSR1 handlers run in the child */
	int64_t ret;                /* what the child's call returned */
	uint64_t new_rev;
	uint64_t wakeups;           /* child's futex wake-ups during the call */
	double ms;                  /* how long the call took */
};

static struct shared *sh;
static shmreg_writer_t *wr;

static int64_t put(const char *key, const char *val)
{
	int64_t rev = shmreg_writer_put(wr, key, strlen(key), val, strlen(val),
					NULL);

	TC_CHECK(rev > 0, "put %s: %s", key, strerror((int)-rev));
	return rev;
}

static shmreg_t *open_reader(void)
{
	shmreg_t *r;
	int ret = shmreg_open(NAME, 0, &r);

	TC_CHECK(ret == 0, "shmreg_open: %s", strerror(-ret));
	return r;
}

static void check_args(shmreg_t *r)
{
	char buf[8], big[SHMREG_KEY_MAX + 1];
	shmreg_watch_t *w = (shmreg_watch_t *)1;
	shmreg_event_t ev;
	uint64_t nr;

	memset(big, 'k', sizeof(big));
	TC_EQ(shmreg_await(NULL, "k", 1, buf, sizeof(buf), NULL, 0), -EINVAL,
	      "await NULL handle");
	TC_EQ(shmreg_await(r, NULL, 1, buf, sizeof(buf), NULL, 0), -EINVAL,
	      "await NULL key");
	TC_EQ(shmreg_await(r, "k", 0, buf, sizeof(buf), NULL, 0), -EINVAL,
	      "await empty key");
	TC_EQ(shmreg_await(r, big, sizeof(big), buf, sizeof(buf), NULL, 0),
	      -E2BIG, "await oversize key");
	TC_EQ(shmreg_await(r, "k", 1, NULL, 4, NULL, 0), -EINVAL,
	      "await NULL buf with cap");
	TC_EQ(shmreg_watch_key(NULL, "k", 1, 0, 0, &nr), -EINVAL,
	      "watch_key NULL handle");
	TC_EQ(shmreg_watch_key(r, "", 0, 0, 0, &nr), -EINVAL,
	      "watch_key empty key");
	TC_EQ(shmreg_watch_key(r, big, sizeof(big), 0, 0, &nr), -E2BIG,
	      "watch_key oversize key");
	TC_EQ(shmreg_watch_open(NULL, "", 0, 0, &w), -EINVAL,
	      "watch_open NULL handle");
	TC_CHECK(w == NULL, "watch_open clears *out on error");
	TC_EQ(shmreg_watch_open(r, NULL, 3, 0, &w), -EINVAL,
	      "watch_open NULL prefix with length");
	TC_EQ(shmreg_watch_open(r, big, sizeof(big), 0, &w), -E2BIG,
	      "watch_open oversize prefix");
	TC_EQ(shmreg_watch_open(r, "", 0, 0, NULL), -EINVAL,
	      "watch_open NULL out");
	TC_EQ(shmreg_watch_next(NULL, &ev, 0), -EINVAL, "watch_next NULL");
	TC_EQ(shmreg_watch_open(r, "", 0, 0, &w), 0, "watch_open");
	TC_EQ(shmreg_watch_next(w, NULL, 0), -EINVAL, "watch_next NULL ev");
	shmreg_watch_close(w);
	shmreg_watch_close(NULL);
}

/* ---- children: each makes one call and reports it in *sh ---- */

static void report(int64_t ret, uint64_t t0, uint64_t w0)
{
	sh->ret = ret;
	sh->ms = aw_ms_since(t0);
	sh->wakeups = waitfile_debug_wakeups() - w0;
}

static int child_await(struct tc_child *c, void *arg)
{
	shmreg_t *r = open_reader();
	char buf[64];
	shmreg_info_t info;
	uint64_t t0 = tc_now_ns(), w0 = waitfile_debug_wakeups();
	ssize_t n;

	n = shmreg_await(r, arg, strlen(arg), buf, sizeof(buf), &info, -1);
	report(n, t0, w0);
	if (n > 0) {
		TC_CHECK(n == 6 && !memcmp(buf, "value2", 6),
			 "await returned %zd bytes '%.*s'", n, (int)n, buf);
		sh->new_rev = info.mod_rev;
	}
	(void)c;
	shmreg_close(r);
	return 0;
}

static void on_usr1(int sig)
{
	(void)sig;
	atomic_fetch_add(&sh->signals, 1);
}

/* A timer sends SIGUSR1 every 2 ms (no SA_RESTART) during the wait. */
static timer_t signal_storm(void)
{
	struct sigaction sa = { .sa_handler = on_usr1 };
	struct sigevent sev = { .sigev_notify = SIGEV_SIGNAL,
				.sigev_signo = SIGUSR1 };
	struct itimerspec its = { { 0, 2000000 }, { 0, 2000000 } };
	timer_t t;

	sigemptyset(&sa.sa_mask);
	TC_CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
	TC_CHECK(timer_create(CLOCK_MONOTONIC, &sev, &t) == 0, "timer_create");
	TC_CHECK(timer_settime(t, 0, &its, NULL) == 0, "timer_settime");
	return t;
}

/* await with a timeout under a signal storm: -ETIMEDOUT, never early */
/* await "never" for *@arg ms under a signal storm */
static int child_await_signals_timeout(struct tc_child *c, void *arg)
{
	shmreg_t *r = open_reader();
	char buf[8];
	timer_t t = signal_storm();
	uint64_t t0 = tc_now_ns();
	ssize_t n;

	(void)c;
	n = shmreg_await(r, "never", 5, buf, sizeof(buf), NULL,
			 *(const int64_t *)arg * 1000000);
	report(n, t0, 0);
	timer_delete(t);
	shmreg_close(r);
	return 0;
}

/* await forever under a signal storm, until the parent's put */
static int child_await_signals_put(struct tc_child *c, void *arg)
{
	shmreg_t *r = open_reader();
	char buf[64];
	timer_t t = signal_storm();
	uint64_t t0 = tc_now_ns();
	ssize_t n;

	(void)c;
	n = shmreg_await(r, arg, strlen(arg), buf, sizeof(buf), NULL, -1);
	report(n, t0, 0);
	timer_delete(t);
	shmreg_close(r);
	return 0;
}

static int child_watch_key(struct tc_child *c, void *arg)
{
	shmreg_t *r = open_reader();
	uint64_t t0 = tc_now_ns(), w0 = waitfile_debug_wakeups();
	uint64_t nr = 12345;
	int ret;

	(void)c;
	ret = shmreg_watch_key(r, arg, strlen(arg), sh->new_rev, -1, &nr);
	report(ret, t0, w0);
	sh->new_rev = nr;
	shmreg_close(r);
	return 0;
}

/* @arg: the child's argument (a key, or what its function says) */
static struct tc_child *start(const char *what, tc_child_fn fn,
			      const void *arg)
{
	struct tc_child *c;

	memset(sh, 0, offsetof(struct shared, new_rev));
	sh->wakeups = 0;
	c = tc_spawn(what, fn, (void *)arg);
	return c;
}

static void finish(struct tc_child *c)
{
	tc_child_join(c, 10000);
	tc_child_free(c);
}

int main(void)
{
	shmreg_writer_opts_t o = { .flags = SHMREG_WRITER_TRUNCATE };
	struct shm_wait_hdr *wh;
	struct tc_child *c;
	shmreg_info_t info;
	shmreg_t *r;
	char buf[64];
	uint64_t t0, words[4];
	int64_t rev, rev2;
	uint64_t nr;
	ssize_t n;
	int ret;

	tc_init("await_basic", 60);
	aw_require_proc_syscall();
	tc_dir();
	sh = tc_shared(sizeof(*sh));
	ret = shmreg_writer_open(NAME, &o, &wr);
	TC_CHECK(ret == 0, "writer_open: %s", strerror(-ret));
	r = open_reader();
	wh = aw_map_waitfile(NAME);

	check_args(r);

	/* a present key is returned at once, with any timeout */
	rev = put("here", "value1");
	n = shmreg_await(r, "here", 4, buf, sizeof(buf), &info, 0);
	TC_EQ(n, 6, "await present key, timeout 0");
	TC_CHECK(!memcmp(buf, "value1", 6), "value");
	TC_EQ(info.mod_rev, rev, "info.mod_rev");
	memset(buf, 0, sizeof(buf));
	n = shmreg_await(r, "here", 4, buf, 3, NULL, -1);
	TC_EQ(n, 6, "await returns the full length past cap");
	TC_CHECK(!memcmp(buf, "val", 3) && buf[3] == 0, "copies cap bytes");

	/* timeouts: 0 never blocks; a finite one is honoured */
	/* never blocks: far below the 100 ms slice (best of three tries,
	 * so one preemption on a loaded machine does not fail the test) */
	for (int i = 0, fast = 0; !fast; i++) {
		t0 = tc_now_ns();
		TC_EQ(shmreg_await(r, "absent", 6, buf, sizeof(buf), NULL, 0),
		      -ETIMEDOUT, "await absent, timeout 0");
		fast = aw_ms_since(t0) < 50;
		TC_CHECK(fast || i < 2, "timeout 0 took %.1f ms",
			 aw_ms_since(t0));
	}
	t0 = tc_now_ns();
	TC_EQ(shmreg_await(r, "absent", 6, buf, sizeof(buf), NULL, 30000000),
	      -ETIMEDOUT, "await absent, 30 ms");
	TC_CHECK(aw_ms_since(t0) >= 30 && aw_ms_since(t0) < 2000,
		 "a 30 ms timeout took %.1f ms", aw_ms_since(t0));

	/* nobody waits: puts change no futex word (so made no FUTEX_WAKE:
	 * the writer bumps a word before every wake) */
	words[0] = aw_load(&aw_slot(wh, aw_slot_of("quiet"))->word);
	words[1] = aw_load(&wh->global.word);
	for (int i = 0; i < 1000; i++)
		put("quiet", i & 1 ? "a" : "b");
	TC_EQ(aw_load(&aw_slot(wh, aw_slot_of("quiet"))->word), words[0],
	      "key slot word after 1000 puts without waiters");
	TC_EQ(aw_load(&wh->global.word), words[1],
	      "global word after 1000 puts without waiters");

	/* a sleeping waiter is woken by the put, once */
	c = start("await", child_await, "later");
	aw_wait_asleep(c->pid, 10000);
	TC_EQ(aw_load(&aw_slot(wh, aw_slot_of("later"))->waiters), 1,
	      "waiters count while one await sleeps");
	words[0] = aw_load(&aw_slot(wh, aw_slot_of("later"))->word);
	rev = put("later", "value2");
	finish(c);
	TC_EQ(sh->ret, 6, "await woken by put");
	TC_EQ(sh->new_rev, rev, "its mod_rev");
	TC_EQ(sh->wakeups, 1, "futex wake-ups of the waiter");
	TC_CHECK(aw_load(&aw_slot(wh, aw_slot_of("later"))->word) != words[0],
		 "the put bumped the slot word");
	TC_EQ(aw_load(&aw_slot(wh, aw_slot_of("later"))->waiters), 0,
	      "waiters count after the waiter returned");
	tc_log("await woken after %.2f ms", sh->ms);

	/* signals: an interrupted wait resumes with the remaining time */
	/* a storm of 2 ms signals gives a 150 ms await about 75; a loaded
	 * machine may deschedule the child long enough to coalesce them into
	 * a few, which proves nothing: then it waits longer, up to 2.4 s */
	for (int64_t ms = 150;; ms *= 2) {
		c = start("await-signals", child_await_signals_timeout, &ms);
		finish(c);
		TC_EQ(sh->ret, -ETIMEDOUT, "await under signals");
		TC_CHECK(sh->ms >= (double)ms, "returned after %.1f ms, before "
			 "%lld", sh->ms, (long long)ms);
		tc_log("%lld ms await under %u signals took %.1f ms",
		       (long long)ms, sh->signals, sh->ms);
		if (sh->signals >= 10)
			break;
		TC_CHECK(ms < 2400, "only %u signals were delivered in %lld ms",
			 sh->signals, (long long)ms);
	}
	c = start("await-signals-put", child_await_signals_put, "storm");
	/* bounded: the child's timer fires every 2 ms */
	t0 = tc_now_ns();
	while (atomic_load(&sh->signals) < 20) {
		TC_CHECK(aw_ms_since(t0) < 10000, "no signals in the child");
		sched_yield();
	}
	put("storm", "x");
	finish(c);
	TC_EQ(sh->ret, 1, "await under signals returns the value");

	/* watch_key: mod_rev past since_rev, or deleted */
	rev = put("wk", "1");
	TC_EQ(shmreg_watch_key(r, "wk", 2, 0, 0, &nr), 0, "watch_key since 0");
	TC_EQ(nr, rev, "new_rev");
	TC_EQ(shmreg_watch_key(r, "wk", 2, rev - 1, -1, &nr), 0,
	      "watch_key since an older revision");
	TC_EQ(shmreg_watch_key(r, "wk", 2, rev, 0, NULL), -ETIMEDOUT,
	      "watch_key since its mod_rev, timeout 0");
	TC_EQ(shmreg_watch_key(r, "nokey", 5, 0, -1, &nr), -ENOENT,
	      "watch_key of an absent key");
	TC_EQ(nr, 0, "new_rev of an absent key");
	sh->new_rev = (uint64_t)rev;
	c = start("watch_key-put", child_watch_key, "wk");
	aw_wait_asleep(c->pid, 10000);
	put("other", "x"); /* another key: must not end the watch */
	rev2 = put("wk", "2");
	finish(c);
	TC_EQ(sh->ret, 0, "watch_key woken by a put");
	TC_EQ(sh->new_rev, rev2, "watch_key's new_rev");
	TC_CHECK(sh->wakeups >= 1, "watch_key was never woken");
	c = start("watch_key-del", child_watch_key, "wk");
	aw_wait_asleep(c->pid, 10000);
	TC_CHECK(shmreg_writer_del(wr, "wk", 2) > 0, "del");
	finish(c);
	TC_EQ(sh->ret, -ENOENT, "watch_key woken by a delete");

	/* closed: absent keys give -ESHUTDOWN at once, present ones their
	 * value; a watch_key that would wait, -ESHUTDOWN */
	rev = put("kept", "v");
	shmreg_writer_close(wr);
	wr = NULL;
	t0 = tc_now_ns();
	TC_EQ(shmreg_await(r, "absent", 6, buf, sizeof(buf), NULL, -1),
	      -ESHUTDOWN, "await on a closed registry");
	TC_EQ(shmreg_watch_key(r, "kept", 4, rev, -1, NULL), -ESHUTDOWN,
	      "watch_key on a closed registry");
	TC_CHECK(aw_ms_since(t0) < 1000, "closed: took %.1f ms",
		 aw_ms_since(t0));
	TC_EQ(shmreg_await(r, "kept", 4, buf, sizeof(buf), NULL, -1), 1,
	      "await of a present key on a closed registry");
	shmreg_close(r);
	munmap(wh, SHM_WAIT_FILE_SIZE);
	tc_log("ok");
	return 0;
}
