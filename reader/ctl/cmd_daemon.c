/* SPDX-License-Identifier: MIT */
/* cmd_daemon.c - shmregctl ping, daemon-stats: ask the registry's shmregd. */
#include <inttypes.h>
#include <time.h>
#include <limits.h>
#include <string.h>

#include "clock.h"
#include "ctl.h"

int cmd_ping(struct ctl *c)
{
	char sock[PATH_MAX];
	shmreg_client_t *cl;
	int64_t t0, rtt, rev;
	int ret;

	ret = ctl_connect(c, &cl, false);
	if (ret)
		return ret;
	t0 = shm_monotonic_ns();
	rev = shmreg_ping(cl);
	rtt = shm_monotonic_ns() - t0;
	shmreg_disconnect(cl);
	if (rev < 0)
		return ctl_fail("ping", (int)-rev);
	ctl_socket_path(c, sock, sizeof(sock));
	if (c->json) {
		fputc('{', stdout);
		json_bytes_member(stdout, "registry", c->registry,
				  strlen(c->registry));
		fputc(',', stdout);
		json_bytes_member(stdout, "socket", sock, strlen(sock));
		printf(",\"revision\":%" PRId64 ",\"rtt_ns\":%" PRId64 "}\n",
		       rev, rtt);
	} else {
		printf("registry %s on %s: revision %" PRId64 ", round trip "
		       "%" PRId64 " us\n", c->registry, sock, rev,
		       rtt / 1000);
	}
	return CTL_OK;
}

/* Name and value of every counter, in shmreg_daemon_stats_t's order. */
#define DS_FIELDS(X)                                                         \
	X(connections) X(requests) X(owners) X(ephemeral) X(closed_bad)     \
	X(refused) X(stalled) X(out_highwater) X(pauses) X(owner_deletes)    \
	X(idle_closed) X(over_budget) X(in_buffered) X(mirror_stale)

int cmd_daemon_stats(struct ctl *c)
{
	shmreg_daemon_stats_t ds;
	char sock[PATH_MAX];
	shmreg_client_t *cl;
	int ret;

	ret = ctl_connect(c, &cl, false);
	if (ret)
		return ret;
	ret = shmreg_client_stats(cl, NULL, &ds);
	shmreg_disconnect(cl);
	if (ret < 0)
		return ctl_fail("daemon-stats", -ret);
	ctl_socket_path(c, sock, sizeof(sock));
	if (c->json) {
		fputc('{', stdout);
		json_bytes_member(stdout, "registry", c->registry,
				  strlen(c->registry));
		fputc(',', stdout);
		json_bytes_member(stdout, "socket", sock, strlen(sock));
#define X(f) printf(",\"" #f "\":%" PRIu64, ds.f);
		DS_FIELDS(X)
#undef X
		fputs("}\n", stdout);
		return CTL_OK;
	}
	printf("%-15s %s\n", "registry", c->registry);
	printf("%-15s %s\n", "socket", sock);
#define X(f) printf("%-15s %" PRIu64 "\n", #f, ds.f);
	DS_FIELDS(X)
#undef X
	return CTL_OK;
}

/*
 * shmregctl health: is the registry served?  Exit 0 and one line when a
 * live writer serves it (and, when a socket was named with --socket or
 * $SHMREG_SOCKET, when that daemon answers a ping); otherwise exit 3 with
 * one line saying why: the writer died, the registry was closed, or the
 * daemon does not answer, or (an etcd mirror) the daemon cannot reach etcd
 * and serves a stale state.  An absent registry is exit 1, as for every
 * command.  The state comes from the segment (shmreg_stats: the lock and
 * pid tests), so it needs no daemon for an embedded writer's registry.
 */
int cmd_health(struct ctl *c)
{
	uint64_t stale = 0;
	shmreg_stats_t st;
	int ret = ctl_read_stats(c, &st);

	if (ret)
		return ret;
	if (st.state == SHMREG_STATE_DEAD)
		return ctl_say(CTL_ERROR, "registry %s: its writer (pid %d) "
			       "died; the next writer takes it over",
			       c->registry, (int)st.writer_pid);
	if (st.state == SHMREG_STATE_CLOSED)
		return ctl_say(CTL_ERROR, "registry %s: closed by its writer "
			       "(readable, nobody writes it)", c->registry);
	if (c->socket_explicit) {
		shmreg_client_t *cl;
		int64_t rev;

		ret = ctl_connect(c, &cl, false);
		if (ret)
			return ret;
		rev = shmreg_ping(cl);
		if (rev >= 0) {
			/* an etcd mirror whose watch is down serves its last
			 * state: readable, but stale (docs/multi-host.md) */
			shmreg_daemon_stats_t ds;

			if (shmreg_client_stats(cl, NULL, &ds) == 0)
				stale = ds.mirror_stale;
		}
		shmreg_disconnect(cl);
		if (rev < 0)
			return ctl_fail("ping", (int)-rev);
	}
	if (stale) {
		time_t t = (time_t)(stale / 1000000000ull);
		struct tm tm;
		char when[32];

		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ",
			 gmtime_r(&t, &tm));
		return ctl_say(CTL_ERROR, "registry %s: stale since %s: its "
			       "daemon mirrors etcd and cannot reach it "
			       "(serving the last state, revision %" PRIu64
			       ")", c->registry, when, st.revision);
	}
	if (c->json)
		printf("{\"registry\":\"%s\",\"state\":\"open\","
		       "\"writer_pid\":%d,\"revision\":%" PRIu64
		       ",\"uptime_s\":%.3f,\"writes_per_sec\":%.3f"
		       ",\"entries\":%" PRIu64 ",\"waiters\":%" PRIu64 "}\n",
		       c->registry, (int)st.writer_pid, st.revision,
		       (double)st.uptime_ns / 1e9, st.writes_per_sec,
		       st.entries, st.waiters);
	else
		/* the first line is what scripts match; the second is for
		 * the person looking */
		printf("registry %s: served by pid %d at revision %" PRIu64
		       "\n  up %.1f s, %.1f writes/s, %" PRIu64 " entries, %"
		       PRIu64 " waiters\n", c->registry, (int)st.writer_pid,
		       st.revision, (double)st.uptime_ns / 1e9,
		       st.writes_per_sec, st.entries, st.waiters);
	return ctl_flush(CTL_OK);
}
