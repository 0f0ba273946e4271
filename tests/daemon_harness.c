/* SPDX-License-Identifier: MIT */
/* daemon_harness.c - start/stop shmregd for the daemon test suites. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/tc.h"
#include "daemon_harness.h"
#include "proto.h"

void dh_init(struct dh *h, const char *reg)
{
	memset(h, 0, sizeof(*h));
	strcpy(h->dir, "/tmp/shmregd-test-XXXXXX");
	TC_CHECK(mkdtemp(h->dir), "mkdtemp: %s", strerror(errno));
	TC_CHECK(chmod(h->dir, 0755) == 0, "chmod: %s", strerror(errno));
	snprintf(h->sock, sizeof(h->sock), "%s/d.sock", h->dir);
	h->reg = reg;
	tc_dir(); /* exports SHMREG_DIR for the daemon too */
}

void dh_start(struct dh *h, const char *const *extra)
{
	const char *bin = getenv("SHMREGD");
	const char *argv[64];
	char fdarg[16], buf[16];
	int p[2], n = 0, st;
	ssize_t got = 0;

	TC_CHECK(bin && *bin, "SHMREGD is not set (run through ctest)");
	TC_CHECK(pipe2(p, O_CLOEXEC) == 0, "pipe: %s", strerror(errno));
	snprintf(fdarg, sizeof(fdarg), "%d", p[1]);
	argv[n++] = bin;
	argv[n++] = "--registry";
	argv[n++] = h->reg;
	argv[n++] = "--socket";
	argv[n++] = h->sock;
	argv[n++] = "--ready-fd";
	argv[n++] = fdarg;
	for (int i = 0; extra && extra[i] && n < 62; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;

	h->pid = fork();
	TC_CHECK(h->pid >= 0, "fork: %s", strerror(errno));
	if (h->pid == 0) {
		/* the daemon must not outlive a test that failed */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		fcntl(p[1], F_SETFD, 0);
		close(p[0]);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	/* READY\n, or EOF when it exits before serving */
	while (got < 6) {
		ssize_t r = read(p[0], buf + got, sizeof(buf) - 1 - (size_t)got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += r;
	}
	close(p[0]);
	if (got >= 6 && !memcmp(buf, "READY\n", 6))
		return;
	TC_CHECK(waitpid(h->pid, &st, 0) == h->pid, "waitpid");
	h->pid = 0;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 69) {
		tc_log("SKIP: shmregd reports io_uring unavailable here");
		dh_cleanup(h);
		exit(TC_SKIP);
	}
	TC_CHECK(0, "shmregd did not start (status 0x%x)", st);
}

int dh_stop(struct dh *h, int sig)
{
	int st;

	if (!h->pid)
		return -1;
	kill(h->pid, sig);
	while (waitpid(h->pid, &st, 0) < 0)
		TC_CHECK(errno == EINTR, "waitpid: %s", strerror(errno));
	h->pid = 0;
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + WTERMSIG(st);
}

void dh_cleanup(struct dh *h)
{
	DIR *d;

	if (h->pid)
		dh_stop(h, SIGKILL);
	/* the directory is ours alone: the socket, and registries that a
	 * test put there */
	d = opendir(h->dir);
	if (d) {
		struct dirent *e;

		while ((e = readdir(d)))
			if (e->d_name[0] != '.')
				unlinkat(dirfd(d), e->d_name, 0);
		closedir(d);
	}
	rmdir(h->dir);
}

shmreg_client_t *dh_connect(struct dh *h)
{
	shmreg_client_t *c = NULL;
	int ret = shmreg_connect(h->sock, h->reg, &c);

	TC_CHECK(ret == 0, "shmreg_connect: %s", strerror(-ret));
	return c;
}

shmreg_t *dh_open(struct dh *h)
{
	shmreg_t *r = NULL;
	int ret = shmreg_open(h->reg, 0, &r);

	TC_CHECK(ret == 0, "shmreg_open: %s", strerror(-ret));
	return r;
}

int dh_wait_gone(shmreg_t *r, const char *key, int timeout_ms)
{
	uint64_t deadline = tc_now_ns() + (uint64_t)timeout_ms * 1000000;
	size_t klen = strlen(key);

	for (;;) {
		shmreg_info_t info;
		ssize_t n = shmreg_get(r, key, klen, NULL, 0, &info);
		uint64_t now = tc_now_ns();
		int ret;

		if (n == -ENOENT)
			return 0;
		if (now >= deadline)
			return -ETIMEDOUT;
		TC_CHECK(n >= 0 || n == -EAGAIN, "get %s: %s", key,
			 strerror((int)-n));
		ret = shmreg_watch_key(r, key, klen, n >= 0 ? info.mod_rev : 0,
				       (int64_t)(deadline - now), NULL);
		if (ret == -ENOENT)
			return 0;
		TC_CHECK(ret == 0 || ret == -ETIMEDOUT, "watch_key %s: %s",
			 key, strerror(-ret));
	}
}

shmreg_daemon_stats_t dh_stats(struct dh *h)
{
	shmreg_client_t *c = dh_connect(h);
	shmreg_daemon_stats_t ds;

	TC_EQ(shmreg_client_stats(c, NULL, &ds), 0, "stats");
	shmreg_disconnect(c);
	return ds;
}

void dh_need_root(const char *why)
{
	if (geteuid() != 0) {
		tc_log("SKIP: needs root to %s", why);
		exit(TC_SKIP);
	}
}

void dh_reg_in_dir(struct dh *h, const char *name)
{
	snprintf(h->regpath, sizeof(h->regpath), "%s/%s", h->dir, name);
	h->reg = h->regpath;
}

void dh_become(uid_t uid, gid_t gid)
{
	TC_CHECK(setgroups(0, &gid) == 0, "setgroups: %s", strerror(errno));
	TC_CHECK(setresgid(gid, gid, gid) == 0, "setresgid: %s",
		 strerror(errno));
	TC_CHECK(setresuid(uid, uid, uid) == 0, "setresuid: %s",
		 strerror(errno));
}

int dh_raw_connect(const struct dh *h)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	TC_CHECK(fd >= 0, "socket");
	strcpy(sa.sun_path, h->sock);
	TC_CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0,
		 "connect: %s", strerror(errno));
	return fd;
}

