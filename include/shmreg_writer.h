/* SPDX-License-Identifier: MIT */
/*
 * shmreg_writer.h - the embedded writer: a process that owns a registry and
 * publishes to it directly (the master of a pre-fork server, or shmregd).
 *
 * Exactly one writer serves a registry at a time, enforced by an exclusive
 * open-file-description lock (F_OFD_SETLK) on the registry's lock file: a
 * second writer, in another process or in this one, gets -EBUSY.  A shmreg_writer_t is not thread-safe: one
 * thread at a time (the writer serialises every change by design).
 *
 * A writer whose registry has outgrown its initial_entries and is on its
 * way to another index growth starts one helper thread (all signals
 * blocked, joined by shmreg_writer_close) that prepares the next segment
 * meanwhile (docs/format.md, "Handoff").
 *
 * Errors follow shmreg.h.
 */
#ifndef SHMREG_WRITER_H
#define SHMREG_WRITER_H

#include "shmreg.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct shmreg_writer shmreg_writer_t;

/* shmreg_writer_opts_t.flags */
#define SHMREG_WRITER_TRUNCATE 0x1u /* start empty, drop existing contents
                                     * (and, with data_dir, its history) */
#define SHMREG_WRITER_KEEP_PREFIX 0x2u /* data_dir: a log corrupt in the
                                     * middle ends the history there (the
                                     * rest is set aside as *.damaged)
                                     * instead of refusing to open */
#define SHMREG_WRITER_GROUP 0x4u    /* data_dir: the host writes the log
                                     * (group commit, see
                                     * shmreg_writer_log_take), not each
                                     * commit */

/* shmreg_writer_opts_t.durability (docs/persistence.md: what each promises
 * after a process crash and after a machine crash) */
#define SHMREG_DURABILITY_BATCH 0u  /* fdatasync at most batch_ms after a
                                     * change (the default), by a thread
                                     * of the writer (not with
                                     * SHMREG_WRITER_GROUP), which copies
                                     * the records from a 16 MiB stage
                                     * beside the segment (NAME.stage) */
#define SHMREG_DURABILITY_NONE  1u  /* never fdatasync */
#define SHMREG_DURABILITY_SYNC  2u  /* a change returns after its fdatasync */

/* Options of shmreg_writer_open; the all-zero value means defaults. */
typedef struct shmreg_writer_opts {
	uint32_t flags;          /* SHMREG_WRITER_* */
	uint32_t mode;           /* file mode of the segment and the wait
	                          * file, 0 = 0644 (the lock file: 0600) */
	uint64_t initial_entries;/* size the index for this many, 0 = 1024 */
	uint64_t initial_arena;  /* arena bytes to start with, 0 = 1 MiB */
	uint32_t ring_events;    /* change ring size (power of two, >= 1024),
	                          * 0 = 65536 */
	uint32_t durability;     /* SHMREG_DURABILITY_*, with data_dir (this
	                          * was `reserved`, always 0 = batch) */
	/* Since persistence (the struct grew from 32 to 48 bytes): */
	const char *data_dir;    /* NULL: the registry lives in memory only.
	                          * Else the directory (created 0700 if
	                          * missing) of its log and snapshots: the
	                          * registry is recovered from it on open and
	                          * every change is logged */
	uint32_t batch_ms;       /* SHMREG_DURABILITY_BATCH: fdatasync at
	                          * most this long after a change, 0 = 10;
	                          * at most 60000 */
	uint32_t reserved;       /* 0 */
} shmreg_writer_opts_t;

/*
 * Create registry @name, or take over an existing one with its contents
 * (after a clean close or a crash of its previous writer: an entry whose
 * change was cut off reads as its old or its new value, never torn).
 * Readers that have it mapped follow to the new segment without reopening.
 *
 * The files at the registry's names (segment, .lock, .wait) are created
 * with O_EXCL, never through a symbolic link; an existing one is adopted
 * only if it is a regular file of the caller's euid with one link.  Every
 * open sets their modes again: the segment and the wait file opts->mode,
 * the lock file 0600.  Stale handoff files (SEGMENT.new.*) of the caller's
 * uid are removed.
 *
 * Returns 0 and stores the writer in *out, or
 *   -EINVAL  bad name or options
 *   -EBUSY   another writer (in any process, this one included) holds it,
 *            or the writer recorded in the segment still runs although
 *            its lock file was removed or replaced
 *   -EACCES  no permission to create the files
 *   -EPERM   a file at one of the registry's names is not the caller's to
 *            adopt (a symbolic link, not a regular file, another uid's, or
 *            hard-linked); one line on stderr names it and its owner
 *   -EPROTO  the existing segment cannot be taken over (not a registry,
 *            another format version, truncated, or corrupt)
 *   -EIO     no unguessable temporary name could be created (8 tries)
 *   -ENOMEM -ENOSPC  out of memory or tmpfs space
 * and, with opts->data_dir (docs/persistence.md):
 *   -EBUSY   another writer has the data directory open
 *   -EBADMSG the data directory is corrupt in a way that would lose valid
 *            records (a log damaged before its end, a missing log, no
 *            valid snapshot); one line on stderr names the file and the
 *            offset.  SHMREG_WRITER_KEEP_PREFIX opens with what precedes
 *            the damage.  A torn tail (the end of the newest log cut
 *            short or failing its checksum) is dropped with a line on
 *            stderr saying how many bytes, and is no error.
 *   -ENOTDIR -EACCES -ENAMETOOLONG  data_dir cannot be used
 *
 * With data_dir the contents come from the directory, not from a segment
 * that survived: changes a crash lost from the log (as the durability
 * mode allows) are gone even if readers saw them, and the revision goes
 * on past anything readers saw.  Owner-bound and ephemeral entries are not
 * restored, nor entries below them.  Opening may block for the recovery
 * (about 0.3 s per million entries) and does fdatasync.
 */
