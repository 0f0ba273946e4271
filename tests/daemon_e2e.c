/* SPDX-License-Identifier: MIT */
/* Description: shmregd end to end: client API errors and results, concurrent
 * puts from several processes all visible to readers (read-your-writes),
 * owner pid and connection-owned entries, stats, and a clean SIGTERM that
 * gives waiters -ESHUTDOWN. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/tc.h"
#include "daemon_harness.h"

#define WRITERS 4
#define PER_WRITER 500

static struct dh h;

static void get_expect(shmreg_t *r, const char *key, const void *val,
		       size_t vlen, uint64_t rev)
{
	static char buf[1u << 20];
	shmreg_info_t info;
	ssize_t n = shmreg_get(r, key, strlen(key), buf, sizeof(buf), &info);

	TC_EQ(n, (ssize_t)vlen, key);
	TC_CHECK(!memcmp(buf, val, vlen), "value of %s differs", key);
	if (rev)
		TC_EQ(info.mod_rev, rev, "mod_rev");
}

static void test_errors(void)
{
	shmreg_client_t *c = NULL;
	char big[SHMREG_KEY_MAX + 1];
	shmreg_put_opts_t o = { 0 };
	char path[160];

	TC_EQ(shmreg_connect(h.sock, "no-such-registry", &c), -ENOENT,
	      "unknown registry");
	TC_CHECK(c == NULL, "no client on error");
	snprintf(path, sizeof(path), "%s/nothing.sock", h.dir);
	TC_EQ(shmreg_connect(path, h.reg, &c), -ENOENT, "no socket");
	/* NULL selects no registry (shmreg_client_registries): writes on
	 * such a connection are refused by the daemon */
	TC_EQ(shmreg_connect(h.sock, NULL, &c), 0, "NULL registry");
	TC_EQ(shmreg_put(c, "k", 1, "v", 1, NULL), -ENOTCONN,
	      "put without a registry");
	shmreg_disconnect(c);
	TC_EQ(shmreg_connect(h.sock, "", &c), -EINVAL, "empty registry");

	c = dh_connect(&h);
	memset(big, 'k', sizeof(big));
	TC_EQ(shmreg_put(c, "", 0, "v", 1, NULL), -EINVAL, "empty key");
	TC_EQ(shmreg_put(c, NULL, 1, "v", 1, NULL), -EINVAL, "NULL key");
	TC_EQ(shmreg_put(c, big, sizeof(big), "v", 1, NULL), -E2BIG,
	      "long key");
	TC_EQ(shmreg_put(c, "k", 1, NULL, 1, NULL), -EINVAL, "NULL value");
	o.flags = 0x80;
	TC_EQ(shmreg_put(c, "k", 1, "v", 1, &o), -EINVAL, "unknown flag");
	o.flags = 0;
	o.owner_pid = -5;
	TC_EQ(shmreg_put(c, "k", 1, "v", 1, &o), -EINVAL, "negative pid");
	TC_EQ(shmreg_del(c, big, sizeof(big)), -E2BIG, "del long key");
	TC_EQ(shmreg_del(c, "absent", 6), -ENOENT, "del absent");
	/* the connection is still good after all that */
	TC_CHECK(shmreg_ping(c) >= 0, "ping after errors");
	shmreg_disconnect(c);
}

