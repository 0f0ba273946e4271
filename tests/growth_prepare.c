/* SPDX-License-Identifier: MIT */
/* Description: the next growth's segment made ahead by the writer's helper
 * thread (writer/prepare.c).  GP_CASE=contents: not requested while the
 * index is the size asked for, then with the very put that grows it (the
 * load a growth leaves, 3/8, is the trigger), and again with the put of
 * each prepared growth; the very file the growth then publishes; a
 * registry grown with it reads back whole.  GP_CASE=fork: a child forked
 * while the helper works or holds a prepared file closes its copy of the
 * writer without hanging and without removing the parent's file; the
 * parent grows on.  GP_CASE=enospc (root: a tiny tmpfs): the helper's -ENOSPC leaves no
 * file and costs nothing; the growth then fails with -ENOSPC itself,
 * losing nothing, and succeeds once there is room. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "shmreg.h"
#include "shmreg_writer.h"
#include "common/tc.h"
#include "prepare.h"

#define NAME "gp"
/* the defaults: 1,024 entries -> 2,048 slots, the size asked for: no
 * helper for the first growth (at the 1,537th entry, to 4,096 slots).
 * That growth leaves the load at the trigger, 3/8, so the same put asks
 * the helper for the next segment, and the growth comes at 3/4 (the
 * 3,073rd). */
#define INITIAL_CAP 2048u
#define FIRST_CAP   4096u
#define AT_FIRST    (INITIAL_CAP / 4 * 3 + 1)
#define AT_REQUEST  AT_FIRST
#define AT_GROWTH   (FIRST_CAP / 4 * 3 + 1)
_Static_assert(FIRST_CAP / PREP_LOAD_DEN * PREP_LOAD_NUM < AT_FIRST,
	       "the trigger is at most the load a growth leaves");
#define WAIT_MS     20000

static char dir[PATH_MAX / 2];

static int key_of(char *buf, uint32_t i)
{
	return snprintf(buf, 24, "gp:%07u", i);
}

static size_t size_of(uint32_t i)
{
	return TV_MIN + i % 48;
}

static int64_t put_one(shmreg_writer_t *w, uint32_t i)
{
	uint8_t val[64];
	char key[24];
	int klen = key_of(key, i);

	tv_build(val, size_of(i), key, (size_t)klen, i);
	return shmreg_writer_put(w, key, (size_t)klen, val, size_of(i), NULL);
}

/* Insert keys [from, to): each must succeed. */
static void put_range(shmreg_writer_t *w, uint32_t from, uint32_t to)
{
	for (uint32_t i = from; i < to; i++) {
		int64_t rev = put_one(w, i);

		TC_CHECK(rev > 0, "put #%u: %s", i, strerror((int)-rev));
	}
}

/* Every key below @n reads back exactly, and nothing else is there. */
static void check_all(shmreg_t *r, uint32_t n)
{
	shmreg_stats_t st;
	uint8_t buf[64];
	char key[24];

	for (uint32_t i = 0; i < n; i++) {
		int klen = key_of(key, i);
		ssize_t got = shmreg_get(r, key, (size_t)klen, buf, sizeof(buf),
					 NULL);

		TC_CHECK(got == (ssize_t)size_of(i), "get %s: %zd", key, got);
		TC_CHECK(tv_check(buf, (size_t)got, key, (size_t)klen, NULL) ==
				 0, "%s: wrong value", key);
	}
	TC_EQ(shmreg_stats(r, &st), 0, "stats");
	TC_EQ(st.entries, n, "stats.entries");
}

/* The helper's state once it is @want (or the deadline passed). */
static enum prep_state wait_state(shmreg_writer_t *w, enum prep_state want,
				  int *err)
{
	uint64_t end = tc_now_ns() + (uint64_t)WAIT_MS * 1000000u;
	enum prep_state st;

	while ((st = prep_debug_state(w, err)) != want && tc_now_ns() < end) {
		struct timespec ms = { 0, 1000000 };

		nanosleep(&ms, NULL);
	}
	return st;
}

/* How many SEGMENT.new.* files the directory holds; the last one's path
 * in @path (when not NULL). */
