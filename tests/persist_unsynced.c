/* SPDX-License-Identifier: MIT */
/* Description: what a machine crash leaves of a log's unsynced tail -
 * pages never written back (zeros) or written back early (a prefix of
 * their bytes, then zeros), with later pages written - is recovered
 * without an operator option: exactly the records before the first one
 * the zeros damage, the log copied aside (log.N.damaged), a line naming
 * file and offsets, and the history sound after it.  In durability none
 * (a rotation does not sync) that holds for an older log too, whose later
 * logs are set aside; in batch it is refused there.  A newest log whose
 * first page (its header) never reached the disk leaves the history of
 * the logs before it.  Damage that is not
 * such a stretch (a short zero run, zeros not reaching a page end, a
 * flipped byte) with records after it is still refused with -EBADMSG. */
#include "persist_common.h"
#include "persist_history.h"

#define PAGE 4096u

/* log.1 = the pristine log, zeros in [@from, @to), then zero pages (the
 * allocation ahead, as a crash leaves it). */
static void crash_image(size_t from, size_t to)
{
	size_t len = (log_len + 3 * PAGE) & ~(size_t)(PAGE - 1);
	char *img = calloc(1, len), p[4096];

	TC_CHECK(img, "calloc");
	memcpy(img, pristine, log_len);
	memset(img + from, 0, to - from);
	clear_dir();
	tc_write_file(pt_file(p, "reg", "log", 1), img, len);
	free(img);
}

/* The record holding offset @off. */
static int record_at(size_t off)
{
	return records_before(off);
}

static size_t rec_start(int i)
{
	return i ? rec_end[i - 1] : 32;
}

/* Recovered without an option: exactly @prefix records, the lines and
 * the copy aside; and once more from the files that left. */
static void expect_recovered(uint32_t durability, int prefix, size_t bad,
			     const char *what)
{
	char err[4096], want[128], p[4096], q[4200];
	shmreg_writer_t *w;

	TC_EQ(pt_open_captured("reg", durability, 0, &w, err, sizeof(err)), 0,
	      what);
	shmreg_writer_close(w);
	snprintf(want, sizeof(want), "log.%016llx: zeros from offset", 1ull);
	TC_CHECK(strstr(err, want), "%s: stderr: %s", what, err);
	snprintf(want, sizeof(want), "inside the record at offset %zu:", bad);
	TC_CHECK(strstr(err, want), "%s: stderr: %s", what, err);
	expect_prefix(prefix, what);
	snprintf(q, sizeof(q), "%s.damaged", pt_file(p, "reg", "log", 1));
	TC_CHECK(access(q, F_OK) == 0, "%s: no %s", what, q);
	pt_drop_segment("reg");
	TC_EQ(pt_open_captured("reg", durability, 0, &w, err, sizeof(err)), 0,
	      what);
	shmreg_writer_close(w);
	TC_CHECK(!strstr(err, "zeros from"), "%s: again: %s", what, err);
	expect_prefix(prefix, what);
}

static void expect_refused(uint32_t durability, const char *what)
{
	char err[4096];
	shmreg_writer_t *w;

	pt_drop_segment("reg");
	TC_EQ(pt_open_captured("reg", durability, 0, &w, err, sizeof(err)),
	      -EBADMSG, what);
	TC_CHECK(strstr(err, "refusing to start"), "%s: stderr: %s", what,
		 err);
}

/* A page boundary inside the log with whole records on both sides. */
static size_t page_in(uint64_t *st)
{
	size_t pages = log_len / PAGE;

	TC_CHECK(pages >= 4, "log of %zu bytes", log_len);
	return PAGE * (size_t)tc_range(st, 1, pages - 2);
}

/* In durability none an older log may hold the hole: log.1 damaged,
 * log.2 after it. */
static void older_log(uint64_t *st)
{
	size_t pg = page_in(st);
	int first = record_at(pg);
	shmreg_writer_t *w;
	char p[4096], q[4200], err[4096];
	int fd;
	static const uint8_t zeros[PAGE];

	/* log.2: a put after log.1, by the next writer; then the hole */
	clear_dir();
	tc_write_file(pt_file(p, "reg", "log", 1), pristine, log_len);
	TC_EQ(pt_open("reg", SHMREG_DURABILITY_NONE, 0, &w), 0, "log.2");
	TC_CHECK(shmreg_writer_put(w, "late", 4, "x", 1, NULL) > 0, "put");
	shmreg_writer_close(w);
	TC_CHECK(access(pt_file(p, "reg", "log", 2), F_OK) == 0, "no log.2");
	fd = open(pt_file(p, "reg", "log", 1), O_WRONLY);
	TC_CHECK(fd >= 0 && pwrite(fd, zeros, PAGE, (off_t)pg) == PAGE,
		 "the hole");
	close(fd);
	pt_drop_segment("reg");
	expect_refused(SHMREG_DURABILITY_BATCH, "older log, batch");
	pt_drop_segment("reg");
	TC_EQ(pt_open_captured("reg", SHMREG_DURABILITY_NONE, 0, &w, err,
			       sizeof(err)), 0, "older log, none");
	shmreg_writer_close(w);
	TC_CHECK(strstr(err, "zeros from offset"), "stderr: %s", err);
	expect_prefix(first, "older log, none");
	snprintf(q, sizeof(q), "%s.damaged", pt_file(p, "reg", "log", 2));
	TC_CHECK(access(q, F_OK) == 0, "log.2 not set aside");
	{
		shmreg_t *r;
		char v[4];

		TC_EQ(shmreg_open("reg", 0, &r), 0, "reader");
		TC_EQ(shmreg_get(r, "late", 4, v, sizeof(v), NULL), -ENOENT,
		      "late put after the hole");
		shmreg_close(r);
	}
}

