/* SPDX-License-Identifier: MIT */
/*
 * persist.c - open and close a registry's data directory: the lock, the
 * recovery, the torn tail, the first log of this writer.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "internal.h"
#include "persist.h"

#define DEFAULT_BATCH_MS 10u

/* One writer per directory, in any process, this one included: an OFD
 * lock belongs to its open file description, not to the process. */
static int lock_dir(struct persist *p)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

	p->lock_fd = openat(p->dfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC |
					     O_NOFOLLOW, 0600);
	if (p->lock_fd < 0)
		return -errno;
	if (fcntl(p->lock_fd, F_OFD_SETLK, &fl) < 0)
		return errno == EAGAIN || errno == EACCES ? -EBUSY : -errno;
	return 0;
}

/* SHMREG_WRITER_TRUNCATE: the history goes with the contents. */
static void remove_history(int dfd)
{
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *e;
	DIR *d;

	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, "log.", 4) ||
		    !strncmp(e->d_name, "snap.", 5))
			unlinkat(dfd, e->d_name, 0);
	closedir(d);
}

/* Rename every log after log.@seq to NAME.damaged. */
static int set_aside_after(int dfd, uint64_t seq)
{
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;
	struct dirent *e;
	DIR *d;

	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while (rc == 0 && (e = readdir(d))) {
		char aside[300];
		uint64_t s;

		if (!pname_parse(e->d_name, "log.", &s) || s <= seq)
			continue;
		snprintf(aside, sizeof(aside), "%s.damaged", e->d_name);
		if (renameat(dfd, e->d_name, dfd, aside) < 0)
			rc = -errno;
	}
	closedir(d);
	return rc;
}

/* Cut log.@seq (open as @fd) at @off and sync it; a cut inside its
 * header (a damaged one) leaves an empty log with a good header, which
 * the next recovery reads as such. */
static int cut_log(int fd, uint64_t seq, uint64_t off)
{
	if (off < PLOG_HDR) {
		uint8_t hdr[PLOG_HDR];

		plog_header(hdr, seq);
		if (pwrite(fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr))
			return -EIO;
		off = PLOG_HDR;
	}
	if (ftruncate(fd, (off_t)off) < 0 || fsync(fd) < 0)
		return -errno;
	return 0;
}

/* Copy log.@seq aside as log.@seq.damaged (for the operator), then cut
 * it at @off; later logs are renamed aside too. */
