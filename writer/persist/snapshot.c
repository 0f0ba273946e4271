/* SPDX-License-Identifier: MIT */
/*
 * snapshot.c - compaction: a new snapshot from the files, written while
 * the writer goes on, then the files it makes redundant are dropped.
 *
 * How it works.  The writer rotates its log (psnap_start): it writes and
 * fdatasyncs what is pending in log.S-1, creates log.S and appends there
 * from then on.  That is the whole pause: O(1), a write, an fdatasync and
 * a file creation, whatever the registry's size.  A thread then computes
 * the state as of the start of log.S from files nobody writes any more:
 * the newest valid snapshot snap.B and the logs log.B .. log.S-1, replayed
 * (replay.c) into an in-memory map (kvmap.c), and writes it to snap.S.tmp,
 * fdatasync, rename to snap.S, fsync the directory.  Only then are the
 * snapshots before snap.B and the logs before log.B removed: the previous
 * snapshot and its logs stay, so that recovery can fall back to snap.B if
 * snap.S turns out corrupt.  A crash at any point leaves either the old
 * set of files or the new one (plus a .tmp, ignored and overwritten).
 *
 * Sharing.  The thread touches only its job (allocated by the writer
 * before the thread starts, read by the writer after pthread_join, which
 * orders the thread's stores before the writer's loads) and the files
 * above; the flag `done` is only a hint that pthread_join will not block:
 * the release store at the thread's end pairs with the acquire load in
 * psnap_reap().
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "persist.h"

/* A log smaller than this is never compacted on its own (only when asked). */
#define SNAP_MIN_LOG (UINT64_C(4) << 20)

struct psnap_job {
	pthread_t thread;
	int dfd;
	char dir[4096];
	uint64_t seq;             /* the snapshot to write: snap.seq */
	uint32_t durability;
	atomic_bool done;
	int rc;                   /* results, read after pthread_join */
	uint64_t bytes, count;
};

/* Remove snap.X and log.X for X < @keep. */
static void drop_before(int dfd, uint64_t keep)
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
	while ((e = readdir(d))) {
		uint64_t seq;

		if ((pname_parse(e->d_name, "log.", &seq) ||
		     pname_parse(e->d_name, "snap.", &seq)) && seq < keep)
			unlinkat(dfd, e->d_name, 0);
	}
	closedir(d);
}

static int write_snapshot(struct psnap_job *j)
{
	struct preplay_res res;
	struct kvmap *m = kvmap_new(0);
	char tmp[64], name[64];
	struct stat st;
	int64_t n;
	int fd, rc;

	if (!m)
		return -ENOMEM;
	struct psink sink = kvmap_sink(m);

	rc = pdir_replay(j->dfd, j->dir, j->seq, 0, &sink, &res);
	if (rc < 0)
		goto out;
	snprintf(tmp, sizeof(tmp), PSNAP_NAME ".tmp", (unsigned long long)j->seq);
	snprintf(name, sizeof(name), PSNAP_NAME, (unsigned long long)j->seq);
	fd = openat(j->dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
				  O_NOFOLLOW, 0600);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	n = kvmap_write(m, fd, j->seq, res.max_rev);
	rc = n < 0 ? (int)n : 0;
	if (rc == 0 && j->durability != SHMREG_DURABILITY_NONE &&
	    fdatasync(fd) < 0)
		rc = -errno;
	if (rc == 0 && fstat(fd, &st) == 0)
		j->bytes = (uint64_t)st.st_size;
	close(fd);
	if (rc == 0 && renameat(j->dfd, tmp, j->dfd, name) < 0)
		rc = -errno;
	if (rc < 0) {
		unlinkat(j->dfd, tmp, 0);
		goto out;
	}
	if (j->durability != SHMREG_DURABILITY_NONE)
		(void)fsync(j->dfd);
	j->count = (uint64_t)n;
	/* keep the previous snapshot (res.base_seq) and its logs */
	if (res.base_seq)
		drop_before(j->dfd, res.base_seq);
out:
	kvmap_free(m);
	return rc;
}

static void *job_main(void *arg)
{
	struct psnap_job *j = arg;

	j->rc = write_snapshot(j);
	/* pairs with the acquire load in psnap_reap() */
	atomic_store_explicit(&j->done, true, memory_order_release);
	return NULL;
}

void psnap_forget(struct persist *p)
{
	close(p->job->dfd);
	p->job = NULL;
}

void psnap_reap(struct shmreg_writer *w, bool wait)
{
	struct persist *p = w->plog;
	struct psnap_job *j = p->job;

	/* pairs with the release store at the end of job_main() */
	if (!j || (!wait && !atomic_load_explicit(&j->done,
						  memory_order_acquire)))
		return;
	pthread_join(j->thread, NULL);
	if (j->rc == 0) {
		p->base_seq = j->seq;
		p->snap_bytes = j->bytes;
		p->snapshots++;
	} else {
		fprintf(stderr, "shmreg: %s: snapshot " PSNAP_NAME
			" failed: %s (the logs are kept)\n", p->dir,
			(unsigned long long)j->seq, strerror(-j->rc));
	}
	close(j->dfd);
	free(j);
	p->job = NULL;
}

int psnap_start(struct shmreg_writer *w, bool force)
{
	struct persist *p = w->plog;
	struct psnap_job *j;
	int rc;

	psnap_reap(w, false);
	if (p->job)
		return force ? -EALREADY : 0;
	if (!force && (p->log_bytes < SNAP_MIN_LOG ||
		       p->log_bytes < 2 * p->snap_bytes))
		return 0;
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->dfd = fcntl(p->dfd, F_DUPFD_CLOEXEC, 0);
	if (j->dfd < 0) {
		free(j);
		return -errno;
	}
	rc = plog_rotate(p);
	if (rc < 0)
		goto fail;
	memcpy(j->dir, p->dir, sizeof(j->dir));
	j->seq = p->seq;
	j->durability = p->durability;
	atomic_init(&j->done, false);
	rc = -pthread_create(&j->thread, NULL, job_main, j);
	if (rc < 0)
		goto fail;
	p->job = j;
	return 0;
fail:
	close(j->dfd);
	free(j);
	return rc;
}
