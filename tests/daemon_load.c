/* SPDX-License-Identifier: MIT */
/* Description: shmregd --load and SIGHUP: a directory tree loaded at start
 * with its .attrs; a malformed .attrs at reload changes nothing and the
 * log names the file; the fixed tree then adds, replaces and deletes in
 * one commit, leaving unchanged entries' mod_rev alone; per-registry
 * --mode gives two registries of one daemon their own file modes. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/tc.h"
#include "daemon_harness.h"

static struct dh h;
static char top[256], logpath[300];

static void put_file(const char *rel, const char *text)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/%s", top, rel);
	tc_write_file(p, text, strlen(text));
}

static void rm_file(const char *rel)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/%s", top, rel);
	TC_CHECK(unlink(p) == 0, "unlink %s: %s", p, strerror(errno));
}

static void check_val(shmreg_t *r, const char *key, const char *want,
		      shmreg_info_t *info)
{
	char buf[256];
	ssize_t n = shmreg_get(r, key, strlen(key), buf, sizeof(buf), info);

	TC_CHECK(n >= 0, "get %s: %s", key, strerror((int)-n));
	TC_CHECK((size_t)n == strlen(want) && !memcmp(buf, want, (size_t)n),
		 "get %s: %.*s, want %s", key, (int)n, buf, want);
}

static void check_attrs(shmreg_t *r, const char *key, const char *want,
			size_t wlen)
{
	char buf[512];
	ssize_t n = shmreg_get_attrs(r, key, strlen(key), buf, sizeof(buf));

	TC_CHECK(n >= 0, "get_attrs %s: %s", key, strerror((int)-n));
	TC_CHECK((size_t)n == wlen && !memcmp(buf, want, wlen),
		 "attrs of %s differ (%zd bytes, want %zu)", key, n, wlen);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Poll (bounded: 10 s, 5 ms steps) until the revision is @want. */
static void wait_rev(shmreg_t *r, uint64_t want)
{
	uint64_t end = now_ms() + 10000;

	while (shmreg_revision(r) != want) {
		TC_CHECK(now_ms() < end, "revision %llu, want %llu",
			 (unsigned long long)shmreg_revision(r),
			 (unsigned long long)want);
		usleep(5000);
	}
}

/* Poll (bounded: 10 s) until the daemon's log holds @needle. */
static void wait_log(const char *needle)
{
	uint64_t end = now_ms() + 10000;
	static char buf[1 << 16];

	for (;;) {
		int fd = open(logpath, O_RDONLY | O_CLOEXEC);
		ssize_t n;

		TC_CHECK(fd >= 0, "open %s: %s", logpath, strerror(errno));
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		buf[n > 0 ? n : 0] = '\0';
		if (strstr(buf, needle))
			return;
		TC_CHECK(now_ms() < end, "log has no \"%s\":\n%s", needle,
			 buf);
		usleep(5000);
	}
}

static void file_mode(const char *name, mode_t want)
{
	const char *dir = getenv("SHMREG_DIR");
	char p[512];
	struct stat st;

	snprintf(p, sizeof(p), "%s/shmreg.%s", dir && *dir ? dir : "/dev/shm",
		 name);
	TC_CHECK(stat(p, &st) == 0, "stat %s: %s", p, strerror(errno));
	TC_EQ((unsigned)(st.st_mode & 07777), (unsigned)want, p);
}

/*
 * A bad tree at start: shmregd must exit 1 before serving, its log naming
 * @file and @why.  Run on its own registry and socket, in a tree @bad of
 * its own.
 */