int shmreg_writer_open(const char *name, const shmreg_writer_opts_t *opts,
		       shmreg_writer_t **out);

/*
 * Insert or replace @key, with the attributes of opts->attrs (replacing
 * any it had; none when opts->nattrs is 0) and the parent opts->parent
 * (none when NULL; a re-put with another parent moves the entry with its
 * subtree).  Returns the new revision (> 0), or
 *   -ESRCH   opts->owner_pid names no process (it would never be reaped)
 *   -ENOENT  opts->parent does not exist
 *   -ELOOP   opts->parent is @key itself or one of its descendants
 *   -EINVAL  NULL writer/key, empty key, NULL val with vlen > 0, bad flags,
 *            negative owner_pid, ttl_ns < 0 or > SHMREG_TTL_MAX_NS, a bad
 *            attribute (NULL attrs with nattrs > 0, a NULL or empty
 *            name, '=' in a name, a NULL value)
 *   -E2BIG   klen > SHMREG_KEY_MAX or vlen > SHMREG_VALUE_MAX, nattrs >
 *            SHMREG_ATTRS_MAX, a name or value over its limit
 *   -EEXIST  opts->expect_rev given and the entry's mod_rev differs
 *   -ENOMEM -ENOSPC  growing the registry failed; nothing stored is lost
 *            (with a data directory: also no room for the log record; the
 *            change was not made, the next one tries again)
 *   -EIO     growing failed: no unguessable temporary name could be made;
 *            with a data directory, the log could not be written (a
 *            sync-mode put whose fdatasync failed is visible to readers
 *            but not durable); changes are refused until reopened
 */
int64_t shmreg_writer_put(shmreg_writer_t *w, const void *key, size_t klen,
			  const void *val, size_t vlen,
			  const shmreg_put_opts_t *opts);

/*
 * Replace @key's attributes with the @nattrs (0..SHMREG_ATTRS_MAX) of
 * @attrs, keeping its value, expiry, owner and flags: one new revision and
 * one change event, as a put.  Returns the new revision, or
 *   -ENOENT  no such key
 *   -EINVAL  NULL writer/key, empty key, NULL attrs with nattrs > 0, a
 *            NULL or empty name, a name with '=', a NULL value
 *   -E2BIG   klen, nattrs, a name or a value over its limit
 *   -ENOMEM -ENOSPC  growing the registry failed; nothing changed
 */
int64_t shmreg_writer_set_attrs(shmreg_writer_t *w, const void *key,
				size_t klen, const shmreg_attr_t *attrs,
				uint32_t nattrs);

/* Delete @key.  Returns the new revision, or -ENOENT when absent (no
 * revision is used, no event is emitted; an entry whose TTL passed is
 * absent, and is removed now as shmreg_writer_expire() would, with its
 * delete event), -ENOTEMPTY when it has children (nothing changes: see
 * shmreg_writer_del_tree), -EINVAL, -E2BIG. */
int64_t shmreg_writer_del(shmreg_writer_t *w, const void *key, size_t klen);

/*
 * Delete @key and every descendant of it (children, their children, ...)
 * in one commit: snapshot readers see the whole subtree or none of it.
 * Each removed entry gets its own revision and delete event (an expired
 * descendant too).  Returns how many entries were removed (>= 1), or -ENOENT (no such key), -EINVAL,
 * -E2BIG, -ENOMEM (nothing changed).
 */
int64_t shmreg_writer_del_tree(shmreg_writer_t *w, const void *key,
			       size_t klen);

