/* SPDX-License-Identifier: MIT */
/* tc.c - helpers shared by the multi-process test suites (see tc.h). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tc.h"

#define TC_MAX_CHILDREN 128

static const char *tc_name = "test";
static char tc_role[32] = "main";
static pid_t tc_main_pid;
static char tc_dir_buf[PATH_MAX];
static bool tc_dir_made;          /* we created it: remove at exit */

/* Children of this process, for the failure and watchdog paths.  Written
 * only by this process's main flow; read by the SIGALRM handler, which only
 * calls kill() on them (a stale or 0 entry is skipped). */
static volatile sig_atomic_t tc_kids[TC_MAX_CHILDREN];

static void tc_kids_add(pid_t pid)
{
	for (int i = 0; i < TC_MAX_CHILDREN; i++) {
		if (tc_kids[i] == 0) {
			tc_kids[i] = pid;
			return;
		}
	}
	tc_fail_at(__FILE__, __LINE__, "children", "more than %d children",
		   TC_MAX_CHILDREN);
}

static void tc_kids_del(pid_t pid)
{
	for (int i = 0; i < TC_MAX_CHILDREN; i++)
		if (tc_kids[i] == pid)
			tc_kids[i] = 0;
}

static void tc_kill_kids(void)
{
	for (int i = 0; i < TC_MAX_CHILDREN; i++) {
		pid_t p = tc_kids[i];

		if (p > 0)
			kill(p, SIGKILL);
	}
}

static void tc_remove_dir(void)
{
	DIR *d;
	struct dirent *e;
	char p[PATH_MAX + 256];

	if (!tc_dir_made || getpid() != tc_main_pid)
		return;
	d = opendir(tc_dir_buf);
	if (d) {
		while ((e = readdir(d)) != NULL) {
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			snprintf(p, sizeof(p), "%s/%s", tc_dir_buf, e->d_name);
			unlink(p);
		}
		closedir(d);
	}
	rmdir(tc_dir_buf);
	tc_dir_made = false;
}

void tc_fail_at(const char *file, int line, const char *cond,
		const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "%s[%s %d]: FAIL %s:%d: %s: ", tc_name, tc_role,
		(int)getpid(), file, line, cond);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (getpid() != tc_main_pid)
		_exit(1);
	tc_kill_kids();
	for (int i = 0; i < TC_MAX_CHILDREN; i++)
		if (tc_kids[i] > 0)
			waitpid(tc_kids[i], NULL, 0);
	exit(1);
}

void tc_log(const char *fmt, ...)
{
	va_list ap;
	char buf[1024];
	int n;

	/* one write per line so that lines of several processes interleave
	 * whole */
	n = snprintf(buf, sizeof(buf), "%s[%s]: ", tc_name, tc_role);
	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	va_end(ap);
	n = (int)strlen(buf);
	if (n < (int)sizeof(buf) - 1 && (n == 0 || buf[n - 1] != '\n'))
		buf[n++] = '\n';
	if (write(STDERR_FILENO, buf, (size_t)n) < 0)
		return;
}

static void tc_watchdog(int sig)
{
	static const char msg[] = ": FAIL watchdog: the test ran out of time\n";

	(void)sig;
	if (write(STDERR_FILENO, tc_name, strlen(tc_name)) < 0 ||
	    write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0)
		_exit(1);
	tc_kill_kids();
	_exit(1);
}

void tc_init(const char *name, unsigned max_seconds)
{
	tc_name = name;
	tc_main_pid = getpid();
	/* a child that died leaves its pipe without a reader: report EPIPE
	 * instead of dying of SIGPIPE */
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, tc_watchdog);
	alarm(max_seconds);
	atexit(tc_remove_dir);
}

void tc_set_role(const char *role)
{
	snprintf(tc_role, sizeof(tc_role), "%s", role);
}

uint64_t tc_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

bool tc_counts_reached(_Atomic unsigned long *counts, unsigned n,
		       unsigned long floor)
{
	for (unsigned i = 0; i < n; i++)
		if (atomic_load(&counts[i]) < floor)
			return false;
	return true;
}