static int cut_history(struct persist *p, uint64_t seq, uint64_t off)
{
	char name[64], aside[80];
	int in, out, rc = 0;

	snprintf(name, sizeof(name), PLOG_NAME, (unsigned long long)seq);
	snprintf(aside, sizeof(aside), "%s.damaged", name);
	in = openat(p->dfd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	out = openat(p->dfd, aside, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
				    O_NOFOLLOW, 0600);
	if (in < 0 || out < 0) {
		rc = -errno;
		goto out;
	}
	for (;;) {
		ssize_t n = copy_file_range(in, NULL, out, NULL, 1 << 30, 0);

		if (n < 0) {
			rc = -errno;
			goto out;
		}
		if (n == 0)
			break;
	}
	if (fsync(out) < 0)
		rc = -errno;
	if (rc == 0)
		rc = cut_log(in, seq, off);
	if (rc == 0)
		rc = set_aside_after(p->dfd, seq);
out:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return rc;
}

/* Drop the torn tail of the last log, so that it ends where its last
 * valid record does (a header cut short is written again). */
static int cut_torn(struct persist *p, uint64_t seq, uint64_t off,
		    uint64_t bytes)
{
	char name[64];
	int fd, rc = 0;

	snprintf(name, sizeof(name), PLOG_NAME, (unsigned long long)seq);
	fprintf(stderr, "shmreg: %s/%s: dropped a torn tail of %llu bytes at "
		"offset %llu\n", p->dir, name, (unsigned long long)bytes,
		(unsigned long long)off);
	fd = openat(p->dfd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	rc = cut_log(fd, seq, off);
	close(fd);
	return rc;
}

static int open_dir(struct persist *p, const char *dir)
{
	if (snprintf(p->dir, sizeof(p->dir), "%s", dir) >= (int)sizeof(p->dir))
		return -ENAMETOOLONG;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	p->dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	return p->dfd < 0 ? -errno : 0;
}

static void persist_free(struct persist *p)
{
	pstage_close(p); /* kept when the log lacks some of it */
	if (p->log_fd >= 0)
		plog_close(p);
	if (p->lock_fd >= 0)
		close(p->lock_fd);
	if (p->dfd >= 0)
		close(p->dfd);
	free(p->buf);
	free(p->fbuf);
	free(p);
}

/* The history is sound again: the next log, opened with a MARK of the
 * revision the registry starts at. */
static int start_log(struct shmreg_writer *w, struct persist *p,
		     const struct preplay_res *res)
{
	uint64_t next = res->last_seq ? res->last_seq + 1
				      : res->base_seq ? res->base_seq : 1;
	struct prec mark = { .op = PREC_MARK, .rev = w->revision };
	int rc;

	if (res->cut_seq)
		next = res->cut_seq + 1;
	rc = plog_create(p, next);
	if (rc < 0)
		return rc;
	if (!mark.rev)
		return 0; /* an empty registry: nothing to mark */
	w->plog = p;
	w->plog_committed = persist_committed;
	rc = persist_admit(w, PREC_HDR);
	w->plog = NULL;
	if (rc < 0)
		return rc;
	p->len += prec_encode(p->buf + p->len, &mark);
	return plog_flush(p, p->durability != SHMREG_DURABILITY_NONE);
}

int persist_open(struct shmreg_writer *w)
{
	struct persist *p = calloc(1, sizeof(*p));
	struct preplay_res res;
	int rc;

	if (!p)
		return -ENOMEM;
	p->dfd = p->lock_fd = p->log_fd = -1;
	p->durability = w->opts.durability;
	p->batch_ns = (int64_t)(w->opts.batch_ms ? w->opts.batch_ms
						 : DEFAULT_BATCH_MS) * 1000000;
	p->group = w->opts.flags & SHMREG_WRITER_GROUP;
	/* SHMREG_WRITER_GROUP: the host schedules the syncs itself */
	p->use_stage = p->durability == SHMREG_DURABILITY_BATCH && !p->group;
	rc = open_dir(p, w->opts.data_dir);
	if (rc == 0)
		rc = lock_dir(p);
	/* what a crashed batch-mode writer had staged goes into its log
	 * first, whatever this writer's mode */
	if (rc == 0)
		rc = pstage_recover(p, w->path,
				    w->opts.flags & SHMREG_WRITER_KEEP_PREFIX,
				    w->opts.flags & SHMREG_WRITER_TRUNCATE);
	if (rc < 0)
		goto fail;
	if (w->opts.flags & SHMREG_WRITER_TRUNCATE)
		remove_history(p->dfd);
	rc = precover(w, p->dfd, &res);
	if (rc == 0 && res.cut_seq)
		rc = cut_history(p, res.cut_seq, res.cut_off);
	else if (rc == 0 && res.torn)
		rc = cut_torn(p, res.last_seq, res.torn_off, res.torn_bytes);
	if (rc == 0)
		rc = start_log(w, p, &res);
	if (rc < 0)
		goto fail;
	p->base_seq = res.base_seq;
	p->snap_bytes = res.snap_bytes;
	p->log_bytes = res.log_bytes;
	p->sync_due_ns = shm_monotonic_coarse_ns() + p->batch_ns;
	if (p->use_stage) {
		rc = pstage_open(p, w->path);
		if (rc == 0)
			rc = plog_syncer_start(p);
		if (rc < 0)
			goto fail;
	}
	w->plog = p;
	w->plog_committed = persist_committed;
	return 0;
fail:
	persist_free(p);
	return rc;
}

void persist_after_fork(struct shmreg_writer *w)
{
	struct persist *p = w->plog;

	if (!p)
		return;
	close(p->lock_fd);
	close(p->log_fd);
	close(p->dfd);
	pstage_forget(p);
	if (p->job)
		psnap_forget(p);
	p->lock_fd = p->log_fd = p->dfd = -1;
	/* the log's mapping is MADV_DONTFORK: not in this process; nor is
	 * the sync thread (its memory goes at persist_close) */
	p->map = NULL;
	p->err = -EIO;
}

void persist_close(struct shmreg_writer *w)
{
	struct persist *p = w->plog;

	if (!p)
		return;
	if (p->log_fd < 0) {
		/* a forked child's copy (persist_after_fork) */
		plog_syncer_forget(p);
		free(p->stage);
		free(p->buf);
		free(p->fbuf);
		free(p);
		w->plog = NULL;
		return;
	}
	psnap_reap(w, true);
	(void)plog_group_abandon(p);
	/* the thread's last sync may be older than batch_ms: the final one
	 * is this thread's, after the join */
	plog_syncer_stop(p);
	(void)plog_flush(p, p->durability != SHMREG_DURABILITY_NONE);
	persist_free(p);
	w->plog = NULL;
}
