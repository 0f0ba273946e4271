/* SPDX-License-Identifier: MIT */
/* Description: one handle, many threads: 8 threads await 8 keys each and
 * 2 threads follow the change stream, all on one shmreg_t, while the same
 * process's writer grows the registry through handoffs; every await
 * returns its value, both streams see every event in order.  Under TSan
 * this checks the wait file cache and the waiters' orderings. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmreg.h"
#include "shmreg_writer.h"
#include "common/tc.h"

#define NAME     "awthreads"
#define NAWAIT   8
#define PER      8          /* keys per awaiting thread */
#define NWATCH   2
#define NFILL    6000u      /* puts that make the registry grow */

static shmreg_t *r;
static uint64_t rev0;
static uint64_t total_events;

struct job {
	pthread_t t;
	int id;
	int failed;
	uint64_t got;
};

static void key_of(char *buf, int t, int k)
{
	snprintf(buf, 16, "t%d/%d", t, k);
}

static void *awaiter(void *arg)
{
	struct job *j = arg;
	char key[16];
	uint32_t v;

	for (int k = 0; k < PER; k++) {
		key_of(key, j->id, k);
		ssize_t n = shmreg_await(r, key, strlen(key), &v, sizeof(v),
					 NULL, 30000000000LL);

		if (n != sizeof(v) || v != (uint32_t)(j->id * PER + k)) {
			tc_log("thread %d: await %s: %zd", j->id, key, n);
			j->failed = 1;
			break;
		}
		j->got++;
	}
	return NULL;
}

static void *watcher(void *arg)
{
	struct job *j = arg;
	shmreg_watch_t *w;
	shmreg_event_t ev;
	uint64_t want = rev0 + 1;

	if (shmreg_watch_open(r, "", 0, rev0, &w) < 0) {
		j->failed = 1;
		return NULL;
	}
	/* bounded by the writer's events */
	while (j->got < total_events) {
		int ret = shmreg_watch_next(w, &ev, 30000000000LL);

		if (ret < 0 || ev.rev != want) {
			tc_log("watcher %d: ret %d rev %llu want %llu", j->id,
			       ret, (unsigned long long)ev.rev,
			       (unsigned long long)want);
			j->failed = 1;
			break;
		}
		want++;
		j->got++;
	}
	shmreg_watch_close(w);
	return NULL;
}

int main(void)
{
	shmreg_writer_opts_t o = { .flags = SHMREG_WRITER_TRUNCATE };
	struct job aw[NAWAIT], wt[NWATCH];
	shmreg_writer_t *w;
	shmreg_stats_t st;
	uint64_t gen0;
	char key[16];
	int ret;

	tc_init("await_threads", 90);
	tc_dir();
	ret = shmreg_writer_open(NAME, &o, &w);
	TC_CHECK(ret == 0, "writer_open: %s", strerror(-ret));
	ret = shmreg_open(NAME, 0, &r);
	TC_CHECK(ret == 0, "open: %s", strerror(-ret));
	rev0 = shmreg_writer_revision(w);
	total_events = NFILL + NAWAIT * PER;
	TC_EQ(shmreg_stats(r, &st), 0, "stats");
	gen0 = st.generation;
	memset(aw, 0, sizeof(aw));
	memset(wt, 0, sizeof(wt));
	for (int i = 0; i < NAWAIT; i++) {
		aw[i].id = i;
		TC_CHECK(pthread_create(&aw[i].t, NULL, awaiter, &aw[i]) == 0,
			 "pthread_create");
	}
	for (int i = 0; i < NWATCH; i++) {
		wt[i].id = i;
		TC_CHECK(pthread_create(&wt[i].t, NULL, watcher, &wt[i]) == 0,
			 "pthread_create");
	}
	/* interleave fill puts (growth) with the awaited keys */
	for (uint32_t i = 0, k = 0; i < NFILL; i++) {
		snprintf(key, sizeof(key), "fill%u", i);
		TC_CHECK(shmreg_writer_put(w, key, strlen(key), &i, sizeof(i),
					   NULL) > 0, "put fill");
		if (i % (NFILL / (NAWAIT * PER)) == 0 && k < NAWAIT * PER) {
			uint32_t v = k;

			key_of(key, (int)(k / PER), (int)(k % PER));
			TC_CHECK(shmreg_writer_put(w, key, strlen(key), &v,
						   sizeof(v), NULL) > 0,
				 "put awaited");
			k++;
		}
	}
	for (int i = 0; i < NAWAIT; i++) {
		pthread_join(aw[i].t, NULL);
		TC_CHECK(!aw[i].failed, "awaiting thread %d failed", i);
		TC_EQ(aw[i].got, PER, "keys awaited by a thread");
	}
	for (int i = 0; i < NWATCH; i++) {
		pthread_join(wt[i].t, NULL);
		TC_CHECK(!wt[i].failed, "watcher %d failed", i);
		TC_EQ(wt[i].got, total_events, "events seen by a watcher");
	}
	TC_EQ(shmreg_stats(r, &st), 0, "stats");
	TC_CHECK(st.generation > gen0, "no handoff happened");
	tc_log("%llu handoffs; all waits answered",
	       (unsigned long long)(st.generation - gen0));
	shmreg_close(r);
	shmreg_writer_close(w);
	tc_log("ok");
	return 0;
}
