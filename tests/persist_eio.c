/* SPDX-License-Identifier: MIT */
/* Description: an I/O error from a completion of shmregd's log group:
 * the data directory is an ext4 file system on a loop device whose
 * backing file lives on a tiny tmpfs; once the tmpfs is full, writeback
 * to the device fails, so the group's fdatasync (sync mode) fails while
 * the write into the page cache succeeded.  The put of that group is
 * never acknowledged (its connection is closed), later changes are
 * refused with -EIO, reads and round trips go on, and after a restart
 * with space back every acknowledged put is there and writes work.
 * Needs root, loop devices, losetup and mkfs.ext4: skipped otherwise. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/tc.h"
#include "daemon_harness.h"
#include "shmreg.h"

#define ACKED 20u

static char mnt[4096], fs[4200], img[4200], filler[4200], loopdev[64];
static struct dh h;

static void teardown(void)
{
	dh_cleanup(&h);
	if (fs[0])
		umount2(fs, MNT_DETACH);
	if (loopdev[0]) {
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "losetup -d %s", loopdev);
		if (system(cmd) != 0)
			fprintf(stderr, "persist_eio: %s failed\n", cmd);
	}
	umount2(mnt, MNT_DETACH);
	rmdir(mnt);
}

static void skip(const char *why)
{
	printf("SKIP: %s\n", why);
	exit(TC_SKIP);
}

/* A tmpfs of 8 MiB holding a sparse 32 MiB image, attached to a loop
 * device, with an ext4 without a journal on it, mounted at @fs. */
static void make_fs(void)
{
	char cmd[8600];
	FILE *p;
	int fd;

	if (system("command -v losetup >/dev/null && "
		   "command -v mkfs.ext4 >/dev/null") != 0)
		skip("losetup or mkfs.ext4 missing");
	tc_path(mnt, "eio");
	mkdir(mnt, 0700);
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=8m,mode=0700") < 0)
		skip("cannot mount a tmpfs");
	atexit(teardown);
	snprintf(img, sizeof(img), "%s/img", mnt);
	snprintf(filler, sizeof(filler), "%s/filler", mnt);
	snprintf(fs, sizeof(fs), "%s/fs", mnt);
	fd = open(img, O_RDWR | O_CREAT | O_TRUNC, 0600);
	TC_CHECK(fd >= 0 && ftruncate(fd, 32 << 20) == 0, "image");
	close(fd);
	snprintf(cmd, sizeof(cmd), "losetup -f --show %s 2>/dev/null", img);
	p = popen(cmd, "r");
	if (!p || !fgets(loopdev, sizeof(loopdev), p)) {
		loopdev[0] = 0;
		if (p)
			pclose(p);
		skip("no loop device");
	}
	pclose(p);
	loopdev[strcspn(loopdev, "\n")] = 0;
	snprintf(cmd, sizeof(cmd), "mkfs.ext4 -q -F -O ^has_journal "
		 "-E nodiscard %s >/dev/null 2>&1", loopdev);
	TC_EQ(system(cmd), 0, "mkfs.ext4");
	mkdir(fs, 0700);
	if (mount(loopdev, fs, "ext4", 0, NULL) < 0) {
		fs[0] = 0;
		skip("cannot mount ext4 from a loop device");
	}
}

/* Fill the tmpfs under the image: the device's next new block fails. */
static void fill(void)
{
	static char buf[65536];
	int fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	TC_CHECK(fd >= 0, "filler");
	memset(buf, 'f', sizeof(buf));
	while (write(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
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
	const char *args[] = { "--data-dir", fs, "--durability", "sync",
			       NULL };
	shmreg_client_t *c;
	unsigned nbig;
	shmreg_t *r;
	int64_t rc;

	tc_init("persist_eio", 120);
	if (geteuid() != 0)
		skip("needs root (tmpfs, loop device, ext4 mount)");
	make_fs();
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
	fill();
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
	unlink(filler);
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
