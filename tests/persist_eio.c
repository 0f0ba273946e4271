/* SPDX-License-Identifier: MIT */
/* Description: an I/O error from a completion of shmregd's log group:
 * the data directory is on persist_loopfs.h's file system, whose
 * writeback fails once its tmpfs is full, so the group's fdatasync (sync
 * mode) fails while the write into the page cache succeeded.  The put
 * of that group is never acknowledged (its connection is closed), later
 * changes are refused with -EIO, reads and round trips go on, and after a
 * restart with space back every acknowledged put is there and writes
 * work.
 * Needs root, loop devices, losetup and mkfs.ext4: skipped otherwise. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/tc.h"
#include "daemon_harness.h"
#include "persist_loopfs.h"
#include "shmreg.h"

#define ACKED 20u

static struct dh h;

static void stop_daemon(void)
{
	dh_cleanup(&h);
}

static void put_ok(shmreg_client_t *c, unsigned i)
{
	char k[16], v[16];
	int64_t r;

	snprintf(k, sizeof(k), "k%03u", i);
	snprintf(v, sizeof(v), "v%03u", i);
	r = shmreg_put(c, k, strlen(k), v, strlen(v), NULL);
	TC_CHECK(r > 0, "put %s: %s", k, strerror((int)-r));
}

static char big[60000];

static void check_acked(shmreg_t *r, unsigned nbig)
{
	for (unsigned i = 0; i < nbig; i++) {
		char k[16], got[sizeof(big)];
		ssize_t n;

		snprintf(k, sizeof(k), "b%02u", i);
		n = shmreg_get(r, k, strlen(k), got, sizeof(got), NULL);
		TC_CHECK(n == (ssize_t)sizeof(big) &&
			 !memcmp(got, big, sizeof(big)),
			 "acknowledged %s lost (%zd)", k, n);
	}
	for (unsigned i = 0; i < ACKED; i++) {
		char k[16], v[16], got[16];
		ssize_t n;

		snprintf(k, sizeof(k), "k%03u", i);
		snprintf(v, sizeof(v), "v%03u", i);
		n = shmreg_get(r, k, strlen(k), got, sizeof(got), NULL);
		TC_CHECK(n == (ssize_t)strlen(v) && !memcmp(got, v, (size_t)n),
			 "acknowledged %s lost (%zd)", k, n);
	}
}

int main(void)
{
	const char *args[] = { "--data-dir", plfs_fs, "--durability", "sync",
			       NULL };
	shmreg_client_t *c;
	unsigned nbig;
	shmreg_t *r;
	int64_t rc;

	tc_init("persist_eio", 120);
	plfs_make();
	atexit(stop_daemon); /* before the file system goes (LIFO) */
	dh_init(&h, "peio");
	dh_start(&h, args);
	c = dh_connect(&h);
	for (unsigned i = 0; i < ACKED; i++)
		put_ok(c, i);

	/* A group's fdatasync fails once its records cover blocks of the
	 * image that the full tmpfs cannot back (the kernel may report it
	 * one fdatasync late): big puts until one is not acknowledged, its
	 * connection closed instead of told "done".  The ones before it
	 * were acknowledged and must survive. */
	plfs_fill();
	memset(big, 'b', sizeof(big));
	for (nbig = 0;; nbig++) {
		char k[16];

		TC_CHECK(nbig < 64, "64 puts of %zu bytes acknowledged on a "
			 "full device", sizeof(big));
		snprintf(k, sizeof(k), "b%02u", nbig);
		rc = shmreg_put(c, k, strlen(k), big, sizeof(big), NULL);
		if (rc < 0)
			break;
	}
	tc_log("%u big puts acknowledged, then: %s", nbig,
	       strerror((int)-rc));
	shmreg_disconnect(c);

	/* the daemon goes on: changes refused with -EIO, reads served */
	c = dh_connect(&h);
	TC_CHECK(shmreg_ping(c) >= 0, "ping after the failure");
	TC_EQ(shmreg_put(c, "after", 5, "y", 1, NULL), -EIO,
	      "changes refused after a failed group");
	TC_EQ(shmreg_del(c, "k000", 4), -EIO, "deletes refused too");
	r = dh_open(&h);
	check_acked(r, nbig);
	shmreg_close(r);
	shmreg_disconnect(c);

	/* space back, restarted: what was acknowledged is there, and the
	 * registry takes changes again */
	plfs_unfill();
	TC_EQ(dh_stop(&h, SIGTERM), 0, "stop");
	dh_start(&h, args);
	r = dh_open(&h);
	check_acked(r, nbig);
	c = dh_connect(&h);
	put_ok(c, ACKED);
	shmreg_disconnect(c);
	shmreg_close(r);
	TC_EQ(dh_stop(&h, SIGTERM), 0, "stop 2");
	return 0;
}
