/* SPDX-License-Identifier: MIT */
/* await.c - shmreg_await and shmreg_watch_key: wait for one key. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>

#include "validate.h"
#include "waitfile.h"

/*
 * Both calls are a condition on one key, re-checked with shmreg_get after
 * every wake-up of the key's wait slot (waitfile.c does the waiting).  The
 * condition reads the segment only, so whatever the wait file says, what
 * they return is what the segment held: a spurious wake-up is one more
 * lookup, never a wrong answer.
 *
 * -EAGAIN from shmreg_get (the writer kept rewriting this entry through the
 * whole retry budget) is "not decided yet": the commit that made the entry
 * stable again is followed by a wake-up of this slot, and a writer that
 * died in the middle of it is caught by the liveness check, so neither call
 * ever returns -EAGAIN.
 */

static int key_args(shmreg_t *r, const void *key, size_t klen)
{
	return r ? shm_check_key(key, klen) : -EINVAL;
}

struct await_arg {
	const void *key;
	size_t klen;
	void *buf;
	size_t cap;
	shmreg_info_t *info;
};

static bool await_check(shmreg_t *r, void *arg, ssize_t *res)
{
	struct await_arg *a = arg;
	ssize_t n = shmreg_get(r, a->key, a->klen, a->buf, a->cap, a->info);

	if (n == -ENOENT || n == -EAGAIN)
		return false;
	*res = n;
	return true;
}

SHMREG_EXPORT
ssize_t shmreg_await(shmreg_t *r, const void *key, size_t klen,
		     void *buf, size_t cap, shmreg_info_t *info,
		     int64_t timeout_ns)
{
	struct await_arg a = { key, klen, buf, cap, info };
	int ret = key_args(r, key, klen);

	if (ret)
		return ret;
	if (!buf && cap)
		return -EINVAL;
	return wait_until(r, key, klen, timeout_ns, await_check, &a);
}

struct watch_key_arg {
	const void *key;
	size_t klen;
	uint64_t since_rev;
	uint64_t *new_rev;
};

static bool watch_key_check(shmreg_t *r, void *arg, ssize_t *res)
{
	struct watch_key_arg *a = arg;
	shmreg_info_t info;
	ssize_t n = shmreg_get(r, a->key, a->klen, NULL, 0, &info);

	if (n == -EAGAIN)
		return false;
	if (n >= 0 && info.mod_rev <= a->since_rev)
		return false;
	if (n >= 0) {
		if (a->new_rev)
			*a->new_rev = info.mod_rev;
		*res = 0;
		return true;
	}
	/* -ENOENT: absent (deleted, expired, or never there) has no mod_rev */
	if (n == -ENOENT && a->new_rev)
		*a->new_rev = 0;
	*res = n;
	return true;
}

SHMREG_EXPORT
int shmreg_watch_key(shmreg_t *r, const void *key, size_t klen,
		     uint64_t since_rev, int64_t timeout_ns,
		     uint64_t *new_rev)
{
	struct watch_key_arg a = { key, klen, since_rev, new_rev };
	int ret = key_args(r, key, klen);

	if (ret)
		return ret;
	return (int)wait_until(r, key, klen, timeout_ns, watch_key_check, &a);
}