static void test_basic(shmreg_t *r)
{
	shmreg_client_t *c = dh_connect(&h);
	shmreg_put_opts_t o = { 0 };
	shmreg_info_t info;
	char *bigval;
	int64_t r1, r2, r3;

	r1 = shmreg_put(c, "k1", 2, "hello", 5, NULL);
	TC_CHECK(r1 > 0, "put: %s", strerror((int)-r1));
	/* read-your-writes: visible the moment the put returned */
	get_expect(r, "k1", "hello", 5, (uint64_t)r1);
	TC_EQ(shmreg_ping(c), r1, "ping returns the revision");

	o.expect_rev = (uint64_t)r1 + 100;
	TC_EQ(shmreg_put(c, "k1", 2, "x", 1, &o), -EEXIST, "CAS mismatch");
	o.expect_rev = SHMREG_REV_ABSENT;
	TC_EQ(shmreg_put(c, "k1", 2, "x", 1, &o), -EEXIST, "CAS absent");
	o.expect_rev = (uint64_t)r1;
	r2 = shmreg_put(c, "k1", 2, "world", 5, &o);
	TC_EQ(r2, r1 + 1, "CAS match");
	get_expect(r, "k1", "world", 5, (uint64_t)r2);

	r3 = shmreg_del(c, "k1", 2);
	TC_EQ(r3, r2 + 1, "del");
	TC_EQ(shmreg_get(r, "k1", 2, NULL, 0, NULL), -ENOENT, "gone");
	TC_EQ(shmreg_del(c, "k1", 2), -ENOENT, "del twice");
	TC_EQ(shmreg_ping(c), r3, "del -ENOENT uses no revision");

	/* a 1 MiB value, and a zero-length one */
	bigval = malloc(1u << 20);
	TC_CHECK(bigval, "malloc");
	for (size_t i = 0; i < (1u << 20); i++)
		bigval[i] = (char)(i * 7 + 3);
	TC_CHECK(shmreg_put(c, "big", 3, bigval, 1u << 20, NULL) > 0,
		 "big put");
	get_expect(r, "big", bigval, 1u << 20, 0);
	TC_CHECK(shmreg_put(c, "empty", 5, NULL, 0, NULL) > 0, "empty put");
	get_expect(r, "empty", "", 0, 0);
	free(bigval);

	/* an owner pid that exists is recorded */
	o = (shmreg_put_opts_t){ .owner_pid = getpid() };
	TC_CHECK(shmreg_put(c, "mine", 4, "1", 1, &o) > 0, "owned put");
	TC_EQ(shmreg_get(r, "mine", 4, NULL, 0, &info), 1, "owned get");
	TC_EQ(info.owner_pid, getpid(), "owner_pid recorded");
	shmreg_disconnect(c);
}

/* Entries put with SHMREG_EPHEMERAL go when their connection closes,
 * unless another connection has taken the key over meanwhile. */
static void test_ephemeral(shmreg_t *r)
{
	shmreg_client_t *a = dh_connect(&h), *b = dh_connect(&h);
	shmreg_put_opts_t eph = { .flags = SHMREG_EPHEMERAL };
	shmreg_daemon_stats_t ds;
	shmreg_info_t info;
	int64_t rev;

	TC_CHECK(shmreg_put(a, "eph:1", 5, "a", 1, &eph) > 0, "eph put 1");
	TC_CHECK(shmreg_put(a, "eph:2", 5, "a", 1, &eph) > 0, "eph put 2");
	TC_CHECK(shmreg_put(a, "eph:3", 5, "a", 1, &eph) > 0, "eph put 3");
	TC_EQ(shmreg_get(r, "eph:1", 5, NULL, 0, &info), 1, "eph visible");
	TC_CHECK(info.flags & SHMREG_EPHEMERAL, "flag recorded");
	/* b takes eph:2 over (a plain put), and b deletes eph:3 */
	rev = shmreg_put(b, "eph:2", 5, "b", 1, NULL);
	TC_CHECK(rev > 0, "takeover put");
	TC_CHECK(shmreg_del(b, "eph:3", 5) > 0, "del eph:3");
	TC_CHECK(shmreg_client_stats(b, NULL, &ds) == 0, "stats");
	TC_EQ(ds.ephemeral, 1, "one key still owned by a connection");

	shmreg_disconnect(a);
	TC_EQ(dh_wait_gone(r, "eph:1", 5000), 0, "eph:1 removed on close");
	get_expect(r, "eph:2", "b", 1, (uint64_t)rev);
	TC_EQ(shmreg_get(r, "eph:3", 5, NULL, 0, NULL), -ENOENT, "eph:3");
	shmreg_disconnect(b);
}

static int writer_child(struct tc_child *self, void *arg)
{
	int w = (int)(intptr_t)arg;
	shmreg_client_t *c = dh_connect(&h);
	shmreg_t *r = dh_open(&h);
	char key[32], val[64], buf[64];

	(void)self;
	for (int i = 0; i < PER_WRITER; i++) {
		shmreg_info_t info;
		int64_t rev;
		int kl = snprintf(key, sizeof(key), "w%d:%d", w, i);
		int vl = snprintf(val, sizeof(val), "value of %d/%d", w, i);

		rev = shmreg_put(c, key, (size_t)kl, val, (size_t)vl, NULL);
		TC_CHECK(rev > 0, "put %s: %s", key, strerror((int)-rev));
		/* read-your-writes, in this process, at once */
		TC_EQ(shmreg_get(r, key, (size_t)kl, buf, sizeof(buf), &info),
		      vl, key);
		TC_CHECK(!memcmp(buf, val, (size_t)vl), "value of %s", key);
		TC_EQ(info.mod_rev, rev, "mod_rev is the acknowledged one");
	}
	shmreg_close(r);
	shmreg_disconnect(c);
	return 0;
}

