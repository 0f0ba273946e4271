/* SPDX-License-Identifier: MIT */
/* Description: the host's group commit (SHMREG_WRITER_GROUP,
 * shmreg_writer_log_take / _done / _pos / _acked), as shmregd uses it:
 * a take hands out exactly the pending records at the log's end, the next
 * commits collect beside the group in flight (take -EBUSY, flush -EBUSY),
 * acked moves only at the done (sync: the fdatasync'ed position; batch:
 * the written one, and a bare fdatasync is taken when it is due), groups
 * follow each other in the file, a snapshot asked for meanwhile starts at
 * the done, a group still in flight at close is written by the close, and
 * a failed group latches -EIO: changes refused, reads go on, and what was
 * acked before it is recovered. */
#include <fcntl.h>

#include "persist_common.h"

static shmreg_writer_t *w;

static void put(const char *k, const char *v)
{
	int64_t r = shmreg_writer_put(w, k, strlen(k), v, strlen(v), NULL);

	TC_CHECK(r > 0, "put %s: %s", k, strerror((int)-r));
}

static void expect(shmreg_t *r, const char *k, const char *v)
{
	char buf[64];
	ssize_t n = shmreg_get(r, k, strlen(k), buf, sizeof(buf), NULL);

	TC_CHECK(n == (ssize_t)strlen(v) && !memcmp(buf, v, strlen(v)),
		 "%s: got %zd", k, n);
}

/* Perform the group as the host would: write it all, then fdatasync. */
static int perform(const shmreg_writer_log_io_t *io)
{
	if (io->len && pwrite(io->fd, io->buf, io->len, (off_t)io->offset) !=
			       (ssize_t)io->len)
		return -EIO;
	if (io->sync && fdatasync(io->fd) < 0)
		return -errno;
	return 0;
}

/* The bytes at [off, off + len) of log.@seq equal @want. */
static void in_file(const char *name, unsigned long long seq, uint64_t off,
		    const void *want, size_t len)
{
	char path[4096];
	uint8_t *got = malloc(len);
	int fd;

	TC_CHECK(got, "malloc");
	pt_file(path, name, "log", seq);
	fd = open(path, O_RDONLY);
	TC_CHECK(fd >= 0, "open %s", path);
	TC_EQ(pread(fd, got, len, (off_t)off), (ssize_t)len, "read back");
	TC_CHECK(!memcmp(got, want, len), "the group's bytes in the file");
	close(fd);
	free(got);
}

static void sync_mode(void)
{
	shmreg_writer_log_io_t io, io2;
	uint64_t pos, acked;
	unsigned long long seq;
	uint8_t copy[4096];

	TC_EQ(pt_open("grp", SHMREG_DURABILITY_SYNC, SHMREG_WRITER_GROUP |
		      SHMREG_WRITER_TRUNCATE, &w), 0, "open");
	acked = shmreg_writer_log_acked(w);
	TC_EQ(shmreg_writer_log_pos(w), acked, "nothing pending");
	TC_EQ(shmreg_writer_log_take(w, &io), 0, "nothing to take");

	put("a", "1");
	put("b", "2");
	pos = shmreg_writer_log_pos(w);
	TC_CHECK(pos > acked, "pending after puts");
	TC_EQ(shmreg_writer_log_acked(w), acked, "a commit does not ack");
	/* the change is visible at once (docs: before it is durable) */
	expect(shmreg_writer_reader(w), "a", "1");

	TC_EQ(shmreg_writer_log_take(w, &io), 1, "take");
	TC_EQ(io.sync, 1, "sync mode syncs each group");
	TC_EQ(io.len, pos - acked, "the group is exactly what was pending");
	TC_EQ(io.upto, pos, "acked up to the position of the take");
	TC_CHECK(io.len <= sizeof(copy), "small group");
	memcpy(copy, io.buf, io.len);

	/* meanwhile: the next group collects, nothing else may write */
	put("c", "3");
	TC_EQ(shmreg_writer_log_take(w, &io2), -EBUSY, "one group in flight");
	TC_EQ(shmreg_writer_flush(w), -EBUSY, "no flush beside it");
	TC_EQ(shmreg_writer_snapshot(w), 0, "a snapshot waits for the done");
	TC_CHECK(!memcmp(copy, io.buf, io.len), "the group's bytes stay put");
	TC_EQ(shmreg_writer_log_pos(w) > pos, 1, "the next group grows");

	seq = pt_last("grp", "log");
	TC_EQ(shmreg_writer_log_done(w, perform(&io)), 0, "done");
	in_file("grp", seq, io.offset, copy, io.len);
	/* the snapshot asked for above started at the done: its rotation
	 * wrote and synced the next group's record ("c") itself, in place */
	TC_EQ(pt_last("grp", "log"), seq + 1, "the log rotated");
	TC_EQ(shmreg_writer_log_acked(w), shmreg_writer_log_pos(w),
	      "all acked after the rotation");
	TC_EQ(shmreg_writer_log_take(w, &io2), 0, "nothing left to take");

	/* the next groups follow each other in the new log */
	put("c2", "5");
	TC_EQ(shmreg_writer_log_take(w, &io), 1, "take 2");
	TC_EQ(shmreg_writer_log_done(w, perform(&io)), 0, "done 2");
	put("c3", "6");
	TC_EQ(shmreg_writer_log_take(w, &io2), 1, "take 3");
	TC_EQ(io2.offset, io.offset + io.len, "group 3 right after group 2");
	memcpy(copy, io2.buf, io2.len);
	TC_EQ(shmreg_writer_log_done(w, perform(&io2)), 0, "done 3");
	in_file("grp", seq + 1, io2.offset, copy, io2.len);

	/* a group still in flight at close: the close writes it */
	put("d", "4");
	TC_EQ(shmreg_writer_log_take(w, &io), 1, "take 4");
	shmreg_writer_close(w);
	pt_drop_segment("grp");
	TC_EQ(pt_open("grp", SHMREG_DURABILITY_SYNC, SHMREG_WRITER_GROUP, &w),
	      0, "reopen");
	expect(shmreg_writer_reader(w), "a", "1");
	expect(shmreg_writer_reader(w), "c", "3");
	expect(shmreg_writer_reader(w), "c3", "6");
	expect(shmreg_writer_reader(w), "d", "4");
	shmreg_writer_close(w);
}

