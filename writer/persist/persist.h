/* SPDX-License-Identifier: MIT */
/*
 * persist.h - the persistence log, snapshots and recovery of one registry
 * (docs/persistence.md says what each durability mode promises,
 * docs/format.md has the file formats).
 *
 * Files in the registry's data directory:
 *
 *   lock               an OFD write lock: one writer per directory (-EBUSY)
 *   log.SEQ            committed changes after snapshot SEQ (or after the
 *                      start of history for log.0000000000000001)
 *   snap.SEQ           the contents as of the start of log.SEQ
 *   *.tmp              a snapshot being written (removed on open)
 *   *.damaged          what an open with SHMREG_WRITER_KEEP_PREFIX set
 *                      aside (kept for the operator, never read)
 *
 * SEQ is 16 hex digits.  The state is the newest valid snapshot plus
 * every log from its SEQ on, replayed in order.  A snapshot is made from
 * files only (the previous snapshot and the closed logs before it), by a
 * thread that never touches the segment: the writer's only pause is the
 * rotation to a new log file (write, fdatasync, create: O(1), not O(n)).
 */
#ifndef WRITER_PERSIST_H
#define WRITER_PERSIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "record.h"

struct shmreg_writer;
struct persist;

/* ---- writer hooks (writer.c, commit.h) ---- */

/* Open the data directory of w->opts.data_dir: lock it, recover the
 * registry from it into a new segment that replaces whatever the name
 * holds (readers follow), and start a new log.  Returns 0, -EBUSY (the
 * directory has a writer), -EBADMSG (corrupt: the stderr line names the
 * file and the offset), or another -errno. */
int persist_open(struct shmreg_writer *w);
/* Write and fdatasync what is pending, wait for a running snapshot, close. */
void persist_close(struct shmreg_writer *w);
/* In a child after fork(): close the inherited descriptors (the data
 * directory's lock would outlive the writer otherwise); the child is not
 * the writer.  Async-signal-safe (close only). */
void persist_after_fork(struct shmreg_writer *w);

/* Before a change that will log at most @need bytes: 0, or the error that
 * refuses it (-ENOSPC: no room for the log, retried on the next change;
 * -EIO: the log failed and the writer refuses changes until reopened). */
int persist_admit(struct shmreg_writer *w, size_t need);
/* Inside a commit: log a put (an owner-bound or ephemeral one as the
 * removal of any persistent value) or a delete. */
struct shmreg_put_opts;
void persist_log_put(struct shmreg_writer *w, uint64_t rev,
		     uint64_t create_rev, const void *key, size_t klen,
		     const void *val, size_t vlen,
		     const struct shmreg_put_opts *opts, int64_t expires_at);
void persist_log_del(struct shmreg_writer *w, uint64_t rev, const void *key,
		     size_t klen);
/* After the outermost commit: write (and, as the durability mode says,
 * fdatasync) its records, unless the host flushes (SHMREG_WRITER_GROUP). */
void persist_committed(struct shmreg_writer *w);
/* The error of the last commit's write, 0 when it is in the log. */
int persist_error(const struct shmreg_writer *w);
/* @rev, or that error. */
int64_t persist_result(const struct shmreg_writer *w, int64_t rev);

/* Log bytes a put of these lengths takes at most. */
size_t persist_put_need(size_t klen, size_t vlen,
			const struct shmreg_put_opts *opts);

/* ---- inside persist/ ---- */

struct psnap_job;
struct plog_syncer;
struct pstage;

