/* SPDX-License-Identifier: MIT */
/* Description: attacks by another user (uid 65534) on a root writer's
 * files in a sticky world-writable directory, one case per ctest
 * (TRUST_CASE): a read lock that keeps writers out (lock), files made
 * before the writer (precreate) or a lock file replaced under it, a mode
 * that outlives its open (mode), symbolic links (symlink), FIFOs (fifo),
 * a full tmpfs (enospc), planted and stale handoff files (handoff).  Each
 * asserts the clean outcome: the exact errno, the message, that nothing
 * of the attacker's is served, and that the writer still works after. */
#define _GNU_SOURCE
/* scratch paths are far shorter than PATH_MAX */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>

#include "shmreg.h"
#include "shmreg_writer.h"
#include "common/tc.h"

#define NOBODY 65534

static char dir[PATH_MAX];      /* the sticky, world-writable directory */
static char scratch[PATH_MAX];  /* its parent: root's, mode 0755 */

/* "$dir/shmreg.@name@suffix" */
static char *fpath(char *buf, const char *name, const char *suffix)
{
	snprintf(buf, PATH_MAX, "%s/shmreg.%s%s", dir, name, suffix);
	return buf;
}

/* Run @fn(@arg) in a child as uid/gid 65534 without groups; its exit
 * status (0: the attacker's steps went as the test expects). */
static int as_nobody(int (*fn)(void *), void *arg)
{
	pid_t pid = fork();
	int st;

	TC_CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setresgid(NOBODY, NOBODY,
							 NOBODY) < 0 ||
		    setresuid(NOBODY, NOBODY, NOBODY) < 0)
			_exit(99);
		_exit(fn(arg));
	}
	TC_CHECK(waitpid(pid, &st, 0) == pid, "waitpid");
	TC_CHECK(WIFEXITED(st), "attacker died of signal %d", WTERMSIG(st));
	return WEXITSTATUS(st);
}

static shmreg_writer_t *wopen(const char *name, uint32_t mode, int want)
{
	shmreg_writer_opts_t o = { .mode = mode };
	shmreg_writer_t *w = NULL;
	int rc = shmreg_writer_open(name, &o, &w);

	TC_EQ(rc, want, name);
	return w;
}

static void put(shmreg_writer_t *w, const char *k, const char *v)
{
	int64_t rev = shmreg_writer_put(w, k, strlen(k), v, strlen(v), NULL);

	TC_CHECK(rev > 0, "put %s: %lld", k, (long long)rev);
}

/* The value of @k in registry @name, read by a fresh reader handle. */
static void expect_value(const char *name, const char *k, const char *v)
{
	char buf[256];
	shmreg_t *r;
	ssize_t n;

	TC_EQ(shmreg_open(name, 0, &r), 0, "shmreg_open");
	n = shmreg_get(r, k, strlen(k), buf, sizeof(buf), NULL);
	if (!v) {
		TC_EQ(n, -ENOENT, k);
	} else {
		TC_EQ(n, (long long)strlen(v), k);
		TC_CHECK(!memcmp(buf, v, strlen(v)), "%s: wrong value", k);
	}
	shmreg_close(r);
}

static int state_of(const char *name)
{
	shmreg_stats_t st;
	shmreg_t *r;

	if (shmreg_open(name, 0, &r) < 0)
		return -1;
	if (shmreg_stats(r, &st) < 0)
		st.state = -1;
	shmreg_close(r);
	return st.state;
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	TC_CHECK(lstat(path, &st) == 0, "%s: %s", path, strerror(errno));
	return st.st_mode & 07777;
}

/* A root writer in a child process: opens @name, puts k=v, reports 'R',
 * then waits to be killed (or told to close). */
struct wchild {
	pid_t pid;
	int ready;   /* read end */
	int cmd;     /* write end */
};

static struct wchild spawn_writer(const char *name)
{
	int up[2], down[2];
	struct wchild c;
	char b;

	TC_CHECK(pipe(up) == 0 && pipe(down) == 0, "pipe");
	c.pid = fork();
	TC_CHECK(c.pid >= 0, "fork");
	if (c.pid == 0) {
		shmreg_writer_t *w = NULL;

		close(up[0]);
		close(down[1]);
		if (shmreg_writer_open(name, NULL, &w) < 0)
			_exit(2);
		if (shmreg_writer_put(w, "k", 1, "v1", 2, NULL) <= 0)
			_exit(3);
		if (write(up[1], "R", 1) != 1)
			_exit(4);
		(void)!read(down[0], &b, 1);
		shmreg_writer_close(w);
		_exit(0);
	}
	close(up[1]);
	close(down[0]);
	c.ready = up[0];
	c.cmd = down[1];
	TC_CHECK(read(c.ready, &b, 1) == 1 && b == 'R', "writer child failed");
	return c;
}

