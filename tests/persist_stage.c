/* SPDX-License-Identifier: MIT */
/* Description: the embedded batch-mode writer's stage (NAME.stage beside
 * the segment, writer/persist/log_stage.c).  A writer killed with SIGKILL
 * loses nothing it acknowledged: with the records still only in the stage
 * (batch_ms 60 s: the sync thread has not copied them), after the ring
 * overflowed and a snapshot rotated the log, and killed at a random
 * moment under load (batch_ms 10).  Recovery writes the staged records
 * into the log, removes the stage, and a clean close leaves none.  A
 * damaged stage is refused with -EBADMSG naming it (kept prefix with
 * SHMREG_WRITER_KEEP_PREFIX, the file set aside); a stage of another data
 * directory is refused with -EEXIST and left alone; a header that is not
 * a stage's is refused, a file too short for one or with a zero magic
 * removed;
 * SHMREG_WRITER_TRUNCATE drops it; a forked child's close leaves it.
 * With PS_CASE=enospc (root: a tiny tmpfs as the data directory, skipped
 * otherwise): a full disk refuses puts with -ENOSPC, and a writer killed
 * then loses none of the puts acknowledged before. */
#include <signal.h>
#include <sys/wait.h>

#include "persist_common.h"
#include "persist.h" /* pstage_cap: a small ring for some cases */

#define VLEN 100u
#define VLEN_BIG 2000u /* the overflow case */
#define SMALL_RING (64u << 10)

static void key_of(char k[24], uint64_t i)
{
	snprintf(k, 24, "k%08llu", (unsigned long long)i);
}

static int open_dir(const char *name, const char *dir, uint32_t batch_ms,
		    uint32_t flags, shmreg_writer_t **w)
{
	shmreg_writer_opts_t o = { .flags = flags,
				   .durability = SHMREG_DURABILITY_BATCH,
				   .batch_ms = batch_ms };
	char d[4096];

	o.data_dir = dir ? dir : pt_datadir(d, name);
	return shmreg_writer_open(name, &o, w);
}

static void put_len(shmreg_writer_t *w, uint64_t i, size_t vlen)
{
	static char v[VLEN_BIG];
	char k[24];
	int64_t r;

	key_of(k, i);
	tv_build(v, vlen, k, strlen(k), i);
	r = shmreg_writer_put(w, k, strlen(k), v, vlen, NULL);
	TC_CHECK(r > 0, "put %s: %s", k, strerror((int)-r));
}

static void put_i(shmreg_writer_t *w, uint64_t i)
{
	put_len(w, i, VLEN);
}

struct job {
	const char *name, *dir;
	uint32_t batch_ms;
	uint64_t n, snapshot_at;
	size_t vlen;              /* 0: VLEN */
	uint64_t ring;            /* the stage's ring bytes, 0: the writer's */
	volatile uint64_t *acked; /* shared: puts returned so far */
};

/* The sync thread's first sync (copy and fdatasync) done: with batch_ms
 * 60 s the next one is a minute away, so what follows stays staged. */
static void wait_first_sync(shmreg_writer_t *w)
{
	shmreg_writer_log_stats_t st;
	uint64_t t0 = tc_now_ns();

	for (;;) {
		TC_EQ(shmreg_writer_log_stats(w, &st), 0, "log stats");
		if (st.syncs >= 1)
			return;
		TC_CHECK(tc_now_ns() - t0 < 30000000000ull,
			 "no first sync in 30 s");
		usleep(1000);
	}
}

/* Put keys 0..n-1, count each acknowledgement, post 'D', wait to die
 * (with batch_ms 60 s, all but the first only staged). */