/* One registry's persistence state, owned by its writer. */
struct persist {
	char dir[4096];
	int dfd;                /* the data directory */
	int lock_fd;            /* its lock file, OFD-locked */
	int log_fd;             /* log.seq, open for appending */
	uint32_t durability;    /* SHMREG_DURABILITY_NONE, _BATCH or _SYNC */
	int64_t batch_ns;
	bool group;             /* SHMREG_WRITER_GROUP: the host flushes */
	uint64_t seq;           /* the current log */
	uint64_t end;           /* its length (next write offset) */
	uint64_t reserved;      /* fallocated up to (UINT64_MAX: the file
	                         * system cannot reserve) */
	uint8_t *map;           /* PLOG_VA bytes of address space; the file's
	                         * first `reserved` bytes mapped shared at its
	                         * start (NULL: writes go through pwrite) */
	size_t direct;          /* this commit's records encoded straight
	                         * into the mapping at end (embedded) */
	uint8_t *buf;           /* records not yet written (after direct) */
	size_t len, cap;
	bool unsynced;          /* written, not yet fdatasync'ed */
	int64_t sync_due_ns;    /* batch: fdatasync by then (monotonic) */
	struct plog_syncer *syncer; /* embedded batch mode: the thread that
	                             * fdatasyncs (log_sync.c), or NULL */
	bool held;              /* the writer holds the sync thread off
	                         * (plog_syncer_pause) */
	bool use_stage;         /* embedded batch mode: records go to the
	                         * stage, the log is not mapped */
	struct pstage *stage;   /* that stage (log_stage.c), or NULL */
	/* SHMREG_WRITER_GROUP (log_group.c): the records the host is
	 * writing, taken from buf (the buffers swap, so buf collects the next
	 * group meanwhile); at most one group is in flight */
	uint8_t *fbuf;
	size_t flen, fcap;
	bool inflight;
	bool fsync;             /* the group in flight ends in an fdatasync */
	bool snap_asked;        /* shmreg_writer_snapshot while in flight */
	/* log positions: bytes since open, pending and in flight excluded */
	uint64_t pos_written;   /* in the page cache */
	uint64_t pos_synced;    /* of those, fdatasync'ed */
	uint64_t snap_check_at; /* pos_written of the next snapshot check */
	int err;                /* -EIO once a write or fdatasync failed */
	int commit_err;         /* the last commit's write error */
	uint64_t base_seq;      /* the newest snapshot (0 = none) */
	uint64_t snap_bytes;    /* its size */
	uint64_t log_bytes;     /* log bytes since it */
	struct psnap_job *job;  /* a snapshot being written, or NULL */
	uint64_t snapshots;     /* snapshots completed */
	uint64_t writes, syncs; /* write and fdatasync calls */
};

/* Write what is buffered to the log (and fdatasync when @sync).
 * Returns 0 or -errno (latched in p->err); -EBUSY while the host's group
 * is in flight (nothing done: its offset is not written yet). */
int plog_flush(struct persist *p, bool sync);
/* Whether the durability mode wants an fdatasync of what is written now
 * (sync: always; batch: batch_ms after the last one, and then the next is
 * due batch_ms later; none: never). */
bool plog_sync_now(struct persist *p);
/* One log file write of @n bytes at @off (EINTR and short writes retried).
 * Returns 0 or -errno. */
int plog_pwrite(int fd, const uint8_t *b, size_t n, uint64_t off);
/* The host's group still in flight at close: written here (log_group.c).
 * Returns 0 or -errno (latched). */
int plog_group_abandon(struct persist *p);
/* Start log @seq: a new file with its header, the directory synced
 * unless durability is none.  Returns 0 or -errno. */
int plog_create(struct persist *p, uint64_t seq);
/* Move on to log seq + 1: pending records written and synced to the old
 * one first (so only the newest log can end in a torn tail), its unused
 * reservation given back.  Returns 0 or -errno (the old log stays). */
int plog_rotate(struct persist *p);
/* Close the current log: unmapped, cut to its end, closed. */
void plog_close(struct persist *p);

/* The batch-mode sync thread of an embedded writer (log_sync.c): the
 * writer only notes how far the log is written, the thread fdatasyncs it
 * at most once per batch_ms while bytes are unsynced. */
/* Start it on the current log.  Returns 0 or -errno. */
int plog_syncer_start(struct persist *p);
/* After a flush: the log is written up to p->pos_written (non-blocking
 * unless the thread is idle, then a wake-up). */
void plog_syncer_note(struct persist *p);
/* -EIO once one of its fdatasyncs failed (0 without a thread). */
int plog_syncer_error(const struct persist *p);
/* Its fdatasync calls so far (0 without a thread). */
uint64_t plog_syncer_syncs(const struct persist *p);
/* Around a rotation: no sync of the thread runs between the two, after
 * the resume it syncs p->log_fd. */
void plog_syncer_pause(struct persist *p);
void plog_syncer_resume(struct persist *p);
/* Stop and join it (its counters and error pass to @p). */
void plog_syncer_stop(struct persist *p);
/* In a forked child (no thread there): free its memory only. */
void plog_syncer_forget(struct persist *p);

/* The stage of an embedded batch-mode writer (log_stage.c): a ring in
 * shared memory beside the segment (NAME.stage) that the writer encodes
 * its records into and the sync thread copies into the log file. */
#define PSTAGE_MAGIC   0x54535253u /* "SRST" */
#define PSTAGE_VERSION 1u
#define PSTAGE_HDR     4096u
#define PSTAGE_CAP     (UINT64_C(16) << 20) /* > PREC_MAX + a batch */
/* The ring bytes of the stages opened from now on: PSTAGE_CAP; the tests
 * (linked with the test library) make it small to fill and wrap it with
 * few records.  A power of two >= 4096. */
extern uint64_t pstage_cap;

