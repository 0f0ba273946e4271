/* SPDX-License-Identifier: MIT */
/* client_admin.c - requests about the daemon rather than an entry:
 * shmreg_client_reload and shmreg_client_registries. */
#include <errno.h>
#include <string.h>

#include "internal.h"
#include "client_internal.h"

/* A REGISTRIES request for the records from @first on, and its reply. */
static int call_registries(shmreg_client_t *c, uint32_t first)
{
	size_t len = proto_encode_registries(NULL, 0, 0, 0);
	uint8_t *p;
	uint64_t id;
	int ret;

	if (!c)
		return -EINVAL;
	ret = client_request(c, len, &p, &id);
	if (ret)
		return ret;
	proto_encode_registries(p, len, id, first);
	return client_sync_wait(c, id);
}

SHMREG_EXPORT
int64_t shmreg_client_reload(shmreg_client_t *c, char *msg, size_t cap)
{
	int ret = client_simple_call(c, PROTO_OP_RELOAD);
	uint32_t n;

	if (msg && cap)
		msg[0] = 0;
	if (ret < 0)
		return ret;
	/* proto_decode_reply() checked msglen against the body */
	if (msg && cap && c->sync_blen >= PROTO_RELOAD_FIXED) {
		n = proto_get_u32(c->sync_body);
		if (n >= cap)
			n = (uint32_t)(cap - 1);
		memcpy(msg, c->sync_body + PROTO_RELOAD_FIXED, n);
		msg[n] = 0;
	}
	return c->sync_status < 0 ? c->sync_status : (int64_t)c->sync_rev;
}

/* Report the records of one reply; the count in *@n. */
static int each_record(shmreg_client_t *c, shmreg_registry_fn fn, void *arg,
		       uint32_t *n)
{
	const uint8_t *b = c->sync_body;
	size_t off = PROTO_REGISTRIES_FIXED;
	char name[PROTO_REPLY_MAX];

	*n = proto_get_u32(b + 4);
	/* proto_registries_check() walked the same records */
	for (uint32_t i = 0; i < *n; i++) {
		shmreg_stats_t st = { 0 };
		uint32_t nlen = proto_get_u32(b + off + 20);
		int rc;

		st.entries = proto_get_u64(b + off);
		st.revision = proto_get_u64(b + off + 8);
		st.state = (int)proto_get_u32(b + off + 16);
		memcpy(name, b + off + PROTO_REGISTRY_REC, nlen);
		name[nlen] = 0;
		off += PROTO_REGISTRY_REC + nlen;
		rc = fn(name, &st, arg);
		if (rc) {
			*n = i + 1;
			return rc;
		}
	}
	return 0;
}

SHMREG_EXPORT
ssize_t shmreg_client_registries(shmreg_client_t *c, shmreg_registry_fn fn,
				 void *arg)
{
	uint32_t first = 0, total, n;
	int ret;

	if (!c || !fn)
		return -EINVAL;
	/* one reply holds what fits; ask again from the first one that did
	 * not.  Each round reports at least one or ends: bounded by the
	 * daemon's count */
	do {
		ret = call_registries(c, first);
		if (ret < 0)
			return ret;
		if (c->sync_status < 0)
			return c->sync_status;
		total = proto_get_u32(c->sync_body);
		ret = each_record(c, fn, arg, &n);
		if (ret < 0)
			return ret;
		if (ret > 0)
			return first + n;
		if (n == 0 && first < total)
			return -E2BIG; /* a name longer than a reply */
		first += n;
	} while (first < total);
	return first;
}