static int writer_child(struct tc_child *c, void *arg)
{
	struct job *j = arg;
	shmreg_writer_t *w;

	if (j->ring)
		pstage_cap = j->ring;
	TC_EQ(open_dir(j->name, j->dir, j->batch_ms, 0, &w), 0, "child open");
	for (uint64_t i = 0; i < j->n; i++) {
		put_len(w, i, j->vlen ? j->vlen : VLEN);
		*j->acked = i + 1;
		if (i == 0 && j->batch_ms >= 60000)
			wait_first_sync(w);
		if (i + 1 == j->snapshot_at)
			TC_EQ(shmreg_writer_snapshot(w), 0, "snapshot");
	}
	tc_post(c, 'D');
	tc_wait_parent(c, 600000);
	return 0;
}

/* Run a writer_child to the end (or, @kill_at > 0, until that many puts
 * were acknowledged) and SIGKILL it.  Returns the puts acknowledged. */
static uint64_t crash(struct job *j, uint64_t kill_at)
{
	struct tc_child *c;
	uint64_t t0 = tc_now_ns(), n;

	j->acked = tc_shared(sizeof(uint64_t));
	*j->acked = 0;
	c = tc_spawn("writer", writer_child, j);
	if (kill_at) {
		while (*j->acked < kill_at) {
			TC_CHECK(tc_now_ns() - t0 < 120000000000ull,
				 "only %llu puts in 120 s",
				 (unsigned long long)*j->acked);
			usleep(200);
		}
	} else {
		tc_expect(c, 'D', 300000);
	}
	TC_EQ(tc_child_kill(c, 10000), 0, "kill the writer");
	n = *j->acked; /* stored after each put returned: a floor */
	tc_child_free(c);
	return n;
}

/* Keys 0..n-1 are there with their values (a reader's view). */
static void expect_len(const char *name, uint64_t n, size_t vlen,
		       const char *what)
{
	static char v[VLEN_BIG + 8];
	shmreg_t *r;
	char k[24];
	uint64_t seq;

	TC_EQ(shmreg_open(name, 0, &r), 0, what);
	for (uint64_t i = 0; i < n; i++) {
		ssize_t got;

		key_of(k, i);
		got = shmreg_get(r, k, strlen(k), v, sizeof(v), NULL);
		TC_CHECK(got == (ssize_t)vlen, "%s: %s: got %zd of %llu "
			 "acknowledged", what, k, got, (unsigned long long)n);
		TC_CHECK(tv_check(v, vlen, k, strlen(k), &seq) == 0 &&
			 seq == i, "%s: %s: wrong value", what, k);
	}
	shmreg_close(r);
}

static void expect_keys(const char *name, uint64_t n, const char *what)
{
	expect_len(name, n, VLEN, what);
}

/* How many of keys 0..n-1 are there, checking they form a prefix. */
static uint64_t prefix_len(const char *name, uint64_t n, const char *what)
{
	shmreg_t *r;
	char k[24], v[VLEN + 8];
	uint64_t have = 0;

	TC_EQ(shmreg_open(name, 0, &r), 0, what);
	for (uint64_t i = 0; i < n; i++) {
		key_of(k, i);
		if (shmreg_get(r, k, strlen(k), v, sizeof(v), NULL) ==
		    (ssize_t)VLEN)
			TC_CHECK(have++ == i, "%s: %s present after a gap",
				 what, k);
	}
	shmreg_close(r);
	return have;
}

static char *stage_path(char *buf, const char *name)
{
	char f[256];

	snprintf(f, sizeof(f), "shmreg.%s.stage", name); /* shm/paths.h */
	return tc_path(buf, f);
}

static bool exists(const char *path)
{
	return access(path, F_OK) == 0;
}

/* The stage's copied and staged log offsets. */
static void stage_range(const char *name, uint64_t *copied, uint64_t *staged)
{
	char p[4096];
	int fd = open(stage_path(p, name), O_RDONLY);

	TC_CHECK(fd >= 0, "open %s: %s", p, strerror(errno));
	TC_EQ(pread(fd, copied, 8, 64), 8, "read copied");
	TC_EQ(pread(fd, staged, 8, 128), 8, "read staged");
	close(fd);
}