/* The newest log's first page never written back (its header too): the
 * history of the logs before it, nothing of it. */
static void header_page(void)
{
	shmreg_writer_t *w;
	char p[4096], q[4200], err[4096];
	shmreg_t *r;
	char v[4];
	int fd;
	off_t len;
	uint8_t *zeros;

	clear_dir();
	tc_write_file(pt_file(p, "reg", "log", 1), pristine, log_len);
	TC_EQ(pt_open("reg", SHMREG_DURABILITY_BATCH, 0, &w), 0, "log.2");
	TC_CHECK(shmreg_writer_put(w, "late", 4, "x", 1, NULL) > 0, "put");
	shmreg_writer_close(w);
	len = pt_size(pt_file(p, "reg", "log", 2));
	zeros = calloc(1, PAGE);
	TC_CHECK(zeros && len < (off_t)PAGE, "log.2 of %lld bytes",
		 (long long)len);
	fd = open(p, O_WRONLY);
	TC_CHECK(fd >= 0 && pwrite(fd, zeros, PAGE, 0) == PAGE, "zero log.2");
	close(fd);
	free(zeros);
	pt_drop_segment("reg");
	TC_EQ(pt_open_captured("reg", SHMREG_DURABILITY_BATCH, 0, &w, err,
			       sizeof(err)), 0, "header page");
	shmreg_writer_close(w);
	TC_CHECK(strstr(err, "inside the header at offset 0"), "stderr: %s",
		 err);
	expect_prefix(N, "header page");
	TC_EQ(shmreg_open("reg", 0, &r), 0, "reader");
	TC_EQ(shmreg_get(r, "late", 4, v, sizeof(v), NULL), -ENOENT, "late");
	shmreg_close(r);
	snprintf(q, sizeof(q), "%s.damaged", p);
	TC_CHECK(access(q, F_OK) == 0, "no %s", q);
	/* and sound from there on */
	open_expect(0, 0, N, "after header page");
}

int main(void)
{
	uint64_t st = tc_seed();
	char p[4096];

	tc_init("persist_unsynced", 120);
	write_pristine();

	for (int it = 0; it < 8; it++) {
		size_t pg = page_in(&st), t;
		int i;

		/* a page never written back */
		i = record_at(pg);
		crash_image(pg, pg + PAGE);
		expect_recovered(SHMREG_DURABILITY_BATCH, i, rec_start(i),
				 "zero page");

		/* a page written back early, between two records: zeros
		 * from a record's start to the page end */
		i = record_at(pg + PAGE / 2);
		t = rec_start(i);
		if (t < pg)
			t = rec_end[i], i++;
		crash_image(t, pg + PAGE);
		expect_recovered(SHMREG_DURABILITY_BATCH, i, t,
				 "stale page at a record");

		/* ... in the middle of a record (a copy under way): at
		 * least 92 zero bytes, some of them the record's data */
		i = record_at(pg + PAGE - 100);
		t = pg + PAGE - 100;
		if (t > rec_end[i] - 16)
			t = rec_end[i] - 16;
		if (t < rec_start(i) + 8)
			t = rec_start(i) + 8;
		crash_image(t, pg + PAGE);
		expect_recovered(SHMREG_DURABILITY_SYNC, i, rec_start(i),
				 "stale page in a record");

		/* not such a stretch: zeros that stop short of the page end,
		 * and a run to the page end too short to be one */
		i = record_at(pg + 200);
		t = rec_start(i) + 60 < pg + 200 ? rec_start(i) + 60 : pg + 200;
		crash_image(t, t + 16);
		expect_refused(SHMREG_DURABILITY_BATCH, "zeros inside a page");
		i = record_at(pg + PAGE - 20);
		if (rec_start(i) + 8 < pg + PAGE - 20 &&
		    rec_end[i] > pg + PAGE) { /* data bytes, not padding */
			crash_image(pg + PAGE - 20, pg + PAGE);
			expect_refused(SHMREG_DURABILITY_BATCH,
				       "short run at a page end");
		}
	}
	/* a flipped byte with records after it: still refused */
	crash_image(0, 0);
	{
		int fd = open(pt_file(p, "reg", "log", 1), O_WRONLY);
		uint8_t x = (uint8_t)(pristine[rec_start(N / 2) + 60] ^ 0x5a);

		TC_CHECK(fd >= 0 && pwrite(fd, &x, 1,
					   (off_t)rec_start(N / 2) + 60) == 1,
			 "patch");
		close(fd);
	}
	expect_refused(SHMREG_DURABILITY_NONE, "flipped byte");
	older_log(&st);
	header_page();
	free(pristine);
	return 0;
}
