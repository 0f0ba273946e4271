/* SPDX-License-Identifier: MIT */
/*
 * log_write.c - appending committed changes to the log.
 *
 * How it works.  Each commit's records are encoded into p->buf inside the
 * commit (persist_log_put/del, called where the change-ring record is
 * written, so every change with a revision has exactly one record), and
 * written with one write() when the outermost commit ends: a process
 * crash after a change was acknowledged never loses it, since the bytes
 * are in the kernel's page cache.  fdatasync follows at once (sync), at
 * most batch_ms later by the sync thread (batch: log_sync.c), or never
 * (none).  A host that runs an
 * event loop (shmregd) sets SHMREG_WRITER_GROUP and writes the log itself,
 * asynchronously (log_group.c): every change of a loop turn then shares
 * one write and one fdatasync (group commit); such a log is not mapped.
 *
 * The write is a copy.  The log's space is allocated ahead, a MiB at a
 * time (fallocate, which extends the file with zeros), and mapped shared
 * into one range of address space (PLOG_VA, so records never straddle two
 * mappings); "writing" the commit's records is encoding them straight
 * into the page cache (append; a commit that outgrows the reservation
 * continues in a buffer, copied at its end), as durable against a crash
 * of the process as a write() and about a tenth of its cost.  The file
 * therefore ends in zeros until it is closed (cut to its end) or rotated;
 * replay.c takes an all-zero tail as the end of the log.  A file system
 * without fallocate gets pwrite().  In batch mode the embedded writer's
 * records go to the stage instead (log_stage.c: a ring in tmpfs that the
 * sync thread copies into the log), and the log is not mapped; its space
 * is still reserved ahead, for the sync thread's pwrite.
 *
 * Disk full.  A change must not be published when its record cannot be
 * stored, but a record is written after its commit.  So space is reserved
 * before the commit: persist_admit() keeps the allocation ahead of what
 * the pending records need, and refuses the change with -ENOSPC when the
 * file system has no room; a copy into allocated blocks cannot fail for
 * space (so the mapping never faults with SIGBUS for it).  Nothing is latched: the next change tries the
 * reservation again, so service resumes when space returns.  An I/O error
 * of write or fdatasync is latched instead (-EIO): after a failed
 * fdatasync the page cache may have dropped the dirty pages, so nothing
 * written since the last good one is known to be on disk; the writer then
 * refuses changes until it is reopened, and recovery decides from what the
 * files hold.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "clock.h"
#include "hash.h"
#include "internal.h"
#include "persist.h"

#define RESERVE_CHUNK (UINT64_C(1) << 20)
/* bytes a delete of a subtree or of an owner's entries may log before
 * the next admission check: a tree delete past it still works, but its
 * tail is not covered by the reservation */
#define RESERVE_SLACK (UINT64_C(64) << 10)
/* log bytes between two checks whether a snapshot is due (its trigger is
 * megabytes: see snapshot.c) */
#define SNAP_CHECK (UINT64_C(16) << 10)

void plog_header(uint8_t out[PLOG_HDR], uint64_t seq)
{
	uint32_t magic = PLOG_MAGIC, version = PLOG_VERSION;
	uint64_t check;

	memset(out, 0, PLOG_HDR);
	memcpy(out, &magic, 4);
	memcpy(out + 4, &version, 4);
	memcpy(out + 8, &seq, 8);
	check = XXH3_64bits(out, 24);
	memcpy(out + 24, &check, 8);
}

