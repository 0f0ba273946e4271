/* SPDX-License-Identifier: MIT */
/*
 * validate.h - the argument checks of every entry point that takes a key,
 * a value or put options, and the one computation of a TTL's deadline.
 *
 * The embedded writer, the client (before it encodes a frame), the daemon
 * (decoding a frame from any local process) and the readers all call these,
 * so a limit or an errno is decided here once and cannot drift between
 * them.  Each returns 0 or -errno with the meanings of shmreg.h:
 * -EINVAL for a bad argument, -E2BIG for a size over its limit.  Inline:
 * shmregd and shmregctl compile shm/ sources of their own, and the checks
 * cost a compare or two on the get path.
 */
#ifndef SHM_VALIDATE_H
#define SHM_VALIDATE_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "clock.h"
#include "shmreg.h"

/* Put flags this version knows (shmreg_put_opts_t.flags). */
#define SHM_PUT_FLAGS SHMREG_EPHEMERAL

/* A key: 1..SHMREG_KEY_MAX bytes at a non-NULL @key. */
static inline int shm_check_key(const void *key, size_t klen)
{
	if (!key || klen == 0)
		return -EINVAL;
	return klen > SHMREG_KEY_MAX ? -E2BIG : 0;
}

/* A key prefix (list, watch): 0..SHMREG_KEY_MAX bytes, NULL only if empty. */
static inline int shm_check_prefix(const void *prefix, size_t plen)
{
	if (!prefix && plen)
		return -EINVAL;
	return plen > SHMREG_KEY_MAX ? -E2BIG : 0;
}

/* A value: 0..SHMREG_VALUE_MAX bytes, NULL only if empty. */
static inline int shm_check_value(const void *val, size_t vlen)
{
	if (!val && vlen)
		return -EINVAL;
	return vlen > SHMREG_VALUE_MAX ? -E2BIG : 0;
}

/* Bytes of an entry's attributes as stored and as shmreg_get_attrs
 * returns them ("name\0value\0" pairs), at most. */
#define SHM_ATTR_BYTES_MAX \
	(SHMREG_ATTRS_MAX * (SHMREG_ATTR_NAME_MAX + SHMREG_ATTR_VALUE_MAX + 2))

/* One attribute: a name of 1..SHMREG_ATTR_NAME_MAX bytes without '=' and
 * a value of 0..SHMREG_ATTR_VALUE_MAX bytes, both non-NULL C strings. */
static inline int shm_check_attr(const shmreg_attr_t *a)
{
	size_t n, v;

	if (!a->name || !a->value)
		return -EINVAL;
	n = strnlen(a->name, SHMREG_ATTR_NAME_MAX + 1);
	v = strnlen(a->value, SHMREG_ATTR_VALUE_MAX + 1);
	if (n == 0 || memchr(a->name, '=', n))
		return -EINVAL;
	return n > SHMREG_ATTR_NAME_MAX || v > SHMREG_ATTR_VALUE_MAX ? -E2BIG
								      : 0;
}

/* @n attributes at @attrs (NULL only if @n is 0), at most
 * SHMREG_ATTRS_MAX of them. */
static inline int shm_check_attrs(const shmreg_attr_t *attrs, size_t n)
{
	if (n > SHMREG_ATTRS_MAX)
		return -E2BIG;
	if (n && !attrs)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		int rc = shm_check_attr(&attrs[i]);

		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Put options (NULL: the defaults): known flags only, owner_pid >= 0,
 * 0 <= ttl_ns <= SHMREG_TTL_MAX_NS, valid attributes, and a parent key
 * of 1..SHMREG_KEY_MAX bytes or none (NULL, 0).  The TTL bound keeps the deadline,
 * now + ttl_ns, representable (int64 ns) for the next century; an
 * unchecked ttl_ns near INT64_MAX overflowed it into the past: a put that
 * succeeded but whose entry was never visible. */
static inline int shm_check_put_opts(const shmreg_put_opts_t *opts)
{
	if (!opts)
		return 0;
	if ((opts->flags & ~SHM_PUT_FLAGS) || opts->owner_pid < 0)
		return -EINVAL;
	if (opts->ttl_ns < 0 || opts->ttl_ns > SHMREG_TTL_MAX_NS)
		return -EINVAL;
	if (!opts->parent != !opts->parent_len)
		return -EINVAL; /* NULL with a length, or an empty key */
	if (opts->parent_len > SHMREG_KEY_MAX)
		return -E2BIG;
	return shm_check_attrs(opts->attrs, opts->nattrs);
}

/* Every argument of a put, in the order the errors are reported. */
static inline int shm_check_put(const void *key, size_t klen,
				const void *val, size_t vlen,
				const shmreg_put_opts_t *opts)
{
	int rc = shm_check_key(key, klen);

	if (rc == 0)
		rc = shm_check_value(val, vlen);
	if (rc == 0)
		rc = shm_check_put_opts(opts);
	return rc;
}

/* The CLOCK_REALTIME expiry of an entry put now with @ttl_ns (checked by
 * shm_check_put_opts), 0 (never) for ttl 0.  Saturates rather than
 * overflows, so even past the year 2162, when now + SHMREG_TTL_MAX_NS
 * no longer fits, an entry expires late instead of at once. */
static inline int64_t shm_ttl_deadline_ns(int64_t ttl_ns)
{
	if (ttl_ns <= 0)
		return 0;
	return shm_deadline_ns(shm_realtime_ns(), ttl_ns);
}

#endif /* SHM_VALIDATE_H */
