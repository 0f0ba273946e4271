/* Description: TTL expiry in the embedded writer.  An entry is invisible
 * to get, list, find, children and await from its deadline on, before any
 * sweep; shmreg_writer_expiry_fd() turns readable at (never before) the
 * first deadline; shmreg_writer_expire() removes the expired entries with
 * their descendants, each with a revision and a delete event in order
 * (leaves before parents), in chunks of at most @max with the descriptor
 * readable again while more are due; a watch_key waiter wakes when its key
 * is swept; the stale deadlines of a lease refreshed many times are
 * dropped in bounded steps; a delete or a put meeting an expired entry removes it the same
 * way; deadlines survive a growth handoff and a takeover by a new writer. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "shmreg.h"
#include "shmreg_writer.h"
#include "clock.h"
#include "common/tc.h"

#define MS 1000000LL

static shmreg_writer_t *w;
static shmreg_t *r;
static const char *name = "expiry";

static int64_t put_ttl(const char *k, int64_t ttl_ns, const char *parent,
		       const shmreg_attr_t *attrs, uint32_t nattrs)
{
	shmreg_put_opts_t o = { .ttl_ns = ttl_ns, .attrs = attrs,
				.nattrs = nattrs };
	int64_t rev;

	if (parent) {
		o.parent = parent;
		o.parent_len = strlen(parent);
	}
	rev = shmreg_writer_put(w, k, strlen(k), "v", 1, &o);
	TC_CHECK(rev > 0, "put %s: %lld", k, (long long)rev);
	return rev;
}

static bool readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

static ssize_t get(const char *k)
{
	char buf[16];

	return shmreg_get(r, k, strlen(k), buf, sizeof(buf), NULL);
}

/* Wait (bounded) until CLOCK_REALTIME passes @at. */
static void wait_past(int64_t at)
{
	uint64_t until = tc_now_ns() + 10000 * MS;

	while (shm_realtime_ns() < at) {
		TC_CHECK(tc_now_ns() < until, "the clock stands still");
		poll(NULL, 0, 1);
	}
}

static int count_cb(const void *key, size_t klen, const void *val,
		    size_t vlen, const shmreg_info_t *info, void *arg)
{
	(void)key, (void)klen, (void)val, (void)vlen, (void)info;
	(*(int *)arg)++;
	return 0;
}

static void expect_event(shmreg_watch_t *wt, int type, const char *k,
			 uint64_t rev)
{
	shmreg_event_t ev;
	int rc = shmreg_watch_next(wt, &ev, 1000 * MS);

	TC_EQ(rc, 0, k);
	TC_CHECK(ev.type == type && ev.klen == strlen(k) &&
			 memcmp(ev.key, k, ev.klen) == 0,
		 "event %d '%.*s', want %d '%s'", ev.type, (int)ev.klen,
		 (const char *)ev.key, type, k);
	if (rev)
		TC_EQ(ev.rev, rev, k);
}

static int64_t deadline_of(const char *k)
{
	shmreg_info_t info;

	TC_CHECK(shmreg_get(r, k, strlen(k), NULL, 0, &info) >= 0, "%s", k);
	return info.expires_at_ns;
}

/* Entries vanish at their deadline for every read path; the sweep then
 * removes them with their subtrees, in order. */
