/* SPDX-License-Identifier: MIT */
/* Description: shmregctl stats --watch INTERVAL --count N --json against
 * an embedded writer: N lines, one per interval; each line's writes are
 * exactly the commits made between its sample and the previous one, and
 * its writes_per_sec is those writes over its interval.  A round whose
 * puts could have straddled a sample (the machine stalled for longer than
 * the interval) is not judged, and at least two of three must be. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "shmreg.h"
#include "shmreg_writer.h"
#include "common/tc.h"

#define NAME "metrics_watch"
#define ROUNDS 3u

static pid_t ctl_pid;
static FILE *ctl_out;

static void stop_ctl(void)
{
	if (ctl_pid > 0) {
		kill(ctl_pid, SIGKILL);
		waitpid(ctl_pid, NULL, 0);
		ctl_pid = 0;
	}
}

static void start_ctl(void)
{
	const char *ctl = getenv("SHMREGCTL");
	int fd[2];

	if (!ctl) {
		printf("skip: SHMREGCTL not set (run through ctest)\n");
		exit(77);
	}
	TC_EQ(pipe2(fd, O_CLOEXEC), 0, "pipe");
	ctl_pid = fork();
	TC_CHECK(ctl_pid >= 0, "fork: %s", strerror(errno));
	if (ctl_pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(fd[1], 1);
		execl(ctl, ctl, "-r", NAME, "stats", "--watch", "1",
		      "--count", "4", "--json", (char *)NULL);
		_exit(127);
	}
	close(fd[1]);
	ctl_out = fdopen(fd[0], "r");
	TC_CHECK(ctl_out != NULL, "fdopen");
	atexit(stop_ctl);
}

struct line {
	int64_t time_ns;
	double interval_s, wps;
	uint64_t revision, writes;
};

static double num(const char *s, const char *key)
{
	const char *p = strstr(s, key);

	TC_CHECK(p != NULL, "no %s in: %s", key, s);
	return strtod(p + strlen(key), NULL);
}

/* The next line, within 10 s (the interval is 1 s). */
static struct line next_line(void)
{
	struct pollfd pfd = { .fd = fileno(ctl_out), .events = POLLIN };
	char buf[1024];
	struct line l;
	long long t;

	TC_CHECK(poll(&pfd, 1, 10000) == 1, "no line from stats --watch "
		 "within 10 s");
	TC_CHECK(fgets(buf, sizeof(buf), ctl_out) != NULL, "stats --watch "
		 "ended early");
	TC_CHECK(sscanf(strstr(buf, "\"time_ns\":") ? strstr(buf,
		 "\"time_ns\":") + 10 : "", "%lld", &t) == 1, "time_ns: %s",
		 buf);
	l.time_ns = t;
	l.interval_s = num(buf, "\"interval_s\":");
	l.wps = num(buf, "\"writes_per_sec\":");
	l.revision = (uint64_t)num(buf, "\"revision\":");
	l.writes = (uint64_t)num(buf, "\"writes\":");
	return l;
}

int main(void)
{
	static const unsigned nputs[ROUNDS] = { 100, 250, 0 };
	shmreg_writer_opts_t o = { .flags = SHMREG_WRITER_TRUNCATE };
	unsigned judged = 0, seq = 0;
	struct line prev, cur;
	shmreg_writer_t *w;
	int status;

	tc_init(NAME, 60);
	TC_EQ(shmreg_writer_open(NAME, &o, &w), 0, "writer");
	start_ctl();
	prev = next_line();
	TC_CHECK(prev.interval_s == 0 && prev.writes == 0 &&
		 prev.revision == 0, "first line: interval %f writes %llu "
		 "revision %llu", prev.interval_s,
		 (unsigned long long)prev.writes,
		 (unsigned long long)prev.revision);
	for (unsigned r = 0; r < ROUNDS; r++) {
		int64_t done;

		for (unsigned i = 0; i < nputs[r]; i++) {
			char k[32];

			snprintf(k, sizeof(k), "w%u", seq++);
			TC_CHECK(shmreg_writer_put(w, k, strlen(k), "x", 1,
						   NULL) > 0, "put %s", k);
		}
		done = shm_realtime_ns();
		cur = next_line();
		/* every line: its fields agree with each other */
		TC_EQ(cur.writes, cur.revision - prev.revision, "writes");
		TC_CHECK(cur.interval_s > 0.5 && cur.interval_s < 10,
			 "interval %f s for --watch 1", cur.interval_s);
		TC_CHECK(fabs(cur.wps * cur.interval_s - (double)cur.writes) <
				 0.01 + 0.0005 * cur.interval_s,
			 "writes_per_sec %f * interval %f != writes %llu",
			 cur.wps, cur.interval_s,
			 (unsigned long long)cur.writes);
		/* the puts all came before this sample: exactly them */
		if (done < cur.time_ns) {
			TC_EQ(cur.writes, nputs[r], "writes of the round");
			judged++;
		} else {
			tc_log("round %u: puts ended after the sample", r);
		}
		prev = cur;
	}
	TC_CHECK(judged >= 2, "only %u of %u rounds judged", judged, ROUNDS);
	TC_CHECK(fgetc(ctl_out) == EOF, "more than --count 4 lines");
	TC_EQ(waitpid(ctl_pid, &status, 0), ctl_pid, "waitpid");
	ctl_pid = 0;
	TC_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		 "stats --watch exit status %#x", status);
	shmreg_writer_close(w);
	return 0;
}