/*
 * Delete, in one commit, every entry owned by process @pid (put with
 * opts.owner_pid == pid) together with its descendants.  Returns the
 * number of entries removed (0 when none), or -EINVAL.  The commit is
 * atomic for snapshot readers.
 */
int64_t shmreg_writer_del_owner(shmreg_writer_t *w, pid_t pid);

/*
 * Owner processes, driven by the host's event loop: the descriptor
 * shmreg_writer_owner_fd() returns becomes readable (POLLIN) when a
 * process that owns entries (opts.owner_pid) exits; then call
 * shmreg_writer_reap_owners(), which removes each exited owner's entries
 * and their subtrees (one commit per owner) without blocking.
 *
 *	struct pollfd p = { .fd = shmreg_writer_owner_fd(w), .events = POLLIN };
 *	for (;;) {
 *		poll(&p, 1, -1);              // with the host's other fds
 *		if (p.revents & POLLIN)
 *			shmreg_writer_reap_owners(w);
 *	}
 *
 * owner_fd returns the descriptor (owned by @w: do not close or read it;
 * the same one on every call), or -EINVAL, -EMFILE, -ENFILE, -ENOMEM.
 * reap_owners returns the number of entries removed (0 when no owner
 * exited, or owner_fd was never called), or -EINVAL.
 */
int shmreg_writer_owner_fd(shmreg_writer_t *w);
int64_t shmreg_writer_reap_owners(shmreg_writer_t *w);

/*
 * Expiry, driven by the host's event loop.  An entry put with opts.ttl_ns
 * is invisible to every reader from its deadline on; these two calls
 * remove it (reclaim its memory, give watchers its delete event, take its
 * descendants with it).  The descriptor shmreg_writer_expiry_fd() returns
 * is a timerfd that becomes readable (POLLIN) when an entry's deadline has
 * passed; then call shmreg_writer_expire(), which removes up to @max
 * expired entries (plus the descendants of the last: a subtree goes whole)
 * in one commit, each with its own revision and delete event, and returns
 * without blocking.  When more are due than @max, the descriptor is
 * readable again at once, so the host serves its other descriptors between
 * chunks: a bounded pause per call (about 1 us per entry; 256 is a good
 * @max), however many expire together.
 *
 *	struct pollfd p = { .fd = shmreg_writer_expiry_fd(w), .events = POLLIN };
 *	for (;;) {
 *		poll(&p, 1, -1);              // with the host's other fds
 *		if (p.revents & POLLIN)
 *			shmreg_writer_expire(w, 256);
 *	}
 *
 * Finding due entries costs what is removed, not the registry (a deadline
 * queue in the writer's memory, built by one scan of the registry on the
 * first call of either function: how a registry taken over from an earlier
 * writer gets its deadlines, which are absolute and stored in the entries).
 * The queue keeps a deadline per put with a TTL; those of entries deleted
 * or put again since are dropped by the same calls, in bounded steps (the
 * descriptor is then readable with nothing due, and expire returns 0).
 * A host that never calls them pays nothing, and its expired entries stay
 * invisible until a put or delete of their key removes them.
 *
 * expiry_fd returns the descriptor (owned by @w: do not close it; the same
 * one on every call), or -EINVAL, -EMFILE, -ENFILE, -ENOMEM.  expire
 * returns the number of entries removed (0 when none is due), or -EINVAL,
 * -ENOMEM.
 */
int shmreg_writer_expiry_fd(shmreg_writer_t *w);
int64_t shmreg_writer_expire(shmreg_writer_t *w, unsigned max);

/*
 * Group the changes made until the matching shmreg_writer_batch_end() into
 * one commit: a snapshot reader sees all of them or none (each change still
 * gets its own revision and change-ring event).  Batches nest; the outermost
 * end commits.  Returns 0 or -EINVAL.
 */
int shmreg_writer_batch_begin(shmreg_writer_t *w);
int shmreg_writer_batch_end(shmreg_writer_t *w);

/* The current revision. */
uint64_t shmreg_writer_revision(shmreg_writer_t *w);

/*
 * A writer with a data directory: write the log records of the changes
 * committed so far, and fdatasync them as the durability mode says (sync:
 * now; batch: left to the writer's sync thread, or with
 * SHMREG_WRITER_GROUP when batch_ms have passed since the last one; none:
 * never).  A host with SHMREG_WRITER_GROUP may call it to get a
 * batch-mode fdatasync on time while no change comes, or instead of
 * shmreg_writer_log_take (all changes since the last call then share one
 * write and one fdatasync), but not while a group is in flight (-EBUSY).
 * May start a snapshot (see shmreg_writer_snapshot).  Blocks for the
 * write and the fdatasync.  Returns 0 (also without a data directory), or
 * -EIO (the log could not be written: the changes since the last good
 * flush may be lost in a machine crash; every further change is refused
 * with -EIO until the writer is reopened), -EBUSY, -EINVAL.
 */
