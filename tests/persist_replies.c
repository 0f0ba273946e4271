/* SPDX-License-Identifier: MIT */
/* Description: shmregd's group commit through its io_uring loop: under a
 * client pipelining puts at the daemon's full depth, in each durability
 * mode, no reply arrives before its put's record is in the log file (the
 * test reads the file back at each completion), every put is acked, many
 * puts share one write (sync: one fdatasync; the STATS log counters), a
 * reader's round trips go on meanwhile, and after kill -9 and a restart
 * without the segment (a reboot) every acknowledged put is there. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/tc.h"
#include "persist_daemon.h"
#include "proto.h"
#include "shmreg.h"

#define N     4000u
#define VLEN  64u

static char data[4096];

struct seen {
	unsigned logged;        /* puts 0 .. logged - 1 are in the log */
};

static void key_of(char *k, unsigned i)
{
	snprintf(k, 16, "k%07u", i);
}

/* Puts are applied in request order on one connection, so their records
 * come in that order: count the ones seen. */
static void on_record(const uint8_t *key, uint32_t klen, void *arg)
{
	struct seen *s = arg;
	char want[16];

	if (!klen)
		return; /* the MARK a log starts with */
	key_of(want, s->logged);
	TC_CHECK(klen == strlen(want) && !memcmp(key, want, klen),
		 "record %u of the log is not put %u", s->logged, s->logged);
	s->logged++;
}

static void scan_all(struct pd_log *l, struct seen *s)
{
	uint64_t before;

	do {
		before = l->off;
		pd_log_scan(l, on_record, s);
	} while (l->off != before);
}

static void run(const char *mode)
{
	const char *args[] = { "--data-dir", data, "--durability", mode,
			       NULL };
	shmreg_completion_t cq[256];
	uint8_t v[VLEN];
	char k[16];
	struct pd_log log;
	struct seen s = { 0 };
	shmreg_client_t *c, *rd;
	struct dh h;
	uint64_t id0 = 0, writes, syncs, rts = 0;
	unsigned sent = 0, acked = 0, out = 0, depth;
	shmreg_t *r;

	tc_log("mode %s", mode);
	snprintf(data, sizeof(data), "%s/%s", tc_dir(), mode);
	dh_init(&h, "prep");
	dh_start(&h, args);
	c = dh_connect(&h);
	rd = dh_connect(&h);
	pd_log_open(&log, data, "prep");
	depth = shmreg_client_depth(c);
	TC_CHECK(depth >= 16, "depth %u", depth);
	while (acked < N) {
		int got;

		while (sent < N && out < depth) {
			int64_t id;

			key_of(k, sent);
			tv_build(v, VLEN, k, strlen(k), sent);
			id = shmreg_put_async(c, k, strlen(k), v, VLEN, NULL);
			TC_CHECK(id > 0, "put_async: %s", strerror((int)-id));
			if (!sent)
				id0 = (uint64_t)id;
			TC_EQ((uint64_t)id, id0 + sent, "ids in order");
			sent++;
			out++;
		}
		got = shmreg_client_wait(c, cq, 256, 10000000000ll);
		TC_CHECK(got > 0, "wait: %s", strerror(-got));
		/* what the file holds now was written before we looked */
		scan_all(&log, &s);
		for (int j = 0; j < got; j++) {
			unsigned i = (unsigned)(cq[j].id - id0);

			TC_CHECK(cq[j].result > 0, "put %u: %s", i,
				 strerror((int)-cq[j].result));
			TC_CHECK(i < s.logged, "the reply of put %u came before "
				 "its record was in the log (%u there)", i,
				 s.logged);
			acked++;
			out--;
		}
		/* a round trip on another connection while puts flow */
		if (rts < 50) {
			TC_CHECK(shmreg_ping(rd) >= 0, "ping");
			rts++;
		}
	}
	pd_log_close(&log);
	TC_EQ(s.logged, N, "every put logged once");
	writes = pd_stat(&h, "prep", PROTO_STAT_LOG_WRITES);
	syncs = pd_stat(&h, "prep", PROTO_STAT_LOG_SYNCS);
	tc_log("%s: %u puts, %llu writes, %llu fdatasyncs", mode, N,
	       (unsigned long long)writes, (unsigned long long)syncs);
	/* group commit: the client keeps `depth` puts in flight, so a group
	 * holds many of them (a generous floor: 4 puts per write) */
	TC_CHECK(writes >= 1 && writes <= N / 4, "%llu writes for %u puts",
		 (unsigned long long)writes, N);
	if (!strcmp(mode, "sync"))
		TC_CHECK(syncs >= 1 && syncs <= writes,
			 "sync: %llu fdatasyncs for %llu writes",
			 (unsigned long long)syncs, (unsigned long long)writes);
	if (!strcmp(mode, "none"))
		TC_EQ(syncs, 0, "none never syncs");
	shmreg_disconnect(rd);
	shmreg_disconnect(c);

	/* kill -9, then a reboot (no segment): every acked put is there
	 * (sync: on disk; the others: in the page cache, which this machine
	 * did not lose) */
	TC_EQ(dh_stop(&h, SIGKILL), 128 + SIGKILL, "kill -9");
	{
		char seg[4096];

		unlink(tc_path(seg, "prep"));
	}
	dh_start(&h, args);
	r = dh_open(&h);
	for (unsigned i = 0; i < N; i++) {
		uint8_t got[VLEN];
		ssize_t n;

		key_of(k, i);
		n = shmreg_get(r, k, strlen(k), got, sizeof(got), NULL);
		TC_CHECK(n == VLEN && tv_check(got, VLEN, k, strlen(k), NULL) ==
			 0, "acknowledged put %u lost (%zd)", i, n);
	}
	shmreg_close(r);
	TC_EQ(dh_stop(&h, SIGTERM), 0, "stop");
	dh_cleanup(&h);
}

int main(void)
{
	tc_init("persist_replies", 120);
	run("sync");
	run("batch");
	run("none");
	return 0;
}
