/* SPDX-License-Identifier: MIT */
/*
 * bench_shmregd.h - start and stop a shmregd for a benchmark: the binary
 * ($SHMREGD, --shmregd PATH, or the build tree's), a socket in a short
 * private directory (sun_path holds 108 bytes), readiness through
 * --ready-fd, pinned to the server CPU.  Used by bench_daemon,
 * bench_batch; bench_expiry, bench_persist, bench_mirror and bench_stats
 * find the binary with bench_find_shmregd.
 */
#ifndef BENCH_SHMREGD_H
#define BENCH_SHMREGD_H

#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <sys/wait.h>

#include "bench_common.h"
#include "shmreg.h"

struct bench_shmregd {
	pid_t pid;
	char sockdir[32];
	char sock[64];
	const char *reg;
};

static inline const char *bench_find_shmregd(const char *arg)
{
	static char buf[PATH_MAX + 32];
	const char *env = getenv("SHMREGD");
	char self[PATH_MAX];
	ssize_t n;

	if (arg)
		return arg;
	if (env && *env)
		return env;
	/* build tree: <build>/tests/bench/bench_x -> <build>/bin */
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return "shmregd";
	self[n] = 0;
	snprintf(buf, sizeof(buf), "%s/../../bin/shmregd", dirname(self));
	return buf;
}

/* Start @bin serving registry @reg (truncated) on CPU @cpu; exits the
 * benchmark when it does not come up. */
static inline void bench_shmregd_start(struct bench_shmregd *d,
				       const char *bin, const char *reg,
				       int cpu)
{
	char fdarg[16], buf[8];
	int p[2];

	d->reg = reg;
	strcpy(d->sockdir, "/tmp/shmregd-bench-XXXXXX");
	if (!mkdtemp(d->sockdir))
		exit(1);
	snprintf(d->sock, sizeof(d->sock), "%s/d.sock", d->sockdir);
	if (pipe(p) < 0)
		exit(1);
	snprintf(fdarg, sizeof(fdarg), "%d", p[1]);
	d->pid = fork();
	if (d->pid == 0) {
		close(p[0]);
		bench_pin(cpu);
		execl(bin, bin, "--registry", reg, "--socket", d->sock,
		      "--ready-fd", fdarg, "--truncate", "--quiet",
		      (char *)NULL);
		perror(bin);
		_exit(127);
	}
	close(p[1]);
	if (read(p[0], buf, 6) != 6 || memcmp(buf, "READY\n", 6)) {
		fprintf(stderr, "bench: %s did not start\n", bin);
		exit(1);
	}
	close(p[0]);
}

static inline shmreg_client_t *bench_shmregd_client(struct bench_shmregd *d)
{
	shmreg_client_t *c;
	int ret = shmreg_connect(d->sock, d->reg, &c);

	if (ret < 0) {
		fprintf(stderr, "connect: %s\n", strerror(-ret));
		exit(1);
	}
	return c;
}

static inline void bench_shmregd_stop(struct bench_shmregd *d)
{
	kill(d->pid, SIGTERM);
	waitpid(d->pid, NULL, 0);
	bench_rmtree(d->sockdir);
}

#endif /* BENCH_SHMREGD_H */
