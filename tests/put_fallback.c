/* SPDX-License-Identifier: MIT */
/* Description: puts that start on the common path (put_common() in
 * writer/writer.c, which writes the change-ring record before it reads the
 * slot) and leave it after the probe: the replace of an expiring, of an
 * owned and of an out-of-line entry, and the inserts at growth points.
 * Each commits once: a watcher from revision 0 gets exactly one event per
 * put, in revision order, with its key; the values and the entry count
 * read back exact; and after more commits than the ring holds, the oldest
 * record the ring promises is still readable. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shmreg.h"
#include "shmreg_writer.h"
#include "common/tc.h"

#define NAME     "fallback"
#define RING     1024u
#define NINSERT  200u     /* from 16 entries: several handoffs */
#define NREPLACE (RING + 100u)
#define MS       INT64_C(1000000)

static shmreg_writer_t *w;
static shmreg_t *r;
static char keys[3 + NINSERT][24];
static uint64_t nkeys;

static int64_t put(const char *k, const void *v, size_t vlen,
		   const shmreg_put_opts_t *o)
{
	int64_t rev = shmreg_writer_put(w, k, strlen(k), v, vlen, o);

	TC_CHECK(rev > 0, "put %s: %lld", k, (long long)rev);
	return rev;
}

static void expect_event(shmreg_watch_t *wt, const char *k, uint64_t rev)
{
	shmreg_event_t ev;

	TC_EQ(shmreg_watch_next(wt, &ev, 1000 * MS), 0, k);
	TC_CHECK(ev.type == SHMREG_EVENT_PUT && ev.rev == rev &&
			 ev.klen == strlen(k) && !memcmp(ev.key, k, ev.klen),
		 "event %d rev %llu '%.*s', want put rev %llu '%s'", ev.type,
		 (unsigned long long)ev.rev, (int)ev.klen,
		 (const char *)ev.key, (unsigned long long)rev, k);
}

static void expect_value(const char *k, const char *want)
{
	char buf[256];
	shmreg_info_t info;
	ssize_t n = shmreg_get(r, k, strlen(k), buf, sizeof(buf), &info);

	TC_EQ(n, (ssize_t)strlen(want), k);
	TC_CHECK(!memcmp(buf, want, strlen(want)), "value of %s", k);
	TC_EQ(info.expires_at_ns, 0, k);
}

int main(void)
{
	shmreg_writer_opts_t wo = { .flags = SHMREG_WRITER_TRUNCATE,
				    .initial_entries = 16,
				    .ring_events = RING };
	shmreg_put_opts_t ttl = { .ttl_ns = 60000 * MS };
	shmreg_put_opts_t own = { .owner_pid = getpid() };
	shmreg_watch_t *wt;
	shmreg_stats_t st;
	shmreg_event_t ev;
	char big[200];
	uint64_t rev = 0;

	tc_init("put_fallback", 60);
	tc_dir();
	TC_EQ(shmreg_writer_open(NAME, &wo, &w), 0, "open");
	TC_EQ(shmreg_open(NAME, 0, &r), 0, "reader");
	TC_EQ(shmreg_watch_open(r, "", 0, 0, &wt), 0, "watch");

	/* the first put of each makes an entry the common path leaves */
	TC_EQ(put("ttl", "t1", 2, &ttl), (int64_t)++rev, "ttl");
	TC_EQ(put("ttl", "t2", 2, NULL), (int64_t)++rev, "ttl again");
	TC_EQ(put("own", "o1", 2, &own), (int64_t)++rev, "own");
	TC_EQ(put("own", "o2", 2, NULL), (int64_t)++rev, "own again");
	memset(big, 'b', sizeof(big));
	TC_EQ(put("big", big, sizeof(big), NULL), (int64_t)++rev, "big");
	TC_EQ(put("big", "b2", 2, NULL), (int64_t)++rev, "big, inline");
	strcpy(keys[nkeys++], "ttl");
	strcpy(keys[nkeys++], "own");
	strcpy(keys[nkeys++], "big");
	/* inserts from 16 entries up: each growth point leaves it too */
	for (uint32_t i = 0; i < NINSERT; i++) {
		snprintf(keys[nkeys], sizeof(keys[0]), "k%05u", i);
		TC_EQ(put(keys[nkeys], keys[nkeys], strlen(keys[nkeys]), NULL),
		      (int64_t)++rev, keys[nkeys]);
		nkeys++;
	}
	TC_EQ(shmreg_revision(r), rev, "revision");
	TC_CHECK(shmreg_stats(r, &st) == 0 && st.index_capacity > 32,
		 "the index grew: %llu slots",
		 (unsigned long long)st.index_capacity);
	TC_EQ(st.entries, nkeys, "entries");

	/* one event per put, in order; nothing more */
	expect_event(wt, "ttl", 1);
	expect_event(wt, "ttl", 2);
	expect_event(wt, "own", 3);
	expect_event(wt, "own", 4);
	expect_event(wt, "big", 5);
	expect_event(wt, "big", 6);
	for (uint64_t k = 3; k < nkeys; k++)
		expect_event(wt, keys[k], k + 4);
	TC_EQ(shmreg_watch_next(wt, &ev, 0), -ETIMEDOUT, "no more events");
	shmreg_watch_close(wt);
	expect_value("ttl", "t2");
	expect_value("own", "o2");
	expect_value("big", "b2");
	for (uint64_t k = 3; k < nkeys; k++)
		expect_value(keys[k], keys[k]);

	/* common puts past the ring's size: the oldest record it keeps is
	 * there, the one before it is not */
	for (uint32_t j = 0; j < NREPLACE; j++)
		TC_EQ(put(keys[3 + j % NINSERT], "r", 1, NULL), (int64_t)++rev,
		      "replace");
	TC_EQ(shmreg_watch_open(r, "", 0, rev - RING, &wt), 0,
	      "watch from the oldest record kept");
	TC_EQ(shmreg_watch_next(wt, &ev, 0), 0, "oldest record");
	TC_EQ(ev.rev, rev - RING + 1, "oldest record's revision");
	shmreg_watch_close(wt);
	TC_EQ(shmreg_watch_open(r, "", 0, rev - RING - 1, &wt), -ERANGE,
	      "watch from before it");

	shmreg_close(r);
	shmreg_writer_close(w);
	return 0;
}
