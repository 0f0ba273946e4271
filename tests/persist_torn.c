/* SPDX-License-Identifier: MIT */
/* Description: recovery keeps exactly the valid prefix of a log cut or
 * corrupted at random offsets at its end (inside a length, a checksum, a
 * value: a torn tail, dropped), refuses with -EBADMSG a corruption followed
 * by valid records unless SHMREG_WRITER_KEEP_PREFIX (then exactly the
 * records before it, the damaged file set aside), and falls back from a
 * corrupt newest snapshot to the previous one; with no valid snapshot and
 * the early logs gone it refuses. */
#include <fcntl.h>

#include "persist_common.h"
#include "persist_history.h"

/* log.1 = the first @n bytes of the pristine log, byte @at xor @x. */
static void set_log(size_t n, size_t at, uint8_t x)
{
	char p[4096];
	uint8_t b;

	clear_dir();
	b = (uint8_t)(pristine[at] ^ x);
	tc_write_file(pt_file(p, "reg", "log", 1), pristine, n);
	if (x) {
		int fd = open(p, O_WRONLY);

		TC_CHECK(fd >= 0 && pwrite(fd, &b, 1, (off_t)at) == 1, "patch");
		close(fd);
	}
}

static void snapshots(void)
{
	shmreg_writer_t *w;
	char p[4096], q[4096];
	unsigned long long s1, s2;

	set_log(log_len, 0, 0);
	TC_EQ(pt_open("reg", 0, 0, &w), 0, "open for snapshot 1");
	TC_EQ(shmreg_writer_snapshot(w), 0, "snapshot 1");
	shmreg_writer_close(w);
	s1 = pt_last("reg", "snap");
	TC_EQ(pt_open("reg", 0, 0, &w), 0, "open for snapshot 2");
	TC_EQ(shmreg_writer_snapshot(w), 0, "snapshot 2");
	shmreg_writer_close(w);
	s2 = pt_last("reg", "snap");
	TC_CHECK(s1 && s2 > s1, "two snapshots: %llu %llu", s1, s2);
	/* the log before the previous snapshot is gone */
	TC_CHECK(access(pt_file(p, "reg", "log", 1), F_OK) < 0, "log.1 kept");
	/* a flipped byte in the newest: the previous one and its logs */
	pt_file(p, "reg", "snap", s2);
	tc_copy_file(p, tc_path(q, "snap.copy"), SIZE_MAX, 100, "X", 1);
	TC_CHECK(rename(q, p) == 0, "rename");
	pt_drop_segment("reg");
	open_expect(0, 0, N, "newest snapshot corrupt");
	/* both corrupt (the previous one's first record): refused */
	pt_file(p, "reg", "snap", s1);
	tc_copy_file(p, q, SIZE_MAX, 60, "X", 1);
	TC_CHECK(rename(q, p) == 0, "rename");
	pt_file(p, "reg", "snap", pt_last("reg", "snap"));
	tc_copy_file(p, q, SIZE_MAX, 100, "X", 1);
	TC_CHECK(rename(q, p) == 0, "rename");
	pt_drop_segment("reg");
	open_expect(-EBADMSG, 0, 0, "no valid snapshot");
}

int main(void)
{
	uint64_t seed = tc_seed(), st = seed;
	char p[4096];

	tc_init("persist_torn", 120);
	tv_selftest();
	write_pristine();

	/* cut anywhere (in a header field, a checksum, a key, a value,
	 * between records): exactly the whole records before the cut */
	for (int it = 0; it < 42; it++) {
		/* the first two: an empty log, a header cut short */
		size_t cut = it == 0 ? 0 : it == 1 ? 10
			   : (size_t)tc_range(&st, 0, log_len);

		set_log(cut, 0, 0);
		open_expect(0, 0, records_before(cut), "cut");
		/* the cut log is now followed by the next writer's: the
		 * history must still be sound (regression: an empty log
		 * was left empty, then refused as damage) */
		open_expect(0, 0, records_before(cut), "cut, reopened");
	}
	/* the last record damaged, at its length, its checksum, its value */
	size_t last = rec_end[N - 2];
	size_t at[3] = { last + 5, last + 9, last + 60 };
	for (int i = 0; i < 3; i++) {
		set_log(log_len, at[i], 0x40);
		open_expect(0, 0, N - 1, "last record damaged");
	}
	/* a damaged record with valid ones after it: refused, or with
	 * KEEP_PREFIX exactly the records before it */
	for (int it = 0; it < 20; it++) {
		int i = (int)tc_range(&st, 0, N - 2);
		size_t start = i ? rec_end[i - 1] : 32;
		size_t off = (size_t)tc_range(&st, start, rec_end[i] - 1);

		set_log(log_len, off, (uint8_t)tc_range(&st, 1, 255));
		open_expect(-EBADMSG, 0, 0, "middle damaged");
		open_expect(0, SHMREG_WRITER_KEEP_PREFIX, i, "keep prefix");
		snprintf(p + strlen(pt_file(p, "reg", "log", 1)), 16,
			 ".damaged");
		TC_CHECK(access(p, F_OK) == 0, "damaged copy %s", p);
		/* and the history is sound from there on */
		open_expect(0, 0, i, "after keep prefix");
	}
	/* a damaged log header with records after it; with KEEP_PREFIX an
	 * empty history, and the files sound from there on (regression: the
	 * log was cut to 0 bytes, then refused as damage) */
	set_log(log_len, 3, 1);
	open_expect(-EBADMSG, 0, 0, "header damaged");
	open_expect(0, SHMREG_WRITER_KEEP_PREFIX, 0, "header damaged, keep");
	open_expect(0, 0, 0, "after header damaged, keep");
	snapshots();
	free(pristine);
	return 0;
}
