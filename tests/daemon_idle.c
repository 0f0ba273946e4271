/* SPDX-License-Identifier: MIT */
/* Description: shmregd --idle-timeout: a connection that never sends a
 * request and one that said HELLO and then nothing are both closed by the
 * daemon, not before the timeout, while a client that pings every 20 ms
 * over several timeouts keeps being served, and a quiet one that owns an
 * SHMREG_EPHEMERAL entry is kept (with its entry); the closings are
 * counted in idle_closed, the other two remain connected. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/tc.h"
#include "daemon_harness.h"

#define IDLE_MS 1000

static struct dh h;

int main(void)
{
	static const char *const args[] = { "--idle-timeout", "1000", NULL };
	shmreg_client_t *active, *hello_only, *owner;
	shmreg_put_opts_t eo = { .flags = SHMREG_EPHEMERAL };
	shmreg_t *r;
	shmreg_daemon_stats_t ds;
	uint64_t t0, closed_at = 0, deadline, pings = 0;
	int raw;

	tc_init("daemon_idle", 60);
	dh_init(&h, "idle");
	dh_start(&h, args);

	active = dh_connect(&h);
	owner = dh_connect(&h);
	TC_CHECK(shmreg_put(owner, "eph", 3, "v", 1, &eo) > 0, "ephemeral put");
	r = dh_open(&h);
	t0 = tc_now_ns();
	raw = dh_raw_connect(&h);
	hello_only = dh_connect(&h);

	/* ping every 20 ms until the raw connection is closed, then for
	 * two more timeouts: the active client must outlive them all */
	deadline = t0 + 20ull * 1000000000;
	for (;;) {
		uint64_t now;
		int64_t rev = shmreg_ping(active);

		TC_CHECK(rev >= 0, "ping %llu of the active client: %s",
			 (unsigned long long)pings, strerror((int)-rev));
		pings++;
		now = tc_now_ns();
		if (!closed_at && dh_closed(raw, 0, "idle connection")) {
			closed_at = now;
			deadline = now + 2ull * IDLE_MS * 1000000;
		}
		if (now >= deadline)
			break;
		poll(NULL, 0, 20);
	}
	TC_CHECK(closed_at, "idle connection still open after 20 s");
	tc_log("idle connection closed after %llu ms (timeout %d ms); "
	       "%llu pings", (unsigned long long)((closed_at - t0) / 1000000),
	       IDLE_MS, (unsigned long long)pings);
	/* it was accepted after t0, so it cannot have been idle longer */
	TC_CHECK(closed_at - t0 >= IDLE_MS * 1000000ull,
		 "closed after %llu ms, before the timeout",
		 (unsigned long long)((closed_at - t0) / 1000000));

	/* the one that said HELLO and went quiet went the same way (it
	 * was connected right after the raw one: closed by now, as two
	 * timeouts have passed since) */
	{
		int64_t ret = shmreg_ping(hello_only);

		TC_CHECK(ret == -ECONNRESET || ret == -EPIPE,
			 "HELLO-only connection: ping got %lld",
			 (long long)ret);
	}
	TC_EQ(shmreg_client_stats(active, NULL, &ds), 0, "stats");
	TC_EQ(ds.idle_closed, 2, "idle connections closed");
	TC_EQ(ds.connections, 2, "the active client and the owner remain");
	TC_EQ(ds.ephemeral, 1, "the quiet owner's entry is tracked");
	TC_EQ(shmreg_get(r, "eph", 3, NULL, 0, NULL), 1,
	      "the quiet owner's entry is there");
	TC_CHECK(shmreg_ping(owner) >= 0, "the quiet owner is connected");

	shmreg_disconnect(owner);
	TC_EQ(dh_wait_gone(r, "eph", 10000), 0, "its entry goes with it");
	shmreg_close(r);
	shmreg_disconnect(hello_only);
	shmreg_disconnect(active);
	close(raw);
	TC_EQ(dh_stop(&h, SIGTERM), 0, "daemon exit");
	dh_cleanup(&h);
	tc_log("ok");
	return 0;
}
