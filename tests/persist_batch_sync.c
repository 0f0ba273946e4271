/* SPDX-License-Identifier: MIT */
/* Description: the embedded writer's batch mode syncs on its own thread:
 * an idle writer's last records are fdatasync'ed without another change
 * (the log's sync counter grows; waited for with a deadline), a snapshot's
 * rotation goes on beside the thread with nothing lost, and a failing
 * fdatasync of the thread latches -EIO: the next change is refused,
 * reads go on, and after a reopen with space back what was synced before
 * is there and changes work again (persist_loopfs.h: needs root,
 * skipped otherwise). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "persist_common.h"
#include "persist_loopfs.h"

#define DEADLINE_NS 10000000000ull

static void pause_1ms(void)
{
	struct timespec ts = { 0, 1000000 };

	nanosleep(&ts, NULL);
}

static shmreg_writer_log_stats_t stats(shmreg_writer_t *w)
{
	shmreg_writer_log_stats_t st;

	TC_EQ(shmreg_writer_log_stats(w, &st), 0, "log stats");
	return st;
}

/* Wait until the log has counted more than @syncs fdatasyncs. */
static uint64_t wait_syncs_above(shmreg_writer_t *w, uint64_t syncs,
				 const char *what)
{
	uint64_t t0 = tc_now_ns(), n;

	while ((n = stats(w).syncs) <= syncs) {
		TC_CHECK(tc_now_ns() - t0 < DEADLINE_NS,
			 "%s: no fdatasync 10 s after the write", what);
		pause_1ms();
	}
	return n;
}

static void put_ok(shmreg_writer_t *w, const char *k, const char *v)
{
	int64_t r = shmreg_writer_put(w, k, strlen(k), v, strlen(v), NULL);

	TC_CHECK(r > 0, "put %s: %s", k, strerror((int)-r));
}

static void expect(shmreg_t *r, const char *k, const char *v)
{
	char got[64];
	ssize_t n = shmreg_get(r, k, strlen(k), got, sizeof(got), NULL);

	TC_CHECK(n == (ssize_t)strlen(v) && !memcmp(got, v, (size_t)n),
		 "%s: got %zd bytes, want %s", k, n, v);
}

static void idle_writer_syncs(void)
{
	shmreg_writer_opts_t o = { .flags = SHMREG_WRITER_TRUNCATE,
				   .durability = SHMREG_DURABILITY_BATCH,
				   .batch_ms = 10 };
	shmreg_writer_log_stats_t st;
	shmreg_writer_t *w;
	char dir[4096];
	uint64_t s0, s1;

	o.data_dir = pt_datadir(dir, "bsync");
	TC_EQ(shmreg_writer_open("bsync", &o, &w), 0, "open");
	s0 = stats(w).syncs;
	put_ok(w, "a", "1");
	st = stats(w);
	TC_EQ(st.error, 0, "no error");
	/* nothing else happens: the thread alone syncs the put */
	s1 = wait_syncs_above(w, s0, "one put");

	/* many puts across a snapshot's rotation: written and synced, each
	 * batch_ms at most, and all there after a reopen */
	for (unsigned i = 0; i < 2000; i++) {
		char k[16], v[16];

		snprintf(k, sizeof(k), "k%04u", i);
		snprintf(v, sizeof(v), "v%04u", i);
		put_ok(w, k, v);
		if (i == 1000)
			TC_EQ(shmreg_writer_snapshot(w), 0, "snapshot");
	}
	wait_syncs_above(w, s1, "after the rotation");
	TC_EQ(stats(w).error, 0, "no error after the puts");
	shmreg_writer_close(w);

	o.flags = 0;
	TC_EQ(shmreg_writer_open("bsync", &o, &w), 0, "reopen");
	expect(shmreg_writer_reader(w), "a", "1");
	for (unsigned i = 0; i < 2000; i++) {
		char k[16], v[16];

		snprintf(k, sizeof(k), "k%04u", i);
		snprintf(v, sizeof(v), "v%04u", i);
		expect(shmreg_writer_reader(w), k, v);
	}
	shmreg_writer_close(w);
}

static char big[60000];

static void failing_sync_latches(void)
{
	shmreg_writer_opts_t o = { .durability = SHMREG_DURABILITY_BATCH,
				   .batch_ms = 1 };
	shmreg_writer_t *w;
	char dir[4300];
	uint64_t t0;
	unsigned nbig;
	int64_t rc;

	plfs_make();
	snprintf(dir, sizeof(dir), "%s/reg", plfs_fs);
	o.data_dir = dir;
	TC_EQ(shmreg_writer_open("beio", &o, &w), 0, "open on the loop fs");
	put_ok(w, "synced", "1");
	shmreg_writer_close(w); /* its final fdatasync */

	TC_EQ(shmreg_writer_open("beio", &o, &w), 0, "reopen");
	plfs_fill();
	/* writes into the page cache succeed; the thread's fdatasync of
	 * blocks the full tmpfs cannot back fails (the kernel may report
	 * it one sync late), and the next change after it is refused */
	memset(big, 'b', sizeof(big));
	t0 = tc_now_ns();
	for (nbig = 0;; nbig++) {
		char k[16];

		snprintf(k, sizeof(k), "b%04u", nbig);
		rc = shmreg_writer_put(w, k, strlen(k), big, sizeof(big),
				       NULL);
		if (rc < 0)
			break;
		TC_CHECK(tc_now_ns() - t0 < DEADLINE_NS,
			 "%u puts of %zu bytes in 10 s on a full device, none "
			 "refused", nbig, sizeof(big));
		pause_1ms(); /* give the thread its batch_ms */
	}
	tc_log("%u big puts acknowledged, then: %s", nbig,
	       strerror((int)-rc));
	TC_EQ(rc, -EIO, "the put after the failed fdatasync");
	TC_EQ(stats(w).error, -EIO, "latched");
	TC_EQ(shmreg_writer_put(w, "after", 5, "y", 1, NULL), -EIO,
	      "changes stay refused");
	TC_EQ(shmreg_writer_del(w, "synced", 6), -EIO, "deletes too");
	expect(shmreg_writer_reader(w), "synced", "1"); /* reads go on */
	shmreg_writer_close(w);

	/* space back, reopened: what was synced is there, changes work */
	plfs_unfill();
	TC_EQ(shmreg_writer_open("beio", &o, &w), 0, "reopen with space");
	expect(shmreg_writer_reader(w), "synced", "1");
	put_ok(w, "again", "2");
	TC_EQ(stats(w).error, 0, "no error after the reopen");
	shmreg_writer_close(w);
}

int main(void)
{
	tc_init("persist_batch_sync", 120);
	idle_writer_syncs();
	failing_sync_latches();
	return 0;
}