static void test_expire_tree(int fd)
{
	shmreg_attr_t at = { "role", "cache" };
	shmreg_attr_t match = { "role", "cache" };
	shmreg_watch_t *wt;
	int64_t da, rev0, t_fd;
	uint64_t r1;
	int n;

	put_ttl("keep", 0, NULL, NULL, 0);
	/* b due 2 s after a: the checks between a's deadline and its sweep
	 * must not see b due too, however slow a loaded sanitizer run is */
	put_ttl("a", 300 * MS, NULL, &at, 1);
	put_ttl("b", 2300 * MS, NULL, NULL, 0);
	put_ttl("b/c", 0, "b", NULL, 0);
	put_ttl("b/c/d", 60000 * MS, "b/c", NULL, 0);
	put_ttl("later", 60000 * MS, NULL, NULL, 0);
	da = deadline_of("a");
	TC_CHECK(!readable(fd, 0), "expiry fd readable before any deadline");
	TC_EQ(shmreg_writer_expire(w, 256), 0, "expire before the deadline");
	TC_EQ(shmreg_watch_open(r, "", 0, shmreg_revision(r), &wt), 0,
	      "watch");

	TC_CHECK(readable(fd, 5000), "expiry fd not readable 5 s after put");
	t_fd = shm_realtime_ns();
	TC_CHECK(t_fd >= da, "timer fired %lld ns before the deadline",
		 (long long)(da - t_fd));
	TC_CHECK(t_fd < da + 1000 * MS, "timer %lld ms late",
		 (long long)((t_fd - da) / MS));
	/* invisible at once, before the sweep */
	rev0 = (int64_t)shmreg_revision(r);
	TC_EQ(get("a"), -ENOENT, "get of an expired entry");
	n = 0;
	TC_CHECK(shmreg_find(r, &match, 1, count_cb, &n) >= 0, "find");
	TC_EQ(n, 0, "find reports an expired entry");
	TC_EQ(shmreg_await(r, "a", 1, NULL, 0, NULL, 0), -ETIMEDOUT,
	      "await of an expired entry");
	n = 0;
	TC_CHECK(shmreg_list(r, "a", 1, count_cb, &n) >= 0, "list");
	TC_EQ(n, 0, "list reports an expired entry");
	TC_EQ((int64_t)shmreg_revision(r), rev0, "revision before the sweep");

	/* "a" alone is due: one removal, one event */
	TC_EQ(shmreg_writer_expire(w, 256), 1, "expire a");
	expect_event(wt, SHMREG_EVENT_DEL, "a", (uint64_t)rev0 + 1);
	TC_CHECK(!readable(fd, 0), "expiry fd readable with nothing due");

	/* "b" takes its child and grandchild (one not expired, one with a
	 * later deadline of its own) in one commit: leaves first */
	TC_CHECK(readable(fd, 5000), "expiry fd not readable for b");
	TC_EQ(get("b"), -ENOENT, "get b");
	TC_EQ(get("b/c"), 1, "b/c stays visible until b is swept");
	TC_EQ(shmreg_writer_expire(w, 256), 3, "expire b with its subtree");
	expect_event(wt, SHMREG_EVENT_DEL, "b/c/d", (uint64_t)rev0 + 2);
	expect_event(wt, SHMREG_EVENT_DEL, "b/c", (uint64_t)rev0 + 3);
	expect_event(wt, SHMREG_EVENT_DEL, "b", (uint64_t)rev0 + 4);
	TC_EQ(get("b/c"), -ENOENT, "b/c after the sweep");
	TC_EQ(get("b/c/d"), -ENOENT, "b/c/d after the sweep");
	TC_EQ(get("keep"), 1, "keep");
	TC_EQ(get("later"), 1, "later");
	r1 = shmreg_revision(r);
	TC_EQ(r1, (uint64_t)rev0 + 4, "one revision per removed entry");
	TC_EQ(shmreg_writer_expire(w, 256), 0, "nothing more due");
	TC_EQ(shmreg_watch_next(wt, &(shmreg_event_t){ 0 }, 0), -ETIMEDOUT,
	      "no other event");
	shmreg_watch_close(wt);
}

/* A delete or a put meeting an expired entry removes it as the sweep
 * would: its own revision and delete event, its subtree with it.  (Called
 * before test_chunks, with nothing else due.) */