int plog_pwrite(int fd, const uint8_t *p, size_t n, uint64_t off)
{
	while (n) {
		ssize_t r = pwrite(fd, p, n, (off_t)off);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EIO;
		p += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

/*
 * Copy the pending records into the mapped log, one record at a time, in
 * order.  A crash of the process can stop the copy anywhere, and the page
 * cache then holds exactly the stores made so far; memcpy orders its own
 * stores as it likes (for a large copy glibc stores the first bytes last),
 * so one memcpy of many records could leave a later record whole and an
 * earlier one not: corruption followed by a valid record, which recovery
 * must refuse.  Copied record by record, at most the last record is
 * partial, with only zeros after it: a torn tail.  The signal fences keep
 * the compiler from moving one record's stores past the next one's (the
 * observer is this thread's own interruption, as with a signal handler).
 */
static void copy_records(uint8_t *dst, const uint8_t *src, size_t len)
{
	size_t o = 0;

	while (o < len) {
		uint32_t rl;
		size_t n;

		memcpy(&rl, src + o + 4, 4);
		n = ((size_t)rl + 7) & ~(size_t)7;
		memcpy(dst + o, src + o, n);
		atomic_signal_fence(memory_order_seq_cst);
		o += n;
	}
}

/* pstage_write with the sync thread held off (a rotation holds it
 * already; at close it is gone). */
static int stage_write(struct persist *p)
{
	bool take = p->syncer && !p->held;
	int rc;

	if (take)
		plog_syncer_pause(p);
	rc = pstage_write(p);
	if (take)
		plog_syncer_resume(p);
	return rc;
}

int plog_flush(struct persist *p, bool sync)
{
	int rc;

	if (p->err)
		return p->err;
	if (p->inflight)
		return -EBUSY;
	if (p->direct) {
		/* already in the mapping or the stage (append) */
		p->end += p->direct;
		p->log_bytes += p->direct;
		p->pos_written += p->direct;
		p->direct = 0;
		p->unsynced = true;
		if (p->stage)
			pstage_publish(p);
		if (!p->len)
			p->writes++;
	}
	if (p->len) {
		if (p->stage) {
			/* the stage had no room: the ring's records and then
			 * these go to the log file, by this thread */
			rc = stage_write(p);
		} else if (p->map && p->end + p->len <= p->reserved) {
			copy_records(p->map + p->end, p->buf, p->len);
			rc = 0;
		} else {
			rc = plog_pwrite(p->log_fd, p->buf, p->len, p->end);
		}
		p->writes++;
		if (rc < 0) {
			/* a short write left a torn record at the end: it is
			 * overwritten by the retry that never comes (latched) */
			p->err = rc == -ENOSPC ? -ENOSPC : -EIO;
			return p->err;
		}
		p->end += p->len;
		p->log_bytes += p->len;
		p->pos_written += p->len;
		p->len = 0;
		p->unsynced = true;
	}
	if (sync && p->unsynced) {
		if (p->stage && (rc = stage_write(p)) < 0) {
			p->err = -EIO;
			return p->err;
		}
		p->syncs++;
		if (fdatasync(p->log_fd) < 0) {
			p->err = -EIO;
			return p->err;
		}
		p->unsynced = false;
		p->pos_synced = p->pos_written;
	}
	return 0;
}

bool plog_sync_now(struct persist *p)
{
	int64_t now;

	if (p->durability == SHMREG_DURABILITY_SYNC)
		return true;
	if (p->durability != SHMREG_DURABILITY_BATCH)
		return false;
	/* called on every commit: the tick-resolution clock (a few ms, well
	 * inside batch_ms) costs a fraction of a full clock read */
	now = shm_monotonic_coarse_ns();
	if (now < p->sync_due_ns)
		return false;
	p->sync_due_ns = now + p->batch_ns;
	return true;
}

int plog_create(struct persist *p, uint64_t seq)
{
	uint8_t hdr[PLOG_HDR];
	char name[64];
	int fd, rc;

	snprintf(name, sizeof(name), PLOG_NAME, (unsigned long long)seq);
	fd = openat(p->dfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC |
				  O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	plog_header(hdr, seq);
	rc = plog_pwrite(fd, hdr, sizeof(hdr), 0);
	if (rc == 0 && p->durability != SHMREG_DURABILITY_NONE &&
	    (fdatasync(fd) < 0 || fsync(p->dfd) < 0))
		rc = -errno;
	if (rc < 0) {
		close(fd);
		unlinkat(p->dfd, name, 0);
		return rc;
	}
	p->log_fd = fd;
	p->seq = seq;
	p->end = PLOG_HDR;
	p->reserved = 0;
	p->unsynced = false;
	p->map = NULL;
	if (p->group)
		return 0; /* the host writes (log_group.c): pwrite or its own */
	if (p->use_stage)
		return 0; /* records go to the stage (log_stage.c) */
	p->map = mmap(NULL, PLOG_VA, PROT_NONE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p->map == MAP_FAILED)
		p->map = NULL; /* pwrite, then */
	else
		/* not in forked children: a pre-fork server's workers */
		(void)madvise(p->map, PLOG_VA, MADV_DONTFORK);
	return 0;
}

void plog_close(struct persist *p)
{
	if (p->map)
		munmap(p->map, PLOG_VA);
	p->map = NULL;
	/* the allocation past the end goes back */
	(void)ftruncate(p->log_fd, (off_t)p->end);
	close(p->log_fd);
	p->log_fd = -1;
}

static int rotate(struct persist *p)
{
	struct persist old = *p;
	int rc;

	rc = plog_flush(p, p->durability != SHMREG_DURABILITY_NONE);
	if (rc < 0)
		return rc;
	old.end = p->end;
	rc = plog_create(p, p->seq + 1);
	if (rc == 0 && p->stage)
		pstage_reset(p); /* drained by the flush above */
	if (rc < 0) {
		p->log_fd = old.log_fd;
		p->seq = old.seq;
		p->end = old.end;
		p->reserved = old.reserved;
		p->map = old.map;
		return rc;
	}
	plog_close(&old);
	p->log_bytes = 0;
	return 0;
}

int plog_rotate(struct persist *p)
{
	int rc;

	/* the sync thread neither syncs the old file while it is closed nor
	 * the new one before it is there; the old one is synced here, by
	 * this thread, before the new log takes records (as without the
	 * thread) */
	plog_syncer_pause(p);
	rc = rotate(p);
	plog_syncer_resume(p);
	return rc;
}

/* Allocate [reserved, reserved + len) and map it (page multiples). */
static int extend(struct persist *p, uint64_t len)
{
	if (fallocate(p->log_fd, 0, (off_t)p->reserved, (off_t)len) < 0)
		return -errno;
	if (p->map && mmap(p->map + p->reserved, len, PROT_READ | PROT_WRITE,
			   MAP_SHARED | MAP_FIXED, p->log_fd,
			   (off_t)p->reserved) == MAP_FAILED) {
		/* keep what is mapped; the rest goes through pwrite */
		munmap(p->map, PLOG_VA);
		p->map = NULL;
	}
	p->reserved += len;
	return 0;
}

/* Keep the log's allocated blocks ahead of what is pending plus @need. */
static int reserve(struct persist *p, uint64_t need)
{
	uint64_t want = p->end + p->direct + p->len + need, len;
	int rc;

	if (p->reserved >= want)
		return 0;
	if (p->map && want > PLOG_VA) {
		rc = plog_rotate(p); /* a log never outgrows its mapping */
		if (rc < 0)
			return rc;
		want = p->end + p->direct + p->len + need;
	}
	len = (want - p->reserved + 4095) & ~UINT64_C(4095);
	if (len < RESERVE_CHUNK)
		len = RESERVE_CHUNK;
	for (;;) {
		rc = extend(p, len);
		if (rc == 0)
			return 0;
		if (rc == -EOPNOTSUPP) {
			/* cannot allocate ahead: pwrite, and a full disk
			 * fails the write (latched) */
			if (p->map)
				munmap(p->map, PLOG_VA);
			p->map = NULL;
			p->reserved = UINT64_MAX;
			return 0;
		}
		if ((rc != -ENOSPC && rc != -EDQUOT) ||
		    len <= ((want - p->reserved + 4095) & ~UINT64_C(4095)))
			return rc == -ENOSPC || rc == -EDQUOT ? -ENOSPC : -EIO;
		/* no room for a chunk: exactly what is needed */
		len = (want - p->reserved + 4095) & ~UINT64_C(4095);
	}
}

static int buf_room(struct persist *p, size_t n)
{
	size_t cap = p->cap ? p->cap : 64u << 10;
	uint8_t *b;

	if (p->len + n <= p->cap)
		return 0;
	while (cap < p->len + n)
		cap *= 2;
	b = realloc(p->buf, cap);
	if (!b)
		return -ENOMEM;
	p->buf = b;
	p->cap = cap;
	return 0;
}

size_t persist_put_need(size_t klen, size_t vlen, const shmreg_put_opts_t *o)
{
	size_t alen = o && o->nattrs ? SHM_ATTR_BYTES_MAX : 0;

	return prec_size(klen, o ? o->parent_len : 0, alen, vlen) +
	       RESERVE_SLACK;
}

int persist_admit(struct shmreg_writer *w, size_t need)
{
	struct persist *p = w->plog;
	int rc;

	if (!p->err)
		p->err = plog_syncer_error(p); /* the sync thread's */
	if (p->err)
		return p->err;
	if (p->reserved == UINT64_MAX)
		return buf_room(p, need);
	rc = reserve(p, need);
	return rc < 0 ? rc : buf_room(p, need);
}

static void append(struct persist *p, const struct prec *r)
{
	size_t n = prec_size(r->klen, r->plen, r->alen, r->vlen);
	uint8_t *dst = NULL;

	/* Into the mapping (persist_admit reserved it) or the stage at once
	 * when it has room, saving the copy: a crash mid-encode leaves a
	 * partial record with zeros after it, a torn tail, as a crash
	 * mid-copy would (the stage's records count only up to `staged`,
	 * published after the commit).  Once one record of the commit went
	 * to the buffer the rest follow it there, to stay in order.  The
	 * fence keeps the next record's stores after this one's (see
	 * copy_records). */
	if (!p->len && p->stage)
		dst = pstage_room(p, p->end + p->direct, n);
	else if (!p->len && p->map && p->end + p->direct + n <= p->reserved)
		dst = p->map + p->end + p->direct;
	if (dst) {
		p->direct += prec_encode(dst, r);
		atomic_signal_fence(memory_order_seq_cst);
		return;
	}
	/* persist_admit made room, but a tree delete may log past it */
	if (buf_room(p, n) < 0) {
		p->err = -EIO; /* the change is in the segment, not the log */
		return;
	}
	p->len += prec_encode(p->buf + p->len, r);
}

void persist_log_put(struct shmreg_writer *w, uint64_t rev,
		     uint64_t create_rev, const void *key, size_t klen,
		     const void *val, size_t vlen, const shmreg_put_opts_t *o,
		     int64_t expires_at)
{
	uint8_t attrs[SHM_ATTR_BYTES_MAX];
	struct prec r = { .rev = rev, .op = PREC_PUT, .key = key,
			  .klen = (uint32_t)klen };

	if (o && (o->owner_pid > 0 || (o->flags & SHMREG_EPHEMERAL))) {
		/* not restored (its owner does not survive a reboot): what
		 * the log keeps is that the key's persistent value is gone */
		r.op = PREC_DEL;
		append(w->plog, &r);
		return;
	}
	r.create_rev = create_rev;
	r.expires_at = expires_at;
	r.val = val;
	r.vlen = (uint32_t)vlen;
	if (o && o->nattrs) {
		r.alen = prec_attrs_encode(attrs, o->attrs, o->nattrs);
		r.attrs = attrs;
		r.nattrs = o->nattrs;
	}
	if (o && o->parent) {
		r.parent = o->parent;
		r.plen = (uint32_t)o->parent_len;
	}
	append(w->plog, &r);
}

void persist_log_del(struct shmreg_writer *w, uint64_t rev, const void *key,
		     size_t klen)
{
	struct prec r = { .rev = rev, .op = PREC_DEL, .key = key,
			  .klen = (uint32_t)klen };

	append(w->plog, &r);
}

/* Write, and fdatasync as the mode says (embedded batch mode: the sync
 * thread does, told how far the log is written). */
static int flush_now(struct persist *p)
{
	int rc;

	if (!p->syncer)
		return plog_flush(p, plog_sync_now(p));
	rc = plog_flush(p, false);
	if (rc == 0)
		plog_syncer_note(p);
	return rc;
}

void persist_committed(struct shmreg_writer *w)
{
	struct persist *p = w->plog;

	p->commit_err = 0;
	if (p->group)
		return;
	p->commit_err = flush_now(p);
	/* whether a snapshot is due, once per SNAP_CHECK bytes of log, not
	 * on every commit */
	if (p->commit_err == 0 && p->pos_written >= p->snap_check_at) {
		p->snap_check_at = p->pos_written + SNAP_CHECK;
		(void)psnap_start(w, false);
	}
}

int persist_error(const struct shmreg_writer *w)
{
	return w->plog->commit_err;
}

int64_t persist_result(const struct shmreg_writer *w, int64_t rev)
{
	return w->plog->commit_err ? w->plog->commit_err : rev;
}

SHMREG_EXPORT int shmreg_writer_flush(shmreg_writer_t *w)
{
	int rc;

	if (!w)
		return -EINVAL;
	if (!w->plog)
		return 0;
	if (w->plog->inflight)
		return -EBUSY; /* the host's group first (log_group.c) */
	rc = flush_now(w->plog);
	if (rc == 0)
		(void)psnap_start(w, false);
	return rc;
}

SHMREG_EXPORT int shmreg_writer_log_stats(shmreg_writer_t *w,
					  shmreg_writer_log_stats_t *st)
{
	struct persist *p;

	if (!w || !st)
		return -EINVAL;
	p = w->plog;
	if (!p)
		return -ENOTSUP;
	psnap_reap(w, false);
	memset(st, 0, sizeof(*st));
	st->writes = p->writes;
	st->syncs = p->syncs + plog_syncer_syncs(p);
	st->log_bytes = p->log_bytes;
	st->snapshot_bytes = p->snap_bytes;
	st->snapshots = p->snapshots;
	st->error = p->err ? p->err : plog_syncer_error(p);
	return 0;
}

SHMREG_EXPORT int shmreg_writer_snapshot(shmreg_writer_t *w)
{
	if (!w)
		return -EINVAL;
	if (!w->plog)
		return -ENOTSUP;
	if (w->plog->inflight) {
		/* the rotation writes the log: after the host's group
		 * (shmreg_writer_log_done starts it) */
		w->plog->snap_asked = true;
		return 0;
	}
	return psnap_start(w, true);
}