static void batch_mode(void)
{
	shmreg_writer_opts_t o = { .flags = SHMREG_WRITER_GROUP |
					    SHMREG_WRITER_TRUNCATE,
				   .durability = SHMREG_DURABILITY_BATCH,
				   .batch_ms = 1 };
	shmreg_writer_log_io_t io;
	shmreg_writer_log_stats_t st;
	char dir[4096];
	uint64_t t0, syncs;
	int rc;

	o.data_dir = pt_datadir(dir, "grpb");
	TC_EQ(shmreg_writer_open("grpb", &o, &w), 0, "open batch");
	/* the first take after open is not due for a sync yet, or is: both
	 * are allowed; what batch promises is that the write acks */
	put("a", "1");
	TC_EQ(shmreg_writer_log_take(w, &io), 1, "take");
	TC_CHECK(io.len > 0, "a write");
	TC_EQ(shmreg_writer_log_done(w, perform(&io)), 0, "done");
	TC_EQ(shmreg_writer_log_acked(w), shmreg_writer_log_pos(w),
	      "batch: written is acked");
	TC_EQ(shmreg_writer_log_stats(w, &st), 0, "stats");
	syncs = st.syncs;
	if (io.sync) {
		shmreg_writer_close(w); /* synced with its write */
		return;
	}
	/* unsynced: within a deadline a bare fdatasync is taken */
	t0 = tc_now_ns();
	while ((rc = shmreg_writer_log_take(w, &io)) == 0)
		TC_CHECK(tc_now_ns() - t0 < 5000000000ull,
			 "no fdatasync taken 5 s after the write");
	TC_EQ(rc, 1, "take the sync");
	TC_EQ(io.len, 0, "only an fdatasync");
	TC_EQ(io.sync, 1, "sync");
	TC_EQ(shmreg_writer_log_done(w, perform(&io)), 0, "done sync");
	TC_EQ(shmreg_writer_log_stats(w, &st), 0, "stats");
	TC_EQ(st.syncs, syncs + 1, "one more fdatasync");
	TC_EQ(shmreg_writer_log_take(w, &io), 0, "then nothing");
	shmreg_writer_close(w);
}

static void failure(void)
{
	shmreg_writer_log_io_t io;
	shmreg_writer_log_stats_t st;
	uint64_t acked;

	TC_EQ(pt_open("grpf", SHMREG_DURABILITY_SYNC, SHMREG_WRITER_GROUP |
		      SHMREG_WRITER_TRUNCATE, &w), 0, "open");
	put("kept", "1");
	TC_EQ(shmreg_writer_log_take(w, &io), 1, "take");
	TC_EQ(shmreg_writer_log_done(w, perform(&io)), 0, "done");
	acked = shmreg_writer_log_acked(w);
	put("lost", "2");
	TC_EQ(shmreg_writer_log_take(w, &io), 1, "take");
	/* the host's fdatasync failed */
	TC_EQ(shmreg_writer_log_done(w, -EIO), -EIO, "the failure latches");
	TC_EQ(shmreg_writer_log_acked(w), acked, "nothing more acked");
	TC_EQ(shmreg_writer_put(w, "x", 1, "3", 1, NULL), -EIO,
	      "changes refused");
	TC_EQ(shmreg_writer_del(w, "kept", 4), -EIO, "deletes too");
	TC_EQ(shmreg_writer_log_take(w, &io), -EIO, "no more groups");
	TC_EQ(shmreg_writer_log_stats(w, &st), 0, "stats");
	TC_EQ(st.error, -EIO, "stats say why");
	expect(shmreg_writer_reader(w), "kept", "1"); /* reads go on */
	TC_EQ(shmreg_writer_log_done(w, 0), -EINVAL, "no group in flight");
	shmreg_writer_close(w);
	/* what was acked is there after a restart */
	pt_drop_segment("grpf");
	TC_EQ(pt_open("grpf", SHMREG_DURABILITY_SYNC, 0, &w), 0, "reopen");
	expect(shmreg_writer_reader(w), "kept", "1");
	shmreg_writer_close(w);
}

static void misuse(void)
{
	shmreg_writer_log_io_t io;

	/* not a group writer: the host hook is not there */
	TC_EQ(pt_open("grpn", SHMREG_DURABILITY_SYNC, SHMREG_WRITER_TRUNCATE,
		      &w), 0, "open");
	TC_EQ(shmreg_writer_log_take(w, &io), -EINVAL, "not GROUP");
	TC_EQ(shmreg_writer_log_done(w, 0), -EINVAL, "not GROUP: done");
	shmreg_writer_close(w);
	TC_EQ(shmreg_writer_log_take(NULL, &io), -EINVAL, "NULL writer");
	TC_EQ(shmreg_writer_log_pos(NULL), 0, "NULL pos");
	TC_EQ(shmreg_writer_log_acked(NULL), 0, "NULL acked");
}

int main(void)
{
	tc_init("persist_group", 60);
	sync_mode();
	batch_mode();
	failure();
	misuse();
	return 0;
}