static int new_files(char *path)
{
	char prefix[64];
	struct dirent *de;
	int n = 0;
	DIR *d = opendir(dir);

	TC_CHECK(d, "opendir %s: %s", dir, strerror(errno));
	snprintf(prefix, sizeof(prefix), "shmreg.%s.new.", NAME);
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, prefix, strlen(prefix))) {
			n++;
			if (path)
				snprintf(path, PATH_MAX, "%s/%s", dir,
					 de->d_name);
		}
	closedir(d);
	return n;
}

static void reg_stat(struct stat *st)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/shmreg.%s", dir, NAME);
	TC_CHECK(stat(p, st) == 0, "stat %s: %s", p, strerror(errno));
}

static void open_both(shmreg_writer_t **w, shmreg_t **r,
		      const shmreg_writer_opts_t *o)
{
	int rc = shmreg_writer_open(NAME, o, w);

	TC_CHECK(rc == 0, "writer_open: %s", strerror(-rc));
	rc = shmreg_open(NAME, 0, r);
	TC_CHECK(rc == 0, "shmreg_open: %s", strerror(-rc));
}

/* Up to the request, then the prepared file: ready, bigger than the
 * segment in use, and (after the growth) the registry's file itself. */
static void grow_through_prepared(shmreg_writer_t *w, shmreg_t *r)
{
	char path[PATH_MAX];
	struct stat prep, now;
	shmreg_stats_t st;
	int err = 0, fd;

	TC_EQ(wait_state(w, PREP_READY, &err), PREP_READY, "helper ready");
	TC_EQ(new_files(path), 1, "one prepared file");
	/* held open: its inode number cannot go to another file meanwhile */
	fd = open(path, O_RDONLY | O_CLOEXEC);
	TC_CHECK(fd >= 0 && fstat(fd, &prep) == 0, "open %s: %s", path,
		 strerror(errno));
	TC_EQ(shmreg_stats(r, &st), 0, "stats");
	TC_CHECK((uint64_t)prep.st_size > st.segment_bytes, "prepared file "
		 "of %lld B for a segment of %llu B", (long long)prep.st_size,
		 (unsigned long long)st.segment_bytes);
	put_range(w, AT_REQUEST, AT_GROWTH - 1);
	TC_EQ(shmreg_stats(r, &st), 0, "stats");
	TC_EQ(st.index_capacity, FIRST_CAP, "no growth before 3/4");
	put_range(w, AT_GROWTH - 1, AT_GROWTH);
	reg_stat(&now);
	TC_EQ((uint64_t)now.st_ino, (uint64_t)prep.st_ino,
	      "the growth published the prepared file");
	TC_CHECK(fstat(fd, &prep) == 0 && prep.st_nlink == 1, "the prepared "
		 "file was removed");
	close(fd);
	/* the same put asked for the next one: another file */
	TC_CHECK(prep_debug_state(w, &err) != PREP_IDLE, "the next growth's "
		 "segment is requested with this one");
	TC_EQ(wait_state(w, PREP_READY, &err), PREP_READY, "helper ready "
	      "again");
	TC_EQ(new_files(path), 1, "the next prepared file");
	TC_CHECK(stat(path, &prep) == 0, "stat %s: %s", path, strerror(errno));
	TC_CHECK(prep.st_ino != now.st_ino, "a new file, not the published "
		 "one");
	TC_EQ(shmreg_stats(r, &st), 0, "stats");
	TC_EQ(st.index_capacity, 2 * FIRST_CAP, "grown once");
	TC_CHECK((uint64_t)prep.st_size > st.segment_bytes, "next prepared "
		 "file of %lld B for a segment of %llu B",
		 (long long)prep.st_size, (unsigned long long)st.segment_bytes);
}

