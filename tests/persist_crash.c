/* SPDX-License-Identifier: MIT */
/* Description: crash loop: shmregd --data-dir with --durability sync or
 * batch under a client writing pipelined puts is killed with SIGKILL at a
 * random moment and restarted, half of the time after its segment was
 * removed (as after a reboot).  Every acknowledged put is there with its
 * value, what survives of each run is a prefix of what was sent, nothing
 * of earlier runs is lost, and the revision a reader saw never goes back.
 *
 * The mode is $SHMREG_CRASH_MODE (sync or batch), the iterations
 * $SHMREG_CRASH_ITERS (default 20).  The ctest label `long` runs 200 of
 * each; those tests skip unless $SHMREG_LONG=1 (so that the full suite
 * stays quick):  SHMREG_LONG=1 ctest -L long */
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/tc.h"
#include "daemon_harness.h"

#define MAX_PER_RUN 4000u
#define VLEN 40u

struct shared {
	_Atomic uint64_t acked;   /* puts of this run acknowledged (in order) */
	_Atomic uint64_t sent;    /* puts of this run sent */
	_Atomic uint64_t max_rev; /* highest revision acknowledged */
};

static struct dh h;
static struct shared *sh;
static unsigned run;
static char datadir[4096];

static void key_of(unsigned r, uint64_t i, char *k)
{
	snprintf(k, 32, "r%04u/%06llu", r, (unsigned long long)i);
}

/* Pipelined puts of keys r/0, r/1, ... until the connection dies. */
static int writer(struct tc_child *self, void *arg)
{
	shmreg_client_t *c = dh_connect(&h);
	shmreg_completion_t cq[64];
	uint64_t out = 0, sent = 0;
	char k[32];
	uint8_t v[VLEN];

	(void)arg;
	tc_post(self, 'w');
	for (;;) {
		while (sent < MAX_PER_RUN && out < 32) {
			key_of(run, sent, k);
			tv_build(v, VLEN, k, strlen(k), sent);
			if (shmreg_put_async(c, k, strlen(k), v, VLEN, NULL) <= 0)
				return 0; /* the daemon is gone */
			atomic_store(&sh->sent, ++sent);
			out++;
		}
		if (shmreg_client_flush(c) < 0)
			return 0;
		int got = shmreg_client_wait(c, cq, 64, 5000000000);

		if (got <= 0)
			return 0;
		for (int j = 0; j < got; j++) {
			TC_CHECK(cq[j].result > 0, "put refused: %lld",
				 (long long)cq[j].result);
			if ((uint64_t)cq[j].result > atomic_load(&sh->max_rev))
				atomic_store(&sh->max_rev,
					     (uint64_t)cq[j].result);
			atomic_fetch_add(&sh->acked, 1);
		}
		out -= (uint64_t)got;
		if (!out && sent == MAX_PER_RUN)
			return 0;
	}
}

/* Exactly keys r/0 .. r/n-1 of run @r are present, with their values;
 * returns n. */
static uint64_t prefix_of(shmreg_t *r, unsigned rr, uint64_t upto)
{
	uint64_t n = 0, seq;
	uint8_t buf[VLEN + 8];
	char k[32];

	for (uint64_t i = 0; i < upto; i++) {
		ssize_t got;

		key_of(rr, i, k);
		got = shmreg_get(r, k, strlen(k), buf, sizeof(buf), NULL);
		if (got == -ENOENT)
			continue;
		TC_CHECK(got == VLEN && tv_check(buf, VLEN, k, strlen(k), &seq) ==
			 0 && seq == i, "%s: bad value (%zd)", k, got);
		TC_CHECK(i == n, "run %u: %s present but key %llu is not: not a "
			 "prefix", rr, k, (unsigned long long)n);
		n++;
	}
	return n;
}

static int snap_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	TC_CHECK(d, "opendir %s", dir);
	while ((e = readdir(d)))
		n += !strncmp(e->d_name, "snap.", 5) && strlen(e->d_name) == 21;
	closedir(d);
	return n;
}