static void kill_writer(struct wchild *c)
{
	int st;

	kill(c->pid, SIGKILL);
	TC_CHECK(waitpid(c->pid, &st, 0) == c->pid, "waitpid");
	close(c->ready);
	close(c->cmd);
}

/* Run shmreg_writer_open(@name) with stderr captured; returns its result
 * and what it printed in @msg. */
static int wopen_msg(const char *name, char *msg, size_t cap)
{
	char tmp[PATH_MAX];
	shmreg_writer_t *w = NULL;
	int fd, saved, rc;
	ssize_t n;

	snprintf(tmp, sizeof(tmp), "%s/stderr.txt", scratch);
	fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC, 0600);
	TC_CHECK(fd >= 0, "open %s", tmp);
	fflush(stderr);
	saved = dup(2);
	dup2(fd, 2);
	rc = shmreg_writer_open(name, NULL, &w);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	n = pread(fd, msg, cap - 1, 0);
	msg[n > 0 ? n : 0] = 0;
	close(fd);
	if (rc == 0)
		shmreg_writer_close(w);
	return rc;
}

/* ---- 3: a read lock on the lock file ---- */

static int nobody_lock_attack(void *arg)
{
	char p[PATH_MAX];
	int fd;

	(void)arg;
	fd = open(fpath(p, "lk", ".lock"), O_RDONLY);
	if (fd >= 0) {
		struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET };

		/* the attack of the finding: would keep writers out */
		(void)fcntl(fd, F_OFD_SETLK, &fl);
		return 10;
	}
	return errno == EACCES ? 0 : 11;
}

static int nobody_sees(void *arg)
{
	int want = *(int *)arg, got = state_of("lk");

	if (got != want) {
		fprintf(stderr, "nobody: state %d, want %d\n", got, want);
		return 12;
	}
	return 0;
}

/* After the writer died: await notices within well under a second. */
static int nobody_awaits_death(void *arg)
{
	uint64_t t0 = tc_now_ns();
	char buf[16];
	shmreg_t *r;
	ssize_t n;

	(void)arg;
	if (shmreg_open("lk", 0, &r) < 0)
		return 13;
	n = shmreg_await(r, "absent", 6, buf, sizeof(buf), NULL,
			 5000000000ll);
	shmreg_close(r);
	if (n != -EOWNERDEAD) {
		fprintf(stderr, "nobody: await %zd\n", n);
		return 14;
	}
	return tc_now_ns() - t0 < 1000000000ull ? 0 : 15;
}

static void case_lock(void)
{
	char p[PATH_MAX];
	struct wchild c = spawn_writer("lk");
	shmreg_writer_t *w;
	int want;

	TC_EQ(mode_of(fpath(p, "lk", ".lock")), 0600, "lock file mode");
	TC_EQ(as_nobody(nobody_lock_attack, NULL), 0, "nobody opens .lock");
	want = SHMREG_STATE_OPEN;
	TC_EQ(as_nobody(nobody_sees, &want), 0, "nobody: writer alive");
	/* the writer cannot be told from another that runs, by the lock */
	wopen("lk", 0, -EBUSY);
	kill_writer(&c);
	want = SHMREG_STATE_DEAD;
	TC_EQ(as_nobody(nobody_sees, &want), 0, "nobody: writer dead");
	TC_EQ(as_nobody(nobody_awaits_death, NULL), 0, "nobody: await");
	TC_EQ(state_of("lk"), SHMREG_STATE_DEAD, "root: writer dead");

	/* a lock file an older version left readable is made 0600 */
	TC_CHECK(chmod(p, 0644) == 0, "chmod");
	w = wopen("lk", 0, 0);
	TC_EQ(mode_of(p), 0600, "lock file mode after takeover");
	expect_value("lk", "k", "v1");
	put(w, "k2", "after");
	shmreg_writer_close(w);
	TC_EQ(as_nobody(nobody_lock_attack, NULL), 0, "nobody opens .lock");
}

/* ---- 4: files made before the writer; a lock file replaced ---- */

