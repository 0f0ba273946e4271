/* SPDX-License-Identifier: MIT */
/* Description: the data-model stats (issue 9): attribute pairs and index
 * entries exact through puts, attribute updates, deletes and a segment
 * handoff; owned entries; a waiter blocked in await counted while it waits
 * and not after; the writer's uptime kept across the handoff; writes per
 * second from the header's samples within the bounds the clocks allow; and
 * the same fields through shmregd's STATS reply. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "daemon_harness.h"
#include "shmreg.h"
#include "shmreg_writer.h"
#include "common/tc.h"

#define NATTR 40u

static shmreg_stats_t stats(shmreg_t *r)
{
	shmreg_stats_t st;

	TC_EQ(shmreg_stats(r, &st), 0, "shmreg_stats");
	return st;
}

static void key_of(char *k, unsigned i)
{
	snprintf(k, 32, "svc/%03u", i);
}

/* entry i: kind=k(i%4), node=n(i%10), and cap=gpu for even i */
static void put_attrs(shmreg_writer_t *w, unsigned i)
{
	char k[32], kind[8], node[8];
	shmreg_attr_t a[3] = { { "kind", kind }, { "node", node },
			       { "cap", "gpu" } };
	shmreg_put_opts_t o = { .attrs = a, .nattrs = i % 2 ? 2 : 3,
				.owner_pid = i < 5 ? getpid() : 0 };

	key_of(k, i);
	snprintf(kind, sizeof(kind), "k%u", i % 4);
	snprintf(node, sizeof(node), "n%u", i % 10);
	TC_CHECK(shmreg_writer_put(w, k, strlen(k), "v", 1, &o) > 0,
		 "put %s", k);
}

static void check_index(shmreg_t *r, uint64_t pairs, uint64_t postings,
			const char *when)
{
	shmreg_stats_t st = stats(r);

	TC_CHECK(st.attr_pairs == pairs && st.index_entries == postings,
		 "%s: attr_pairs %llu index_entries %llu, want %llu %llu",
		 when, (unsigned long long)st.attr_pairs,
		 (unsigned long long)st.index_entries,
		 (unsigned long long)pairs, (unsigned long long)postings);
	TC_CHECK(st.attr_capacity >= 8 && st.attr_capacity >= pairs,
		 "%s: attr_capacity %llu", when,
		 (unsigned long long)st.attr_capacity);
}

static void test_index(shmreg_writer_t *w, shmreg_t *r)
{
	shmreg_attr_t only = { "kind", "k0" };
	shmreg_stats_t before, after;
	char k[32];

	check_index(r, 0, 0, "empty");
	for (unsigned i = 0; i < NATTR; i++)
		put_attrs(w, i);
	/* 4 kinds + 10 nodes + gpu; 40 * 2 + 20 postings */
	check_index(r, 15, 100, "after the puts");
	TC_EQ(stats(r).owned, 5, "owned entries");
	/* entry 0 keeps kind=k0 only: n0 and gpu lose one posting each */
	TC_CHECK(shmreg_writer_set_attrs(w, "svc/000", 7, &only, 1) > 0,
		 "set_attrs");
	check_index(r, 15, 98, "after set_attrs");
	/* the four entries of node n9 (odd: no gpu) go, and the pair */
	for (unsigned i = 9; i < NATTR; i += 10) {
		key_of(k, i);
		TC_CHECK(shmreg_writer_del(w, k, strlen(k)) > 0, "del %s", k);
	}
	check_index(r, 14, 90, "after the deletes");

	/* a handoff carries the counts and the writer's uptime */
	before = stats(r);
	for (unsigned i = 0; i < 3000; i++) {
		snprintf(k, sizeof(k), "plain/%05u", i);
		TC_CHECK(shmreg_writer_put(w, k, strlen(k), "x", 1, NULL) > 0,
			 "put %s", k);
	}
	after = stats(r);
	TC_CHECK(after.generation > before.generation,
		 "3,000 puts into 1,024 slots: no handoff (generation %llu)",
		 (unsigned long long)after.generation);
	check_index(r, 14, 90, "after the handoff");
	TC_EQ(after.owned, 5, "owned entries after the handoff");
	TC_CHECK(before.uptime_ns > 0 && after.uptime_ns >= before.uptime_ns,
		 "uptime %llu then %llu ns",
		 (unsigned long long)before.uptime_ns,
		 (unsigned long long)after.uptime_ns);
}

static int waiter(struct tc_child *c, void *arg)
{
	char buf[16];
	shmreg_t *r;
	ssize_t n;

	(void)arg;
	TC_EQ(shmreg_open("metrics_stats", 0, &r), 0, "child open");
	tc_post(c, 'o');
	n = shmreg_await(r, "late", 4, buf, sizeof(buf), NULL,
			 20 * INT64_C(1000000000));
	shmreg_close(r);
	return n == 3 ? 0 : 1;
}

/* Poll the stats for @want waiters (each poll is a few microseconds of
 * reading; the deadline bounds the test). */
static void wait_waiters(shmreg_t *r, uint64_t want)
{
	uint64_t deadline = tc_now_ns() + 10 * UINT64_C(1000000000);
	struct timespec ms = { 0, 1000000 };

	while (stats(r).waiters != want) {
		TC_CHECK(tc_now_ns() < deadline, "waiters %llu, want %llu",
			 (unsigned long long)stats(r).waiters,
			 (unsigned long long)want);
		nanosleep(&ms, NULL);
	}
}

