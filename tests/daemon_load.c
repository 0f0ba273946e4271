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