static void test_meet_expired(void)
{
	shmreg_watch_t *wt;
	uint64_t rev0;
	int64_t rev;
	int n = 0;

	put_ttl("x", 50 * MS, NULL, NULL, 0);
	put_ttl("p", 50 * MS, NULL, NULL, 0);
	put_ttl("p/k", 0, "p", NULL, 0);
	wait_past(deadline_of("p"));
	rev0 = shmreg_revision(r);
	TC_EQ(shmreg_watch_open(r, "", 0, rev0, &wt), 0, "watch");
	TC_EQ(shmreg_writer_del(w, "x", 1), -ENOENT, "del of an expired key");
	TC_EQ(shmreg_revision(r), rev0 + 1, "the expiry's revision");
	expect_event(wt, SHMREG_EVENT_DEL, "x", rev0 + 1);
	rev = put_ttl("p", 0, NULL, NULL, 0);
	TC_EQ(rev, (int64_t)rev0 + 4, "put after its expired entry's removal");
	expect_event(wt, SHMREG_EVENT_DEL, "p/k", rev0 + 2);
	expect_event(wt, SHMREG_EVENT_DEL, "p", rev0 + 3);
	expect_event(wt, SHMREG_EVENT_PUT, "p", rev0 + 4);
	TC_CHECK(shmreg_children(r, "p", 1, count_cb, &n) >= 0, "children");
	TC_EQ(n, 0, "the new p inherits no child of the expired one");
	/* an expired child is no child: not listed, no -ENOTEMPTY; the
	 * sweep removes it later, with its event */
	put_ttl("p/e", 50 * MS, "p", NULL, 0);
	wait_past(deadline_of("p/e"));
	n = 0;
	TC_CHECK(shmreg_children(r, "p", 1, count_cb, &n) >= 0, "children");
	TC_EQ(n, 0, "children lists an expired child");
	TC_EQ(shmreg_writer_del(w, "p", 1), (int64_t)rev0 + 6, "del p");
	expect_event(wt, SHMREG_EVENT_PUT, "p/e", rev0 + 5);
	expect_event(wt, SHMREG_EVENT_DEL, "p", rev0 + 6);
	TC_EQ(shmreg_writer_expire(w, 256), 1, "the orphaned expired child");
	expect_event(wt, SHMREG_EVENT_DEL, "p/e", rev0 + 7);
	shmreg_watch_close(wt);
}

/* Many due at once: chunks of at most max, the fd readable between. */
static void test_chunks(int fd)
{
	enum { N = 1000, MAX = 100 };
	int64_t total = 0, last = 0;
	char k[32];
	int calls = 0;

	for (int i = 0; i < N; i++) {
		snprintf(k, sizeof(k), "chunk/%04d", i);
		put_ttl(k, 100 * MS, NULL, NULL, 0);
	}
	/* every deadline is at most this (each put's clock + its ttl); not
	 * the last entry's deadline read back, which a loaded machine may
	 * have let pass during the 1,000 puts */
	wait_past(shm_realtime_ns() + 100 * MS);
	while (total < N) {
		int64_t n;

		TC_CHECK(readable(fd, 2000), "fd not readable, %lld of %d",
			 (long long)total, N);
		n = shmreg_writer_expire(w, MAX);
		TC_CHECK(n >= 1 && n <= MAX, "a chunk removed %lld",
			 (long long)n);
		total += n;
		last = n;
		TC_CHECK(++calls <= N, "no progress");
	}
	TC_EQ(total, N, "removed in all");
	TC_EQ(last, MAX, "full chunks (N is a multiple of MAX)");
	TC_EQ(calls, N / MAX, "chunks");
	TC_CHECK(!readable(fd, 0), "fd readable after the last chunk");
}

static int key_waiter(struct tc_child *c, void *arg)
{
	shmreg_t *cr;
	uint64_t nr = 1;
	int rc;

	(void)arg;
	tc_set_role(c->name);
	TC_EQ(shmreg_open(name, 0, &cr), 0, "child open");
	tc_post(c, 'R');
	/* since the entry's own mod_rev: only its removal ends the wait */
	rc = shmreg_watch_key(cr, "wk", 2, *(uint64_t *)arg, 10000 * MS, &nr);
	TC_EQ(rc, -ENOENT, "watch_key of an expiring key");
	TC_EQ(nr, 0, "new_rev of an absent key");
	shmreg_close(cr);
	return 0;
}

/* A reader blocked on the key wakes when the sweep removes it. */
static void test_waiter(int fd)
{
	static uint64_t since;
	struct tc_child *c;
	int64_t d;

	since = (uint64_t)put_ttl("wk", 300 * MS, NULL, NULL, 0);
	d = deadline_of("wk");
	c = tc_spawn("waiter", key_waiter, &since);
	tc_expect(c, 'R', 5000);
	TC_CHECK(readable(fd, 5000), "fd for wk");
	TC_EQ(shmreg_writer_expire(w, 256), 1, "expire wk");
	tc_child_join(c, 5000);
	TC_CHECK(shm_realtime_ns() < d + 2000 * MS, "waiter woke late");
	tc_child_free(c);
}

/* shmreg_writer_set_attrs keeps the entry's deadline, and the sweep
 * still removes it then. */