static void test_waiters(shmreg_writer_t *w, shmreg_t *r)
{
	struct tc_child *c;

	TC_EQ(stats(r).waiters, 0, "waiters before");
	c = tc_spawn("waiter", waiter, NULL);
	tc_expect(c, 'o', 10000);
	wait_waiters(r, 1);
	TC_CHECK(shmreg_writer_put(w, "late", 4, "yes", 3, NULL) > 0, "put");
	tc_child_join(c, 10000);
	tc_child_free(c);
	wait_waiters(r, 0);
}

/*
 * The header's samples: the first commit of a writer takes one (T1, rev
 * 1); 49 more within a second take none.  Once that sample is at least a
 * second old, the rate is the 49 commits since it over the time since it.
 * The writer and the reader read the coarse clock (a tick behind the
 * precise one at most, 10 ms allowed): the bounds follow.
 */
static void test_rate(void)
{
	shmreg_writer_opts_t o = { .flags = SHMREG_WRITER_TRUNCATE };
	struct timespec ms = { 0, 5000000 };
	shmreg_writer_t *w;
	shmreg_stats_t st;
	int64_t t0, t1, t2, t3;
	double lo, hi;
	shmreg_t *r;
	char k[32];

	TC_EQ(shmreg_writer_open("metrics_rate", &o, &w), 0, "writer");
	TC_EQ(shmreg_open("metrics_rate", 0, &r), 0, "open");
	TC_CHECK(stats(r).writes_per_sec == 0, "no commit yet: rate %f",
		 stats(r).writes_per_sec);
	t0 = shm_realtime_ns();
	for (unsigned i = 0; i < 50; i++) {
		snprintf(k, sizeof(k), "r%u", i);
		TC_CHECK(shmreg_writer_put(w, k, strlen(k), "x", 1, NULL) > 0,
			 "put");
	}
	t1 = shm_realtime_ns();
	if (t1 - t0 > 900000000) {
		tc_log("skip the rate bounds: 50 puts took %lld ms",
		       (long long)((t1 - t0) / 1000000));
		goto out;
	}
	/* the sample must be a second old: wait on the clock for that */
	while (shm_realtime_ns() < t0 + 1500000000)
		nanosleep(&ms, NULL);
	t2 = shm_realtime_ns();
	st = stats(r);
	t3 = shm_realtime_ns();
	/* 49 commits over (now - T1), T1 in [t0 - 10ms, t1], now in
	 * [t2 - 10ms, t3] */
	lo = 49.0 / ((double)(t3 - t0 + 10000000) / 1e9);
	hi = 49.0 / ((double)(t2 - 10000000 - t1) / 1e9);
	TC_CHECK(st.writes_per_sec >= lo && st.writes_per_sec <= hi,
		 "writes_per_sec %f, want %f..%f", st.writes_per_sec, lo, hi);
	TC_EQ(st.revision, 50, "revision");
out:
	shmreg_close(r);
	shmreg_writer_close(w);
}

/* shmregd's STATS reply carries the same fields as the segment. */
static void test_daemon(void)
{
	shmreg_attr_t a[2] = { { "role", "db" }, { "zone", "a" } };
	shmreg_put_opts_t po = { .attrs = a, .nattrs = 2 };
	shmreg_stats_t seg, wire;
	shmreg_client_t *c;
	struct dh h;
	shmreg_t *r;

	dh_init(&h, "metrics_stats_d");
	dh_start(&h, NULL);
	c = dh_connect(&h);
	r = dh_open(&h);
	TC_CHECK(shmreg_put(c, "a", 1, "1", 1, &po) > 0, "put a");
	TC_CHECK(shmreg_put(c, "b", 1, "2", 1, &po) > 0, "put b");
	TC_EQ(shmreg_client_stats(c, &wire, NULL), 0, "client stats");
	seg = stats(r);
	TC_CHECK(wire.attr_pairs == 2 && seg.attr_pairs == 2 &&
		 wire.index_entries == 4 && seg.index_entries == 4,
		 "pairs %llu/%llu, index entries %llu/%llu",
		 (unsigned long long)wire.attr_pairs,
		 (unsigned long long)seg.attr_pairs,
		 (unsigned long long)wire.index_entries,
		 (unsigned long long)seg.index_entries);
	TC_EQ(wire.attr_capacity, seg.attr_capacity, "attr_capacity");
	TC_EQ(wire.owned, 0, "owned");
	TC_EQ(wire.waiters, 0, "waiters");
	TC_CHECK(wire.uptime_ns > 0 && wire.uptime_ns <= seg.uptime_ns,
		 "uptime: wire %llu, segment after it %llu",
		 (unsigned long long)wire.uptime_ns,
		 (unsigned long long)seg.uptime_ns);
	shmreg_close(r);
	shmreg_disconnect(c);
	TC_EQ(dh_stop(&h, SIGTERM), 0, "daemon exit");
	dh_cleanup(&h);
}

int main(void)
{
	shmreg_writer_opts_t o = { .flags = SHMREG_WRITER_TRUNCATE,
				   .initial_entries = 1024 };
	shmreg_writer_t *w;
	shmreg_t *r;

	tc_init("metrics_stats", 60);
	TC_EQ(shmreg_writer_open("metrics_stats", &o, &w), 0, "writer");
	TC_EQ(shmreg_open("metrics_stats", 0, &r), 0, "open");
	test_index(w, r);
	test_waiters(w, r);
	shmreg_close(r);
	shmreg_writer_close(w);
	test_rate();
	test_daemon();
	return 0;
}
