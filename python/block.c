/* SPDX-License-Identifier: MIT */
/*
 * block.c - blocking calls that let the interpreter go on.
 *
 * The C waits (shmreg_await, shmreg_watch_next) sleep on a futex and resume
 * by themselves after a signal, so a Python thread sitting in one for a
 * long time would neither see Ctrl-C nor notice that another thread closed
 * its registry.  So a long wait is cut into slices of PYBLOCK_SLICE_NS:
 * each slice runs with the GIL released, and between slices the thread
 * takes the GIL back for a moment to run signal handlers and ask whether
 * close() was called.  A change still wakes the waiter at once (the futex wake
 * does not wait for a slice to end); only signals and close() are noticed
 * up to a slice late.  Bound: timeout / slice + 1 slices.
 */
#include <errno.h>
#include <time.h>

#include "module.h"

#define PYBLOCK_SLICE_NS (100 * 1000 * 1000)  /* 100 ms */

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t pyblock_run(pyblock_fn fn, void *arg, int64_t timeout_ns,
		    bool (*stopped)(void *arg), const char *what)
{
	int64_t deadline = timeout_ns < 0 ? -1 : now_ns() + timeout_ns;
	int64_t ret, slice;

	for (;;) {
		slice = PYBLOCK_SLICE_NS;
		if (deadline >= 0) {
			int64_t left = deadline - now_ns();

			if (left < slice)
				slice = left > 0 ? left : 0;
		}
		Py_BEGIN_ALLOW_THREADS
		ret = fn(arg, slice);
		Py_END_ALLOW_THREADS
		if (ret != -ETIMEDOUT)
			return ret;
		if (deadline >= 0 && now_ns() >= deadline)
			return -ETIMEDOUT;
		if (PyErr_CheckSignals() < 0)
			return PYBLOCK_EXC;
		if (stopped && stopped(arg)) {
			pyerr_closed(what);
			return PYBLOCK_EXC;
		}
	}
}
