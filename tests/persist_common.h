/* SPDX-License-Identifier: MIT */
/*
 * persist_common.h - helpers of the persistence tests: a writer with a
 * data directory, the log files, and a reference model of the contents.
 */
#ifndef TESTS_PERSIST_COMMON_H
#define TESTS_PERSIST_COMMON_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/tc.h"
#include "shmreg.h"
#include "shmreg_writer.h"

/* "$dir/NAME.data": the data directory of registry NAME in these tests. */
static inline char *pt_datadir(char *buf, const char *name)
{
	char file[256];

	snprintf(file, sizeof(file), "%s.data", name);
	return tc_path(buf, file);
}

static inline int pt_open(const char *name, uint32_t durability,
			  uint32_t flags, shmreg_writer_t **w)
{
	char dir[4096];
	shmreg_writer_opts_t o = { .flags = flags, .durability = durability };

	o.data_dir = pt_datadir(dir, name);
	return shmreg_writer_open(name, &o, w);
}

/* Remove the registry's segment and its tmpfs companions (as a reboot
 * would): a plain NAME resolves to $SHMREG_DIR/shmreg.NAME
 * (shm/paths.h), and an embedded batch-mode writer's stage lies beside it
 * (NAME.stage). */
static inline void pt_drop_segment(const char *name)
{
	static const char *const sfx[] = { "", ".wait", ".stage" };
	char f[300], p[4096];

	for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		snprintf(f, sizeof(f), "shmreg.%s%s", name, sfx[i]);
		unlink(tc_path(p, f));
	}
}

/* Path of log.SEQ / snap.SEQ of registry NAME. */
static inline char *pt_file(char *buf, const char *name, const char *kind,
			    unsigned long long seq)
{
	char dir[4096];

	snprintf(buf, 4096, "%s/%s.%016llx", pt_datadir(dir, name), kind, seq);
	return buf;
}

/* Highest SEQ of files of @kind ("log" or "snap"), 0 when none. */
static inline unsigned long long pt_last(const char *name, const char *kind)
{
	char dir[4096], pre[16];
	unsigned long long best = 0, s;
	struct dirent *e;
	DIR *d = opendir(pt_datadir(dir, name));

	TC_CHECK(d, "opendir %s: %s", dir, strerror(errno));
	snprintf(pre, sizeof(pre), "%s.", kind);
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, pre, strlen(pre)) ||
		    strlen(e->d_name) != strlen(pre) + 16)
			continue;
		s = strtoull(e->d_name + strlen(pre), NULL, 16);
		if (s > best)
			best = s;
	}
	closedir(d);
	return best;
}

/* Open registry NAME as pt_open() does with what it prints on stderr in
 * @err (@cap bytes, NUL-terminated): the lines recovery writes. */
static inline int pt_open_captured(const char *name, uint32_t durability,
				   uint32_t flags, shmreg_writer_t **w,
				   char *err, size_t cap)
{
	char p[4096];
	int fd, saved, rc;
	ssize_t n;

	fflush(stderr);
	saved = dup(2);
	fd = open(tc_path(p, "stderr.txt"), O_RDWR | O_CREAT | O_TRUNC, 0600);
	TC_CHECK(saved >= 0 && fd >= 0, "stderr file: %s", strerror(errno));
	dup2(fd, 2);
	rc = pt_open(name, durability, flags, w);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	n = pread(fd, err, cap - 1, 0);
	err[n > 0 ? n : 0] = 0;
	close(fd);
	return rc;
}

static inline off_t pt_size(const char *path)
{
	struct stat st;

	TC_CHECK(stat(path, &st) == 0, "stat %s: %s", path, strerror(errno));
	return st.st_size;
}

/* The mount point of pt_mount_tiny. */
static inline char *pt_tiny_path(void)
{
	static char p[4096];

	return p;
}

static inline void pt_tiny_umount(void)
{
	umount2(pt_tiny_path(), MNT_DETACH);
	rmdir(pt_tiny_path());
}

/* Mount a 4 MiB tmpfs at "$dir/tiny" (a disk that fills up), unmounted at
 * exit.  Returns its path, or NULL when it cannot be made (not root, no
 * mount): the reason is printed, and the test should skip. */
static inline const char *pt_mount_tiny(void)
{
	char *mnt = pt_tiny_path();

	if (geteuid() != 0) {
		printf("SKIP: needs root to mount a tmpfs\n");
		return NULL;
	}
	tc_path(mnt, "tiny");
	mkdir(mnt, 0700);
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=4m,mode=0700") < 0) {
		printf("SKIP: mount tmpfs: %s\n", strerror(errno));
		rmdir(mnt);
		return NULL;
	}
	atexit(pt_tiny_umount);
	return mnt;
}

#endif /* TESTS_PERSIST_COMMON_H */
