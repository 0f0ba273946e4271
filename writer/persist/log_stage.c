/* SPDX-License-Identifier: MIT */
/*
 * log_stage.c - the stage: where an embedded batch-mode writer puts its
 * log records, in shared memory beside the segment, until the sync thread
 * copies them into the log file.
 *
 * Why.  Written straight into a shared mapping of the log file (as in
 * `none` and `sync`), every fresh page of the log costs the writer a page
 * fault into the file system (ext4's page_mkwrite, which in batch mode
 * contends with the journal commit each fdatasync starts), and each
 * fdatasync's writeback write-protects the pages it cleans.  The stage is
 * a ring in a file of the segment's tmpfs (NAME.stage): its pages are
 * faulted once and then reused, never written back, never write-protected.
 * It survives a crash of the process as the segment does, so a change is
 * as safe against a process crash once its records are in the stage as
 * once they are in the log's page cache; a machine crash loses the stage,
 * which holds only records not yet synced (the `batch` window).
 *
 * Layout (docs/format.md, "Stage file"): a 4 KiB header, then the ring of
 * `cap` bytes (a power of two).  The byte at log offset X is at ring
 * offset X % cap; the ring is mapped twice in a row, so the records of
 * [X, X + cap) are contiguous in memory.  Header fields:
 *
 *    0  4  magic PSTAGE_MAGIC        32  8  seq of the log staged for
 *    4  4  version PSTAGE_VERSION    40  8  that log's inode
 *    8  8  cap                       48  8  XXH3-64 of bytes 0..48
 *   16  8  data directory's st_dev   64  8  copied: the log file holds
 *   24  8  data directory's inode               everything before it
 *                                    128 8  staged: the writer's records
 *                                               end there (acknowledged)
 *
 * The ring holds the log's bytes [copied, staged) whenever copied <
 * staged; copied >= staged means it holds nothing the log lacks.
 *
 * Ordering.  The writer stores a commit's records into the ring, then
 * stores `staged` with release; the sync thread loads `staged` with
 * acquire, pwrite()s [copied, staged) to the log, and stores `copied` with
 * release; the writer loads `copied` with acquire before it reuses ring
 * bytes below copied + cap, so the thread's reads (inside pwrite) of the
 * old bytes come before the writer's new stores.  `copied` is stored by
 * one side at a time: the sync thread under its mutex, or the writer with
 * the thread held off (plog_syncer_pause) or stopped.  A killed process's
 * stores are all in the tmpfs page cache, in order (the release store of
 * `staged` comes after the records'), so after a crash the ring holds
 * complete records up to `staged`.
 *
 * Recovery (pstage_recover, before the directory is replayed): the records
 * of [copied, staged) are checked (every one must decode, up to staged
 * exactly) and written into the named log at their offsets, the log is
 * synced and the stage removed.  Writing them again is harmless: the log
 * either lacks them or holds the same bytes (a pwrite the crash cut short).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bytes.h"
#include "hash.h"
#include "persist.h"

uint64_t pstage_cap = PSTAGE_CAP;

#define OFF_CHECK   48u
#define OFF_COPIED  64u  /* own cache line: the sync thread's */
#define OFF_STAGED 128u  /* own cache line: the writer's */

static _Atomic uint64_t *at(uint8_t *hdr, size_t off)
{
	return (_Atomic uint64_t *)(void *)(hdr + off);
}

/* The identity part of the header for the current log, and its check;
 * only while the stage holds nothing the log lacks.  The magic is zeroed
 * first and stored last: a crash in between leaves a zero magic, which
 * recovery takes for a stage with nothing in it (the signal fences keep
 * the compiler from moving the stores across; a killed process's stores
 * all reach the page cache, in this order). */
static void write_ident(struct pstage *s, uint64_t seq, uint64_t log_ino)
{
	uint32_t magic = PSTAGE_MAGIC, version = PSTAGE_VERSION, zero = 0;
	uint64_t check;

	memcpy(s->hdr, &zero, 4);
	atomic_signal_fence(memory_order_seq_cst);
	memcpy(s->hdr + 4, &version, 4);
	memcpy(s->hdr + 8, &s->cap, 8);
	memcpy(s->hdr + 16, &s->dir_dev, 8);
	memcpy(s->hdr + 24, &s->dir_ino, 8);
	memcpy(s->hdr + 32, &seq, 8);
	memcpy(s->hdr + 40, &log_ino, 8);
	memcpy(s->hdr, &magic, 4); /* for the check; zero again below */
	check = XXH3_64bits(s->hdr, OFF_CHECK);
	memcpy(s->hdr, &zero, 4);
	memcpy(s->hdr + OFF_CHECK, &check, 8);
	atomic_signal_fence(memory_order_seq_cst);
	memcpy(s->hdr, &magic, 4);
	atomic_signal_fence(memory_order_seq_cst);
}