static int nobody_precreate(void *arg)
{
	shmreg_writer_t *w = NULL;

	(void)arg;
	if (shmreg_writer_open("pre", NULL, &w) < 0)
		return 20;
	if (shmreg_writer_put(w, "config/admin", 12, "attacker", 8,
			      NULL) <= 0)
		return 21;
	shmreg_writer_close(w);
	return 0;
}

static int nobody_touch(void *arg)
{
	int fd = open(arg, O_RDWR | O_CREAT | O_EXCL, 0666);

	if (fd < 0)
		return 22;
	(void)!ftruncate(fd, 1 << 20);
	close(fd);
	return 0;
}

static int nobody_sees_open(void *arg)
{
	(void)arg;
	return state_of("rep") == SHMREG_STATE_OPEN ? 0 : 23;
}

static void case_precreate(void)
{
	static const char *const sfx[] = { "", ".lock", ".wait" };
	char p[PATH_MAX], msg[4096], want[PATH_MAX + 64];
	shmreg_writer_t *w;
	struct wchild c;

	TC_EQ(as_nobody(nobody_precreate, NULL), 0, "nobody's registry");
	TC_EQ(wopen_msg("pre", msg, sizeof(msg)), -EPERM, "root open");
	/* the first file vetted is the lock file */
	snprintf(want, sizeof(want), "refusing %s: owned by uid %d",
		 fpath(p, "pre", ".lock"), NOBODY);
	TC_CHECK(strstr(msg, want), "message: %s", msg);
	/* nothing was adopted, or served as root's */
	TC_EQ(mode_of(fpath(p, "pre", ".wait")) & 0777, 0644, "wait mode");

	/* each file alone, planted by nobody before root's first open */
	for (size_t i = 0; i < 3; i++) {
		char name[16];

		snprintf(name, sizeof(name), "pre%zu", i);
		TC_EQ(as_nobody(nobody_touch, fpath(p, name, sfx[i])), 0,
		      "plant");
		TC_EQ(wopen_msg(name, msg, sizeof(msg)), -EPERM, name);
		TC_CHECK(strstr(msg, p) && strstr(msg, "owned by uid 65534"),
			 "message: %s", msg);
		TC_CHECK(unlink(p) == 0, "unlink");
		w = wopen(name, 0, 0);
		put(w, "config/admin", "root");
		shmreg_writer_close(w);
	}

	/* the lock file removed, then replaced, under a live writer: it is
	 * still alive to readers, and no second writer gets in */
	c = spawn_writer("rep");
	TC_CHECK(unlink(fpath(p, "rep", ".lock")) == 0, "unlink lock");
	TC_EQ(state_of("rep"), SHMREG_STATE_OPEN, "lock removed: root");
	TC_EQ(as_nobody(nobody_sees_open, NULL), 0, "lock removed: nobody");
	wopen("rep", 0, -EBUSY);
	/* the failed open left a new lock file: a replaced one */
	TC_CHECK(access(p, F_OK) == 0, "new lock file");
	TC_EQ(state_of("rep"), SHMREG_STATE_OPEN, "lock replaced: root");
	TC_EQ(as_nobody(nobody_sees_open, NULL), 0, "lock replaced: nobody");
	wopen("rep", 0, -EBUSY);
	kill_writer(&c);
	TC_EQ(state_of("rep"), SHMREG_STATE_DEAD, "writer killed");
	w = wopen("rep", 0, 0);
	expect_value("rep", "k", "v1");
	put(w, "k", "v2");
	shmreg_writer_close(w);
}

/* ---- 5: the mode of every file is this open's ---- */

static int nobody_truncate_wait(void *arg)
{
	char p[PATH_MAX];

	(void)arg;
	if (truncate(fpath(p, "md", ".wait"), 0) == 0)
		return 30;
	if (errno != EACCES)
		return 31;
	if (truncate(fpath(p, "md", ""), 0) == 0)
		return 32;
	return 0;
}