static void reopen_expect(const char *name, uint64_t n, size_t vlen,
			  const char *what)
{
	shmreg_writer_t *w;
	char p[4096];

	TC_EQ(open_dir(name, NULL, 0, 0, &w), 0, what);
	expect_len(name, n, vlen, what);
	put_len(w, n, vlen); /* and it takes changes */
	shmreg_writer_close(w);
	TC_CHECK(!exists(stage_path(p, name)), "%s: %s left after a close",
		 what, p);
	/* the history holds them now, without the stage */
	TC_EQ(open_dir(name, NULL, 0, 0, &w), 0, what);
	expect_len(name, n + 1, vlen, what);
	shmreg_writer_close(w);
}

static void case_staged_only(void)
{
	struct job j = { .name = "only", .batch_ms = 60000, .n = 20000 };
	uint64_t copied, staged;

	TC_EQ(crash(&j, 0), j.n, "all acknowledged");
	stage_range("only", &copied, &staged);
	/* every record but the first (168 bytes each) only staged: the
	 * thread copied the first before its one sync (wait_first_sync) */
	TC_CHECK(staged > copied && staged - copied == (j.n - 1) * 168,
		 "staged %llu, copied %llu", (unsigned long long)staged,
		 (unsigned long long)copied);
	reopen_expect("only", j.n, VLEN, "staged only");
}

static void case_overflow_rotation(void)
{
	/* a 64 KiB ring: 2 KiB values fill it every 30 puts (the writer
	 * then copies it into the log itself), records wrap around its end
	 * (the second mapping), a snapshot's rotation in the middle; the
	 * last records only staged (batch_ms 60 s) */
	struct job j = { .name = "ovf", .batch_ms = 60000, .n = 3000,
			 .snapshot_at = 1500, .vlen = VLEN_BIG,
			 .ring = SMALL_RING };
	char p[4096];

	TC_EQ(crash(&j, 0), j.n, "all acknowledged");
	TC_CHECK(exists(stage_path(p, "ovf")), "no stage after the crash");
	reopen_expect("ovf", j.n, VLEN_BIG, "overflow and rotation");
}

static void case_random_kill(uint64_t *seed)
{
	for (int round = 0; round < 3; round++) {
		struct job j = { .name = "rk", .batch_ms = 10, .n = 400000 };
		uint64_t at = tc_range(seed, 1000, 150000 / tc_scale()), n;
		shmreg_writer_t *w;

		n = crash(&j, at);
		TC_CHECK(n >= at, "acknowledged %llu", (unsigned long long)n);
		TC_EQ(open_dir("rk", NULL, 0, 0, &w), 0, "reopen");
		expect_keys("rk", n, "random kill");
		shmreg_writer_close(w);
		TC_EQ(open_dir("rk", NULL, 0, SHMREG_WRITER_TRUNCATE, &w), 0,
		      "truncate");
		shmreg_writer_close(w);
	}
}

static void case_damaged(void)
{
	struct job j = { .name = "dmg", .batch_ms = 60000, .n = 20000 };
	uint64_t copied, staged, off, have;
	shmreg_writer_t *w;
	char p[4096], q[4200], err[4096];
	uint8_t b;
	int fd;

	crash(&j, 0);
	stage_range("dmg", &copied, &staged);
	off = copied + (staged - copied) / 2;
	fd = open(stage_path(p, "dmg"), O_RDWR);
	TC_CHECK(fd >= 0, "open %s", p);
	TC_EQ(pread(fd, &b, 1, PSTAGE_HDR + (off % PSTAGE_CAP)), 1, "read");
	b ^= 0x40;
	TC_EQ(pwrite(fd, &b, 1, PSTAGE_HDR + (off % PSTAGE_CAP)), 1, "write");
	close(fd);
	TC_EQ(pt_open_captured("dmg", SHMREG_DURABILITY_BATCH, 0, &w, err,
			       sizeof(err)), -EBADMSG, "damaged stage");
	TC_CHECK(strstr(err, p) && strstr(err, "corrupt record"),
		 "stderr names the stage: %s", err);
	TC_CHECK(exists(p), "the refused stage stays");
	TC_EQ(pt_open_captured("dmg", SHMREG_DURABILITY_BATCH,
			       SHMREG_WRITER_KEEP_PREFIX, &w, err,
			       sizeof(err)), 0, "keep prefix");
	have = prefix_len("dmg", j.n, "kept prefix");
	/* the records before the damaged one, none after it */
	TC_CHECK(have > 0 && have < j.n, "kept %llu of %llu",
		 (unsigned long long)have, (unsigned long long)j.n);
	shmreg_writer_close(w);
	snprintf(q, sizeof(q), "%s.damaged", p);
	TC_CHECK(exists(q), "%s set aside", q);
}