static void case_contents(void)
{
	shmreg_writer_opts_t o = { .flags = SHMREG_WRITER_TRUNCATE };
	uint32_t n = 200000 / tc_scale();
	shmreg_writer_t *w;
	shmreg_stats_t st;
	shmreg_t *r;
	int err = 0;

	open_both(&w, &r, &o);
	/* within the size asked for: no helper, whatever the load */
	put_range(w, 0, AT_FIRST - 1);
	TC_EQ(prep_debug_state(w, &err), PREP_IDLE, "no request at the "
	      "initial size");
	TC_EQ(new_files(NULL), 0, "no prepared file at the initial size");
	TC_EQ(shmreg_stats(r, &st), 0, "stats");
	TC_EQ(st.index_capacity, INITIAL_CAP, "not grown yet");
	/* the first growth, and the request with it */
	put_range(w, AT_FIRST - 1, AT_REQUEST);
	TC_EQ(shmreg_stats(r, &st), 0, "stats");
	TC_EQ(st.index_capacity, FIRST_CAP, "the first growth");
	TC_CHECK(prep_debug_state(w, &err) != PREP_IDLE, "the request came "
		 "with the first growth");
	grow_through_prepared(w, r);
	/* and on through the later doublings */
	put_range(w, AT_GROWTH, n);
	check_all(r, n);
	shmreg_writer_close(w);
	TC_EQ(new_files(NULL), 0, "nothing left behind by close");
	shmreg_close(r);
}

struct fork_arg {
	shmreg_writer_t *w;
	const char *keep;      /* a prepared file that must survive */
};

/* The child: its copy of the helper is off, and closing the writer
 * neither hangs (tc_child_join's deadline) nor removes the parent's
 * prepared file. */
static int child_close(struct tc_child *c, void *arg)
{
	struct fork_arg *a = arg;
	struct stat st;
	int err = 0;

	(void)c;
	TC_EQ(prep_debug_state(a->w, &err), PREP_OFF, "child's helper state");
	shmreg_writer_close(a->w);
	if (a->keep)
		TC_CHECK(stat(a->keep, &st) == 0, "the parent's prepared "
			 "file is gone: %s", strerror(errno));
	return 0;
}

static void fork_close(shmreg_writer_t *w, const char *keep)
{
	struct fork_arg a = { w, keep };
	struct tc_child *c = tc_spawn("close", child_close, &a);

	tc_child_join(c, WAIT_MS);
	tc_child_free(c);
}

static void case_fork(void)
{
	shmreg_writer_opts_t o = { .flags = SHMREG_WRITER_TRUNCATE };
	char path[PATH_MAX];
	shmreg_writer_t *w;
	shmreg_t *r;
	int err = 0;

	open_both(&w, &r, &o);
	put_range(w, 0, AT_REQUEST);
	/* at once: the helper is starting or making the file */
	fork_close(w, NULL);
	TC_EQ(wait_state(w, PREP_READY, &err), PREP_READY, "helper ready");
	TC_EQ(new_files(path), 1, "one prepared file");
	/* again with the file made */
	fork_close(w, path);
	grow_through_prepared(w, r);
	check_all(r, AT_GROWTH);
	shmreg_writer_close(w);
	TC_EQ(new_files(NULL), 0, "nothing left behind");
	shmreg_close(r);
}

static pid_t mounter;

/* A failed check exits: leave no tmpfs mounted over the scratch dir. */
static void unmount_at_exit(void)
{
	if (getpid() == mounter)
		(void)umount2(dir, MNT_DETACH);
}

static uint64_t free_bytes(void)
{
	struct statvfs v;

	TC_CHECK(statvfs(dir, &v) == 0, "statvfs: %s", strerror(errno));
	return (uint64_t)v.f_bavail * v.f_frsize;
}