uint64_t tc_seed(void)
{
	static uint64_t seed;
	static bool have;
	const char *s;

	if (have)
		return seed;
	s = getenv("SHMREG_TEST_SEED");
	if (s && *s)
		seed = strtoull(s, NULL, 0);
	else
		seed = tc_now_ns() ^ ((uint64_t)getpid() << 32);
	have = true;
	tc_log("seed %llu (repeat with SHMREG_TEST_SEED=%llu)",
	       (unsigned long long)seed, (unsigned long long)seed);
	return seed;
}

bool tc_sanitized(void)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
	__has_feature(memory_sanitizer)
	return true;
#else
	return false;
#endif
#else
	return false;
#endif
}

unsigned tc_scale(void)
{
	const char *s = getenv("SHMREG_TEST_SCALE");
	long v;

	if (s && *s) {
		v = strtol(s, NULL, 10);
		if (v >= 1 && v <= 1000000)
			return (unsigned)v;
	}
	return tc_sanitized() ? 10 : 1;
}

/* ---- self-checking values ---- */

static inline uint64_t tv_mix(uint64_t h, uint64_t w)
{
	h ^= w;
	h *= UINT64_C(0xff51afd7ed558ccd);
	return (h << 31 | h >> 33) + UINT64_C(0x9e3779b97f4a7c15);
}

static uint64_t tv_mix_bytes(uint64_t h, const uint8_t *p, size_t n)
{
	uint64_t w;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		memcpy(&w, p + i, 8);
		h = tv_mix(h, w);
	}
	if (i < n) {
		w = 0;
		memcpy(&w, p + i, n - i);
		h = tv_mix(h, w ^ ((uint64_t)(n - i) << 56));
	}
	return h;
}

static uint64_t tv_sum(const void *key, size_t klen, const uint8_t *v,
		       size_t len)
{
	uint64_t h = UINT64_C(0x243f6a8885a308d3) ^ ((uint64_t)len << 20) ^
		     klen;

	h = tv_mix_bytes(h, key, klen);
	h = tv_mix(h, UINT64_C(0x13198a2e03707344));   /* key/value boundary */
	h = tv_mix_bytes(h, v, len - 8);
	h ^= h >> 33;
	h *= UINT64_C(0xc4ceb9fe1a85ec53);
	return h ^ (h >> 33);
}

void tv_build(void *buf, size_t len, const void *key, size_t klen,
	      uint64_t seq)
{
	uint8_t *v = buf;
	uint64_t st = seq ^ ((uint64_t)len * UINT64_C(0x2545f4914f6cdd1d));
	uint64_t sum;
	size_t i = 0;

	if (len < TV_MIN)
		tc_fail_at(__FILE__, __LINE__, "len >= TV_MIN", "len %zu", len);
	if (len >= 16) {
		memcpy(v, &seq, 8);
		i = 8;
	} else {
		memcpy(v, &seq, len - 8);
		i = len - 8;
	}
	for (; i + 8 <= len - 8; i += 8) {
		uint64_t r = tc_rand(&st);

		memcpy(v + i, &r, 8);
	}
	if (i < len - 8) {
		uint64_t r = tc_rand(&st);

		memcpy(v + i, &r, len - 8 - i);
	}
	sum = tv_sum(key, klen, v, len);
	memcpy(v + len - 8, &sum, 8);
}

int tv_check(const void *buf, size_t len, const void *key, size_t klen,
	     uint64_t *seq)
{
	const uint8_t *v = buf;
	uint64_t sum;

	if (len < TV_MIN)
		return -1;
	memcpy(&sum, v + len - 8, 8);
	if (sum != tv_sum(key, klen, v, len))
		return -1;
	if (seq) {
		*seq = UINT64_MAX;
		if (len >= 16)
			memcpy(seq, v, 8);
	}
	return 0;
}