static void case_other_dir(void)
{
	struct job j = { .name = "oth", .batch_ms = 60000, .n = 5000 };
	shmreg_writer_t *w;
	char p[4096], other[4096];
	shmreg_writer_opts_t o = { .durability = SHMREG_DURABILITY_BATCH };

	crash(&j, 0);
	o.data_dir = tc_path(other, "oth.other");
	TC_EQ(shmreg_writer_open("oth", &o, &w), -EEXIST,
	      "another data directory's stage");
	TC_CHECK(exists(stage_path(p, "oth")), "left alone");
	reopen_expect("oth", j.n, VLEN, "own directory after");
}

static void case_bad_header(void)
{
	shmreg_writer_t *w;
	char p[4096], q[4200], err[4096];
	static uint8_t junk[PSTAGE_HDR + 4096];

	memset(junk, 0x5a, sizeof(junk));
	tc_write_file(stage_path(p, "hdr"), junk, sizeof(junk));
	TC_EQ(pt_open_captured("hdr", SHMREG_DURABILITY_BATCH, 0, &w, err,
			       sizeof(err)), -EBADMSG, "junk stage");
	TC_CHECK(strstr(err, "not a valid stage file"), "stderr: %s", err);
	TC_EQ(pt_open_captured("hdr", SHMREG_DURABILITY_BATCH,
			       SHMREG_WRITER_KEEP_PREFIX, &w, err,
			       sizeof(err)), 0, "junk stage, keep prefix");
	shmreg_writer_close(w);
	snprintf(q, sizeof(q), "%s.damaged", p);
	TC_CHECK(exists(q), "%s set aside", q);
	/* shorter than a header: a writer that died creating it */
	tc_write_file(p, junk, 100);
	TC_EQ(pt_open("hdr", SHMREG_DURABILITY_NONE, 0, &w), 0, "short stage");
	TC_CHECK(!exists(p), "short stage removed");
	shmreg_writer_close(w);
	/* a zero magic: a writer that died (re)writing the header, which it
	 * does only with nothing staged */
	memset(junk, 0, 4);
	tc_write_file(p, junk, sizeof(junk));
	TC_EQ(pt_open("hdr", SHMREG_DURABILITY_NONE, 0, &w), 0, "zero magic");
	TC_CHECK(!exists(p), "zero-magic stage removed");
	shmreg_writer_close(w);
}

static void case_truncate(void)
{
	struct job j = { .name = "trn", .batch_ms = 60000, .n = 1000 };
	shmreg_writer_t *w;
	char p[4096];

	crash(&j, 0);
	TC_EQ(open_dir("trn", NULL, 0, SHMREG_WRITER_TRUNCATE, &w), 0,
	      "truncate");
	TC_EQ(prefix_len("trn", j.n, "truncated"), 0, "nothing restored");
	shmreg_writer_close(w);
	TC_CHECK(!exists(stage_path(p, "trn")), "stage dropped");
}