void dh_send_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		TC_CHECK(n > 0, "send: %s", strerror(errno));
		p += n;
		len -= (size_t)n;
	}
}

bool dh_read_reply(int fd, struct proto_reply *rep, uint8_t *buf)
{
	size_t got = 0;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n, want;

		want = proto_decode_reply(buf, got, rep);
		TC_CHECK(want >= 0, "malformed reply from the daemon");
		if (want > 0)
			return true;
		TC_EQ(poll(&p, 1, 10000), 1, "reply in time");
		/* read no further than the frame: the length is known once
		 * the header is in */
		want = got < PROTO_REPLY_HDR_SIZE ? PROTO_REPLY_HDR_SIZE
						  : proto_get_u32(buf);
		n = recv(fd, buf + got, (size_t)want - got, 0);
		if (n == 0 || (n < 0 && errno == ECONNRESET)) {
			TC_CHECK(got == 0, "EOF inside a reply");
			return false;
		}
		TC_CHECK(n > 0, "recv: %s", strerror(errno));
		got += (size_t)n;
	}
}

bool dh_closed(int fd, int timeout_ms, const char *what)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c;
	ssize_t n;

	if (poll(&p, 1, timeout_ms) != 1)
		return false;
	n = recv(fd, &c, 1, MSG_DONTWAIT);
	TC_CHECK(n == 0 || (n < 0 && errno == ECONNRESET),
		 "%s: got %zd (%s)", what, n,
		 n < 0 ? strerror(errno) : "data");
	return true;
}