void tv_selftest(void)
{
	static const size_t lens[] = { TV_MIN, 9, 15, 16, 17, 70, 71, 4096 };
	uint8_t a[4096], b[4096], m[4096];

	for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
		size_t len = lens[l];

		tv_build(a, len, "key:1", 5, 1);
		tv_build(b, len, "key:1", 5, 2);
		if (tv_check(a, len, "key:1", 5, NULL) ||
		    tv_check(b, len, "key:1", 5, NULL))
			tc_fail_at(__FILE__, __LINE__, "tv_selftest",
				   "a good value of %zu bytes fails", len);
		if (!tv_check(a, len, "key:2", 5, NULL) ||
		    !tv_check(a, len, "key:1x", 6, NULL))
			tc_fail_at(__FILE__, __LINE__, "tv_selftest",
				   "another key's value passes (%zu B)", len);
		if (len > TV_MIN && !tv_check(a, len - 1, "key:1", 5, NULL))
			tc_fail_at(__FILE__, __LINE__, "tv_selftest",
				   "a truncated value passes (%zu B)", len);
		for (size_t i = 0; i < len; i++) {
			memcpy(m, a, len);
			m[i] ^= 0x10;
			if (!tv_check(m, len, "key:1", 5, NULL))
				tc_fail_at(__FILE__, __LINE__, "tv_selftest",
					   "a flip at byte %zu of %zu passes",
					   i, len);
		}
		if (len < 16)
			continue;   /* no room for two differing halves */
		/* torn: the first half of one version, the rest of another */
		for (size_t cut = 1; cut < len; cut += len / 8 + 1) {
			memcpy(m, a, cut);
			memcpy(m + cut, b + cut, len - cut);
			if (!memcmp(m, a, len) || !memcmp(m, b, len))
				continue;
			if (!tv_check(m, len, "key:1", 5, NULL))
				tc_fail_at(__FILE__, __LINE__, "tv_selftest",
					   "a splice at %zu of %zu passes",
					   cut, len);
		}
	}
}

void tv_dump(const char *what, const void *buf, size_t len)
{
	const uint8_t *v = buf;
	char hex[3 * 32 + 1];
	size_t n = len < 32 ? len : 32;

	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		hex[3 * i] = digits[v[i] >> 4];
		hex[3 * i + 1] = digits[v[i] & 15];
		hex[3 * i + 2] = ' ';
	}
	hex[3 * n] = 0;
	tc_log("%s: %zu bytes: %s%s", what, len, hex, len > n ? "..." : "");
}

/* ---- scratch registries ---- */

const char *tc_dir(void)
{
	const char *d;

	if (tc_dir_buf[0])
		return tc_dir_buf;
	d = getenv("SHMREG_DIR");
	if (d && *d) {
		snprintf(tc_dir_buf, sizeof(tc_dir_buf), "%s", d);
		if (mkdir(tc_dir_buf, 0700) && errno != EEXIST)
			tc_fail_at(__FILE__, __LINE__, "mkdir", "%s: %s",
				   tc_dir_buf, strerror(errno));
		return tc_dir_buf;
	}
	snprintf(tc_dir_buf, sizeof(tc_dir_buf), "%s/shmreg-%s-XXXXXX",
		 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", tc_name);
	if (!mkdtemp(tc_dir_buf))
		tc_fail_at(__FILE__, __LINE__, "mkdtemp", "%s: %s", tc_dir_buf,
			   strerror(errno));
	tc_dir_made = true;
	setenv("SHMREG_DIR", tc_dir_buf, 1);
	return tc_dir_buf;
}

char *tc_path(char *buf, const char *file)
{
	if (snprintf(buf, PATH_MAX, "%s/%s", tc_dir(), file) >= PATH_MAX)
		tc_fail_at(__FILE__, __LINE__, "tc_path", "%s: too long", file);
	return buf;
}

static void tc_write_all(int fd, const void *buf, size_t len, const char *p)
{
	const uint8_t *b = buf;

	while (len) {
		ssize_t n = write(fd, b, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			tc_fail_at(__FILE__, __LINE__, "write", "%s: %s", p,
				   strerror(errno));
		b += n;
		len -= (size_t)n;
	}
}

void tc_copy_file(const char *from, const char *to, size_t n,
		  size_t off, const void *patch, size_t plen)
{
	char buf[65536];
	int in, out;

	in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		tc_fail_at(__FILE__, __LINE__, "open", "%s: %s", from,
			   strerror(errno));
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0)
		tc_fail_at(__FILE__, __LINE__, "open", "%s: %s", to,
			   strerror(errno));
	while (n > 0) {
		ssize_t r = read(in, buf, n < sizeof(buf) ? n : sizeof(buf));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			tc_fail_at(__FILE__, __LINE__, "read", "%s: %s", from,
				   strerror(errno));
		if (r == 0)
			break;
		tc_write_all(out, buf, (size_t)r, to);
		n -= (size_t)r;
	}
	if (plen && pwrite(out, patch, plen, (off_t)off) != (ssize_t)plen)
		tc_fail_at(__FILE__, __LINE__, "pwrite", "%s: %s", to,
			   strerror(errno));
	close(in);
	close(out);
}

void tc_write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0)
		tc_fail_at(__FILE__, __LINE__, "open", "%s: %s", path,
			   strerror(errno));
	tc_write_all(fd, buf, len, path);
	close(fd);
}

