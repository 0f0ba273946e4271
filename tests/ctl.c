/* SPDX-License-Identifier: MIT */
/* Description: shmregctl end to end: every command through the real
 * binary, exact outputs and exit codes, --json parsed by python3, usage
 * errors, durations, where writes go (named sockets, the embedded
 * fallback), rm-registry, signals, the daemon path and shmregd's own
 * command line. */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shmreg.h"
#include "shmreg_writer.h"

/* Every wait in this test is bounded by this (generous: sanitizer builds on
 * a loaded 2-core machine); a hang is a failure, never a stuck ctest. */
#define DEADLINE_MS 20000

static const char *ctl;          /* the shmregctl binary */
static char dir[PATH_MAX];       /* scratch directory (SHMREG_DIR) */
static pid_t kids[16];           /* children to kill if a check fails */

static void kids_add(pid_t pid)
{
	for (size_t i = 0; i < sizeof(kids) / sizeof(kids[0]); i++)
		if (!kids[i]) {
			kids[i] = pid;
			return;
		}
}

static void kids_del(pid_t pid)
{
	for (size_t i = 0; i < sizeof(kids) / sizeof(kids[0]); i++)
		if (kids[i] == pid)
			kids[i] = 0;
}

__attribute__((noreturn, format(printf, 2, 3)))
static void die(int line, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "ctl: FAIL at line %d: ", line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	for (size_t i = 0; i < sizeof(kids) / sizeof(kids[0]); i++)
		if (kids[i] > 0) {
			kill(kids[i], SIGKILL);
			waitpid(kids[i], NULL, 0);
		}
	exit(1);
}

#define CHECK(cond, ...)                                                     \
	do {                                                                 \
		if (!(cond))                                                 \
			die(__LINE__, "(" #cond ") " __VA_ARGS__);           \
	} while (0)

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- running shmregctl ---- */

struct buf {
	char *p;
	size_t len, cap;
};

static void buf_add(struct buf *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			die(__LINE__, "out of memory");
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

struct proc {
	pid_t pid;
	int in, out, err;       /* our ends: -1 when closed */
	struct buf o, e;        /* what it wrote so far */
	int status;             /* exit status (or 128 + signal) */
	bool signaled;          /* killed by a signal, not exited */
};

static void proc_start(struct proc *p, const char *const *args)
{
	int in[2], out[2], err[2];
	const char *argv[32];
	int n = 0;

	memset(p, 0, sizeof(*p));
	argv[n++] = ctl;
	for (; *args; args++) {
		CHECK(n < 31, "too many arguments");
		argv[n++] = *args;
	}
	argv[n] = NULL;
	CHECK(pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0 &&
	      pipe2(err, O_CLOEXEC) == 0, "pipe: %s", strerror(errno));
	p->pid = fork();
	CHECK(p->pid >= 0, "fork: %s", strerror(errno));
	if (p->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(err[1], 2);
		execv(ctl, (char *const *)argv);
		_exit(127);
	}
	kids_add(p->pid);
	close(in[0]);
	close(out[1]);
	close(err[1]);
	p->in = in[1];
	p->out = out[0];
	p->err = err[0];
}

/* Move output into p->o / p->e until @until says stop or both pipes close.
 * Returns false on the deadline. */
static bool proc_pump(struct proc *p, int64_t deadline,
		      bool (*until)(struct proc *p, void *arg), void *arg)
{
	char tmp[65536];

	while (p->out >= 0 || p->err >= 0) {
		struct pollfd pf[2] = {
			{ .fd = p->out, .events = POLLIN },
			{ .fd = p->err, .events = POLLIN },
		};
		int64_t left;

		if (until && until(p, arg))
			return true;
		left = deadline - now_ms();
		if (left <= 0)
			return false;
		if (poll(pf, 2, (int)left) < 0) {
			CHECK(errno == EINTR, "poll: %s", strerror(errno));
			continue;
		}
		for (int i = 0; i < 2; i++) {
			int *fd = i ? &p->err : &p->out;
			ssize_t r;

			if (*fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP)))
				continue;
			r = read(*fd, tmp, sizeof(tmp));
			if (r > 0) {
				buf_add(i ? &p->e : &p->o, tmp, (size_t)r);
			} else if (r == 0 || errno != EINTR) {
				close(*fd);
				*fd = -1;
			}
		}
	}
	return until ? until(p, arg) : true;
}

static void proc_finish(struct proc *p)
{
	int64_t deadline = now_ms() + DEADLINE_MS;
	int st;

	if (p->in >= 0)
		close(p->in);
	p->in = -1;
	CHECK(proc_pump(p, deadline, NULL, NULL),
	      "shmregctl (pid %d) still running after %d ms; stdout: %s",
	      (int)p->pid, DEADLINE_MS, p->o.p ? p->o.p : "");
	CHECK(waitpid(p->pid, &st, 0) == p->pid, "waitpid");
	kids_del(p->pid);
	p->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	p->signaled = WIFSIGNALED(st);
	if (!p->o.p)
		buf_add(&p->o, "", 0);
	if (!p->e.p)
		buf_add(&p->e, "", 0);
}

static void proc_free(struct proc *p)
{
	free(p->o.p);
	free(p->e.p);
}

/* Run shmregctl to completion with @in (may be NULL) on its stdin. */
static void run_in(struct proc *p, const void *in, size_t inlen,
		   const char *const *args)
{
	proc_start(p, args);
	/* stdin is written whole before output is read: every input here is
	 * far below the pipe capacity, and shmregctl reads all of it first */
	if (in && inlen)
		CHECK(write(p->in, in, inlen) == (ssize_t)inlen, "write stdin");
	proc_finish(p);
}

#define RUN(p, ...) run_in((p), NULL, 0, (const char *const[]){ __VA_ARGS__, NULL })
#define RUN_IN(p, in, len, ...) \
	run_in((p), (in), (len), (const char *const[]){ __VA_ARGS__, NULL })

static void expect(int line, struct proc *p, int status, const char *out,
		   const char *err_part)
{
	if (p->status != status)
		die(line, "exit status %d, want %d; stdout '%s' stderr '%s'",
		    p->status, status, p->o.p, p->e.p);
	if (out && strcmp(p->o.p, out) != 0)
		die(line, "stdout '%s', want '%s' (stderr '%s')", p->o.p, out,
		    p->e.p);
	if (err_part && !strstr(p->e.p, err_part))
		die(line, "stderr '%s' lacks '%s'", p->e.p, err_part);
	proc_free(p);
}

/* Run, then check exit status, exact stdout (NULL: any) and a part of
 * stderr (NULL: any). */
#define EXPECT(status, out, err, ...)                                        \
	do {                                                                 \
		struct proc p_;                                              \
		RUN(&p_, __VA_ARGS__);                                       \
		expect(__LINE__, &p_, (status), (out), (err));               \
	} while (0)

/* ---- JSON, checked by python3 ---- */

/* Run the Python program @code with @text on stdin; the program asserts.
 * Fails the test unless it exits 0. */