static void bad_start(const char *bad, const char *file, const char *why)
{
	const char *bin = getenv("SHMREGD");
	char reg[64], sock[128], out[300], buf[4096], want[600];
	ssize_t n;
	pid_t pid;
	int st, fd;

	snprintf(reg, sizeof(reg), "loadbad.%d", (int)getpid());
	snprintf(sock, sizeof(sock), "%s/bad.sock", h.dir);
	snprintf(out, sizeof(out), "%s.badlog", top);
	pid = fork();
	TC_CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || dup2(fd, 2) < 0)
			_exit(126);
		execl(bin, bin, "--registry", reg, "--truncate", "--socket",
		      sock, "--load", bad, (char *)NULL);
		_exit(127);
	}
	/* bounded: a daemon that started after all is killed, not waited
	 * for */
	for (uint64_t end = now_ms() + 10000;;) {
		pid_t w = waitpid(pid, &st, WNOHANG);

		TC_CHECK(w >= 0, "waitpid: %s", strerror(errno));
		if (w == pid)
			break;
		if (now_ms() >= end) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			TC_CHECK(0, "shmregd on %s started: want exit 1", file);
		}
		usleep(5000);
	}
	TC_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1,
		 "shmregd on %s: status 0x%x, want exit 1", file, st);
	fd = open(out, O_RDONLY | O_CLOEXEC);
	TC_CHECK(fd >= 0, "open %s", out);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	snprintf(want, sizeof(want), "%s/%s: %s", bad, file, why);
	TC_CHECK(strstr(buf, want), "log lacks \"%s\":\n%s", want, buf);
	unlink(out);
}

/* The refusals at start, each in a tree of its own under @top. */
static void bad_trees(void)
{
	char d[400], p[600];
	char *big;
	int fd;

	snprintf(d, sizeof(d), "%s.bad1", top);
	TC_CHECK(mkdir(d, 0755) == 0, "mkdir");
	snprintf(p, sizeof(p), "%s/link", d);
	TC_CHECK(symlink("/etc/passwd", p) == 0, "symlink");
	bad_start(d, "link", "a symbolic link (not followed)");
	unlink(p);

	snprintf(p, sizeof(p), "%s/fifo", d);
	TC_CHECK(mkfifo(p, 0600) == 0, "mkfifo");
	bad_start(d, "fifo", "not a regular file");
	unlink(p);

	snprintf(p, sizeof(p), "%s/x.attrs", d);
	tc_write_file(p, "a=b\n", 4);
	bad_start(d, "x.attrs", "attributes of no file");
	unlink(p);

	snprintf(p, sizeof(p), "%s/x", d);
	tc_write_file(p, "v", 1);
	snprintf(p, sizeof(p), "%s/x.attrs", d);
	{
		char many[400] = "";

		for (int i = 0; i <= SHMREG_ATTRS_MAX; i++)
			snprintf(many + strlen(many),
				 sizeof(many) - strlen(many), "a%d=v\n", i);
		tc_write_file(p, many, strlen(many));
	}
	bad_start(d, "x.attrs", "line 17: too many attributes");
	unlink(p);

	/* a file one byte over SHMREG_VALUE_MAX (sparse: no memory) */
	snprintf(p, sizeof(p), "%s/x", d);
	fd = open(p, O_WRONLY | O_TRUNC);
	TC_CHECK(fd >= 0 && ftruncate(fd, SHMREG_VALUE_MAX + 1) == 0,
		 "ftruncate");
	close(fd);
	bad_start(d, "x", "larger than SHMREG_VALUE_MAX");
	unlink(p);

	/* a key over SHMREG_KEY_MAX: a name of 255 bytes in nested dirs */
	big = malloc(SHMREG_KEY_MAX + 600);
	TC_CHECK(big, "malloc");
	snprintf(big, SHMREG_KEY_MAX + 600, "%s", d);
	for (int i = 0; i < 5; i++) {
		size_t l = strlen(big);

		big[l] = '/';
		memset(big + l + 1, 'k', 250);
		big[l + 251] = '\0';
		if (i < 4)
			TC_CHECK(mkdir(big, 0755) == 0, "mkdir long");
	}
	tc_write_file(big, "v", 1);
	{
		/* the directory path is cut in the middle in the log */
		char *rel = big + strlen(d) + 1, *last = strrchr(rel, '/');

		*last = '\0';
		snprintf(p, sizeof(p), "%.40s...%s/%s", rel,
			 rel + strlen(rel) - 40, last + 1);
		bad_start(d, p, "key longer than SHMREG_KEY_MAX");
	}
	free(big);
}