static void case_enospc(void)
{
	shmreg_writer_opts_t o = { .flags = SHMREG_WRITER_TRUNCATE,
				   .ring_events = 1024,
				   .initial_arena = 64u << 10 };
	char filler[PATH_MAX + 8], path[PATH_MAX];
	uint64_t room, s0, s1, s2;
	shmreg_writer_t *w;
	shmreg_stats_t st;
	struct stat sb;
	shmreg_t *r;
	int fd, err = 0, rc;

	if (mount("shmreg-gp", dir, "tmpfs", 0, "size=8m,mode=1777") < 0) {
		tc_log("SKIP: cannot mount a tmpfs: %s", strerror(errno));
		exit(TC_SKIP);
	}
	mounter = getpid();
	atexit(unmount_at_exit);
	/* The sizes this needs, from a first run of the same registry: the
	 * segment of the first growth (s1) and the next one, the helper's
	 * (s2).  The request comes with the growing put (see AT_REQUEST), so
	 * the filler must be in place before that put. */
	open_both(&w, &r, &o);
	put_range(w, 0, AT_FIRST);
	TC_EQ(shmreg_stats(r, &st), 0, "stats");
	s1 = st.segment_bytes;
	TC_EQ(wait_state(w, PREP_READY, &err), PREP_READY, "helper ready");
	TC_EQ(new_files(path), 1, "one prepared file");
	TC_CHECK(stat(path, &sb) == 0, "stat %s: %s", path, strerror(errno));
	s2 = (uint64_t)sb.st_size;
	shmreg_writer_close(w);
	shmreg_close(r);

	open_both(&w, &r, &o); /* truncated: the registry anew */
	put_range(w, 0, AT_FIRST - 1);
	TC_EQ(shmreg_stats(r, &st), 0, "stats");
	TC_EQ(st.index_capacity, INITIAL_CAP, "not grown yet");
	s0 = st.segment_bytes;
	/* room for the first growth's segment and half the one in use:
	 * the helper, asked during that growth's copy, finds s0 / 2 free,
	 * or 1.5 * s0 once the old segment is gone: less than s2 either way */
	TC_CHECK(s2 > s0 + s0 / 2, "segments of %llu, %llu B",
		 (unsigned long long)s0, (unsigned long long)s2);
	room = free_bytes();
	TC_CHECK(room > s1 + s0 / 2, "tmpfs of %llu free B",
		 (unsigned long long)room);
	snprintf(filler, sizeof(filler), "%s/filler", dir);
	fd = open(filler, O_RDWR | O_CREAT | O_EXCL, 0600);
	TC_CHECK(fd >= 0, "filler: %s", strerror(errno));
	rc = posix_fallocate(fd, 0, (off_t)(room - s1 - s0 / 2));
	TC_EQ(rc, 0, "fallocate filler");
	close(fd);

	put_range(w, AT_FIRST - 1, AT_REQUEST); /* grows, then asks */
	TC_EQ(shmreg_stats(r, &st), 0, "stats");
	TC_EQ(st.index_capacity, FIRST_CAP, "the first growth");
	TC_EQ(wait_state(w, PREP_FAILED, &err), PREP_FAILED, "helper failed");
	TC_EQ(err, -ENOSPC, "the helper's error");
	TC_EQ(new_files(NULL), 0, "the failed file is removed");
	/* below the limit nothing needs the helper */
	put_range(w, AT_REQUEST, AT_GROWTH - 1);
	/* the growth makes its own segment, and fails the same way */
	TC_EQ(put_one(w, AT_GROWTH - 1), -ENOSPC, "growth on a full tmpfs");
	TC_EQ(new_files(NULL), 0, "nothing left by the failed growth");
	check_all(r, AT_GROWTH - 1);
	TC_CHECK(put_one(w, 0) > 0, "a replacing put needs no growth");
	/* room again: the same insert grows */
	TC_EQ(unlink(filler), 0, "unlink filler");
	TC_CHECK(put_one(w, AT_GROWTH - 1) > 0, "growth with room");
	TC_EQ(shmreg_stats(r, &st), 0, "stats");
	TC_EQ(st.index_capacity, 2 * FIRST_CAP, "grown once");
	check_all(r, AT_GROWTH);
	shmreg_writer_close(w);
	shmreg_close(r);
	TC_EQ(new_files(NULL), 0, "nothing left behind");
	/* detached: the reader library keeps the wait file mapped */
	TC_CHECK(umount2(dir, MNT_DETACH) == 0, "umount: %s", strerror(errno));
	mounter = 0;
}

int main(void)
{
	const char *c = getenv("GP_CASE");
	const char *d = getenv("SHMREG_DIR");

	tc_init("growth_prepare", 100);
	tc_dir();
	TC_CHECK(c && d && strlen(d) < sizeof(dir), "GP_CASE and SHMREG_DIR");
	snprintf(dir, sizeof(dir), "%s", d);
	if (!strcmp(c, "contents"))
		case_contents();
	else if (!strcmp(c, "fork"))
		case_fork();
	else if (!strcmp(c, "enospc"))
		case_enospc();
	else
		TC_CHECK(0, "unknown GP_CASE %s", c);
	return 0;
}