static void case_mode(void)
{
	char p[PATH_MAX];
	shmreg_writer_t *w;

	w = wopen("md", 0666, 0);
	put(w, "a", "1");
	TC_EQ(mode_of(fpath(p, "md", "")), 0666, "segment 0666");
	TC_EQ(mode_of(fpath(p, "md", ".wait")), 0666, "wait 0666");
	TC_EQ(mode_of(fpath(p, "md", ".lock")), 0600, "lock 0600");
	shmreg_writer_close(w);

	w = wopen("md", 0644, 0);
	TC_EQ(mode_of(fpath(p, "md", "")), 0644, "segment 0644");
	TC_EQ(mode_of(fpath(p, "md", ".wait")), 0644, "wait 0644");
	TC_EQ(mode_of(fpath(p, "md", ".lock")), 0600, "lock 0600");
	TC_EQ(as_nobody(nobody_truncate_wait, NULL), 0, "nobody truncates");
	put(w, "b", "2");
	expect_value("md", "a", "1");
	shmreg_writer_close(w);

	w = wopen("md", 0640, 0);
	TC_EQ(mode_of(fpath(p, "md", "")), 0640, "segment 0640");
	TC_EQ(mode_of(fpath(p, "md", ".wait")), 0640, "wait 0640");
	shmreg_writer_close(w);
}

/* ---- 6: symbolic links ---- */

struct link_args {
	const char *target, *linkpath;
};

static int nobody_symlink(void *arg)
{
	struct link_args *a = arg;

	return symlink(a->target, a->linkpath) == 0 ? 0 : 40;
}

static void case_symlink(void)
{
	char p[PATH_MAX], secret[PATH_MAX], ghost[PATH_MAX], other[PATH_MAX];
	struct link_args a;
	shmreg_writer_t *w, *ow;
	shmreg_t *r;
	char msg[4096];
	int fd;

	snprintf(secret, sizeof(secret), "%s/secret", scratch);
	snprintf(ghost, sizeof(ghost), "%s/ghost", scratch);
	fd = open(secret, O_WRONLY | O_CREAT | O_EXCL, 0600);
	TC_CHECK(fd >= 0 && write(fd, "root only", 9) == 9, "secret");
	close(fd);

	/* .lock and .wait: to a root-only file, and dangling */
	static const char *const sfx[] = { ".lock", ".wait" };
	for (size_t i = 0; i < 2; i++) {
		a.linkpath = fpath(p, "ln", sfx[i]);
		a.target = secret;
		TC_EQ(as_nobody(nobody_symlink, &a), 0, "symlink");
		TC_EQ(wopen_msg("ln", msg, sizeof(msg)), -EPERM, sfx[i]);
		TC_CHECK(strstr(msg, "symbolic link"), "message: %s", msg);
		TC_EQ(mode_of(secret), 0600, "secret's mode");
		TC_CHECK(unlink(p) == 0, "unlink");
		a.target = ghost;
		TC_EQ(as_nobody(nobody_symlink, &a), 0, "symlink");
		TC_EQ(wopen_msg("ln", msg, sizeof(msg)), -EPERM, sfx[i]);
		TC_CHECK(access(ghost, F_OK) < 0 && errno == ENOENT,
			 "a dangling link made %s", ghost);
		TC_CHECK(unlink(p) == 0, "unlink");
		if (i == 0) {
			/* the lock is vetted first: let the writer make it
			 * so that .wait is reached */
			w = wopen("ln", 0, 0);
			shmreg_writer_close(w);
			TC_CHECK(unlink(fpath(p, "ln", ".wait")) == 0, "rm");
		}
	}

	/* the segment: a link to another live registry's 0600 segment */
	ow = wopen("other", 0600, 0);
	put(ow, "secret", "s3cr3t");
	a.target = fpath(other, "other", "");
	a.linkpath = fpath(p, "victim", "");
	TC_EQ(as_nobody(nobody_symlink, &a), 0, "symlink");
	TC_EQ(wopen_msg("victim", msg, sizeof(msg)), -EPERM, "victim");
	TC_CHECK(strstr(msg, p) && strstr(msg, "symbolic link"),
		 "message: %s", msg);
	TC_EQ(state_of("other"), SHMREG_STATE_OPEN, "other not retired");
	TC_EQ(mode_of(other), 0600, "other's mode");
	put(ow, "still", "works");
	/* readers: by name refused, by an absolute path (the caller's
	 * choice) followed */
	TC_EQ(shmreg_open("victim", 0, &r), -ELOOP, "reader by name");
	TC_EQ(shmreg_open(p, 0, &r), 0, "reader by absolute path");
	shmreg_close(r);
	shmreg_writer_close(ow);
}

/* ---- 7: FIFOs ---- */

static int nobody_mkfifo(void *arg)
{
	return mkfifo(arg, 0666) == 0 ? 0 : 50;
}

