/* SPDX-License-Identifier: MIT */
/* cmd_await.c - shmregctl await KEY: wait until KEY exists, print it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "ctl.h"

/* A value that outgrows the buffer on every try is being rewritten faster
 * than we copy it; stop after this many, as ctl_get_alloc() does. */
#define AWAIT_TRIES 16

/* shmreg_await() resumes an interrupted wait, so a signal alone never ends
 * it: waiting in slices bounds how long SIGINT/SIGTERM take (as in
 * cmd_watch.c). */
#define AWAIT_SLICE_NS (250 * 1000 * 1000)

int cmd_await(struct ctl *c)
{
	const char *key = c->argv[0];
	size_t klen = strlen(key);
	int64_t deadline = -1, left = -1;
	size_t cap = 64 * 1024;
	shmreg_info_t info;
	struct ctl_reg reg;
	char *buf = NULL, *nb;
	bool noted = false;
	ssize_t n = -EAGAIN;
	int ret, grown = 0;

	ret = check_key(key, klen);
	if (ret)
		return ret;
	ret = ctl_reg_open(c, &reg);
	if (ret)
		return ret;
	ctl_catch_signals();
	if (c->timeout_ns >= 0)
		deadline = shm_deadline_ns(shm_monotonic_ns(), c->timeout_ns);
	buf = malloc(cap + 1);
	if (!buf) {
		ctl_reg_close(&reg);
		return ctl_fail(key, ENOMEM);
	}

	/*
	 * Each round ends the command, grows the buffer (at most AWAIT_TRIES
	 * times), or waits in ctl_reg_wait() until a new writer's segment
	 * appears or the deadline passes: bounded by the timeout and by the
	 * writers that come and go.
	 */
	for (;;) {
		if (ctl_stopping()) {
			n = -EINTR;
			break;
		}
		if (reg.r) {
			left = AWAIT_SLICE_NS;
			if (deadline >= 0 &&
			    deadline - shm_monotonic_ns() < left) {
				left = deadline - shm_monotonic_ns();
				if (left < 0)
					left = 0;
			}
			n = shmreg_await(reg.r, key, klen, buf, cap, &info,
					 left);
			if (n == -ETIMEDOUT &&
			    (deadline < 0 || shm_monotonic_ns() < deadline))
				continue;
			if (n >= 0 && (size_t)n <= cap)
				break;
			if (n >= 0) {
				/* larger than the buffer: the key exists, the
				 * next call returns at once unless it was
				 * deleted meanwhile */
				if (++grown > AWAIT_TRIES) {
					n = -EAGAIN;
					break;
				}
				cap = (size_t)n;
				nb = realloc(buf, cap + 1);
				if (!nb) {
					n = -ENOMEM;
					break;
				}
				buf = nb;
				continue;
			}
			if (n != -ESHUTDOWN && n != -EOWNERDEAD)
				break;
			/* no writer now: wait for the next one (follow.c) */
			if (n == -EOWNERDEAD && !noted) {
				noted = true;
				fprintf(stderr, "shmregctl: note: the writer of "
					"registry %s died; waiting for a new "
					"one\n", c->registry);
			}
		}
		ret = ctl_reg_wait(&reg, deadline, true);
		if (ret < 0) {
			n = ret == -EINTR ? -EINTR : -ETIMEDOUT;
			break;
		}
	}
	ctl_reg_close(&reg);

	if (n >= 0)
		ret = print_entry(c, key, klen, buf, (size_t)n, &info);
	else if (n == -EINTR)
		ret = ctl_stop_status(); /* as watch: 128 + the signal */
	else if (n == -ETIMEDOUT)
		ret = ctl_say(CTL_NOTFOUND, "%s: not found within the timeout",
			      key);
	else
		ret = ctl_fail(key, (int)-n);
	free(buf);
	return ret;
}
