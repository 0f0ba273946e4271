/* SPDX-License-Identifier: MIT */
/*
 * persist_loopfs.h - a file system whose writeback fails on demand, for
 * the I/O error tests: an ext4 without a journal on a loop device whose
 * sparse backing file lives on a tiny tmpfs.  Once the tmpfs is full
 * (plfs_fill), writeback of new blocks to the device fails, so an
 * fdatasync fails while the write into the page cache succeeded.
 * Needs root, loop devices, losetup and mkfs.ext4: plfs_make skips the
 * test otherwise.  Cleaned up at exit (registered by plfs_make).
 */
#ifndef TESTS_PERSIST_LOOPFS_H
#define TESTS_PERSIST_LOOPFS_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/tc.h"

/* plfs_fs: where the ext4 is mounted */
static char plfs_mnt[4096], plfs_fs[4200], plfs_img[4200], plfs_filler[4200],
	plfs_loopdev[64];

static void plfs_teardown(void)
{
	if (plfs_fs[0])
		umount2(plfs_fs, MNT_DETACH);
	if (plfs_loopdev[0]) {
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "losetup -d %s", plfs_loopdev);
		if (system(cmd) != 0)
			fprintf(stderr, "%s failed\n", cmd);
	}
	umount2(plfs_mnt, MNT_DETACH);
	rmdir(plfs_mnt);
}

static void plfs_skip(const char *why)
{
	printf("SKIP: %s\n", why);
	exit(TC_SKIP);
}

/* A tmpfs of 8 MiB holding a sparse 32 MiB image, attached to a loop
 * device, with an ext4 without a journal on it, mounted at plfs_fs. */
static void plfs_make(void)
{
	char cmd[8600];
	FILE *p;
	int fd;

	if (geteuid() != 0)
		plfs_skip("needs root (tmpfs, loop device, ext4 mount)");
	if (system("command -v losetup >/dev/null && "
		   "command -v mkfs.ext4 >/dev/null") != 0)
		plfs_skip("losetup or mkfs.ext4 missing");
	tc_path(plfs_mnt, "eio");
	mkdir(plfs_mnt, 0700);
	if (mount("tmpfs", plfs_mnt, "tmpfs", 0, "size=8m,mode=0700") < 0)
		plfs_skip("cannot mount a tmpfs");
	atexit(plfs_teardown);
	snprintf(plfs_img, sizeof(plfs_img), "%s/img", plfs_mnt);
	snprintf(plfs_filler, sizeof(plfs_filler), "%s/filler", plfs_mnt);
	snprintf(plfs_fs, sizeof(plfs_fs), "%s/fs", plfs_mnt);
	fd = open(plfs_img, O_RDWR | O_CREAT | O_TRUNC, 0600);
	TC_CHECK(fd >= 0 && ftruncate(fd, 32 << 20) == 0, "image");
	close(fd);
	snprintf(cmd, sizeof(cmd), "losetup -f --show %s 2>/dev/null",
		 plfs_img);
	p = popen(cmd, "r");
	if (!p || !fgets(plfs_loopdev, sizeof(plfs_loopdev), p)) {
		plfs_loopdev[0] = 0;
		if (p)
			pclose(p);
		plfs_skip("no loop device");
	}
	pclose(p);
	plfs_loopdev[strcspn(plfs_loopdev, "\n")] = 0;
	snprintf(cmd, sizeof(cmd), "mkfs.ext4 -q -F -O ^has_journal "
		 "-E nodiscard %s >/dev/null 2>&1", plfs_loopdev);
	TC_EQ(system(cmd), 0, "mkfs.ext4");
	mkdir(plfs_fs, 0700);
	if (mount(plfs_loopdev, plfs_fs, "ext4", 0, NULL) < 0) {
		plfs_fs[0] = 0;
		plfs_skip("cannot mount ext4 from a loop device");
	}
}

/* Fill the tmpfs under the image: the device's next new block fails. */
static void plfs_fill(void)
{
	static char buf[65536];
	int fd = open(plfs_filler, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	TC_CHECK(fd >= 0, "filler");
	memset(buf, 'f', sizeof(buf));
	while (write(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
}

/* Space back under the image. */
static void plfs_unfill(void)
{
	unlink(plfs_filler);
}

#endif /* TESTS_PERSIST_LOOPFS_H */