static void case_fifo(void)
{
	char p[PATH_MAX], msg[4096], buf[8];
	shmreg_writer_t *w;
	shmreg_t *r;

	alarm(20); /* a hang is the bug: fail instead of waiting forever */
	TC_EQ(as_nobody(nobody_mkfifo, fpath(p, "ff", "")), 0, "mkfifo");
	TC_EQ(shmreg_open("ff", 0, &r), -EPROTO, "reader on a FIFO");
	TC_EQ(shmreg_open(p, 0, &r), -EPROTO, "reader on a FIFO by path");
	TC_EQ(wopen_msg("ff", msg, sizeof(msg)), -EPERM, "writer on a FIFO");
	TC_CHECK(strstr(msg, "not a regular file"), "message: %s", msg);
	TC_CHECK(unlink(p) == 0, "unlink");
	w = wopen("ff", 0, 0);
	shmreg_writer_close(w);

	/* the lock file and the wait file */
	TC_EQ(as_nobody(nobody_mkfifo, fpath(p, "fl", ".lock")), 0, "mkfifo");
	TC_EQ(wopen_msg("fl", msg, sizeof(msg)), -EPERM, "FIFO .lock");
	TC_CHECK(unlink(p) == 0, "unlink");
	TC_EQ(as_nobody(nobody_mkfifo, fpath(p, "fw", ".wait")), 0, "mkfifo");
	TC_EQ(wopen_msg("fw", msg, sizeof(msg)), -EPERM, "FIFO .wait");
	TC_CHECK(unlink(p) == 0, "unlink");

	/* a FIFO put at .wait of a live registry (as in a directory where
	 * others may replace files): waiters poll, never hang */
	w = wopen("fw", 0, 0);
	TC_CHECK(unlink(p) == 0 && mkfifo(p, 0666) == 0, "replace .wait");
	TC_EQ(shmreg_open("fw", 0, &r), 0, "reader");
	TC_EQ(shmreg_await(r, "none", 4, buf, sizeof(buf), NULL, 50000000),
	      -ETIMEDOUT, "await beside a FIFO");
	shmreg_close(r);
	put(w, "x", "y");
	shmreg_writer_close(w);
	alarm(0);
}

/* ---- 8: a full tmpfs ---- */

static const shmreg_writer_opts_t small = {
	.initial_entries = 8, .initial_arena = 4096, .ring_events = 1024,
};

/* Open a writer in a child (a SIGBUS must not take the test with it);
 * its result, or 1000 + signal. */
static int child_open(const char *name, bool puts)
{
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		shmreg_writer_t *w = NULL;
		int rc = shmreg_writer_open(name, &small, &w);

		if (rc == 0 && puts)
			for (int i = 0; i < 4; i++)
				if (shmreg_writer_put(w, "k", 1, "v", 1,
						      NULL) <= 0)
					_exit(100);
		if (rc == 0)
			shmreg_writer_close(w);
		_exit(-rc);
	}
	TC_CHECK(waitpid(pid, &st, 0) == pid, "waitpid");
	if (WIFSIGNALED(st))
		return 1000 + WTERMSIG(st);
	return -WEXITSTATUS(st);
}

/* Leave about @avail bytes free on the tmpfs at dir. */
static void fill_to(const char *filler, off_t avail)
{
	struct statvfs vs;
	off_t free_b;
	int fd;

	unlink(filler);
	TC_CHECK(statvfs(dir, &vs) == 0, "statvfs");
	free_b = (off_t)vs.f_bavail * (off_t)vs.f_frsize;
	TC_CHECK(free_b > avail, "tmpfs too small");
	fd = open(filler, O_RDWR | O_CREAT, 0600);
	TC_CHECK(fd >= 0, "filler");
	TC_EQ(posix_fallocate(fd, 0, free_b - avail), 0, "fill");
	close(fd);
}

static void clean_reg(const char *name)
{
	char p[PATH_MAX];

	unlink(fpath(p, name, ""));
	unlink(fpath(p, name, ".wait"));
	unlink(fpath(p, name, ".lock"));
}

static pid_t mounter;

/* A failed check exits: leave no tmpfs mounted over the scratch dir. */
static void unmount_at_exit(void)
{
	if (getpid() == mounter)
		(void)umount2(dir, MNT_DETACH);
}

