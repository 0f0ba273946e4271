/* SPDX-License-Identifier: MIT */
/* Description: shmregd pipelining: 100,000 pipelined puts from one client,
 * every completion matched to its request id in order with consecutive
 * revisions; -ENOBUFS at the depth limit; sync calls mixed with async ones;
 * every key readable afterwards. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/tc.h"
#include "daemon_harness.h"

#define N 100000

static struct dh h;

static int mkkey(char *buf, uint64_t i)
{
	return snprintf(buf, 32, "pipe:%08llu", (unsigned long long)i);
}

int main(void)
{
	shmreg_completion_t cq[256];
	shmreg_client_t *c;
	shmreg_t *r;
	uint64_t first_id = 0, next_expected, base_rev, done = 0;
	uint64_t last_rev;
	unsigned depth;
	char key[32], val[32];

	tc_init("daemon_pipeline", 120);
	dh_init(&h, "pipe");
	dh_start(&h, NULL);
	r = dh_open(&h);
	c = dh_connect(&h);
	depth = shmreg_client_depth(c);
	TC_CHECK(depth >= 16, "depth %u", depth);
	TC_EQ(shmreg_client_wait(c, cq, 1, 0), 0, "nothing outstanding");

	base_rev = (uint64_t)shmreg_ping(c);
	next_expected = 0;
	last_rev = base_rev;
	for (uint64_t i = 0; i < N; i++) {
		int kl = mkkey(key, i);
		int64_t id;

		snprintf(val, sizeof(val), "v%llu", (unsigned long long)i);
		while ((id = shmreg_put_async(c, key, (size_t)kl, val,
					      strlen(val), NULL)) == -ENOBUFS) {
			int got = shmreg_client_wait(c, cq, 256, 30000000000ll);

			TC_CHECK(got > 0, "wait: %d", got);
			for (int j = 0; j < got; j++) {
				TC_EQ(cq[j].id, first_id + next_expected,
				      "completion order");
				TC_EQ(cq[j].result, (int64_t)last_rev + 1,
				      "consecutive revisions");
				last_rev++;
				next_expected++;
				done++;
			}
		}
		TC_CHECK(id > 0, "put_async: %s", strerror((int)-id));
		if (i == 0)
			first_id = (uint64_t)id;
		else
			TC_EQ((uint64_t)id, first_id + i, "ids are sequential");
	}
	/* a sync call with everything else still in flight: it waits for its
	 * own reply, the earlier completions stay queued */
	TC_EQ(shmreg_ping(c), (int64_t)(base_rev + N), "ping after the puts");
	for (;;) {
		int got = shmreg_client_wait(c, cq, 256, 30000000000ll);

		TC_CHECK(got >= 0, "wait: %d", got);
		if (!got)
			break;
		for (int j = 0; j < got; j++) {
			TC_EQ(cq[j].id, first_id + next_expected,
			      "completion order");
			TC_EQ(cq[j].result, (int64_t)last_rev + 1,
			      "consecutive revisions");
			last_rev++;
			next_expected++;
			done++;
		}
	}
	TC_EQ(done, N, "every request completed once");
	TC_EQ(shmreg_revision(r), base_rev + N, "registry revision");

	/* -ENOBUFS exactly at the depth: fill it without reaping */
	for (unsigned i = 0; i < depth; i++) {
		int kl = mkkey(key, i);

		TC_CHECK(shmreg_del_async(c, key, (size_t)kl) > 0, "del_async");
	}
	TC_EQ(shmreg_del_async(c, "x", 1), -ENOBUFS, "full");
	TC_EQ(shmreg_client_flush(c), 0, "flush");
	done = 0;
	for (;;) {
		int got = shmreg_client_wait(c, cq, 256, 30000000000ll);

		TC_CHECK(got >= 0, "wait: %d", got);
		if (!got)
			break;
		for (int j = 0; j < got; j++)
			TC_CHECK(cq[j].result > 0, "del result %lld",
				 (long long)cq[j].result);
		done += (uint64_t)got;
	}
	TC_EQ(done, depth, "deletes completed");

	/* every put that was acknowledged and not deleted is readable */
	for (uint64_t i = depth; i < N; i++) {
		char buf[32];
		int kl = mkkey(key, i);
		ssize_t n = shmreg_get(r, key, (size_t)kl, buf, sizeof(buf),
				       NULL);

		snprintf(val, sizeof(val), "v%llu", (unsigned long long)i);
		TC_EQ(n, (ssize_t)strlen(val), key);
		TC_CHECK(!memcmp(buf, val, (size_t)n), "value of %s", key);
	}
	TC_EQ(shmreg_get(r, "pipe:00000000", 13, NULL, 0, NULL), -ENOENT,
	      "deleted");

	shmreg_disconnect(c);
	shmreg_close(r);
	TC_EQ(dh_stop(&h, SIGTERM), 0, "daemon exit");
	dh_cleanup(&h);
	tc_log("ok: %d pipelined puts, depth %u", N, depth);
	return 0;
}