void *tc_shared(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		tc_fail_at(__FILE__, __LINE__, "mmap", "%zu bytes: %s", size,
			   strerror(errno));
	return p;
}

/* ---- child processes ---- */

struct tc_child *tc_spawn(const char *name, tc_child_fn fn, void *arg)
{
	struct tc_child *c = calloc(1, sizeof(*c));
	int down[2], up[2];
	pid_t parent = getpid();

	if (!c || pipe2(down, O_CLOEXEC) || pipe2(up, O_CLOEXEC))
		tc_fail_at(__FILE__, __LINE__, "spawn", "%s", strerror(errno));
	snprintf(c->name, sizeof(c->name), "%s", name);
	fflush(stdout);
	fflush(stderr);
	c->pid = fork();
	if (c->pid < 0)
		tc_fail_at(__FILE__, __LINE__, "fork", "%s", strerror(errno));
	if (c->pid == 0) {
		/* die with the test, and do not miss a parent that died
		 * before the prctl */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		alarm(0);
		for (int i = 0; i < TC_MAX_CHILDREN; i++)
			tc_kids[i] = 0;
		tc_set_role(name);
		close(down[1]);
		close(up[0]);
		c->to_child = down[0];
		c->from_child = up[1];
		int rc = fn(c, arg);
		fflush(stdout);
		_exit(rc);
	}
	close(down[0]);
	close(up[1]);
	c->to_child = down[1];
	c->from_child = up[0];
	tc_kids_add(c->pid);
	return c;
}