static void case_enospc(void)
{
	char p[PATH_MAX], filler[PATH_MAX];
	struct stat seg, wait;
	shmreg_writer_t *w = NULL;
	int rc, fd;

	/* the sizes, measured on the ordinary directory first */
	TC_EQ(shmreg_writer_open("size", &small, &w), 0, "size probe");
	shmreg_writer_close(w);
	TC_CHECK(stat(fpath(p, "size", ""), &seg) == 0, "stat");
	TC_CHECK(stat(fpath(p, "size", ".wait"), &wait) == 0, "stat");
	clean_reg("size");

	if (mount("shmreg-test", dir, "tmpfs", 0, "size=2m,mode=1777") < 0) {
		tc_log("SKIP: cannot mount a tmpfs: %s", strerror(errno));
		exit(TC_SKIP);
	}
	mounter = getpid();
	atexit(unmount_at_exit);
	snprintf(filler, sizeof(filler), "%s/filler", dir);

	/* not even the wait file fits */
	fill_to(filler, wait.st_size / 2);
	rc = child_open("full", false);
	TC_EQ(rc, -ENOSPC, "no room for the wait file");
	clean_reg("full");
	/* the wait file fits, the segment does not */
	fill_to(filler, wait.st_size + seg.st_size / 2);
	rc = child_open("full", false);
	TC_EQ(rc, -ENOSPC, "no room for the segment");
	clean_reg("full");
	/* a sparse wait file of an older version: its holes are filled at
	 * open, or -ENOSPC */
	fill_to(filler, 16384);
	fd = open(fpath(p, "full", ".wait"), O_RDWR | O_CREAT | O_EXCL, 0644);
	TC_CHECK(fd >= 0 && ftruncate(fd, wait.st_size) == 0, "sparse wait");
	close(fd);
	rc = child_open("full", false);
	TC_EQ(rc, -ENOSPC, "sparse wait file, full tmpfs");
	clean_reg("full");
	/* room for both */
	fill_to(filler, wait.st_size + 2 * seg.st_size + 65536);
	rc = child_open("full", true);
	TC_EQ(rc, 0, "room for both");
	unlink(filler);
	clean_reg("full");
	TC_CHECK(umount(dir) == 0, "umount: %s", strerror(errno));
	mounter = 0;
}

/* ---- 9: planted and stale handoff files ---- */

static int nobody_plant(void *arg)
{
	pid_t writer = *(pid_t *)arg;
	char p[PATH_MAX], name[PATH_MAX];
	int fd;

	/* the old name, and guesses at the new one */
	snprintf(name, sizeof(name), "%s.new.%d", fpath(p, "gr", ""),
		 (int)writer);
	fd = open(name, O_RDWR | O_CREAT | O_EXCL, 0644);
	if (fd < 0)
		return 60;
	close(fd);
	for (int i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "%s.new.%d.%016x",
			 fpath(p, "gr", ""), (int)writer, i);
		if (symlink("/nonexistent", name) < 0)
			return 61;
	}
	snprintf(name, sizeof(name), "%s.new.999", fpath(p, "st", ""));
	fd = open(name, O_RDWR | O_CREAT | O_EXCL, 0644);
	if (fd < 0)
		return 62;
	close(fd);
	return 0;
}

/* How many SEGMENT.new.* files of registry @name are there (of @uid, or
 * any when @uid is -1)? */
static int count_new(const char *name, int uid)
{
	char prefix[PATH_MAX];
	struct dirent *de;
	int n = 0;
	DIR *d = opendir(dir);

	TC_CHECK(d, "opendir");
	snprintf(prefix, sizeof(prefix), "shmreg.%s.new.", name);
	while ((de = readdir(d))) {
		struct stat st;
		char p[PATH_MAX];

		if (strncmp(de->d_name, prefix, strlen(prefix)))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (lstat(p, &st) == 0 && (uid < 0 || st.st_uid == (uid_t)uid))
			n++;
	}
	closedir(d);
	return n;
}

static void make_file(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0644);

	TC_CHECK(fd >= 0, "%s: %s", path, strerror(errno));
	TC_CHECK(ftruncate(fd, 65536) == 0, "ftruncate");
	close(fd);
}