int main(void)
{
	static const char skill_attrs[] = "kind\0skill\0lang\0en\0";
	const char *sd = getenv("SHMREG_DIR");
	char regb[64], msg[600];
	shmreg_info_t i_skill, i2;
	uint64_t rev;
	shmreg_t *r;
	int saved, lfd;

	tc_init("daemon_load", 60);
	snprintf(top, sizeof(top), "%s/load.XXXXXX", sd && *sd ? sd : "/tmp");
	TC_CHECK(mkdtemp(top), "mkdtemp: %s", strerror(errno));
	snprintf(logpath, sizeof(logpath), "%s.log", top);
	snprintf(msg, sizeof(msg), "%s/skill", top);
	TC_CHECK(mkdir(msg, 0755) == 0, "mkdir: %s", strerror(errno));
	put_file("skill/SKILL.md", "# A skill\n");
	put_file("skill/SKILL.md.attrs", "# what it is\n\nkind=skill\n"
		 "lang=en\n");
	put_file("skill/a", "A");
	put_file("skill/gone", "G");
	put_file("top", "T");

	dh_init(&h, "load");
	bad_trees();
	snprintf(regb, sizeof(regb), "load-b.%d", (int)getpid());
	/* the daemon's log into a file of our own, to find its messages */
	saved = dup(2);
	lfd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	TC_CHECK(saved >= 0 && lfd >= 0, "log: %s", strerror(errno));
	dup2(lfd, 2);
	dh_start(&h, (const char *const[]){ "--mode", "0640", "--load", top,
		 "--registry", regb, "--mode", "0600", NULL });
	dup2(saved, 2);
	close(saved);
	close(lfd);

	/* per-registry modes */
	file_mode(h.reg, 0640);
	file_mode(regb, 0600);

	/* 1. loaded at start, in one batch: 4 files, 4 revisions */
	r = dh_open(&h);
	TC_EQ(shmreg_revision(r), 4ull, "revision after the load");
	check_val(r, "skill/SKILL.md", "# A skill\n", &i_skill);
	check_attrs(r, "skill/SKILL.md", skill_attrs, sizeof(skill_attrs) - 1);
	check_val(r, "skill/a", "A", NULL);
	check_attrs(r, "skill/a", "", 0);
	check_val(r, "skill/gone", "G", NULL);
	check_val(r, "top", "T", NULL);
	TC_CHECK(shmreg_get(r, "skill/SKILL.md.attrs", 20, NULL, 0, NULL) ==
		 -ENOENT, ".attrs is no entry");
	rev = shmreg_revision(r);

	/* 2. a malformed .attrs: nothing changes, the log names it */
	put_file("top.attrs", "ok=1\nno equals sign here\n");
	put_file("skill/a", "A2");
	TC_CHECK(kill(h.pid, SIGHUP) == 0, "SIGHUP");
	snprintf(msg, sizeof(msg), "%s/top.attrs: line 2", top);
	wait_log(msg);
	TC_EQ(shmreg_revision(r), rev, "revision after a failed reload");
	check_val(r, "skill/a", "A", NULL);
	check_attrs(r, "top", "", 0);

	/* 3. fixed: a changed, top's attributes changed, gone removed, new
	 * added - four revisions in one commit; SKILL.md untouched */
	put_file("top.attrs", "ok=1\n");
	rm_file("skill/gone");
	put_file("new", "N");
	TC_CHECK(kill(h.pid, SIGHUP) == 0, "SIGHUP");
	wait_rev(r, rev + 4);
	check_val(r, "skill/a", "A2", NULL);
	check_attrs(r, "top", "ok\0" "1\0", 5);
	check_val(r, "new", "N", NULL);
	TC_CHECK(shmreg_get(r, "skill/gone", 10, NULL, 0, NULL) == -ENOENT,
		 "gone is deleted");
	check_val(r, "skill/SKILL.md", "# A skill\n", &i2);
	TC_EQ(i2.mod_rev, i_skill.mod_rev, "unchanged file keeps its mod_rev");
	check_attrs(r, "skill/SKILL.md", skill_attrs, sizeof(skill_attrs) - 1);

	/* 4. a reload with nothing changed uses no revision */
	TC_CHECK(kill(h.pid, SIGHUP) == 0, "SIGHUP");
	wait_log("0 put, 0 deleted");
	TC_EQ(shmreg_revision(r), rev + 4, "revision after an empty reload");

	shmreg_close(r);
	TC_EQ(dh_stop(&h, SIGTERM), 0, "clean exit");
	dh_cleanup(&h);
	return 0;
}