static int tc_read_byte(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint64_t end = tc_now_ns() + (uint64_t)timeout_ms * 1000000u;
	uint8_t b;

	for (;;) {
		int64_t left = (int64_t)(end - tc_now_ns()) / 1000000;
		int n;

		if (left < 0)
			left = 0;
		n = poll(&p, 1, timeout_ms < 0 ? -1 : (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ETIMEDOUT;
		ssize_t r = read(fd, &b, 1);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EPIPE;
		return b;
	}
}

static void tc_write_byte(int fd, uint8_t b, const char *who)
{
	for (;;) {
		ssize_t r = write(fd, &b, 1);

		if (r == 1)
			return;
		if (r < 0 && errno == EINTR)
			continue;
		tc_fail_at(__FILE__, __LINE__, "pipe write", "%s: %s", who,
			   r < 0 ? strerror(errno) : "short write");
	}
}

void tc_tell(struct tc_child *c, uint8_t byte)
{
	tc_write_byte(c->to_child, byte, c->name);
}

int tc_hear(struct tc_child *c, int timeout_ms)
{
	return tc_read_byte(c->from_child, timeout_ms);
}

void tc_expect(struct tc_child *c, uint8_t want, int timeout_ms)
{
	int b = tc_hear(c, timeout_ms);

	if (b == want)
		return;
	if (b == -EPIPE) {
		tc_child_wait(c, 5000);
		tc_fail_at(__FILE__, __LINE__, "tc_expect",
			   "%s exited (status 0x%x) instead of posting '%c'",
			   c->name, c->status, want);
	}
	tc_fail_at(__FILE__, __LINE__, "tc_expect",
		   "%s: waiting for '%c': got %d (%s)", c->name, want, b,
		   b < 0 ? strerror(-b) : "unexpected byte");
}

void tc_post(struct tc_child *c, uint8_t byte)
{
	tc_write_byte(c->from_child, byte, "parent");
}

int tc_wait_parent(struct tc_child *c, int timeout_ms)
{
	return tc_read_byte(c->to_child, timeout_ms);
}

int tc_child_wait(struct tc_child *c, int timeout_ms)
{
	int pfd, st;
	pid_t r;

	if (c->reaped)
		return 0;
	pfd = (int)syscall(SYS_pidfd_open, c->pid, 0);
	if (pfd >= 0) {
		struct pollfd p = { .fd = pfd, .events = POLLIN };
		uint64_t end = tc_now_ns() + (uint64_t)timeout_ms * 1000000u;
		int n;

		do {
			int64_t left = (int64_t)(end - tc_now_ns()) / 1000000;

			n = poll(&p, 1, left < 0 ? 0 : (int)left);
		} while (n < 0 && errno == EINTR);
		close(pfd);
		if (n == 0) {
			kill(c->pid, SIGKILL);
			waitpid(c->pid, &c->status, 0);
			c->reaped = true;
			tc_kids_del(c->pid);
			return -ETIMEDOUT;
		}
	} else {
		/* no pidfd (kernel < 5.3): poll the exit status with short
		 * sleeps; this only bounds the wait, it decides nothing */
		uint64_t end = tc_now_ns() + (uint64_t)timeout_ms * 1000000u;

		for (;;) {
			r = waitpid(c->pid, &st, WNOHANG);
			if (r == c->pid) {
				c->status = st;
				c->reaped = true;
				tc_kids_del(c->pid);
				return 0;
			}
			if (tc_now_ns() > end) {
				kill(c->pid, SIGKILL);
				waitpid(c->pid, &c->status, 0);
				c->reaped = true;
				tc_kids_del(c->pid);
				return -ETIMEDOUT;
			}
			usleep(1000);
		}
	}
	do {
		r = waitpid(c->pid, &st, 0);
	} while (r < 0 && errno == EINTR);
	if (r != c->pid)
		tc_fail_at(__FILE__, __LINE__, "waitpid", "%s: %s", c->name,
			   strerror(errno));
	c->status = st;
	c->reaped = true;
	tc_kids_del(c->pid);
	return 0;
}

void tc_child_join(struct tc_child *c, int timeout_ms)
{
	if (tc_child_wait(c, timeout_ms) == -ETIMEDOUT)
		tc_fail_at(__FILE__, __LINE__, "tc_child_join",
			   "%s did not exit within %d ms (killed)", c->name,
			   timeout_ms);
	if (WIFSIGNALED(c->status))
		tc_fail_at(__FILE__, __LINE__, "tc_child_join",
			   "%s died of signal %d (%s)", c->name,
			   WTERMSIG(c->status), strsignal(WTERMSIG(c->status)));
	if (!WIFEXITED(c->status) || WEXITSTATUS(c->status) != 0)
		tc_fail_at(__FILE__, __LINE__, "tc_child_join",
			   "%s exited with status %d", c->name,
			   WEXITSTATUS(c->status));
}

int tc_child_kill(struct tc_child *c, int timeout_ms)
{
	if (!c->reaped)
		kill(c->pid, SIGKILL);
	return tc_child_wait(c, timeout_ms);
}

void tc_child_free(struct tc_child *c)
{
	if (!c)
		return;
	if (!c->reaped)
		tc_child_kill(c, 5000);
	close(c->to_child);
	close(c->from_child);
	free(c);
}