static void case_handoff(void)
{
	char p[PATH_MAX], q[PATH_MAX], key[32], val[200];
	pid_t me = getpid();
	shmreg_writer_t *w;
	uint64_t seed = tc_seed();
	int eexist = 0, fails = 0;

	TC_EQ(as_nobody(nobody_plant, &me), 0, "plant");
	TC_EQ(shmreg_writer_open("gr", &small, &w), 0, "open");
	memset(val, 'v', sizeof(val));
	for (int i = 0; i < 2000; i++) {
		int64_t rev;

		snprintf(key, sizeof(key), "key/%d", i);
		rev = shmreg_writer_put(w, key, strlen(key), val,
					tc_range(&seed, 0, sizeof(val)), NULL);
		eexist += rev == -EEXIST;
		fails += rev <= 0;
	}
	TC_EQ(eexist, 0, "puts that came back -EEXIST");
	TC_EQ(fails, 0, "puts that failed");
	shmreg_writer_close(w);
	/* the planted files are nobody's: they stay, and harm nothing */
	TC_EQ(count_new("gr", NOBODY), 5, "nobody's planted files");
	TC_EQ(count_new("gr", 0), 0, "root's handoff files left");

	/* stale files of killed writers go at the next takeover; a
	 * registry whose name looks like one (it has a lock file) stays,
	 * and so does nobody's file */
	snprintf(q, sizeof(q), "%s.new.4242", fpath(p, "st", ""));
	make_file(q);
	snprintf(q, sizeof(q), "%s.new.4243.00ff00ff00ff00ff",
		 fpath(p, "st", ""));
	make_file(q);
	w = wopen("st.new.77", 0, 0);  /* a registry of its own */
	put(w, "mine", "yes");
	shmreg_writer_close(w);
	TC_EQ(count_new("st", -1), 2 + 3 + 1, "files before the takeover");
	w = wopen("st", 0, 0);
	shmreg_writer_close(w);
	TC_EQ(count_new("st", 0), 3, "the registry st.new.77's files");
	TC_EQ(count_new("st", NOBODY), 1, "nobody's");
	expect_value("st.new.77", "mine", "yes");

	/* writers killed in the middle of growth: whatever they left is
	 * gone after the next takeover */
	for (int round = 0; round < 12; round++) {
		pid_t pid = fork();
		int st;

		TC_CHECK(pid >= 0, "fork");
		if (pid == 0) {
			shmreg_writer_t *k = NULL;

			if (shmreg_writer_open("kl", &small, &k) < 0)
				_exit(2);
			for (int i = 0;; i++) {
				snprintf(key, sizeof(key), "k/%d", i);
				if (shmreg_writer_put(k, key, strlen(key), val,
						      sizeof(val), NULL) <= 0)
					_exit(3);
			}
		}
		usleep((useconds_t)tc_range(&seed, 2000, 30000));
		kill(pid, SIGKILL);
		TC_CHECK(waitpid(pid, &st, 0) == pid, "waitpid");
		TC_CHECK(WIFSIGNALED(st), "grower exited %d", WEXITSTATUS(st));
	}
	tc_log("handoff files left by killed writers: %d", count_new("kl", 0));
	w = wopen("kl", 0, 0);
	TC_EQ(count_new("kl", -1), 0, "handoff files after the takeover");
	put(w, "after", "kills");
	shmreg_writer_close(w);
}

int main(void)
{
	const char *c = getenv("TRUST_CASE");

	tc_init("trust", 100);
	if (geteuid() != 0) {
		tc_log("SKIP: the attacks need root and uid %d", NOBODY);
		return TC_SKIP;
	}
	if (!c) {
		tc_log("TRUST_CASE not set");
		return 1;
	}
	snprintf(scratch, sizeof(scratch), "%s", tc_dir());
	snprintf(dir, sizeof(dir), "%s/shm", scratch);
	TC_CHECK(mkdir(dir, 0755) == 0 && chmod(dir, 01777) == 0 &&
		 chmod(scratch, 0755) == 0, "mkdir %s", dir);
	setenv("SHMREG_DIR", dir, 1);
	if (!strcmp(c, "lock"))
		case_lock();
	else if (!strcmp(c, "precreate"))
		case_precreate();
	else if (!strcmp(c, "mode"))
		case_mode();
	else if (!strcmp(c, "symlink"))
		case_symlink();
	else if (!strcmp(c, "fifo"))
		case_fifo();
	else if (!strcmp(c, "enospc"))
		case_enospc();
	else if (!strcmp(c, "handoff"))
		case_handoff();
	else
		TC_CHECK(0, "unknown TRUST_CASE %s", c);
	tc_log("ok: %s", c);
	return 0;
}