static uint64_t ino_of(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 ? (uint64_t)st.st_ino : 0;
}

int pstage_open(struct persist *p, const char *path)
{
	struct pstage *s = calloc(1, sizeof(*s));
	struct stat st;
	uint8_t *va;
	int rc;

	if (!s)
		return -ENOMEM;
	s->cap = pstage_cap;
	if (snprintf(s->path, sizeof(s->path), "%s.stage", path) >=
	    (int)sizeof(s->path)) {
		free(s);
		return -ENAMETOOLONG;
	}
	if (fstat(p->dfd, &st) < 0) {
		free(s);
		return -errno;
	}
	s->dir_dev = (uint64_t)st.st_dev;
	s->dir_ino = (uint64_t)st.st_ino;
	s->fd = open(s->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC |
				      O_NOFOLLOW, 0600);
	if (s->fd < 0) {
		rc = -errno;
		free(s);
		return rc;
	}
	/* tmpfs: allocate it all now, so a store never faults for space
	 * (SIGBUS) */
	rc = -posix_fallocate(s->fd, 0, (off_t)(PSTAGE_HDR + s->cap));
	if (rc < 0)
		goto fail;
	rc = -ENOMEM;
	s->hdr = mmap(NULL, PSTAGE_HDR, PROT_READ | PROT_WRITE, MAP_SHARED,
		      s->fd, 0);
	if (s->hdr == MAP_FAILED)
		goto fail;
	va = mmap(NULL, 2 * s->cap, PROT_NONE,
		  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (va == MAP_FAILED)
		goto fail_hdr;
	for (int i = 0; i < 2; i++)
		if (mmap(va + i * s->cap, s->cap, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_FIXED, s->fd, PSTAGE_HDR) ==
		    MAP_FAILED) {
			munmap(va, 2 * s->cap);
			goto fail_hdr;
		}
	s->ring = va;
	/* not in forked children (persist_after_fork) */
	(void)madvise(s->ring, 2 * s->cap, MADV_DONTFORK);
	(void)madvise(s->hdr, PSTAGE_HDR, MADV_DONTFORK);
	/* the pages are faulted once, here, not in the put path (the second
	 * mapping only for records across the ring's end) */
	(void)madvise(s->ring, s->cap, MADV_POPULATE_WRITE);
	p->stage = s;
	pstage_reset(p); /* empty, for the current log */
	return 0;
fail_hdr:
	munmap(s->hdr, PSTAGE_HDR);
fail:
	close(s->fd);
	unlink(s->path);
	free(s);
	return rc;
}

uint8_t *pstage_room_slow(struct persist *p, uint64_t off, size_t n)
{
	struct pstage *s = p->stage;

	/* pairs with the release store of `copied` after the thread's
	 * pwrite read the bytes this commit is about to overwrite */
	s->lim = atomic_load_explicit(at(s->hdr, OFF_COPIED),
				      memory_order_acquire) + s->cap;
	return off + n <= s->lim ? s->ring + (off & (s->cap - 1)) : NULL;
}

void pstage_publish(struct persist *p)
{
	/* the records before it, for the sync thread's acquire load and
	 * for a recovery after a crash of this process */
	atomic_store_explicit(at(p->stage->hdr, OFF_STAGED), p->end,
			      memory_order_release);
}

int pstage_copy(struct pstage *s, int fd)
{
	uint64_t c = atomic_load_explicit(at(s->hdr, OFF_COPIED),
					  memory_order_relaxed);
	/* pairs with pstage_publish: the records up to it are stored */
	uint64_t e = atomic_load_explicit(at(s->hdr, OFF_STAGED),
					  memory_order_acquire);
	int rc;

	if (c >= e)
		return 0;
	rc = plog_pwrite(fd, s->ring + (c & (s->cap - 1)), e - c, c);
	if (rc < 0)
		return rc;
	/* pairs with the writer's acquire load in pstage_room_slow */
	atomic_store_explicit(at(s->hdr, OFF_COPIED), e, memory_order_release);
	return 0;
}

int pstage_write(struct persist *p)
{
	struct pstage *s = p->stage;
	uint64_t e = p->end + p->len;
	int rc = pstage_copy(s, p->log_fd);

	if (rc == 0 && p->len)
		rc = plog_pwrite(p->log_fd, p->buf, p->len, p->end);
	if (rc < 0)
		return rc;
	/* copied first: a crash between the two leaves copied > staged,
	 * "nothing to recover", never a range of ring bytes that are not
	 * these records */
	atomic_store_explicit(at(s->hdr, OFF_COPIED), e, memory_order_release);
	atomic_store_explicit(at(s->hdr, OFF_STAGED), e, memory_order_release);
	s->lim = e + s->cap;
	return 0;
}

void pstage_reset(struct persist *p)
{
	struct pstage *s = p->stage;

	/* at open, or after a rotation: drained (copied == staged) and the
	 * old log synced; each step leaves copied >= staged, so a crash in
	 * between recovers nothing */
	uint64_t c = atomic_load_explicit(at(s->hdr, OFF_COPIED),
					  memory_order_relaxed);

	write_ident(s, p->seq, ino_of(p->log_fd));
	/* the larger first, so that copied >= staged throughout (at open
	 * both start at 0, after a rotation at the old log's end) */
	if (p->end >= c) {
		atomic_store_explicit(at(s->hdr, OFF_COPIED), p->end,
				      memory_order_release);
		atomic_store_explicit(at(s->hdr, OFF_STAGED), p->end,
				      memory_order_release);
	} else {
		atomic_store_explicit(at(s->hdr, OFF_STAGED), p->end,
				      memory_order_release);
		atomic_store_explicit(at(s->hdr, OFF_COPIED), p->end,
				      memory_order_release);
	}
	s->lim = p->end + s->cap;
}

void pstage_close(struct persist *p)
{
	struct pstage *s = p->stage;

	if (!s)
		return;
	/* only when the log holds everything: else the next open recovers
	 * the rest from it (a failed final write or sync) */
	if (atomic_load_explicit(at(s->hdr, OFF_COPIED), memory_order_relaxed) >=
	    atomic_load_explicit(at(s->hdr, OFF_STAGED), memory_order_relaxed))
		unlink(s->path);
	munmap(s->ring, 2 * s->cap);
	munmap(s->hdr, PSTAGE_HDR);
	close(s->fd);
	free(s);
	p->stage = NULL;
}

void pstage_forget(struct persist *p)
{
	/* a forked child: the mappings are not here (MADV_DONTFORK), the
	 * file is the parent's; the memory goes at persist_close (this is
	 * called where only async-signal-safe calls may be made) */
	if (p->stage) {
		close(p->stage->fd);
		p->stage->fd = -1;
	}
}

int pstage_parse(const uint8_t *f, size_t size, struct pstage_info *in,
		 uint8_t **records)
{
	uint64_t check, n, o = 0;
	uint32_t magic, version;
	uint8_t *lin;

	*records = NULL;
	memset(in, 0, sizeof(*in));
	if (size < PSTAGE_HDR)
		return -EBADMSG;
	magic = rd32(f);
	version = rd32(f + 4);
	in->cap = rd64(f + 8);
	in->dir_dev = rd64(f + 16);
	in->dir_ino = rd64(f + 24);
	in->seq = rd64(f + 32);
	in->log_ino = rd64(f + 40);
	check = rd64(f + OFF_CHECK);
	in->from = rd64(f + OFF_COPIED);
	in->to = rd64(f + OFF_STAGED);
	if (magic != PSTAGE_MAGIC || version != PSTAGE_VERSION ||
	    check != XXH3_64bits(f, OFF_CHECK))
		return -EBADMSG;
	if (in->cap < 4096 || (in->cap & (in->cap - 1)) ||
	    in->cap != size - PSTAGE_HDR)
		return -EBADMSG;
	if (in->from >= in->to)
		return 0; /* nothing the log lacks */
	if (in->from < PLOG_HDR || in->to - in->from > in->cap ||
	    in->to > (UINT64_C(1) << 62))
		return -EBADMSG;
	n = in->to - in->from;
	lin = malloc(n);
	if (!lin)
		return -ENOMEM;
	/* unwrapped: the ring's bytes of [from, to) in log order */
	for (uint64_t i = 0; i < n;) {
		uint64_t r = (in->from + i) & (in->cap - 1);
		uint64_t k = in->cap - r < n - i ? in->cap - r : n - i;

		memcpy(lin + i, f + PSTAGE_HDR + r, k);
		i += k;
	}
	while (o < n) {
		struct prec r;
		long len = prec_decode(lin + o, n - o, &r);

		if (len <= 0)
			break;
		o += (uint64_t)len;
	}
	in->good = o;
	*records = lin;
	return 0;
}

static int set_aside(const char *path)
{
	char aside[sizeof(((struct pstage *)0)->path) + 16];

	snprintf(aside, sizeof(aside), "%s.damaged", path);
	return rename(path, aside) < 0 ? -errno : 0;
}

/* Write the checked records into log.@seq (of inode @ino) at @off. */
static int merge(struct persist *p, const char *path,
		 const struct pstage_info *in, const uint8_t *rec, uint64_t n)
{
	char name[64];
	int fd, rc;

	snprintf(name, sizeof(name), PLOG_NAME, (unsigned long long)in->seq);
	fd = openat(p->dfd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || ino_of(fd) != in->log_ino) {
		fprintf(stderr, "shmreg: %s: holds %llu bytes of records for "
			"%s/%s, which is %s\n", path,
			(unsigned long long)(in->to - in->from), p->dir, name,
			fd < 0 ? "missing" : "another file");
		if (fd >= 0)
			close(fd);
		return -EBADMSG;
	}
	rc = n ? plog_pwrite(fd, rec, n, in->from) : 0;
	if (rc == 0 && fdatasync(fd) < 0)
		rc = -errno;
	close(fd);
	if (rc == 0 && n)
		fprintf(stderr, "shmreg: %s: wrote %llu bytes of staged records "
			"to %s/%s at offset %llu\n", path,
			(unsigned long long)n, p->dir, name,
			(unsigned long long)in->from);
	return rc;
}

int pstage_recover(struct persist *p, const char *seg_path, bool keep_prefix,
		   bool discard)
{
	char path[sizeof(((struct pstage *)0)->path)];
	struct pstage_info in;
	uint8_t *rec = NULL;
	struct stat st, dst;
	void *m = MAP_FAILED;
	int fd, rc;

	if (snprintf(path, sizeof(path), "%s.stage", seg_path) >=
	    (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (discard) { /* SHMREG_WRITER_TRUNCATE: the history goes */
		close(fd);
		return unlink(path) < 0 ? -errno : 0;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    fstat(p->dfd, &dst) < 0) {
		close(fd);
		return -EBADMSG;
	}
	if (st.st_size >= (off_t)PSTAGE_HDR)
		m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd,
			 0);
	close(fd);
	if (m == MAP_FAILED) {
		/* shorter than a header: a writer that died creating it */
		if (st.st_size >= (off_t)PSTAGE_HDR)
			return -errno;
		return unlink(path) < 0 ? -errno : 0;
	}
	rc = pstage_parse(m, (size_t)st.st_size, &in, &rec);
	if (rc == -EBADMSG && rd32(m) == 0) {
		/* a writer that died creating it or pointing it at a new
		 * log (write_ident): nothing staged then */
		rc = 0;
		in.from = in.to = 0;
	}
	munmap(m, (size_t)st.st_size);
	if (rc == -EBADMSG) {
		fprintf(stderr, "shmreg: %s: not a valid stage file (header)%s\n",
			path, keep_prefix ? ", set aside" : "");
		return keep_prefix ? set_aside(path) : -EBADMSG;
	}
	if (rc < 0)
		return rc;
	if (in.from < in.to && (in.dir_dev != (uint64_t)dst.st_dev ||
				in.dir_ino != (uint64_t)dst.st_ino)) {
		fprintf(stderr, "shmreg: %s: holds records of another data "
			"directory than %s (remove it to drop them)\n", path,
			p->dir);
		free(rec);
		return -EEXIST;
	}
	if (in.from < in.to && in.good < in.to - in.from) {
		fprintf(stderr, "shmreg: %s: corrupt record at log offset %llu "
			"(log.%016llx)%s\n", path,
			(unsigned long long)(in.from + in.good),
			(unsigned long long)in.seq,
			keep_prefix ? ": the records before it are kept, the "
				      "file set aside" : "");
		if (!keep_prefix) {
			free(rec);
			return -EBADMSG;
		}
	}
	rc = in.from < in.to ? merge(p, path, &in, rec, in.good) : 0;
	free(rec);
	if (rc < 0)
		return rc;
	if (in.from < in.to && in.good < in.to - in.from)
		return set_aside(path);
	return unlink(path) < 0 ? -errno : 0;
}