struct pstage {
	char path[4096 + 8];
	int fd;
	uint8_t *hdr;           /* PSTAGE_HDR bytes, mapped shared */
	uint8_t *ring;          /* cap bytes, mapped twice in a row */
	uint64_t cap;
	uint64_t dir_dev, dir_ino; /* the data directory it belongs to */
	uint64_t lim;           /* the writer's: copied + cap, last seen */
};

/* Create PATH.stage for the current log (after plog_create).  0 or
 * -errno. */
int pstage_open(struct persist *p, const char *path);
/* Where the records of log offsets [off, off + n) go in the ring, or NULL
 * while the sync thread has not copied enough of it yet. */
uint8_t *pstage_room_slow(struct persist *p, uint64_t off, size_t n);
static inline uint8_t *pstage_room(struct persist *p, uint64_t off, size_t n)
{
	struct pstage *s = p->stage;

	if (off + n <= s->lim)
		return s->ring + (off & (s->cap - 1));
	return pstage_room_slow(p, off, n);
}
/* After a commit's records are in the ring: staged = p->end. */
void pstage_publish(struct persist *p);
/* Copy [copied, staged) into the log @fd (the sync thread, or the writer
 * with the thread held off).  0 or -errno. */
int pstage_copy(struct pstage *s, int fd);
/* The writer, thread held off: the ring's records, then p->buf's at
 * p->end, into the log.  0 or -errno. */
int pstage_write(struct persist *p);
/* After a rotation (the ring drained): stage for the new log. */
void pstage_reset(struct persist *p);
/* Unmap and close; the file is removed if the log holds all of it. */
void pstage_close(struct persist *p);
/* In a forked child: close the descriptor (async-signal-safe). */
void pstage_forget(struct persist *p);
/* Before replay: the records a crashed writer left in SEG_PATH.stage
 * written into their log (@discard: dropped).  0, -EBADMSG (damaged or
 * naming a log that is not there; with @keep_prefix the valid records
 * before the damage are kept and the file set aside), -EEXIST (it
 * belongs to another data directory), or -errno. */
int pstage_recover(struct persist *p, const char *seg_path, bool keep_prefix,
		   bool discard);

/* A stage file's contents, checked (untrusted: the fuzz target's). */
struct pstage_info {
	uint64_t cap, dir_dev, dir_ino, seq, log_ino;
	uint64_t from, to;      /* copied, staged */
	uint64_t good;          /* valid records' bytes from `from` */
};
/* Check the @size bytes of a stage file at @f: 0 with *@records the
 * to - from bytes from `from` in log order (malloc'ed, NULL when from >=
 * to), of which the first `good` are whole valid records; -EBADMSG (bad
 * header or range) or -ENOMEM. */
int pstage_parse(const uint8_t *f, size_t size, struct pstage_info *in,
		 uint8_t **records);

/* Address space a log is mapped in; a log that would outgrow it is
 * rotated. */
#define PLOG_VA (UINT64_C(1) << 30)

/* A consumer of replayed records (the writer's segment, or the in-memory
 * map a snapshot is made from). */
struct psink {
	void *ctx;
	/* before any record: at most how many entries, and about how many
	 * bytes of entries too large for an index slot, to expect */
	int (*begin)(void *ctx, uint64_t entries, uint64_t big_bytes);
	/* a PUT or DEL record (MARK is only counted); @raw/@size: its
	 * encoded bytes */
	int (*apply)(void *ctx, const struct prec *r, const uint8_t *raw,
		     size_t size);
	/* optional: a root (PUT, no parent) of a version 2 snapshot, whose
	 * key no record before it has (pass one checked the order), and
	 * the key's hash; NULL: apply() gets it */
	int (*load_root)(void *ctx, const struct prec *r, uint64_t hash);
};

/* pdir_replay flags */
#define PREPLAY_TORN_TAIL   0x1u /* the last log may end in a torn tail */
#define PREPLAY_KEEP_PREFIX 0x2u /* corruption ends the history there */
#define PREPLAY_UNSYNCED_LOGS 0x4u /* any log, not only the last, may end
                                    * in an unsynced tail (durability none:
                                    * a rotation does not sync) */

struct preplay_res {
	uint64_t base_seq;      /* snapshot replayed, 0 = none */
	uint64_t last_seq;      /* last log replayed (or base_seq) */
	uint64_t max_rev;       /* highest revision of any record */
	uint64_t records;       /* records applied */
	bool torn;              /* the last log ends in a torn tail (or a
	                         * header cut short: torn_bytes may be 0) */
	uint64_t torn_bytes;    /* bytes of the torn tail dropped */
	uint64_t torn_off;      /* where it starts in log.last_seq */
	uint64_t cut_seq, cut_off; /* KEEP_PREFIX: where history was cut
	                            * (cut_seq 0: it was not) */
	uint64_t snap_bytes;    /* size of the base snapshot */
	uint64_t log_bytes;     /* sizes of the logs replayed */
};

