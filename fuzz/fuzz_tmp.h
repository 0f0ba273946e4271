/* SPDX-License-Identifier: MIT */
/* fuzz_tmp.h - a fuzz target's private scratch directory and file writer. */
#ifndef FUZZ_TMP_H
#define FUZZ_TMP_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

/* The directory, once fz_tmp_setup has made it ("" before). */
static char fz_dir[PATH_MAX];
static void (*fz_tmp_unlink)(void);

static void fz_tmp_cleanup(void)
{
	if (fz_tmp_unlink)
		fz_tmp_unlink();
	rmdir(fz_dir);
}

/*
 * A private directory, made once per process and reused for every input:
 * PREFIX.XXXXXX under $SHMREG_FUZZ_TMP, else the test's $SHMREG_DIR, else
 * /dev/shm (a tmpfs, like real registries), else /tmp.  When it is made,
 * @path (of @size bytes) becomes "DIR/@name", and at exit @unlink_files
 * (may be NULL) removes what the target left in it, then the directory
 * goes.  0 when the directory is there, -1 when no base would do.
 */
static inline int fz_tmp_setup(const char *prefix, const char *name,
			       char *path, size_t size,
			       void (*unlink_files)(void))
{
	const char *bases[4] = { getenv("SHMREG_FUZZ_TMP"),
				 getenv("SHMREG_DIR"), "/dev/shm", "/tmp" };

	if (fz_dir[0])
		return 0;
	for (size_t i = 0; i < 4; i++) {
		if (!bases[i] || bases[i][0] != '/')
			continue;
		if ((size_t)snprintf(fz_dir, sizeof(fz_dir), "%s/%s.XXXXXX",
				     bases[i], prefix) >= sizeof(fz_dir))
			continue;
		if (mkdtemp(fz_dir)) {
			snprintf(path, size, "%s/%s", fz_dir, name);
			fz_tmp_unlink = unlink_files;
			atexit(fz_tmp_cleanup);
			return 0;
		}
	}
	fz_dir[0] = '\0';
	return -1;
}

/* Write @data as a fresh file @path of mode @mode.  Unlink first rather
 * than truncate: a file that is still mapped must never shrink under its
 * mapping (SIGBUS), and a new inode guarantees that nothing of the previous
 * input remains.  0, or -1 when the file cannot be written. */
static inline int fz_write(const char *path, mode_t mode, const uint8_t *data,
			   size_t size)
{
	int fd;

	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		return -1;
	while (size) {
		ssize_t n = write(fd, data, size);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			return -1;
		}
		data += n;
		size -= (size_t)n;
	}
	close(fd);
	return 0;
}

#endif /* FUZZ_TMP_H */