int main(void)
{
	const char *mode = getenv("SHMREG_CRASH_MODE");
	const char *it = getenv("SHMREG_CRASH_ITERS");
	const char *lng = getenv("SHMREG_LONG");
	unsigned iters = it ? (unsigned)atoi(it) : 20;
	uint64_t seed = tc_seed(), st = seed, seen_rev = 0;
	uint64_t kept[1024] = { 0 };   /* survivors of each run */
	char segpath[4096];
	const char *args[] = { "--data-dir", datadir, "--durability", mode,
			       NULL };
	unsigned dropped = 0;

	if (!mode)
		mode = "sync";
	if (iters > 50 && !(lng && !strcmp(lng, "1"))) {
		printf("SKIP: %u iterations: set SHMREG_LONG=1\n", iters);
		return TC_SKIP;
	}
	tc_init("persist_crash", 1800);
	TC_CHECK(iters <= 1024, "at most 1024 iterations");
	TC_CHECK(!strcmp(mode, "sync") || !strcmp(mode, "batch"), "mode");
	sh = tc_shared(sizeof(*sh));
	tc_path(datadir, "data");
	tc_path(segpath, "reg");
	dh_init(&h, "reg");
	for (run = 0; run < iters; run++) {
		uint64_t kill_after = tc_range(&st, 0, MAX_PER_RUN / 2);
		uint64_t deadline = tc_now_ns() + 20000000000ull;
		struct tc_child *c;
		shmreg_t *r;
		uint64_t acked, sent, n;

		atomic_store(&sh->acked, 0);
		atomic_store(&sh->sent, 0);
		atomic_store(&sh->max_rev, 0);
		dh_start(&h, args);
		c = tc_spawn("writer", writer, NULL);
		tc_expect(c, 'w', 10000);
		/* a random moment: after kill_after acknowledgements (or
		 * when the writer is done) */
		while (atomic_load(&sh->acked) < kill_after &&
		       atomic_load(&sh->acked) < MAX_PER_RUN) {
			TC_CHECK(tc_now_ns() < deadline, "writer stuck at %llu",
				 (unsigned long long)atomic_load(&sh->acked));
			sched_yield();
		}
		r = dh_open(&h);
		dh_stop(&h, SIGKILL);
		tc_child_join(c, 20000);
		tc_child_free(c);
		acked = atomic_load(&sh->acked);
		sent = atomic_load(&sh->sent);
		/* what readers saw of the dead daemon's segment */
		if (shmreg_revision(r) > seen_rev)
			seen_rev = shmreg_revision(r);
		shmreg_close(r);
		if (tc_range(&st, 0, 1)) {
			unlink(segpath); /* a reboot */
			dropped++;
		}
		dh_start(&h, args);
		r = dh_open(&h);
		TC_CHECK(shmreg_revision(r) >= seen_rev, "run %u: revision %llu "
			 "after restart, readers had seen %llu", run,
			 (unsigned long long)shmreg_revision(r),
			 (unsigned long long)seen_rev);
		TC_CHECK(shmreg_revision(r) >= atomic_load(&sh->max_rev),
			 "revision below an acknowledged one");
		n = prefix_of(r, run, sent + 1);
		/* a process crash loses nothing acknowledged in either mode
		 * (every reply follows its record's write) */
		TC_CHECK(n >= acked, "run %u (%s): %llu acknowledged, %llu kept",
			 run, mode, (unsigned long long)acked,
			 (unsigned long long)n);
		kept[run] = n;
		/* nothing of the earlier runs went */
		for (unsigned p = run > 3 ? run - 3 : 0; p < run; p++)
			TC_EQ(prefix_of(r, p, kept[p] + 1), kept[p], "earlier run");
		seen_rev = shmreg_revision(r);
		shmreg_close(r);
		dh_stop(&h, SIGKILL);
	}
	/* all runs, once at the end, after a clean restart */
	dh_start(&h, args);
	{
		shmreg_t *r = dh_open(&h);

		for (unsigned p = 0; p < iters; p++)
			TC_EQ(prefix_of(r, p, kept[p] + 1), kept[p], "at the end");
		shmreg_close(r);
	}
	/* SNAPSHOT through the wire, waited for by the clean stop */
	{
		shmreg_client_t *c = dh_connect(&h);
		char p[4200];

		int rc = shmreg_client_snapshot(c);

		/* -EALREADY: one the log's size started is running */
		TC_CHECK(rc == 0 || rc == -EALREADY, "snapshot: %s",
			 strerror(-rc));
		shmreg_disconnect(c);
		TC_EQ(dh_stop(&h, SIGTERM), 0, "clean stop");
		snprintf(p, sizeof(p), "%s/reg", datadir);
		TC_CHECK(snap_files(p) >= 1, "no snapshot in %s", p);
	}
	/* and everything again, from it, after a reboot */
	unlink(segpath);
	dh_start(&h, args);
	{
		shmreg_t *r = dh_open(&h);

		for (unsigned p = 0; p < iters; p++)
			TC_EQ(prefix_of(r, p, kept[p] + 1), kept[p],
			      "from the snapshot");
		shmreg_close(r);
	}
	TC_EQ(dh_stop(&h, SIGTERM), 0, "clean stop 2");
	dh_cleanup(&h);
	tc_log("%u runs (%s), %u after removing the segment", iters, mode,
	       dropped);
	return 0;
}