static void py_check(int line, const char *text, const char *code)
{
	int in[2], st;
	pid_t pid;
	size_t len = strlen(text);

	CHECK(pipe(in) == 0, "pipe");
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		dup2(in[0], 0);
		close(in[0]);
		close(in[1]);
		execlp("python3", "python3", "-c", code, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	CHECK(write(in[1], text, len) == (ssize_t)len, "write to python3");
	close(in[1]);
	CHECK(waitpid(pid, &st, 0) == pid, "waitpid");
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		die(line, "python3 check failed on: %s\nprogram:\n%s", text,
		    code);
}

/* ---- a writer of our own, in a child, driven through pipes ---- */

struct hw {
	pid_t pid;
	int cmd, res;
};

enum { HW_PUT = 1, HW_DEL, HW_QUIT };

struct hw_msg {
	int op;
	uint32_t klen, vlen;
	char kv[2048];
};

static bool read_full(int fd, void *p, size_t n)
{
	char *c = p;

	while (n) {
		ssize_t r = read(fd, c, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		c += r;
		n -= (size_t)r;
	}
	return true;
}

static int hw_main(int cmd, int res, const char *name, uint32_t ring)
{
	shmreg_writer_opts_t o = { .ring_events = ring };
	shmreg_writer_t *w;
	struct hw_msg m;
	int64_t ret;
	int r = shmreg_writer_open(name, &o, &w);

	ret = r;
	if (write(res, &ret, sizeof(ret)) != sizeof(ret) || r)
		return 1;
	/* one command, one reply; EOF or HW_QUIT closes the registry */
	while (read_full(cmd, &m, sizeof(m)) && m.op != HW_QUIT) {
		if (m.op == HW_PUT)
			ret = shmreg_writer_put(w, m.kv, m.klen, m.kv + m.klen,
						m.vlen, NULL);
		else
			ret = shmreg_writer_del(w, m.kv, m.klen);
		if (write(res, &ret, sizeof(ret)) != sizeof(ret))
			break;
	}
	shmreg_writer_close(w);
	return 0;
}

static int64_t hw_reply(struct hw *h)
{
	struct pollfd pf = { .fd = h->res, .events = POLLIN };
	int64_t ret;

	CHECK(poll(&pf, 1, DEADLINE_MS) == 1, "helper writer silent");
	CHECK(read_full(h->res, &ret, sizeof(ret)), "helper writer died");
	return ret;
}

/* Start a child that holds registry @name as its writer. */
static void hw_start(struct hw *h, const char *name, uint32_t ring)
{
	int cmd[2], res[2];
	int64_t ret;

	CHECK(pipe2(cmd, O_CLOEXEC) == 0 && pipe2(res, O_CLOEXEC) == 0, "pipe");
	h->pid = fork();
	CHECK(h->pid >= 0, "fork");
	if (h->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(cmd[1]);
		close(res[0]);
		_exit(hw_main(cmd[0], res[1], name, ring));
	}
	kids_add(h->pid);
	close(cmd[0]);
	close(res[1]);
	h->cmd = cmd[1];
	h->res = res[0];
	ret = hw_reply(h);
	CHECK(ret == 0, "helper shmreg_writer_open: %s", strerror((int)-ret));
}

static int64_t hw_op(struct hw *h, int op, const char *key, const char *val)
{
	struct hw_msg m;

	memset(&m, 0, sizeof(m));
	m.op = op;
	m.klen = (uint32_t)strlen(key);
	m.vlen = val ? (uint32_t)strlen(val) : 0;
	CHECK(m.klen + m.vlen <= sizeof(m.kv), "helper message too long");
	memcpy(m.kv, key, m.klen);
	if (val)
		memcpy(m.kv + m.klen, val, m.vlen);
	CHECK(write(h->cmd, &m, sizeof(m)) == sizeof(m), "write helper");
	return hw_reply(h);
}

static int64_t hw_put(struct hw *h, const char *key, const char *val)
{
	int64_t rev = hw_op(h, HW_PUT, key, val);

	CHECK(rev > 0, "helper put %s: %s", key, strerror((int)-rev));
	return rev;
}

static void hw_stop(struct hw *h)
{
	struct hw_msg m = { .op = HW_QUIT };
	int st;

	CHECK(write(h->cmd, &m, sizeof(m)) == sizeof(m), "write helper");
	CHECK(waitpid(h->pid, &st, 0) == h->pid, "waitpid helper");
	kids_del(h->pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "helper writer failed");
	close(h->cmd);
	close(h->res);
}

/* ---- background shmregctl (await, watch) ---- */

static bool has_lines(struct proc *p, void *arg)
{
	size_t want = *(size_t *)arg, n = 0;

	for (size_t i = 0; i < p->o.len; i++)
		n += p->o.p[i] == '\n';
	return n >= want;
}

/* Wait until the background shmregctl printed @n lines in all. */
static void wait_lines(struct proc *p, size_t n)
{
	CHECK(proc_pump(p, now_ms() + DEADLINE_MS, has_lines, &n),
	      "no %zu lines from shmregctl; stdout '%s' stderr '%s'", n,
	      p->o.p ? p->o.p : "", p->e.p ? p->e.p : "");
}

/*
 * Wait until process @pid blocks in system call @nr1 or @nr2:
 * /proc/PID/syscall names the call a blocked task sleeps in.  That is how
 * the await and watch tests know the waiter really waits before the change
 * it waits for (no sleep-and-hope).  Returns false when /proc does not tell
 * (the caller then proceeds or skips: the test stays correct, only weaker).
 */
static bool wait_blocked(pid_t pid, long nr1, long nr2)
{
	int64_t deadline = now_ms() + DEADLINE_MS;
	char path[64], line[256];

	snprintf(path, sizeof(path), "/proc/%d/syscall", (int)pid);
	while (now_ms() < deadline) {
		FILE *f = fopen(path, "r");
		long nr;

		if (!f)
			return false;
		if (!fgets(line, sizeof(line), f)) {
			fclose(f);
			return false;
		}
		fclose(f);
		if (sscanf(line, "%ld", &nr) == 1 && (nr == nr1 || nr == nr2))
			return true;
		/* "running" or another call: look again.  sched_yield, not
		 * a sleep: the waiter needs the CPU to get there. */
		sched_yield();
	}
	die(__LINE__, "pid %d never blocked in system call %ld/%ld", (int)pid,
	    nr1, nr2);
}

/* Blocked in the library's futex wait (a writer serves the registry). */
static bool wait_in_futex(pid_t pid)
{
	return wait_blocked(pid, SYS_futex, SYS_futex);
}

/* Blocked waiting for a writer to come (shmregctl's inotify poll). */
static bool wait_in_poll(pid_t pid)
{
#ifdef SYS_poll
	return wait_blocked(pid, SYS_poll, SYS_ppoll);
#else
	return wait_blocked(pid, SYS_ppoll, SYS_ppoll);
#endif
}

static bool err_has(struct proc *p, void *arg)
{
	return p->e.p && strstr(p->e.p, arg);
}

/* Wait until the background shmregctl wrote @text on stderr. */
static void wait_stderr(struct proc *p, const char *text)
{
	CHECK(proc_pump(p, now_ms() + DEADLINE_MS, err_has, (void *)text),
	      "no '%s' from shmregctl; stderr '%s'", text,
	      p->e.p ? p->e.p : "");
}

/* ---- the tests ---- */

static void test_usage(void)
{
	struct proc p;

	EXPECT(2, "", "no command", "--json");
	EXPECT(2, "", "unknown command 'frobnicate'", "frobnicate");
	EXPECT(2, "", "not NAME=VALUE: 'x'", "find", "x");
	EXPECT(2, "", "get: missing argument", "get");
	EXPECT(2, "", "unexpected argument 'b'", "get", "a", "b");
	EXPECT(2, "", "stats does not take --timeout", "stats", "--timeout",
	       "1");
	EXPECT(2, "", "get does not take --since", "get", "k", "--since", "1");
	EXPECT(2, "", "--ttl", "put", "k", "v", "--ttl", "abc");
	EXPECT(2, "", "--ttl", "put", "k", "v", "--ttl", "0");
	/* over SHMREG_TTL_MAX_NS (100 years): the library would refuse it,
	 * and before it did, the deadline overflowed (a put that exited 0
	 * and stored an entry nobody could see) */
	EXPECT(2, "", "--ttl: at most 3153600000 seconds", "put", "k", "v",
	       "--ttl", "8000000000");
	EXPECT(2, "", "--ttl: at most 3153600000 seconds", "put", "k", "v",
	       "--ttl", "3153600000.000000001");
	EXPECT(2, "", "--ttl: at most 3153600000 seconds", "put", "k", "v",
	       "--ttl", "99999999999999");
	EXPECT(2, "", "--timeout", "await", "k", "--timeout", "-1");
	EXPECT(2, "", "--owner", "put", "k", "v", "--owner", "12x");
	EXPECT(2, "", "--expect-rev", "put", "k", "v", "--expect-rev", "0");
	EXPECT(2, "", "unknown option '--bogus'", "get", "k", "--bogus");
	EXPECT(2, "", "unknown option '-q'", "get", "k", "-q");
	EXPECT(2, "", "needs an argument", "get", "k", "--registry");
	EXPECT(2, "", "must not be empty", "get", "");
	EXPECT(2, "", "not a registry name", "--registry", "a/b", "get", "k");
	/* the message states the rule */
	EXPECT(2, "", "'.hidden' is not a registry name: 1..200 letters, "
	       "digits, '.', '_' or '-', not starting with '.'; or an absolute "
	       "path", "-r", ".hidden", "get", "k");
	EXPECT(2, "", "not starting with '.'", "-r", ".hidden", "put", "k",
	       "v");
	/* durations: a number that is not one says what is accepted */
	EXPECT(2, "", "--ttl: not a duration (seconds, or a number with a "
	       "unit: 500ms, 5s, 1m, 2h): '1e12'", "put", "k", "v", "--ttl",
	       "1e12");
	EXPECT(2, "", "--ttl: must be more than 0", "put", "k", "v", "--ttl",
	       "0ms");
	EXPECT(2, "", "--timeout: not a duration", "await", "k", "--timeout",
	       "5x");
	EXPECT(2, "", "--timeout: not a duration", "await", "k", "--timeout",
	       "ms");
	/* a negative value is taken for an option: say how to pass it */
	EXPECT(2, "", "unknown option '-5' (a value that starts with '-' goes "
	       "after \"--\": shmregctl put KEY -- -5)", "put", "temp", "-5");
	EXPECT(2, "", "Try 'shmregctl put --help'", "put", "temp", "-5");
	/* options that contradict each other are refused, not ignored */
	EXPECT(2, "", "--raw and --json: choose one", "get", "k", "--json",
	       "--raw");
	EXPECT(2, "", "--raw and --json", "await", "k", "--raw", "-w",
	       "json");
	EXPECT(2, "", "--print-value-only and --json", "get", "k", "--json",
	       "--print-value-only");
	EXPECT(2, "", "a VALUE and --file", "put", "k", "v", "--file",
	       "/dev/null");
	EXPECT(2, "", "put: missing argument (VALUE, '-' or --file FILE)",
	       "put", "k");
	EXPECT(2, "", "del: missing argument (KEY or --prefix P)", "del");
	EXPECT(2, "", "a KEY and --prefix", "del", "k", "--prefix", "a/");
	EXPECT(2, "", "an empty prefix would delete everything", "del",
	       "--prefix", "");
	EXPECT(2, "", "stats does not take --keys-only", "stats",
	       "--keys-only");
	EXPECT(2, "", "get does not take --file", "get", "k", "--file", "x");
	/* "del -r a/" (rm -r's habit) is not --registry a/ */
	EXPECT(2, "", "del: -r after the command is not --registry", "del",
	       "-r", "a/");
	/* while -r before the command, and --registry anywhere, still
	 * name the registry */
	EXPECT(1, "", "registry a does not exist", "-r", "a", "del", "k");
	EXPECT(1, "", "registry a does not exist", "del", "k", "--registry",
	       "a");
	EXPECT(2, "", "--socket needs a path", "--socket", "", "ping");

	/* a key over the limit is a usage error, before any registry use */
	{
		char big[SHMREG_KEY_MAX + 2];

		memset(big, 'k', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		EXPECT(2, "", "at most 1024 bytes", "get", big);
	}

	/* a socket path longer than a sockaddr_un holds */
	{
		char sock[160];

		memset(sock, 's', sizeof(sock) - 1);
		sock[0] = '/';
		sock[sizeof(sock) - 1] = '\0';
		EXPECT(2, "", "too long for a unix socket path", "--socket",
		       sock, "put", "k", "v");
	}

	RUN(&p, "--help");
	CHECK(p.status == 0 && strstr(p.o.p, "Usage: shmregctl") &&
	      strstr(p.o.p, "watch [PREFIX]") &&
	      strstr(p.o.p, "find NAME=VALUE"),
	      "--help: %d '%s'", p.status, p.o.p);
	proc_free(&p);
	/* COMMAND --help and help COMMAND: that command's help, not the
	 * global one (which --help printed whatever the command) */
	RUN(&p, "put", "--help");
	CHECK(p.status == 0 && strncmp(p.o.p, "Usage: shmregctl put KEY "
				       "VALUE|- [OPTIONS]\n", 42) == 0 &&
	      strstr(p.o.p, "--file FILE") && !strstr(p.o.p, "Commands:"),
	      "put --help: %d '%s'", p.status, p.o.p);
	{
		struct proc q;

		RUN(&q, "help", "put");
		CHECK(q.status == 0 && strcmp(p.o.p, q.o.p) == 0,
		      "help put: %d '%s'", q.status, q.o.p);
		proc_free(&q);
	}
	proc_free(&p);
	RUN(&p, "list", "a/", "-h");
	CHECK(p.status == 0 &&
	      strncmp(p.o.p, "Usage: shmregctl list ", 22) == 0,
	      "list -h: %d '%s'", p.status, p.o.p);
	proc_free(&p);
	RUN(&p, "help");
	CHECK(p.status == 0 && strstr(p.o.p, "Commands:"), "help: %d '%s'",
	      p.status, p.o.p);
	proc_free(&p);
	EXPECT(2, "", "help: unknown command 'nope'", "help", "nope");
	RUN(&p, "--version");
	CHECK(p.status == 0 && strncmp(p.o.p, "shmregctl ", 10) == 0 &&
	      p.o.p[10] >= '0' && p.o.p[10] <= '9',
	      "--version: %d '%s'", p.status, p.o.p);
	proc_free(&p);
}

static void test_absent_registry(void)
{
	char path[PATH_MAX + 32];
	struct stat st;

	EXPECT(1, "", "registry nothere does not exist", "-r", "nothere",
	       "get", "k");
	/* the same exit code for every command: 1, as get (was 3 for
	 * list and stats) */
	EXPECT(1, "", "registry nothere does not exist", "-r", "nothere",
	       "stats");
	EXPECT(1, "", "registry nothere does not exist", "-r", "nothere",
	       "list");
	EXPECT(1, "", "registry nothere does not exist", "-r", "nothere",
	       "del", "--prefix", "a/");
	EXPECT(1, "", "registry nothere does not exist", "rm-registry",
	       "nothere");
	/* a delete must not create the registry it deletes from */
	EXPECT(1, "", "registry nothere does not exist", "-r", "nothere",
	       "del", "k");
	snprintf(path, sizeof(path), "%s/shmreg.nothere", dir);
	CHECK(stat(path, &st) < 0 && errno == ENOENT, "del created %s", path);
}

static void test_round_trip(void)
{
	static const char bin[] = "a\0b\xff\n\"\\\x01z";
	char want[PATH_MAX + 32];
	struct proc p;

	/* a new registry: revisions count from 1 */
	EXPECT(0, "1\n", NULL, "put", "k1", "v1");
	EXPECT(0, "2\n", NULL, "put", "k2", "hello world");
	EXPECT(0, "v1\n", NULL, "get", "k1");
	EXPECT(0, "hello world", NULL, "get", "--raw", "k2");
	EXPECT(1, "", "k3: not found", "get", "k3");
	/* replacing keeps create_rev, moves mod_rev */
	EXPECT(0, "3\n", NULL, "put", "k1", "v1b");
	RUN(&p, "--json", "get", "k1");
	CHECK(p.status == 0, "get --json: %d %s", p.status, p.e.p);
	py_check(__LINE__, p.o.p,
		 "import json,sys\n"
		 "t=sys.stdin.read()\n"
		 "assert t.endswith('\\n') and t.count('\\n')==1, t\n"
		 "d=json.loads(t)\n"
		 "assert d=={'key':'k1','value':'v1b','vlen':3,'mod_rev':3,"
		 "'create_rev':1,'owner_pid':0,'expires_at_ns':0,"
		 "'ephemeral':False}, d\n");
	proc_free(&p);

	/* a value starting with '-' after "--"; the registry by --registry
	 * beats $SHMREG_REGISTRY */
	EXPECT(0, "1\n", NULL, "--registry", "other", "put", "--", "neg",
	       "-5");
	EXPECT(0, "-5\n", NULL, "get", "neg", "-r", "other");
	EXPECT(1, "", "neg: not found", "get", "neg");

	/* a registry named by an absolute path */
	snprintf(want, sizeof(want), "%s/by-path.reg", dir);
	EXPECT(0, "1\n", NULL, "--registry", want, "put", "p", "path");
	EXPECT(0, "path\n", NULL, "--registry", want, "get", "p");

	/* binary value through stdin, back exactly with --raw */
	RUN_IN(&p, bin, sizeof(bin) - 1, "put", "bin", "-");
	expect(__LINE__, &p, 0, "4\n", NULL);
	RUN(&p, "get", "bin", "--raw");
	CHECK(p.status == 0 && p.o.len == sizeof(bin) - 1 &&
	      memcmp(p.o.p, bin, sizeof(bin) - 1) == 0,
	      "binary round trip: %d, %zu bytes", p.status, p.o.len);
	proc_free(&p);
	/* and in JSON: U+FFFD in "value", the exact bytes in value_base64 */
	RUN(&p, "get", "bin", "--json");
	CHECK(p.status == 0, "get bin --json");
	py_check(__LINE__, p.o.p,
		 "import json,sys,base64\n"
		 "d=json.loads(sys.stdin.read())\n"
		 "raw=b'a\\x00b\\xff\\n\"\\\\\\x01z'\n"
		 "assert base64.b64decode(d['value_base64'])==raw, d\n"
		 "assert d['value']=='a\\x00b\\ufffd\\n\"\\\\\\x01z', d\n"
		 "assert d['vlen']==len(raw) and 'key_base64' not in d, d\n");
	proc_free(&p);

	/* empty value from an empty stdin */
	RUN_IN(&p, "", 0, "put", "empty", "-");
	expect(__LINE__, &p, 0, "5\n", NULL);
	EXPECT(0, "\n", NULL, "get", "empty");

	/* delete: revision printed; then absent, twice */
	EXPECT(0, "6\n", NULL, "del", "k2");
	EXPECT(1, "", "k2: not found", "get", "k2");
	EXPECT(1, "", "k2: not found", "del", "k2");
	RUN(&p, "--json", "del", "empty");
	CHECK(p.status == 0, "del --json");
	py_check(__LINE__, p.o.p,
		 "import json,sys\n"
		 "d=json.loads(sys.stdin.read())\n"
		 "assert d=={'key':'empty','revision':7,'via':'embedded'}, d\n");
	proc_free(&p);
	snprintf(want, sizeof(want), "{\"key\":\"k9\",\"revision\":8,"
		 "\"via\":\"embedded\"}\n");
	EXPECT(0, want, NULL, "put", "k9", "x", "--json");
	EXPECT(0, "9\n", NULL, "del", "k9");
}

/* Keys with every kind of awkward byte, listed in both output modes. */
static void test_list_and_escaping(void)
{
	/* quote, backslash, tab, newline, a control byte, UTF-8, and a
	 * lone 0xff that is not UTF-8 */
	static const char odd[] = "ls/odd\"\\\t\n\x01\xc3\xa9\xff";
	struct proc p;

	EXPECT(1, "", "registry fresh does not exist", "-r", "fresh", "list");
	EXPECT(0, "1\n", NULL, "-r", "fresh", "put", "ls/b", "bee");
	EXPECT(0, "2\n", NULL, "-r", "fresh", "put", "ls/a", "a");
	EXPECT(0, "3\n", NULL, "-r", "fresh", "put", "other", "o");
	EXPECT(0, "4\n", NULL, "-r", "fresh", "put", odd, "weird key");
	EXPECT(0, "5\n", NULL, "-r", "fresh", "put", "ls/a", "aaa");

	/* sorted by key, a header, the value (escaped), mod_rev: before,
	 * index order, no header and the value's length in its place */
	EXPECT(0, "KEY                     MOD_REV  VALUE\n"
	       "ls/a                          5  aaa\n"
	       "ls/b                          1  bee\n"
	       "ls/odd\"\\\\\\t\\n\\x01\xc3\xa9\\xff        4  weird key\n",
	       NULL, "-r", "fresh", "list", "ls/");
	/* simple: tab-separated, no header, for cut and awk */
	EXPECT(0, "ls/a\taaa\t5\nls/b\tbee\t1\n"
	       "ls/odd\"\\\\\\t\\n\\x01\xc3\xa9\\xff\tweird key\t4\n",
	       NULL, "-r", "fresh", "list", "ls/", "-w", "simple");
	EXPECT(0, "ls/a\nls/b\n", NULL, "-r", "fresh", "list", "--keys-only",
	       "--limit", "2", "--prefix", "ls/");
	EXPECT(0, "ls/a\taaa\t5\n", NULL, "-r", "fresh", "list", "--limit",
	       "1", "--output", "simple");
	/* a glob: '*' does not cross '/' */
	EXPECT(0, "ls/a\nls/b\n", NULL, "-r", "fresh", "list", "--keys-only",
	       "?s/[ab]");
	EXPECT(0, "other\n", NULL, "-r", "fresh", "list", "--keys-only",
	       "*");
	EXPECT(0, "{\"key\":\"ls/b\"}\n", NULL, "-r", "fresh", "list",
	       "--keys-only", "-w", "json", "ls/b*");
	/* --prefix is literal, a glob character included */
	EXPECT(0, "", NULL, "-r", "fresh", "list", "--prefix", "ls/*");
	EXPECT(2, "", "a PREFIX and --prefix", "-r", "fresh", "list", "a",
	       "--prefix", "b");
	EXPECT(2, "", "--limit: not a count", "-r", "fresh", "list",
	       "--limit", "0");
	EXPECT(2, "", "--output: want table, simple or json", "-r", "fresh",
	       "list", "-w", "yaml");
	EXPECT(2, "", "--json and --output simple", "-r", "fresh", "--json",
	       "list", "-w", "simple");

	RUN(&p, "-r", "fresh", "--json", "list");
	CHECK(p.status == 0, "list --json");
	py_check(__LINE__, p.o.p,
		 "import json,sys,base64\n"
		 "ls=sys.stdin.read().split('\\n')\n"
		 "assert ls[-1]=='', ls\n"
		 "ks=[json.loads(l)['key'] for l in ls[:-1]]\n"
		 "assert ks==sorted(ks), ks\n"
		 "e={}\n"
		 "for l in ls[:-1]:\n"
		 "  d=json.loads(l)\n"
		 "  k=base64.b64decode(d['key_base64']) if 'key_base64' in d "
		 "else d['key'].encode()\n"
		 "  e[k]=d\n"
		 "odd=b'ls/odd\"\\\\\\t\\n\\x01\\xc3\\xa9\\xff'\n"
		 "assert set(e)=={b'ls/a',b'ls/b',b'other',odd}, e\n"
		 "assert e[odd]['key']=='ls/odd\"\\\\\\t\\n\\x01\\u00e9\\ufffd'\n"
		 "assert e[odd]['value']=='weird key'\n"
		 "assert e[b'ls/a']['value']=='aaa' and "
		 "e[b'ls/a']['mod_rev']==5 and e[b'ls/a']['create_rev']==2\n"
		 "assert 'key_base64' not in e[b'ls/a']\n");
	proc_free(&p);

	/* an empty result is success with no output */
	EXPECT(0, "", NULL, "-r", "fresh", "list", "nope/");

	/* stats: the human table and the JSON object agree */
	EXPECT(0, NULL, NULL, "-r", "fresh", "stats");
	RUN(&p, "-r", "fresh", "stats");
	CHECK(p.status == 0 && strstr(p.o.p, "\nentries         4\n") &&
	      strstr(p.o.p, "\nrevision        5\n") &&
	      strstr(p.o.p, "\nstate           closed\n") &&
	      strncmp(p.o.p, "registry        fresh\n", 22) == 0,
	      "stats:\n%s", p.o.p);
	proc_free(&p);
	RUN(&p, "-r", "fresh", "stats", "--json");
	CHECK(p.status == 0, "stats --json");
	py_check(__LINE__, p.o.p,
		 "import json,sys\n"
		 "d=json.loads(sys.stdin.read())\n"
		 "assert d['registry']=='fresh' and d['entries']==4 and "
		 "d['revision']==5 and d['state']=='closed', d\n"
		 "assert d['bytes_used']==7+7+6+14+9, d\n"
		 "assert d['index_capacity']>=4 and d['ring_capacity']>=1024 "
		 "and d['segment_bytes']>0, d\n");
	proc_free(&p);
}

static void test_put_options(void)
{
	char pid[32], want[64];
	struct proc p;
	pid_t dead;
	int st;

	/* --owner: this test process, which is alive */
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	EXPECT(0, NULL, NULL, "-r", "opts", "put", "owned", "o", "--owner",
	       pid);
	RUN(&p, "-r", "opts", "get", "owned", "--json");
	CHECK(p.status == 0, "get owned");
	snprintf(want, sizeof(want), "\"owner_pid\":%d,", (int)getpid());
	CHECK(strstr(p.o.p, want), "owner not shown: %s", p.o.p);
	proc_free(&p);

	/* --owner of a pid that has exited (and been reaped) is refused */
	dead = fork();
	CHECK(dead >= 0, "fork");
	if (dead == 0)
		_exit(0);
	CHECK(waitpid(dead, &st, 0) == dead, "waitpid");
	snprintf(pid, sizeof(pid), "%d", (int)dead);
	EXPECT(3, "", "does not exist", "-r", "opts", "put", "ghost", "g",
	       "--owner", pid);
	EXPECT(1, "", "not found", "-r", "opts", "get", "ghost");

	/* --ttl: expires_at_ns is about now + ttl (CLOCK_REALTIME) */
	EXPECT(0, NULL, NULL, "-r", "opts", "put", "ttl", "t", "--ttl",
	       "3600.5");
	RUN(&p, "-r", "opts", "get", "ttl", "--json");
	CHECK(p.status == 0, "get ttl");
	py_check(__LINE__, p.o.p,
		 "import json,sys,time\n"
		 "d=json.loads(sys.stdin.read())\n"
		 "left=d['expires_at_ns']-time.time_ns()\n"
		 "assert 3500e9 < left <= 3600.5e9, (d, left)\n");
	proc_free(&p);

	/* --expect-rev: compare-and-set on mod_rev */
	EXPECT(0, "3\n", NULL, "-r", "opts", "put", "cas", "1", "--expect-rev",
	       "absent");
	EXPECT(3, "", "the key exists", "-r", "opts", "put", "cas", "2",
	       "--expect-rev", "absent");
	EXPECT(3, "", "its mod_rev is not 2", "-r", "opts", "put", "cas", "2",
	       "--expect-rev", "2");
	EXPECT(0, "4\n", NULL, "-r", "opts", "put", "cas", "2",
	       "--expect-rev", "3");
	EXPECT(0, "2\n", NULL, "-r", "opts", "get", "cas");

	/* --ttl at exactly the limit: stored and visible */
	EXPECT(0, NULL, NULL, "-r", "opts", "put", "ttlmax", "t", "--ttl",
	       "3153600000");
	RUN(&p, "-r", "opts", "get", "ttlmax", "--json");
	CHECK(p.status == 0, "get ttlmax: %d '%s'", p.status, p.e.p);
	py_check(__LINE__, p.o.p,
		 "import json,sys,time\n"
		 "d=json.loads(sys.stdin.read())\n"
		 "left=d['expires_at_ns']-time.time_ns()\n"
		 "assert 3153599000e9 < left <= 3153600000e9, (d, left)\n");
	proc_free(&p);

	/* --ephemeral lives as long as a daemon connection: none here */
	EXPECT(3, "", "--ephemeral needs shmregd", "-r", "opts", "put", "eph",
	       "e", "--ephemeral");
	EXPECT(3, "", "--embedded skips the daemon", "-r", "opts",
	       "--embedded", "put", "eph", "e", "--ephemeral");
}

static void test_second_writer(void)
{
	char want[128];
	struct hw h;

	hw_start(&h, "held", 0);
	snprintf(want, sizeof(want), "registry held has a writer (pid %d) "
		 "and no daemon socket answered", (int)h.pid);
	EXPECT(3, "", want, "-r", "held", "put", "k", "v");
	EXPECT(3, "", want, "-r", "held", "del", "k");
	/* reads are unaffected */
	hw_put(&h, "k", "from-helper");
	EXPECT(0, "from-helper\n", NULL, "-r", "held", "get", "k");
	hw_stop(&h);
	/* and once the writer is gone, shmregctl writes again */
	EXPECT(0, "2\n", NULL, "-r", "held", "put", "k", "v");
	EXPECT(0, "v\n", NULL, "-r", "held", "get", "k");
}

/* Durations with units wherever a time is given; plain numbers are
 * seconds. */
static void test_durations(void)
{
	struct proc p;

	EXPECT(0, NULL, NULL, "-r", "dur", "put", "h", "x", "--ttl", "2h");
	EXPECT(0, NULL, NULL, "-r", "dur", "put", "m", "x", "--ttl", "1.5m");
	EXPECT(0, NULL, NULL, "-r", "dur", "put", "ms", "x", "--ttl",
	       "90000ms");
	EXPECT(0, NULL, NULL, "-r", "dur", "put", "s", "x", "--ttl", "90s");
	RUN(&p, "-r", "dur", "--json", "list");
	CHECK(p.status == 0, "list dur: %d %s", p.status, p.e.p);
	py_check(__LINE__, p.o.p,
		 "import json,sys,time\n"
		 "e={}\n"
		 "for l in sys.stdin.read().splitlines():\n"
		 "  d=json.loads(l)\n"
		 "  e[d['key']]=d['expires_at_ns']-time.time_ns()\n"
		 "assert 7000e9 < e['h'] <= 7200e9, e\n"
		 "for k in ('m','ms','s'):\n"
		 "  assert 60e9 < e[k] <= 90e9, e\n");
	proc_free(&p);
	/* a key that never comes: 200ms, then exit 1 */
	EXPECT(1, "", "not found within the timeout", "-r", "dur", "await",
	       "never", "--timeout", "200ms");
	EXPECT(0, "x\n", NULL, "-r", "dur", "await", "h", "--timeout", "1m");
}

/* get --print-value-only (etcdctl) and put --file. */
static void test_get_put_habits(void)
{
	static const char bin[] = "line1\nline2\n\xff";
	char path[PATH_MAX + 32];
	struct proc p;
	FILE *f;

	snprintf(path, sizeof(path), "%s/value.bin", dir);
	f = fopen(path, "w");
	CHECK(f && fwrite(bin, 1, sizeof(bin) - 1, f) == sizeof(bin) - 1 &&
	      fclose(f) == 0, "writing %s", path);
	EXPECT(0, "1\n", NULL, "-r", "habits", "put", "f", "--file", path);
	RUN(&p, "-r", "habits", "get", "f", "--raw");
	CHECK(p.status == 0 && p.o.len == sizeof(bin) - 1 &&
	      memcmp(p.o.p, bin, p.o.len) == 0, "put --file round trip");
	proc_free(&p);
	EXPECT(0, "2\n", NULL, "-r", "habits", "put", "v", "val");
	EXPECT(0, "val\n", NULL, "-r", "habits", "get", "v",
	       "--print-value-only");
	EXPECT(3, "", "nothere: No such file or directory", "-r", "habits",
	       "put", "g", "--file", "nothere");
	EXPECT(1, "", "g: not found", "-r", "habits", "get", "g");
}

/* del --prefix: every key under it, one commit with the embedded writer. */
static void test_del_prefix(void)
{
	EXPECT(0, "1\n", NULL, "-r", "dp", "put", "a/1", "x");
	EXPECT(0, "2\n", NULL, "-r", "dp", "put", "a/2", "x");
	EXPECT(0, "3\n", NULL, "-r", "dp", "put", "a/b/3", "x");
	EXPECT(0, "4\n", NULL, "-r", "dp", "put", "ab", "x");
	EXPECT(0, "3\n", NULL, "-r", "dp", "del", "--prefix", "a/");
	EXPECT(0, "ab\n", NULL, "-r", "dp", "list", "--keys-only");
	/* revisions 5, 6, 7: each delete its own change */
	EXPECT(0, "{\"prefix\":\"a\",\"deleted\":1,\"revision\":8,"
	       "\"via\":\"embedded\"}\n", NULL, "-r", "dp", "--json", "del",
	       "--prefix", "a");
	EXPECT(1, "0\n", "no key starts with a/", "-r", "dp", "del",
	       "--prefix", "a/");
}

/* The data model from the command line: put --attr/--parent, find,
 * attrs, children, del of a parent and del --recursive. */
static void test_data_model(void)
{
	EXPECT(0, "1\n", NULL, "-r", "dmod", "put", "svc/a", "10.0.0.1",
	       "--attr", "capability=gpu", "--attr", "node=a");
	EXPECT(0, "2\n", NULL, "-r", "dmod", "put", "svc/b", "10.0.0.2",
	       "--attr", "capability=cpu", "--attr", "node=a");
	EXPECT(0, "3\n", NULL, "-r", "dmod", "put", "svc/b/x", "child",
	       "--parent", "svc/b");
	EXPECT(0, "svc/a\t10.0.0.1\t1\nsvc/b\t10.0.0.2\t2\n", NULL, "-r",
	       "dmod", "-w", "simple", "find", "node=a");
	EXPECT(0, "svc/a\t10.0.0.1\t1\n", NULL, "-r", "dmod", "-w", "simple",
	       "find", "node=a", "capability=gpu");
	EXPECT(1, "", NULL, "-r", "dmod", "find", "node=z");
	EXPECT(2, "", "not NAME=VALUE", "-r", "dmod", "find", "node");
	EXPECT(0, "capability=gpu\nnode=a\n", NULL, "-r", "dmod", "attrs",
	       "svc/a");
	EXPECT(0, "{\"key\":\"svc/a\",\"attrs\":[[\"capability\","
	       "\"gpu\"],[\"node\",\"a\"]]}\n", NULL, "-r", "dmod", "--json",
	       "attrs", "svc/a");
	EXPECT(1, "", "not found", "-r", "dmod", "attrs", "svc/none");
	EXPECT(0, "svc/b/x\tchild\t3\n", NULL, "-r", "dmod", "-w", "simple",
	       "children", "svc/b");
	EXPECT(3, "", "the parent nope does not exist", "-r", "dmod", "put",
	       "x", "y", "--parent", "nope");
	EXPECT(3, "", "has children", "-r", "dmod", "del", "svc/b");
	EXPECT(0, "2\n", NULL, "-r", "dmod", "del", "svc/b", "--recursive");
	EXPECT(0, "svc/a\n", NULL, "-r", "dmod", "list", "--keys-only");
	EXPECT(1, "", "not found", "-r", "dmod", "del", "svc/b", "--recursive");
	EXPECT(2, "", "--attr", "-r", "dmod", "get", "svc/a", "--attr", "a=b");
}

/* health: served, closed, dead, absent. */
static void test_health(void)
{
	struct hw h;
	char want[128];

	EXPECT(1, "", "registry hl does not exist", "-r", "hl", "health");
	hw_start(&h, "hl", 0);
	hw_put(&h, "k", "v");
	snprintf(want, sizeof(want), "registry hl: served by pid %d at "
		 "revision 1\n  up ", (int)h.pid);
	{
		/* the second line has the uptime and rate: variable */
		struct proc p;

		RUN(&p, "-r", "hl", "health");
		CHECK(p.status == 0 && p.o.len > strlen(want) &&
		      !memcmp(p.o.p, want, strlen(want)) &&
		      strstr(p.o.p, " writes/s, 1 entries, 0 waiters\n"),
		      "health: status %d, '%.*s'", p.status, (int)p.o.len,
		      p.o.p);
		proc_free(&p);
	}
	kill(h.pid, SIGKILL);
	CHECK(waitpid(h.pid, NULL, 0) == h.pid, "waitpid helper");
	kids_del(h.pid);
	close(h.cmd);
	close(h.res);
	EXPECT(3, "", "died", "-r", "hl", "health");
	/* an embedded put takes it over, and closes it */
	EXPECT(0, "2\n", NULL, "-r", "hl", "--embedded", "put", "k2", "v");
	EXPECT(3, "", "closed by its writer", "-r", "hl", "health");
}

/* Writes never create a registry by surprise (a mistyped socket). */
static void test_write_path(void)
{
	char sock[PATH_MAX + 32], want[2 * PATH_MAX], reg[PATH_MAX + 32];
	struct stat st;
	struct proc p;

	snprintf(sock, sizeof(sock), "%s/typo.sock", dir);
	snprintf(reg, sizeof(reg), "%s/shmreg.surprise", dir);
	snprintf(want, sizeof(want), "shmregctl: no daemon answers on %s (no "
		 "such socket)\n", sock);
	EXPECT(3, "", want, "-r", "surprise", "--socket", sock, "put", "k",
	       "v");
	CHECK(stat(reg, &st) < 0 && errno == ENOENT, "put created %s", reg);
	setenv("SHMREG_SOCKET", sock, 1);
	EXPECT(3, "", want, "-r", "surprise", "put", "k", "v");
	EXPECT(3, "", want, "-r", "surprise", "del", "k");
	CHECK(stat(reg, &st) < 0 && errno == ENOENT, "put created %s", reg);
	/* --embedded overrides even $SHMREG_SOCKET */
	EXPECT(0, "1\n", NULL, "-r", "surprise", "--embedded", "put", "k",
	       "v");
	unsetenv("SHMREG_SOCKET");
	/* --no-embedded: the default socket must answer too */
	snprintf(want, sizeof(want), "shmregctl: no daemon answers on "
		 "%s/shmreg.sock (no such socket)\n", dir);
	EXPECT(3, "", want, "-r", "surprise", "--no-embedded", "put", "k",
	       "v");
	/* the fallback says so, in human mode only */
	snprintf(want, sizeof(want), "shmregctl: note: no daemon on "
		 "%s/shmreg.sock; writing registry surprise as an embedded "
		 "writer\n", dir);
	RUN(&p, "-r", "surprise", "put", "k", "w");
	CHECK(p.status == 0 && strcmp(p.o.p, "2\n") == 0 &&
	      strcmp(p.e.p, want) == 0, "fallback: %d '%s' '%s'", p.status,
	      p.o.p, p.e.p);
	proc_free(&p);
	EXPECT(0, "{\"key\":\"k\",\"revision\":3,\"via\":\"embedded\"}\n", NULL,
	       "-r", "surprise", "--json", "put", "k", "x");
	RUN(&p, "-r", "surprise", "--json", "put", "k", "y");
	CHECK(p.status == 0 && p.e.len == 0, "json note: '%s'", p.e.p);
	proc_free(&p);
	/* ping and daemon-stats need a daemon */
	EXPECT(3, "", "no daemon answers on", "-r", "surprise", "ping");
	EXPECT(3, "", "no daemon answers on", "-r", "surprise",
	       "daemon-stats");
}

/* rm-registry: gone with its lock and wait files; refused under a writer. */
static void test_rm_registry(void)
{
	char path[PATH_MAX + 32], want[128];
	const char *suffix[] = { "", ".lock", ".wait" };
	struct stat st;
	struct hw h;

	EXPECT(0, "1\n", NULL, "-r", "gone", "put", "k", "v");
	hw_start(&h, "gone", 0);
	snprintf(want, sizeof(want), "shmregctl: registry gone has a writer "
		 "(pid %d): stop it first\n", (int)h.pid);
	EXPECT(3, "", want, "rm-registry", "gone");
	EXPECT(0, "v\n", NULL, "-r", "gone", "get", "k");
	hw_stop(&h);
	EXPECT(0, "", "", "rm-registry", "gone");
	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/shmreg.gone%s", dir,
			 suffix[i]);
		CHECK(stat(path, &st) < 0 && errno == ENOENT, "%s is left",
		      path);
	}
	EXPECT(1, "", "registry gone does not exist", "rm-registry", "gone");
	EXPECT(1, "", "registry gone does not exist", "-r", "gone", "get",
	       "k");
	/* and a new one starts from scratch: revision 1 */
	EXPECT(0, "1\n", NULL, "-r", "gone", "put", "k2", "v");
	EXPECT(2, "", "not a registry name", "rm-registry", "a/b");
}

static void test_await(void)
{
	struct proc p;
	struct hw h;
	bool blocked;

	hw_start(&h, "aw", 0);
	/* a key that never comes: exit 1 after the timeout */
	EXPECT(1, "", "not found within the timeout", "-r", "aw", "await",
	       "never", "--timeout", "0.2");
	/* --timeout 0 does not block */
	EXPECT(1, "", "not found within the timeout", "-r", "aw", "await",
	       "never", "--timeout", "0");
	/* a key that exists returns at once */
	hw_put(&h, "there", "yes");
	EXPECT(0, "yes\n", NULL, "-r", "aw", "await", "there", "--timeout",
	       "0");

	/* a waiter that blocks, then a put from another process wakes it */
	proc_start(&p, (const char *const[]){ "-r", "aw", "--json", "await",
					      "late", "--timeout", "60",
					      NULL });
	blocked = wait_in_futex(p.pid);
	hw_put(&h, "late", "arrived");
	proc_finish(&p);
	CHECK(p.status == 0, "await: %d %s", p.status, p.e.p);
	py_check(__LINE__, p.o.p,
		 "import json,sys\n"
		 "d=json.loads(sys.stdin.read())\n"
		 "assert d['key']=='late' and d['value']=='arrived' and "
		 "d['mod_rev']==2, d\n");
	proc_free(&p);
	if (!blocked)
		fprintf(stderr, "ctl: note: /proc/PID/syscall unreadable; "
			"await was not seen blocking before the put\n");

	/* SIGTERM ends an await as it ends a watch: status 143, not a
	 * death by the signal (which it was before) */
	proc_start(&p, (const char *const[]){ "-r", "aw", "await", "nokey",
					      NULL });
	wait_in_futex(p.pid);
	kill(p.pid, SIGTERM);
	proc_finish(&p);
	CHECK(!p.signaled, "await was killed by SIGTERM");
	expect(__LINE__, &p, 143, "", NULL);

	/* the writer dies (kill -9) under a waiter: the waiter says so and
	 * waits for the next writer, here an embedded shmregctl put that
	 * takes the registry over */
	proc_start(&p, (const char *const[]){ "-r", "aw", "await", "phoenix",
					      "--timeout", "60", NULL });
	wait_in_futex(p.pid);
	kill(h.pid, SIGKILL);
	CHECK(waitpid(h.pid, NULL, 0) == h.pid, "waitpid helper");
	kids_del(h.pid);
	close(h.cmd);
	close(h.res);
	wait_stderr(&p, "the writer of registry aw died; waiting for a new "
		    "one");
	EXPECT(0, "3\n", NULL, "-r", "aw", "put", "phoenix", "risen");
	proc_finish(&p);
	expect(__LINE__, &p, 0, "risen\n", NULL);

	/* between embedded writes a registry is closed: await waits for the
	 * next writer rather than failing with "closed" */
	EXPECT(1, "", "not found within the timeout", "-r", "aw", "await",
	       "later", "--timeout", "0.1");
	proc_start(&p, (const char *const[]){ "-r", "aw", "await", "later",
					      NULL });
	blocked = wait_in_poll(p.pid);
	EXPECT(0, "4\n", NULL, "-r", "aw", "put", "later", "L");
	proc_finish(&p);
	expect(__LINE__, &p, 0, "L\n", NULL);

	/* and a registry that does not exist yet is waited for too */
	proc_start(&p, (const char *const[]){ "-r", "unborn", "--json",
					      "await", "first", "--timeout",
					      "60", NULL });
	blocked = wait_in_poll(p.pid) && blocked;
	EXPECT(0, "1\n", NULL, "-r", "unborn", "put", "first", "F");
	proc_finish(&p);
	CHECK(p.status == 0 && strstr(p.o.p, "\"value\":\"F\""),
	      "await unborn: %d '%s' %s", p.status, p.o.p, p.e.p);
	proc_free(&p);
	EXPECT(1, "", "not found within the timeout", "-r", "unborn2",
	       "await", "x", "--timeout", "0.05");
	/* and SIGINT while waiting for a writer: 130 */
	proc_start(&p, (const char *const[]){ "-r", "unborn3", "await", "x",
					      NULL });
	wait_in_poll(p.pid);
	kill(p.pid, SIGINT);
	proc_finish(&p);
	CHECK(!p.signaled, "await was killed by SIGINT");
	expect(__LINE__, &p, 130, "", NULL);
	if (!blocked)
		fprintf(stderr, "ctl: note: /proc/PID/syscall unreadable; "
			"await was not seen waiting for a writer\n");
}

static void test_watch(void)
{
	struct proc p, q;
	char want[256];
	struct hw h;
	int64_t r1, r2, r3;

	hw_start(&h, "wt", 0);
	hw_put(&h, "before", "x");
	/* --since 1: everything after revision 1, replayed from the ring
	 * after every change was made, so the values shown do not depend
	 * on how fast the watcher runs; the prefix filters */
	r1 = hw_put(&h, "app/x", "1");
	hw_put(&h, "zzz", "not under app/");
	r2 = hw_put(&h, "app/y\t", "2");
	r3 = hw_op(&h, HW_DEL, "app/x", NULL);
	hw_put(&h, "zzz", "new");
	CHECK(r1 == 2 && r2 == 4 && r3 == 5, "revisions %" PRId64 " %" PRId64
	      " %" PRId64, r1, r2, r3);
	proc_start(&p, (const char *const[]){ "-r", "wt", "watch", "app/",
					      "--since", "1", NULL });
	proc_start(&q, (const char *const[]){ "-r", "wt", "--json", "watch",
					      "--since", "1", NULL });
	wait_lines(&p, 3);
	wait_lines(&q, 5);
	/* SIGINT and SIGTERM end a watch cleanly, with the status a shell
	 * gives a process the signal killed (as await) */
	kill(p.pid, SIGINT);
	kill(q.pid, SIGTERM);
	proc_finish(&p);
	proc_finish(&q);
	/* the value put, or what became of it: app/x was deleted since */
	snprintf(want, sizeof(want), "2\tput\tapp/x\t(deleted since)\n"
		 "4\tput\tapp/y\\t\t2\n5\tdel\tapp/x\n");
	expect(__LINE__, &p, 130, want, NULL);
	CHECK(q.status == 143, "watch --json: %d %s", q.status, q.e.p);
	py_check(__LINE__, q.o.p,
		 "import json,sys\n"
		 "ev=[json.loads(l) for l in sys.stdin.read().splitlines()]\n"
		 "assert ev==[{'rev':2,'type':'put','key':'app/x',"
		 "'superseded_by':None},"
		 "{'rev':3,'type':'put','key':'zzz','superseded_by':6},"
		 "{'rev':4,'type':'put','key':'app/y\\t','value':'2'},"
		 "{'rev':5,'type':'del','key':'app/x'},"
		 "{'rev':6,'type':'put','key':'zzz','value':'new'}], ev\n");
	proc_free(&q);

	/* without --since: only changes made after the watch opened.  It
	 * has opened once it blocks waiting for events; a change made
	 * before that would be (rightly) missed, so wait for it. */
	proc_start(&p, (const char *const[]){ "-r", "wt", "watch", "app/",
					      NULL });
	if (wait_in_futex(p.pid)) {
		hw_put(&h, "app/now", "n");
		wait_lines(&p, 1);
		kill(p.pid, SIGINT);
		proc_finish(&p);
		CHECK(p.status == 130 &&
		      strcmp(p.o.p, "7\tput\tapp/now\tn\n") == 0,
		      "watch from now: %d '%s' %s", p.status, p.o.p, p.e.p);
	} else {
		fprintf(stderr, "ctl: note: /proc/PID/syscall unreadable; "
			"watch without --since not tested\n");
		kill(p.pid, SIGINT);
		proc_finish(&p);
	}
	proc_free(&p);
	hw_stop(&h);

	/* a watch lives across writers: three embedded shmregctl writes,
	 * each its own writer that closes the registry when done, on a
	 * registry that does not exist when the watch starts; --since 0
	 * makes the result independent of when the watch gets going */
	proc_start(&p, (const char *const[]){ "-r", "wx", "watch", "--since",
					      "0", NULL });
	/* each line seen before the next change: the value shown is the
	 * one put, read from whichever writer's segment is current */
	EXPECT(0, "1\n", NULL, "-r", "wx", "put", "a", "1");
	wait_lines(&p, 1);
	EXPECT(0, "2\n", NULL, "-r", "wx", "put", "b", "2");
	wait_lines(&p, 2);
	EXPECT(0, "3\n", NULL, "-r", "wx", "del", "a");
	wait_lines(&p, 3);
	kill(p.pid, SIGINT);
	proc_finish(&p);
	expect(__LINE__, &p, 130, "1\tput\ta\t1\n2\tput\tb\t2\n3\tdel\ta\n",
	       NULL);

	/* a revision the ring no longer holds: a clear error, exit 3.  The
	 * smallest ring (1024 events) wraps after 1100 puts. */
	hw_start(&h, "wrap", 1024);
	for (int i = 0; i < 1100; i++)
		hw_put(&h, "spin", "s");
	EXPECT(3, "", "no longer holds the changes after revision 1", "-r",
	       "wrap", "watch", "--since", "1");
	hw_stop(&h);
}

/* ---- shmregd's command line (when shmregd is built) ---- */

/* Usage errors exit 2 and name the program by its short name; the version
 * is shmregctl's (both CMake's PROJECT_VERSION). */
static void test_shmregd_cli(void)
{
	const char *shmregd = getenv("SHMREGD"), *saved = ctl;
	char ver[64];
	struct proc p;

	if (!shmregd || !*shmregd)
		return;
	RUN(&p, "--version");
	CHECK(p.status == 0 && strncmp(p.o.p, "shmregctl ", 10) == 0,
	      "--version: '%s'", p.o.p);
	snprintf(ver, sizeof(ver), "shmregd %s", p.o.p + 10);
	proc_free(&p);
	ctl = shmregd;
	EXPECT(0, ver, NULL, "--version");
	EXPECT(2, "", "shmregd: --registry bad/name: not a registry name: "
	       "1..200 letters, digits, '.', '_' or '-', not starting with "
	       "'.'; or an absolute path", "-r", "bad/name");
	EXPECT(2, "", "not a registry name", "-r", ".hidden");
	RUN(&p, "--bogus");
	CHECK(p.status == 2 && strcmp(p.e.p, "shmregd: unknown option "
				      "'--bogus' (see --help)\n") == 0,
	      "shmregd --bogus: %d '%s'", p.status, p.e.p);
	proc_free(&p);
	EXPECT(2, "", "shmregd: option '--socket' needs an argument",
	       "-r", "x", "--socket");
	RUN(&p, "--help");
	CHECK(p.status == 0 && strncmp(p.o.p, "Usage: shmregd ", 15) == 0,
	      "shmregd --help: '%s'", p.o.p);
	proc_free(&p);
	ctl = saved;
}

/* ---- the daemon path (when shmregd is built) ---- */

static bool socket_answers(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	memcpy(a.sun_path, path, strlen(path) + 1); /* length checked */
	ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

static void test_daemon(void)
{
	const char *shmregd = getenv("SHMREGD");
	char sock[PATH_MAX + 16], want[2 * PATH_MAX], since[PATH_MAX + 32];
	struct stat sst;
	long long rev;
	int64_t deadline;
	struct proc p;
	pid_t d;
	int st;

	if (!shmregd || !*shmregd) {
		fprintf(stderr, "ctl: note: shmregd not built; daemon path "
			"not tested\n");
		return;
	}
	snprintf(sock, sizeof(sock), "%s/d.sock", dir);
	if (strlen(sock) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		fprintf(stderr, "ctl: note: scratch path too long for a unix "
			"socket; daemon path not tested\n");
		return;
	}
	d = fork();
	CHECK(d >= 0, "fork");
	if (d == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execl(shmregd, "shmregd", "--registry", "dm", "--socket", sock,
		      (char *)NULL);
		_exit(127);
	}
	kids_add(d);
	/* the daemon is up when its socket accepts; bounded poll, because
	 * the daemon has no other way to say so */
	deadline = now_ms() + DEADLINE_MS;
	while (!socket_answers(sock)) {
		CHECK(waitpid(d, &st, WNOHANG) == 0, "shmregd exited");
		CHECK(now_ms() < deadline, "shmregd socket never answered");
		sched_yield();
	}

	RUN(&p, "-r", "dm", "--socket", sock, "--json", "put", "dk", "dv");
	CHECK(p.status == 0, "put via daemon: %d %s", p.status, p.e.p);
	py_check(__LINE__, p.o.p,
		 "import json,sys\n"
		 "d=json.loads(sys.stdin.read())\n"
		 "assert d['via']=='daemon' and d['key']=='dk' and "
		 "d['revision']>0, d\n");
	proc_free(&p);
	EXPECT(0, "dv\n", NULL, "-r", "dm", "get", "dk");
	RUN(&p, "-r", "dm", "--json", "del", "dk", "--socket", sock);
	CHECK(p.status == 0 && strstr(p.o.p, "\"via\":\"daemon\""),
	      "del via daemon: %d %s %s", p.status, p.o.p, p.e.p);
	proc_free(&p);
	EXPECT(1, "", "dk: not found", "-r", "dm", "--socket", sock, "del",
	       "dk");
	/* the data model through the daemon: attributes, a parent, find,
	 * a refused plain delete of a parent, a tree delete */
	EXPECT(0, NULL, NULL, "-r", "dm", "--socket", sock, "put", "t/p",
	       "P", "--attr", "role=parent");
	EXPECT(0, NULL, NULL, "-r", "dm", "--socket", sock, "put", "t/p/c",
	       "C", "--parent", "t/p", "--attr", "role=child");
	EXPECT(0, "t/p/c\n", NULL, "-r", "dm", "--keys-only", "find",
	       "role=child");
	EXPECT(3, "", "has children", "-r", "dm", "--socket", sock, "del",
	       "t/p");
	EXPECT(0, "2\n", NULL, "-r", "dm", "--socket", sock, "del", "t/p",
	       "--recursive");
	EXPECT(1, "", NULL, "-r", "dm", "find", "role=child");

	/* the default socket is $SHMREG_SOCKET.  An ephemeral entry lives
	 * as long as shmregctl's connection: its delete event follows the
	 * put (a watch from the put's revision sees it, however late the
	 * watch starts) */
	setenv("SHMREG_SOCKET", sock, 1);
	RUN(&p, "-r", "dm", "put", "eph", "e", "--ephemeral");
	CHECK(p.status == 0, "put --ephemeral: %d %s", p.status, p.e.p);
	rev = strtoll(p.o.p, NULL, 10);
	CHECK(rev > 0, "put --ephemeral printed '%s'", p.o.p);
	proc_free(&p);
	snprintf(since, sizeof(since), "%lld", rev);
	proc_start(&p, (const char *const[]){ "-r", "dm", "watch", "eph",
					      "--since", since, NULL });
	wait_lines(&p, 1);
	kill(p.pid, SIGINT);
	proc_finish(&p);
	snprintf(want, sizeof(want), "%lld\tdel\teph\n", rev + 1);
	expect(__LINE__, &p, 130, want, NULL);

	/* del --prefix through the daemon: one request per key */
	EXPECT(0, NULL, NULL, "-r", "dm", "put", "pre/a", "1");
	EXPECT(0, NULL, NULL, "-r", "dm", "put", "pre/b", "2");
	RUN(&p, "-r", "dm", "--json", "del", "--prefix", "pre/");
	CHECK(p.status == 0, "del --prefix via daemon: %d %s", p.status, p.e.p);
	py_check(__LINE__, p.o.p,
		 "import json,sys\n"
		 "d=json.loads(sys.stdin.read())\n"
		 "assert d['prefix']=='pre/' and d['deleted']==2 and "
		 "d['via']=='daemon' and d['revision']>0, d\n");
	proc_free(&p);
	EXPECT(0, "", NULL, "-r", "dm", "list", "pre/");
	rev += 4;

	/* a daemon that does not serve the registry: an error that says
	 * so, not a new registry written behind its back */
	snprintf(want, sizeof(want), "shmregctl: the daemon on %s does not "
		 "serve registry notserved\n", sock);
	EXPECT(3, "", want, "-r", "notserved", "put", "x", "y");
	snprintf(since, sizeof(since), "%s/shmreg.notserved", dir);
	CHECK(stat(since, &sst) < 0 && errno == ENOENT, "put created %s",
	      since);
	EXPECT(3, "", want, "-r", "notserved", "ping");

	/* ping and daemon-stats */
	RUN(&p, "-r", "dm", "ping");
	snprintf(want, sizeof(want), "registry dm on %s: revision %lld, "
		 "round trip ", sock, rev + 1);
	CHECK(p.status == 0 && strncmp(p.o.p, want, strlen(want)) == 0 &&
	      strstr(p.o.p, " us\n"), "ping: %d '%s' %s", p.status, p.o.p,
	      p.e.p);
	proc_free(&p);
	RUN(&p, "-r", "dm", "--json", "ping");
	CHECK(p.status == 0, "ping --json: %d %s", p.status, p.e.p);
	py_check(__LINE__, p.o.p,
		 "import json,sys\n"
		 "d=json.loads(sys.stdin.read())\n"
		 "assert d['registry']=='dm' and d['revision']>0 and "
		 "d['rtt_ns']>0 and d['socket'].endswith('/d.sock'), d\n");
	proc_free(&p);
	RUN(&p, "-r", "dm", "daemon-stats");
	CHECK(p.status == 0 &&
	      strncmp(p.o.p, "registry        dm\n", 19) == 0 &&
	      strstr(p.o.p, "\nconnections     1\n") &&
	      strstr(p.o.p, "\nin_buffered     "), "daemon-stats: %d '%s' %s",
	      p.status, p.o.p, p.e.p);
	proc_free(&p);
	RUN(&p, "-r", "dm", "daemon-stats", "--json");
	CHECK(p.status == 0, "daemon-stats --json: %d %s", p.status, p.e.p);
	py_check(__LINE__, p.o.p,
		 "import json,sys\n"
		 "d=json.loads(sys.stdin.read())\n"
		 "assert d['connections']==1 and d['requests']>=5 and "
		 "d['refused']==0 and 'over_budget' in d, d\n");
	proc_free(&p);
	/* the daemon holds the registry: rm-registry refuses */
	snprintf(want, sizeof(want), "registry dm has a writer (pid %d)",
		 (int)d);
	EXPECT(3, "", want, "rm-registry", "dm");

	/* behind a live daemon, with no socket named and none on the
	 * default path, an embedded write is refused clearly */
	unsetenv("SHMREG_SOCKET");
	EXPECT(3, "", "has a writer", "-r", "dm", "put", "x", "y");
	/* and a named socket that nothing serves is an error of its own */
	snprintf(want, sizeof(want), "%s/no-daemon.sock", dir);
	setenv("SHMREG_SOCKET", want, 1);
	EXPECT(3, "", "no daemon answers on", "-r", "dm", "put", "x", "y");
	unsetenv("SHMREG_SOCKET");

	kill(d, SIGTERM);
	CHECK(waitpid(d, &st, 0) == d, "waitpid shmregd");
	kids_del(d);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "shmregd exit %d", st);
}

int main(void)
{
	const char *env_dir = getenv("SHMREG_DIR");
	char sock[PATH_MAX + 32];

	ctl = getenv("SHMREGCTL");
	if (!ctl || !*ctl) {
		fprintf(stderr, "ctl: SHMREGCTL is not set (run through "
			"ctest)\n");
		return 77;
	}
	if (system("python3 -c 'import json' 2>/dev/null") != 0) {
		fprintf(stderr, "ctl: SKIP: python3 is needed to check the "
			"JSON output\n");
		return 77;
	}
	if (env_dir && *env_dir) {
		snprintf(dir, sizeof(dir), "%s", env_dir);
	} else {
		snprintf(dir, sizeof(dir), "/tmp/shmreg-ctl-XXXXXX");
		CHECK(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
		setenv("SHMREG_DIR", dir, 1);
	}
	/* no real daemon may answer, and the default registry is ours: the
	 * default socket is $XDG_RUNTIME_DIR/shmreg.sock, which nothing
	 * serves (a named socket, $SHMREG_SOCKET, must answer) */
	(void)sock;
	unsetenv("SHMREG_SOCKET");
	setenv("XDG_RUNTIME_DIR", dir, 1);
	setenv("SHMREG_REGISTRY", "ctl", 1);

	test_usage();
	test_absent_registry();
	test_round_trip();
	test_list_and_escaping();
	test_put_options();
	test_second_writer();
	test_durations();
	test_get_put_habits();
	test_del_prefix();
	test_data_model();
	test_health();
	test_write_path();
	test_rm_registry();
	test_await();
	test_watch();
	test_shmregd_cli();
	test_daemon();
	fprintf(stderr, "ctl: all passed\n");
	return 0;
}
