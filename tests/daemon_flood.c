/* SPDX-License-Identifier: MIT */
/* Description: shmregd under a connection flood from a uid that may not
 * write: 1,100 idle connections from uid 65534 (far more than
 * --max-connections 64) are not counted as connections and do not keep the
 * allowed writer out: while they are open, root fills all 64 writer slots
 * and every one of its puts gets a revision; a 65th writer is refused; a
 * refused client that asks still learns -EACCES; the daemon closes every
 * refused connection by itself.  Needs root; skips otherwise. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/tc.h"
#include "daemon_harness.h"

#define NOBODY 65534
#define FLOOD 1100
#define MAXCONN 64

static struct dh h;

/* uid 65534: FLOOD connections that send nothing; report once all are
 * connected, then (told 'x') wait for the daemon to close each one. */
static int flood(struct tc_child *self, void *arg)
{
	struct rlimit rl = { FLOOD + 64, FLOOD + 64 };
	static struct pollfd p[FLOOD];
	uint64_t deadline;
	int open_left = FLOOD, b;

	(void)arg;
	/* as root still: room for FLOOD descriptors */
	TC_CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0, "setrlimit: %s",
		 strerror(errno));
	dh_become(NOBODY, NOBODY);
	for (int i = 0; i < FLOOD; i++) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		TC_CHECK(fd >= 0, "socket %d: %s", i, strerror(errno));
		strcpy(sa.sun_path, h.sock);
		/* blocking: waits while the backlog is full, so every one
		 * of them reaches the daemon */
		TC_CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0,
			 "connect %d as uid %d: %s", i, NOBODY,
			 strerror(errno));
		p[i].fd = fd;
		p[i].events = POLLIN;
	}
	tc_post(self, 'c');
	b = tc_wait_parent(self, 60000);
	TC_CHECK(b == 'x', "parent said %d", b);
	/* the daemon closes them (the oldest to make room for new refused
	 * peers, the rest after a second); bounded wait for every EOF */
	deadline = tc_now_ns() + 30ull * 1000000000;
	while (open_left > 0) {
		int n = poll(p, FLOOD, 1000);

		TC_CHECK(n >= 0 || errno == EINTR, "poll: %s", strerror(errno));
		for (int i = 0; i < FLOOD && n > 0; i++) {
			char c;
			ssize_t r;

			if (p[i].fd < 0 || !p[i].revents)
				continue;
			r = recv(p[i].fd, &c, 1, MSG_DONTWAIT);
			TC_CHECK(r == 0 || (r < 0 && errno == ECONNRESET),
				 "refused connection %d: got %zd (%s)", i, r,
				 r < 0 ? strerror(errno) : "data");
			close(p[i].fd);
			p[i].fd = -1;
			open_left--;
		}
		TC_CHECK(tc_now_ns() < deadline,
			 "%d refused connections still open after 30 s",
			 open_left);
	}
	tc_post(self, 'd');
	return 0;
}

/* uid 65534 through the library: the refusal is still explained. */
static int asker(struct tc_child *self, void *arg)
{
	shmreg_client_t *c = NULL;

	(void)self;
	(void)arg;
	dh_become(NOBODY, NOBODY);
	TC_EQ(shmreg_connect(h.sock, h.reg, &c), -EACCES,
	      "connect as uid 65534 during the flood");
	return 0;
}

int main(void)
{
	static const char *const args[] = {
		"--max-connections", "64", "--idle-timeout", "0", NULL
	};
	shmreg_client_t *w[MAXCONN], *extra = NULL;
	shmreg_daemon_stats_t ds;
	struct tc_child *fl, *ask;
	int ret;

	tc_init("daemon_flood", 120);
	dh_need_root("run the flood under another uid");
	dh_init(&h, NULL);
	dh_reg_in_dir(&h, "reg");
	dh_start(&h, args);

	fl = tc_spawn("flood", flood, NULL);
	tc_expect(fl, 'c', 60000);

	/* every writer slot is root's, with 1,100 refused peers queued
	 * before it (the listen queue is FIFO: all of them were accepted
	 * before the first of these) */
	for (int i = 0; i < MAXCONN; i++) {
		char key[32];
		int64_t rev;

		w[i] = dh_connect(&h);
		snprintf(key, sizeof(key), "root:%d", i);
		rev = shmreg_put(w[i], key, strlen(key), "v", 1, NULL);
		TC_CHECK(rev > 0, "root put %d during the flood: %s", i,
			 strerror((int)-rev));
	}
	TC_EQ(shmreg_client_stats(w[0], NULL, &ds), 0, "stats");
	tc_log("flood: connections %llu refused %llu",
	       (unsigned long long)ds.connections,
	       (unsigned long long)ds.refused);
	TC_EQ(ds.connections, MAXCONN, "only writers are connections");
	TC_EQ(ds.refused, FLOOD, "every flood connection refused");

	/* the limit is the writers' own: a 65th is turned away */
	ret = shmreg_connect(h.sock, h.reg, &extra);
	TC_CHECK(ret == -ECONNRESET || ret == -EPIPE,
		 "65th writer connection: got %d (%s)", ret, strerror(-ret));

	/* a refused uid that asks learns why */
	ask = tc_spawn("asker", asker, NULL);
	tc_child_join(ask, 30000);
	tc_child_free(ask);

	/* the flood is closed by the daemon, not by its owner */
	tc_tell(fl, 'x');
	tc_expect(fl, 'd', 60000);
	tc_child_join(fl, 10000);
	tc_child_free(fl);

	TC_EQ(shmreg_client_stats(w[0], NULL, &ds), 0, "stats after");
	TC_EQ(ds.connections, MAXCONN, "writers still connected");
	TC_EQ(ds.refused, FLOOD + 1, "the asker refused too");
	TC_CHECK(shmreg_put(w[MAXCONN - 1], "after", 5, "v", 1, NULL) > 0,
		 "put after the flood");
	for (int i = 0; i < MAXCONN; i++)
		shmreg_disconnect(w[i]);
	TC_EQ(dh_stop(&h, SIGTERM), 0, "daemon exit");
	dh_cleanup(&h);
	tc_log("ok");
	return 0;
}
