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
 * most batch_ms later (batch), or never (none).  A host that runs an
 * event loop (shmregd) sets SHMREG_WRITER_GROUP and calls
 * shmreg_writer_flush() once per loop turn instead: every change of the
 * turn then shares one write and one fdatasync (group commit), and the
 * host sends their replies only after it returns.
 *
 * Disk full.  A change must not be published when its record cannot be
 * stored, but a record is written after its commit.  So space is reserved
 * before the commit: persist_admit() keeps fallocate(FALLOC_FL_KEEP_SIZE)
 * ahead of what the pending records need, and refuses the change with
 * -ENOSPC when the file system has no room; a write into reserved blocks
 * does not fail for space.  Nothing is latched: the next change tries the
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static int write_all(int fd, const uint8_t *p, size_t n, uint64_t off)
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

int plog_flush(struct persist *p, bool sync)
{
	int rc;

	if (p->err)
		return p->err;
	if (p->len) {
		rc = write_all(p->log_fd, p->buf, p->len, p->end);
		p->writes++;
		if (rc < 0) {
			/* a short write left a torn record at the end: it is
			 * overwritten by the retry that never comes (latched) */
			p->err = rc == -ENOSPC ? -ENOSPC : -EIO;
			return p->err;
		}
		p->end += p->len;
		p->log_bytes += p->len;
		p->len = 0;
		p->unsynced = true;
	}
	if (sync && p->unsynced) {
		p->syncs++;
		if (fdatasync(p->log_fd) < 0) {
			p->err = -EIO;
			return p->err;
		}
		p->unsynced = false;
	}
	return 0;
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
	rc = write_all(fd, hdr, sizeof(hdr), 0);
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
	return 0;
}

/* Keep the log's reserved blocks ahead of what is pending plus @need. */
static int reserve(struct persist *p, uint64_t need)
{
	uint64_t want = p->end + p->len + need, len;

	if (p->reserved >= want)
		return 0;
	len = want - p->reserved;
	if (len < RESERVE_CHUNK)
		len = RESERVE_CHUNK;
	for (;;) {
		if (fallocate(p->log_fd, FALLOC_FL_KEEP_SIZE, (off_t)p->reserved,
			      (off_t)len) == 0) {
			p->reserved += len;
			return 0;
		}
		if (errno == EOPNOTSUPP) {
			p->reserved = UINT64_MAX; /* cannot: writes may fail */
			return 0;
		}
		if (errno != ENOSPC || len == want - p->reserved)
			return errno == ENOSPC || errno == EDQUOT ? -ENOSPC
								  : -EIO;
		len = want - p->reserved; /* no room for a chunk: exactly */
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

/* Write, and fdatasync as the mode says. */
static int flush_now(struct persist *p)
{
	bool sync = false;

	if (p->durability == SHMREG_DURABILITY_SYNC) {
		sync = true;
	} else if (p->durability == SHMREG_DURABILITY_BATCH) {
		int64_t now = shm_monotonic_ns();

		if (now >= p->sync_due_ns) {
			sync = true;
			p->sync_due_ns = now + p->batch_ns;
		}
	}
	return plog_flush(p, sync);
}

void persist_committed(struct shmreg_writer *w)
{
	struct persist *p = w->plog;

	p->commit_err = 0;
	if (p->group)
		return;
	p->commit_err = flush_now(p);
	if (p->commit_err == 0)
		(void)psnap_start(w, false);
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
	st->syncs = p->syncs;
	st->log_bytes = p->log_bytes;
	st->snapshot_bytes = p->snap_bytes;
	st->snapshots = p->snapshots;
	st->error = p->err;
	return 0;
}

SHMREG_EXPORT int shmreg_writer_snapshot(shmreg_writer_t *w)
{
	if (!w)
		return -EINVAL;
	if (!w->plog)
		return -ENOTSUP;
	return psnap_start(w, true);
}
