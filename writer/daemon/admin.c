/* SPDX-License-Identifier: MIT */
/* admin.c - the requests that manage the daemon rather than an entry:
 * RELOAD and REGISTRIES. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "daemon.h"

/* The reply's message: what fits in one reply (PROTO_REPLY_MAX), so a
 * path longer than that is cut, never the frame. */
#define ADMIN_MSG_MAX (PROTO_REPLY_MAX - PROTO_REPLY_HDR_SIZE - \
		       PROTO_RELOAD_FIXED)

void admin_reload(struct conn *c, const struct proto_req *q)
{
	uint8_t body[PROTO_RELOAD_FIXED + ADMIN_MSG_MAX];
	char *msg = (char *)body + PROTO_RELOAD_FIXED;
	size_t n;
	int ret;

	if (!c->reg) {
		conn_reply(c, q->op, q->id, -ENOTCONN, 0, NULL, 0);
		return;
	}
	if (!c->reg->ro->load_dir) {
		snprintf(msg, ADMIN_MSG_MAX, "registry %s has no --load "
			 "directory", c->reg->name);
		ret = -ENOENT;
	} else {
		ret = load_registry(c->d, c->reg, msg, ADMIN_MSG_MAX);
	}
	n = strnlen(msg, ADMIN_MSG_MAX - 1);
	proto_put_u32(body, (uint32_t)n);
	proto_put_u32(body + 4, 0);
	conn_reply(c, q->op, q->id, ret,
		   shmreg_writer_revision(c->reg->w), body,
		   (uint32_t)(PROTO_RELOAD_FIXED + n));
}

/* One record: u64 entries, u64 revision, u32 state, u32 nlen, name. */
static size_t registry_rec(uint8_t *p, size_t cap, struct reg *r)
{
	shmreg_stats_t st = { 0 };
	size_t nlen = strlen(r->name);

	if (PROTO_REGISTRY_REC + nlen > cap)
		return 0;
	(void)shmreg_stats(shmreg_writer_reader(r->w), &st);
	proto_put_u64(p, st.entries);
	proto_put_u64(p + 8, st.revision);
	proto_put_u32(p + 16, (uint32_t)st.state);
	proto_put_u32(p + 20, (uint32_t)nlen);
	memcpy(p + PROTO_REGISTRY_REC, r->name, nlen);
	return PROTO_REGISTRY_REC + nlen;
}

void admin_registries(struct conn *c, const struct proto_req *q)
{
	struct daemon *d = c->d;
	uint8_t body[PROTO_REPLY_MAX - PROTO_REPLY_HDR_SIZE];
	size_t off = PROTO_REGISTRIES_FIXED;
	uint32_t n = 0;

	/* at most D_MAX_REGISTRIES records; a client asks again from the
	 * first one that did not fit */
	for (uint32_t i = q->u.registries.first; i < d->nreg; i++) {
		size_t got = registry_rec(body + off, sizeof(body) - off,
					  &d->reg[i]);

		if (!got)
			break;
		off += got;
		n++;
	}
	proto_put_u32(body, d->nreg);
	proto_put_u32(body + 4, n);
	conn_reply(c, q->op, q->id, 0,
		   c->reg ? shmreg_writer_revision(c->reg->w) : 0, body,
		   (uint32_t)off);
}