static void case_fork(void)
{
	shmreg_writer_t *w;
	char p[4096];
	pid_t pid;
	int st;

	TC_EQ(open_dir("frk", NULL, 60000, 0, &w), 0, "open");
	put_i(w, 0);
	pid = fork();
	TC_CHECK(pid >= 0, "fork");
	if (pid == 0) {
		shmreg_writer_close(w); /* the child's copy */
		_exit(exists(stage_path(p, "frk")) ? 0 : 3);
	}
	TC_EQ(waitpid(pid, &st, 0), pid, "waitpid");
	TC_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		 "the child's close removed the stage (status %d)", st);
	put_i(w, 1);
	shmreg_writer_close(w);
	TC_CHECK(!exists(stage_path(p, "frk")), "closed: no stage");
	TC_EQ(open_dir("frk", NULL, 0, 0, &w), 0, "reopen");
	expect_keys("frk", 2, "after the fork");
	shmreg_writer_close(w);
}

static char filler[4200];

/* Until a put is refused for space: acknowledged ones counted. */
static int full_child(struct tc_child *c, void *arg)
{
	struct job *j = arg;
	shmreg_writer_t *w;
	static char v[VLEN], buf[65536];
	int fd;

	TC_EQ(open_dir(j->name, j->dir, 60000, 0, &w), 0, "child open");
	/* the rest of the 4 MiB but about 1 MiB */
	fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	TC_CHECK(fd >= 0, "filler: %s", strerror(errno));
	for (int i = 0; i < 40; i++)
		if (write(fd, buf, sizeof(buf)) <= 0)
			break;
	close(fd);
	for (uint64_t i = 0;; i++) {
		char k[24];
		int64_t r;

		key_of(k, i);
		tv_build(v, VLEN, k, strlen(k), i);
		r = shmreg_writer_put(w, k, strlen(k), v, VLEN, NULL);
		if (r == -ENOSPC)
			break;
		TC_CHECK(r > 0, "put %s: %s", k, strerror((int)-r));
		TC_CHECK(i < 100000, "never full");
		*j->acked = i + 1;
	}
	TC_EQ(shmreg_writer_put(w, "again", 5, v, VLEN, NULL), -ENOSPC,
	      "still full");
	tc_post(c, 'D');
	tc_wait_parent(c, 600000);
	return 0;
}

static int case_enospc(void)
{
	struct job j = { .name = "full", .dir = NULL };
	const char *tiny = pt_mount_tiny();
	char dir[4200];
	struct tc_child *c;
	shmreg_writer_t *w;
	shmreg_t *r;
	uint64_t n;

	if (!tiny)
		return TC_SKIP;
	snprintf(dir, sizeof(dir), "%s/data", tiny);
	snprintf(filler, sizeof(filler), "%s/filler", tiny);
	j.dir = dir;
	j.acked = tc_shared(sizeof(uint64_t));
	c = tc_spawn("writer", full_child, &j);
	tc_expect(c, 'D', 120000);
	TC_EQ(tc_child_kill(c, 10000), 0, "kill the writer");
	tc_child_free(c);
	n = *j.acked;
	TC_CHECK(n > 10, "only %llu puts fit", (unsigned long long)n);
	unlink(filler); /* space returns */
	TC_EQ(open_dir("full", dir, 0, 0, &w), 0, "reopen");
	expect_len("full", n, VLEN, "after the full disk");
	TC_EQ(shmreg_open("full", 0, &r), 0, "reader");
	TC_EQ(shmreg_get(r, "again", 5, NULL, 0, NULL), -ENOENT,
	      "a refused put is not there");
	shmreg_close(r);
	put_len(w, n, VLEN); /* and changes work again */
	shmreg_writer_close(w);
	return 0;
}

int main(void)
{
	const char *only = getenv("PS_CASE");
	uint64_t seed;

	tc_init("persist_stage", 600);
	if (only && !strcmp(only, "enospc"))
		return case_enospc();
	seed = tc_seed();
	tv_selftest();
	case_staged_only();
	case_overflow_rotation();
	case_random_kill(&seed);
	case_damaged();
	case_other_dir();
	case_bad_header();
	case_truncate();
	case_fork();
	return 0;
}