int shmreg_writer_flush(shmreg_writer_t *w);

/*
 * Start writing a snapshot of the registry's contents into its data
 * directory now, whatever the log's size (it also starts by itself when
 * the log outgrows twice the last snapshot).  The writer only switches to
 * a new log file (one write, one fdatasync, one file created); a thread
 * builds the snapshot from the files, then removes the files it makes
 * redundant, while changes go on.  Returns 0 when started, -EALREADY
 * when one is being written, -ENOTSUP without a data directory, -EINVAL,
 * or the -errno of creating the new log file.
 */
int shmreg_writer_snapshot(shmreg_writer_t *w);

/* The log's counters (shmreg_writer_log_stats). */
typedef struct shmreg_writer_log_stats {
	uint64_t writes;          /* write calls to the log */
	uint64_t syncs;           /* fdatasync calls */
	uint64_t log_bytes;       /* log bytes since the newest snapshot */
	uint64_t snapshot_bytes;  /* size of the newest snapshot, 0 = none */
	uint64_t snapshots;       /* snapshots completed since open */
	int32_t  error;           /* 0, or the -errno that refuses changes */
	uint32_t reserved;
} shmreg_writer_log_stats_t;

/* Fill *@st.  Returns 0, -ENOTSUP (no data directory) or -EINVAL. */
int shmreg_writer_log_stats(shmreg_writer_t *w, shmreg_writer_log_stats_t *st);

/*
 * Group commit by the host (a writer opened with SHMREG_WRITER_GROUP and a
 * data directory), for an event loop that writes the log asynchronously
 * (shmregd: a write linked to an fdatasync on its io_uring).  The writer
 * only encodes each commit's records; the host:
 *
 *   1. notes shmreg_writer_log_pos() after a change: its reply may leave
 *      once shmreg_writer_log_acked() has reached that position;
 *   2. calls shmreg_writer_log_take() when it likes (once per loop turn):
 *      every record logged since the last take becomes one group, *@io
 *      says what to write where, and whether an fdatasync must follow;
 *   3. performs it (write all of io->len bytes at io->offset of io->fd,
 *      then fdatasync when io->sync) and reports the result with
 *      shmreg_writer_log_done(); meanwhile changes go on and collect into
 *      the next group.  One group is in flight at a time.
 *
 * Positions count log bytes since the open.  "Acked" follows the
 * durability mode: with sync it is what was fdatasync'ed, else what was
 * written.  A failed group latches -EIO (every later change is refused,
 * shmreg_writer_log_acked() stops), so what was not acked before it must
 * not be acknowledged.  shmreg_writer_flush() and the snapshot's log
 * rotation write synchronously, only while no group is in flight (flush
 * returns -EBUSY then; a snapshot asked for then starts at the done).
 * Close only with no group in flight (else the close writes it itself).
 */
typedef struct shmreg_writer_log_io {
	int fd;            /* the log file (owned by the writer) */
	uint32_t sync;     /* 1: fdatasync after the write */
	const void *buf;   /* bytes to write, unchanged until the done */
	size_t len;        /* 0: only the fdatasync */
	uint64_t offset;   /* file offset of buf */
	uint64_t upto;     /* the position acked when it completes */
} shmreg_writer_log_io_t;

/* Bytes logged so far, pending and in flight included. */
uint64_t shmreg_writer_log_pos(shmreg_writer_t *w);
/* The position up to which changes may be acknowledged. */
uint64_t shmreg_writer_log_acked(shmreg_writer_t *w);
/* Take the pending records as a group: 1 (*@io filled: perform it, then
 * shmreg_writer_log_done), 0 (nothing to write or sync now), -EBUSY (a
 * group is in flight), the latched -EIO / -ENOSPC, -EINVAL (not a group
 * writer). */
int shmreg_writer_log_take(shmreg_writer_t *w, shmreg_writer_log_io_t *io);
/* The group taken last completed: @res 0, or the -errno of its write
 * (a short write counts as -EIO) or fdatasync.  Returns 0, or the
 * error now latched. */
int shmreg_writer_log_done(shmreg_writer_t *w, int res);

/* A read-only handle on the writer's own registry (for read-your-writes
 * inside the writer process).  Owned by the writer; do not close it. */
shmreg_t *shmreg_writer_reader(shmreg_writer_t *w);

/*
 * Mark the registry closed (waiters return -ESHUTDOWN, the contents stay
 * readable), release the writer lock and free @w.  NULL is allowed.
 */
void shmreg_writer_close(shmreg_writer_t *w);

#ifdef __cplusplus
}
#endif

#endif /* SHMREG_WRITER_H */