/* Replay the data directory @dfd (named @dir in messages) through @sink:
 * the newest snapshot that validates, then every log from its SEQ up to
 * and not including @upto (UINT64_MAX: all of them).  Everything is
 * checked before the first record is applied.  Returns 0, -EBADMSG
 * (corruption, one line on stderr naming file and offset), -ENOMEM, or an
 * I/O -errno.  Never crashes or loops without bound on any file bytes. */
int pdir_replay(int dfd, const char *dir, uint64_t upto, unsigned flags,
		const struct psink *sink, struct preplay_res *res);

/* File names: "log." or "snap." and 16 lower-case hex digits (not 0). */
bool pname_parse(const char *name, const char *prefix, uint64_t *seq);
#define PLOG_NAME  "log.%016llx"
#define PSNAP_NAME "snap.%016llx"

/* Log file header (32 bytes): magic, version, seq, zero, XXH3 of 0..24. */
#define PLOG_MAGIC   0x474c5253u /* "SRLG" */
#define PLOG_VERSION 1u
#define PLOG_HDR     32u
/* Snapshot header (48 bytes): magic, version, seq, rev, count, XXH3 of
 * 0..40; then count PUT records; then the trailer (24 bytes): magic,
 * zero, count, XXH3 of trailer 0..16 seeded with the header's check.
 * Version 2 (written): first the roots (no parent) in strictly ascending
 * psnap_order_cmp() order, then the entries with a parent, each after its
 * parent.  Version 1 (still read): parents first, in any order. */
#define PSNAP_MAGIC   0x4e535253u /* "SRSN" */
#define PSNAP_END     0x45535253u /* "SRSE" */
#define PSNAP_VERSION 2u
#define PSNAP_VERSION_PARENTS_FIRST 1u
#define PSNAP_HDR     48u
#define PSNAP_TRAILER 24u

void plog_header(uint8_t out[PLOG_HDR], uint64_t seq);
void psnap_header(uint8_t out[PSNAP_HDR], uint64_t seq, uint64_t rev,
		  uint64_t count);
void psnap_trailer(uint8_t out[PSNAP_TRAILER], const uint8_t hdr[PSNAP_HDR],
		   uint64_t count);

/* The order of a version 2 snapshot's roots: by key hash (XXH3-64, so
 * by home slot in an index of any size), then key length, then bytes.
 * <0, 0 (the same key), >0. */
static inline int psnap_order_cmp(uint64_t ha, const uint8_t *ka, uint32_t la,
				  uint64_t hb, const uint8_t *kb, uint32_t lb)
{
	if (ha != hb)
		return ha < hb ? -1 : 1;
	if (la != lb)
		return la < lb ? -1 : 1;
	return memcmp(ka, kb, la);
}

/* Recovery's bulk insert (bulk_load.c): the root @r (a PUT without
 * attributes or parent, of key hash @hash) into the writer's private
 * segment, which no reader maps yet, with plain stores and none of a
 * put's per-change work (ring record, wake-ups, log).  Returns 0, 1 when
 * the general put path must take it (the index at its load limit, the
 * arena full, an entry of that hash on the probe path), or -errno. */
int pbulk_put(struct shmreg_writer *w, const struct prec *r, uint64_t hash);

/* The in-memory map a snapshot is built in (kvmap.c). */
struct kvmap;
struct kvmap *kvmap_new(uint64_t entries);
void kvmap_free(struct kvmap *m);
/* The psink that applies records to @m. */
struct psink kvmap_sink(struct kvmap *m);
/* Write @m as the body of snapshot file @fd (parents before children;
 * entries whose parent is missing are dropped, as their removal would
 * have taken them).  Returns the records written or -errno. */
int64_t kvmap_write(struct kvmap *m, int fd, uint64_t seq, uint64_t rev);
uint64_t kvmap_count(const struct kvmap *m);

/* Snapshots (snapshot.c).  Start one if the log has outgrown the last
 * snapshot (@force: whatever its size).  0, -EALREADY (one is being
 * written), or -errno from the rotation. */
int psnap_start(struct shmreg_writer *w, bool force);
/* Collect a finished snapshot thread (non-blocking unless @wait). */
void psnap_reap(struct shmreg_writer *w, bool wait);
/* In a forked child: the thread is not there; close the job's descriptor,
 * leave its memory (the parent's thread may be writing it). */
void psnap_forget(struct persist *p);

/* Recovery into the writer (recover.c). */
int precover(struct shmreg_writer *w, int dfd, struct preplay_res *res);

#endif /* WRITER_PERSIST_H */