static void test_set_attrs(int fd)
{
	shmreg_attr_t a = { "health", "ok" };
	int64_t d;

	put_ttl("sa", 200 * MS, NULL, NULL, 0);
	d = deadline_of("sa");
	TC_CHECK(shmreg_writer_set_attrs(w, "sa", 2, &a, 1) > 0, "set_attrs");
	TC_EQ(deadline_of("sa"), d, "set_attrs kept the deadline");
	TC_CHECK(readable(fd, 5000), "fd for sa");
	TC_EQ(shmreg_writer_expire(w, 256), 1, "expire sa");
	TC_EQ(get("sa"), -ENOENT, "sa after the sweep");
}

/* A lease refreshed again and again (a put with a new TTL each time)
 * leaves a stale deadline per refresh: once they pile up, the descriptor
 * turns readable with nothing due and a few expire() calls (each bounded)
 * drop them, removing nothing; the lease itself is kept. */
static void test_refresh(int fd)
{
	enum { REFRESH = 20000 };
	int calls = 0;

	TC_CHECK(!readable(fd, 0), "fd readable before the refreshes");
	for (int i = 0; i < REFRESH; i++)
		put_ttl("lease", 3600000 * MS, NULL, NULL, 0);
	TC_CHECK(readable(fd, 0), "no compaction after %d refreshes",
		 REFRESH);
	while (readable(fd, 0)) {
		TC_EQ(shmreg_writer_expire(w, 256), 0, "a compaction step");
		/* 512 elements examined per call at most */
		TC_CHECK(++calls <= (REFRESH + 4096) / 512 + 2,
			 "compaction never ends");
	}
	TC_CHECK(calls >= 2, "compaction done in %d call", calls);
	TC_EQ(get("lease"), 1, "the lease");
	TC_EQ(shmreg_writer_del(w, "lease", 5) > 0, 1, "del lease");
}

/* Deadlines are kept by growth (slots move) and a new writer's takeover
 * (the queue is rebuilt from the slots). */
static void test_growth_takeover(void)
{
	enum { N = 600 };
	shmreg_writer_opts_t wo = { .initial_entries = 16 };
	uint64_t e0;
	int64_t total = 0;
	char k[32];
	int fd;

	for (int i = 0; i < N; i++) {
		snprintf(k, sizeof(k), "grow/%03d", i);
		put_ttl(k, 200 * MS, NULL, NULL, 0);
	}
	shmreg_writer_close(w);
	TC_EQ(shmreg_writer_open(name, &wo, &w), 0, "reopen");
	fd = shmreg_writer_expiry_fd(w);
	TC_CHECK(fd >= 0, "expiry fd: %d", fd);
	snprintf(k, sizeof(k), "grow/%03d", N - 1);
	wait_past(deadline_of(k));
	while (total < N) {
		TC_CHECK(readable(fd, 2000), "taken over: fd not readable "
			 "at %lld",
			 (long long)total);
		total += shmreg_writer_expire(w, 256);
	}
	TC_EQ(total, N, "every adopted deadline swept");
	e0 = 0;
	{
		shmreg_stats_t st;

		TC_EQ(shmreg_stats(r, &st), 0, "stats");
		e0 = st.entries;
	}
	TC_EQ(e0, 2, "keep and later remain");
}

int main(void)
{
	shmreg_writer_opts_t wo = { .flags = SHMREG_WRITER_TRUNCATE,
				    .initial_entries = 16 };
	int fd;

	tc_init("expiry_basic", 60);
	tc_dir();
	TC_EQ(shmreg_writer_open(name, &wo, &w), 0, "open");
	TC_EQ(shmreg_open(name, 0, &r), 0, "reader");
	TC_EQ(shmreg_writer_expiry_fd(NULL), -EINVAL, "expiry_fd(NULL)");
	TC_EQ(shmreg_writer_expire(NULL, 1), -EINVAL, "expire(NULL)");
	fd = shmreg_writer_expiry_fd(w);
	TC_CHECK(fd >= 0, "expiry fd: %d", fd);
	TC_EQ(shmreg_writer_expiry_fd(w), fd, "the same fd again");

	test_expire_tree(fd);
	test_meet_expired();
	test_chunks(fd);
	test_waiter(fd);
	test_set_attrs(fd);
	test_refresh(fd);
	test_growth_takeover();

	shmreg_writer_close(w);
	shmreg_close(r);
	tc_log("ok");
	return 0;
}