static void test_concurrent(shmreg_t *r)
{
	struct tc_child *kids[WRITERS];
	shmreg_client_t *c;
	shmreg_stats_t st;
	shmreg_daemon_stats_t ds;
	uint64_t before = shmreg_revision(r);

	for (int w = 0; w < WRITERS; w++)
		kids[w] = tc_spawn("writer", writer_child, (void *)(intptr_t)w);
	for (int w = 0; w < WRITERS; w++) {
		tc_child_join(kids[w], 60000);
		tc_child_free(kids[w]);
	}
	/* every acknowledged put is there, with its value */
	for (int w = 0; w < WRITERS; w++)
		for (int i = 0; i < PER_WRITER; i++) {
			char key[32], val[64];

			snprintf(key, sizeof(key), "w%d:%d", w, i);
			snprintf(val, sizeof(val), "value of %d/%d", w, i);
			get_expect(r, key, val, strlen(val), 0);
		}
	TC_EQ(shmreg_revision(r), before + WRITERS * PER_WRITER,
	      "one revision per put");
	c = dh_connect(&h);
	TC_EQ(shmreg_client_stats(c, &st, &ds), 0, "client stats");
	TC_EQ(st.revision, shmreg_revision(r), "stats revision");
	TC_CHECK(st.entries >= WRITERS * PER_WRITER, "entries %llu",
		 (unsigned long long)st.entries);
	TC_EQ(st.state, SHMREG_STATE_OPEN, "state");
	TC_EQ(st.writer_pid, h.pid, "writer pid is the daemon");
	TC_CHECK(ds.connections >= 1, "this connection is counted");
	TC_CHECK(ds.requests >= WRITERS * PER_WRITER, "requests counted");
	shmreg_disconnect(c);
}

static int waiter_child(struct tc_child *self, void *arg)
{
	shmreg_t *r = dh_open(&h);
	char buf[8];
	ssize_t n;

	(void)arg;
	tc_post(self, 'w');
	n = shmreg_await(r, "never", 5, buf, sizeof(buf), NULL,
			 20ll * 1000000000);
	TC_EQ(n, -ESHUTDOWN, "await across a daemon shutdown");
	shmreg_close(r);
	return 0;
}

static void test_shutdown(shmreg_t *r)
{
	struct tc_child *w = tc_spawn("waiter", waiter_child, NULL);
	shmreg_client_t *c = dh_connect(&h);
	shmreg_put_opts_t eph = { .flags = SHMREG_EPHEMERAL };
	shmreg_stats_t st;
	struct stat sb;

	TC_CHECK(shmreg_put(c, "eph:last", 8, "x", 1, &eph) > 0, "eph put");
	tc_expect(w, 'w', 10000);
	TC_EQ(dh_stop(&h, SIGTERM), 0, "daemon exit status on SIGTERM");
	tc_child_join(w, 20000);
	tc_child_free(w);
	/* the connection was closed: its entry went with it, before the
	 * registry closed */
	TC_EQ(shmreg_get(r, "eph:last", 8, NULL, 0, NULL), -ENOENT,
	      "connection entry removed at shutdown");
	{
		int64_t ret = shmreg_put(c, "late", 4, "x", 1, NULL);

		TC_CHECK(ret == -ECONNRESET || ret == -EPIPE,
			 "put after the daemon left: %lld", (long long)ret);
	}
	shmreg_disconnect(c);
	TC_EQ(shmreg_stats(r, &st), 0, "stats");
	TC_EQ(st.state, SHMREG_STATE_CLOSED, "registry closed");
	TC_CHECK(stat(h.sock, &sb) < 0 && errno == ENOENT,
		 "socket removed on exit");
}

int main(void)
{
	shmreg_t *r;

	tc_init("daemon_e2e", 120);
	dh_init(&h, "e2e");
	dh_start(&h, NULL);
	r = dh_open(&h);

	test_errors();
	test_basic(r);
	test_ephemeral(r);
	test_concurrent(r);
	test_shutdown(r);

	shmreg_close(r);
	dh_cleanup(&h);
	tc_log("ok");
	return 0;
}
