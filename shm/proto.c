/* SPDX-License-Identifier: MIT */
/* proto.c - encode and decode shmregd frames (layout in proto.h). */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "proto.h"
#include "validate.h"

_Static_assert(PROTO_FRAME_MAX <= UINT32_MAX, "frame length is a u32");
_Static_assert(PROTO_ATTR_BYTES_MAX == SHM_ATTR_BYTES_MAX,
	       "one bound for an attribute block");
_Static_assert(PROTO_REPLY_HDR_SIZE + PROTO_STATS_BODY <= PROTO_REPLY_MAX,
	       "stats reply fits");

void proto_put_u32(void *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

void proto_put_u64(void *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

uint32_t proto_get_u32(const void *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

uint64_t proto_get_u64(const void *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

static uint16_t get_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

const char *proto_op_name(unsigned op)
{
	switch (op) {
	case PROTO_OP_HELLO:
		return "hello";
	case PROTO_OP_PUT:
		return "put";
	case PROTO_OP_DEL:
		return "del";
	case PROTO_OP_PING:
		return "ping";
	case PROTO_OP_STATS:
		return "stats";
	case PROTO_OP_PUTX:
		return "putx";
	case PROTO_OP_SETATTRS:
		return "setattrs";
	case PROTO_OP_DELTREE:
		return "deltree";
	case PROTO_OP_SNAPSHOT:
		return "snapshot";
	}
	return "?";
}

/* HELLO and DEL share one body layout: {u32 length, u32 reserved = 0, the
 * bytes (registry name, key)}.  The fixed part is PROTO_HELLO_FIXED =
 * PROTO_DEL_FIXED bytes. */
_Static_assert(PROTO_HELLO_FIXED == 8 && PROTO_DEL_FIXED == 8,
	       "HELLO and DEL bodies share their layout");

static int decode_bytes(const uint8_t *b, uint64_t blen, const uint8_t **bytes,
			uint32_t *n)
{
	if (blen < 8)
		return -EBADMSG;
	*n = proto_get_u32(b);
	if (proto_get_u32(b + 4) != 0 || (uint64_t)*n + 8 != blen)
		return -EBADMSG;
	*bytes = b + 8;
	return 0;
}

/* An attribute block: whole "name\0value\0" pairs, nothing else.  Each
 * string ends in a NUL inside the block, so the pointers are C strings
 * that cannot run past the frame.  Pairs past SHMREG_ATTRS_MAX are walked
 * (the layout is still checked) but not kept. */
static int decode_attrs(const uint8_t *b, uint32_t blen, struct proto_attrs *a)
{
	uint32_t off = 0, n = 0;

	a->block = b;
	a->blen = blen;
	while (off < blen) {
		const uint8_t *name = b + off, *val, *end;

		end = memchr(name, 0, blen - off);
		if (!end || end + 1 == b + blen)
			return -EBADMSG;
		val = end + 1;
		end = memchr(val, 0, blen - (uint32_t)(val - b));
		if (!end)
			return -EBADMSG;
		if (n < SHMREG_ATTRS_MAX) {
			a->a[n].name = (const char *)name;
			a->a[n].value = (const char *)val;
		}
		n++;
		off = (uint32_t)(end + 1 - b);
	}
	a->n = n > SHMREG_ATTRS_MAX ? SHMREG_ATTRS_MAX + 1 : n;
	return 0;
}

static int decode_put_fixed(const uint8_t *b, struct proto_req *req)
{
	req->u.put.klen = proto_get_u32(b);
	req->u.put.vlen = proto_get_u32(b + 4);
	req->u.put.owner_pid = (int32_t)proto_get_u32(b + 8);
	req->u.put.flags = proto_get_u32(b + 12);
	req->u.put.ttl_ns = (int64_t)proto_get_u64(b + 16);
	req->u.put.expect_rev = proto_get_u64(b + 24);
	return 0;
}

static int decode_putx(const uint8_t *b, uint64_t blen, struct proto_req *req)
{
	uint32_t alen;

	if (blen < PROTO_PUTX_FIXED)
		return -EBADMSG;
	decode_put_fixed(b, req);
	req->u.put.plen = proto_get_u32(b + 32);
	alen = proto_get_u32(b + 36);
	/* u64 sum: four u32 lengths cannot overflow it */
	if ((uint64_t)req->u.put.klen + req->u.put.vlen + req->u.put.plen +
		    alen + PROTO_PUTX_FIXED != blen)
		return -EBADMSG;
	req->u.put.key = b + PROTO_PUTX_FIXED;
	req->u.put.val = req->u.put.key + req->u.put.klen;
	if (req->u.put.plen)
		req->u.put.parent = req->u.put.val + req->u.put.vlen;
	return decode_attrs(req->u.put.val + req->u.put.vlen + req->u.put.plen,
			    alen, &req->u.put.attrs);
}

static int decode_setattrs(const uint8_t *b, uint64_t blen,
			   struct proto_req *req)
{
	uint32_t alen;

	if (blen < PROTO_SETATTRS_FIXED)
		return -EBADMSG;
	req->u.setattrs.klen = proto_get_u32(b);
	alen = proto_get_u32(b + 4);
	if ((uint64_t)req->u.setattrs.klen + alen + PROTO_SETATTRS_FIXED !=
	    blen)
		return -EBADMSG;
	req->u.setattrs.key = b + PROTO_SETATTRS_FIXED;
	return decode_attrs(req->u.setattrs.key + req->u.setattrs.klen, alen,
			    &req->u.setattrs.attrs);
}

/* The body of a frame whose header is valid: lengths must add up exactly
 * (a frame with slack bytes is as broken as one that is short: either way
 * the sender disagrees with us about the layout). */
static int decode_body(const uint8_t *b, uint64_t blen, struct proto_req *req)
{
	switch (req->op) {
	case PROTO_OP_HELLO:
		return decode_bytes(b, blen, &req->u.hello.name,
				    &req->u.hello.nlen);
	case PROTO_OP_PUT:
		if (blen < PROTO_PUT_FIXED)
			return -EBADMSG;
		decode_put_fixed(b, req);
		/* u64 sum: two u32 lengths cannot overflow it */
		if ((uint64_t)req->u.put.klen + req->u.put.vlen +
			    PROTO_PUT_FIXED != blen)
			return -EBADMSG;
		req->u.put.key = b + PROTO_PUT_FIXED;
		req->u.put.val = req->u.put.key + req->u.put.klen;
		return 0;
	case PROTO_OP_DEL:
	case PROTO_OP_DELTREE:
		return decode_bytes(b, blen, &req->u.del.key, &req->u.del.klen);
	case PROTO_OP_PING:
	case PROTO_OP_STATS:
	case PROTO_OP_SNAPSHOT:
		return blen == 0 ? 0 : -EBADMSG;
	case PROTO_OP_PUTX:
		return decode_putx(b, blen, req);
	case PROTO_OP_SETATTRS:
		return decode_setattrs(b, blen, req);
	}
	return -EOPNOTSUPP;
}

ssize_t proto_decode_request(const void *buf, size_t len, size_t max_frame,
			     struct proto_req *req)
{
	const uint8_t *p = buf;
	int ret;

	memset(req, 0, sizeof(*req));
	if (len < PROTO_HDR_SIZE)
		return 0;
	req->len = proto_get_u32(p);
	req->op = p[4];
	req->version = p[5];
	req->flags = get_u16(p + 6);
	req->id = proto_get_u64(p + 8);

	if (max_frame > PROTO_FRAME_MAX)
		max_frame = PROTO_FRAME_MAX;
	if (req->len < PROTO_HDR_SIZE || req->len > max_frame)
		return -EMSGSIZE;
	if (req->version != PROTO_VERSION)
		return -EPROTO;
	if (req->op < PROTO_OP_HELLO || req->op > PROTO_OP_LAST)
		return -EOPNOTSUPP;
	if (req->flags != 0)
		return -EBADMSG;
	if (len < req->len)
		return 0;
	ret = decode_body(p + PROTO_HDR_SIZE, req->len - PROTO_HDR_SIZE, req);
	if (ret < 0)
		return ret;
	return req->len;
}

void proto_put_opts(const struct proto_req *req, shmreg_put_opts_t *o)
{
	*o = (shmreg_put_opts_t){
		.owner_pid = req->u.put.owner_pid,
		.flags = req->u.put.flags,
		.ttl_ns = req->u.put.ttl_ns,
		.expect_rev = req->u.put.expect_rev,
		.attrs = req->u.put.attrs.a,
		.nattrs = req->u.put.attrs.n,
		.parent = req->u.put.parent,
		.parent_len = req->u.put.plen,
	};
}

int proto_check_request(const struct proto_req *req)
{
	switch (req->op) {
	case PROTO_OP_HELLO:
		if (req->u.hello.nlen == 0)
			return -EINVAL;
		if (req->u.hello.nlen > PROTO_NAME_MAX)
			return -E2BIG;
		return 0;
	case PROTO_OP_PUT:
	case PROTO_OP_PUTX: {
		/* the embedded writer's checks, so that the daemon refuses
		 * (with a reply) what shmreg_writer_put would refuse */
		shmreg_put_opts_t o;

		proto_put_opts(req, &o);
		return shm_check_put(req->u.put.key, req->u.put.klen,
				     req->u.put.val, req->u.put.vlen, &o);
	}
	case PROTO_OP_SETATTRS: {
		int rc = shm_check_key(req->u.setattrs.key,
				       req->u.setattrs.klen);

		if (rc == 0)
			rc = shm_check_attrs(req->u.setattrs.attrs.a,
					     req->u.setattrs.attrs.n);
		return rc;
	}
	case PROTO_OP_DEL:
	case PROTO_OP_DELTREE:
		return shm_check_key(req->u.del.key, req->u.del.klen);
	case PROTO_OP_PING:
	case PROTO_OP_STATS:
	case PROTO_OP_SNAPSHOT:
		return 0;
	}
	return -EOPNOTSUPP;
}

ssize_t proto_decode_reply(const void *buf, size_t len,
			   struct proto_reply *rep)
{
	const uint8_t *p = buf;

	memset(rep, 0, sizeof(*rep));
	if (len < PROTO_REPLY_HDR_SIZE)
		return 0;
	rep->len = proto_get_u32(p);
	rep->op = p[4];
	rep->id = proto_get_u64(p + 8);
	rep->status = (int32_t)proto_get_u32(p + 16);
	rep->revision = proto_get_u64(p + 24);
	if (rep->len < PROTO_REPLY_HDR_SIZE || rep->len > PROTO_REPLY_MAX ||
	    p[5] != PROTO_VERSION || get_u16(p + 6) != 0 ||
	    proto_get_u32(p + 20) != 0 || rep->status > 0)
		return -EPROTO;
	if (len < rep->len)
		return 0;
	rep->body = p + PROTO_REPLY_HDR_SIZE;
	rep->blen = rep->len - PROTO_REPLY_HDR_SIZE;
	/* Only a successful HELLO, STATS or DELTREE carries a body; a STATS body must
	 * hold as many fields as it says (at least the first version's; a
	 * client reads the ones it knows that are there). */
	if (rep->status == 0 && rep->op == PROTO_OP_HELLO)
		return rep->blen == PROTO_HELLO_REPLY ? (ssize_t)rep->len
						      : -EPROTO;
	if (rep->status == 0 && rep->op == PROTO_OP_STATS) {
		uint32_t n;

		if (rep->blen < 8)
			return -EPROTO;
		n = proto_get_u32(rep->body);
		if (n < PROTO_STAT_NFIELDS_V1 ||
		    8 + (uint64_t)n * 8 != rep->blen)
			return -EPROTO;
		return rep->len;
	}
	if (rep->status == 0 && rep->op == PROTO_OP_DELTREE)
		return rep->blen == PROTO_DELTREE_REPLY ? (ssize_t)rep->len
							: -EPROTO;
	return rep->blen == 0 ? (ssize_t)rep->len : -EPROTO;
}

static void put_hdr(uint8_t *p, uint32_t len, uint8_t op, uint64_t id)
{
	proto_put_u32(p, len);
	p[4] = op;
	p[5] = PROTO_VERSION;
	p[6] = 0;
	p[7] = 0;
	proto_put_u64(p + 8, id);
}

/* The encoding side of decode_bytes(). */
static size_t encode_bytes(void *buf, size_t cap, uint64_t id, uint8_t op,
			   const void *bytes, size_t n)
{
	size_t len = PROTO_HDR_SIZE + 8 + n;
	uint8_t *p = buf;

	if (len > cap)
		return len;
	put_hdr(p, (uint32_t)len, op, id);
	proto_put_u32(p + PROTO_HDR_SIZE, (uint32_t)n);
	proto_put_u32(p + PROTO_HDR_SIZE + 4, 0);
	if (n)
		memcpy(p + PROTO_HDR_SIZE + 8, bytes, n);
	return len;
}

size_t proto_encode_hello(void *buf, size_t cap, uint64_t id,
			  const void *name, size_t nlen)
{
	return encode_bytes(buf, cap, id, PROTO_OP_HELLO, name, nlen);
}

size_t proto_encode_put(void *buf, size_t cap, uint64_t id,
			const void *key, size_t klen,
			const void *val, size_t vlen,
			const shmreg_put_opts_t *opts)
{
	static const shmreg_put_opts_t none;
	size_t len = PROTO_HDR_SIZE + PROTO_PUT_FIXED + klen + vlen;
	uint8_t *p = buf;

	if (len > cap)
		return len;
	if (!opts)
		opts = &none;
	put_hdr(p, (uint32_t)len, PROTO_OP_PUT, id);
	p += PROTO_HDR_SIZE;
	proto_put_u32(p, (uint32_t)klen);
	proto_put_u32(p + 4, (uint32_t)vlen);
	proto_put_u32(p + 8, (uint32_t)opts->owner_pid);
	proto_put_u32(p + 12, opts->flags);
	proto_put_u64(p + 16, (uint64_t)opts->ttl_ns);
	proto_put_u64(p + 24, opts->expect_rev);
	if (klen)
		memcpy(p + PROTO_PUT_FIXED, key, klen);
	if (vlen)
		memcpy(p + PROTO_PUT_FIXED + klen, val, vlen);
	return len;
}

size_t proto_encode_del(void *buf, size_t cap, uint64_t id,
			const void *key, size_t klen)
{
	return encode_bytes(buf, cap, id, PROTO_OP_DEL, key, klen);
}

static size_t attrs_len(const shmreg_attr_t *attrs, size_t n)
{
	size_t len = 0;

	for (size_t i = 0; i < n; i++)
		len += strlen(attrs[i].name) + strlen(attrs[i].value) + 2;
	return len;
}

static uint8_t *put_attrs(uint8_t *p, const shmreg_attr_t *attrs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t a = strlen(attrs[i].name) + 1;
		size_t v = strlen(attrs[i].value) + 1;

		memcpy(p, attrs[i].name, a);
		memcpy(p + a, attrs[i].value, v);
		p += a + v;
	}
	return p;
}

size_t proto_encode_putx(void *buf, size_t cap, uint64_t id,
			 const void *key, size_t klen,
			 const void *val, size_t vlen,
			 const shmreg_put_opts_t *opts)
{
	static const shmreg_put_opts_t none;
	size_t alen, len;
	uint8_t *p = buf;

	if (!opts)
		opts = &none;
	alen = attrs_len(opts->attrs, opts->nattrs);
	len = PROTO_HDR_SIZE + PROTO_PUTX_FIXED + klen + vlen +
	      opts->parent_len + alen;
	if (len > cap)
		return len;
	put_hdr(p, (uint32_t)len, PROTO_OP_PUTX, id);
	p += PROTO_HDR_SIZE;
	proto_put_u32(p, (uint32_t)klen);
	proto_put_u32(p + 4, (uint32_t)vlen);
	proto_put_u32(p + 8, (uint32_t)opts->owner_pid);
	proto_put_u32(p + 12, opts->flags);
	proto_put_u64(p + 16, (uint64_t)opts->ttl_ns);
	proto_put_u64(p + 24, opts->expect_rev);
	proto_put_u32(p + 32, (uint32_t)opts->parent_len);
	proto_put_u32(p + 36, (uint32_t)alen);
	p += PROTO_PUTX_FIXED;
	if (klen)
		memcpy(p, key, klen);
	p += klen;
	if (vlen)
		memcpy(p, val, vlen);
	p += vlen;
	if (opts->parent_len)
		memcpy(p, opts->parent, opts->parent_len);
	put_attrs(p + opts->parent_len, opts->attrs, opts->nattrs);
	return len;
}

size_t proto_encode_setattrs(void *buf, size_t cap, uint64_t id,
			     const void *key, size_t klen,
			     const shmreg_attr_t *attrs, size_t nattrs)
{
	size_t alen = attrs_len(attrs, nattrs);
	size_t len = PROTO_HDR_SIZE + PROTO_SETATTRS_FIXED + klen + alen;
	uint8_t *p = buf;

	if (len > cap)
		return len;
	put_hdr(p, (uint32_t)len, PROTO_OP_SETATTRS, id);
	p += PROTO_HDR_SIZE;
	proto_put_u32(p, (uint32_t)klen);
	proto_put_u32(p + 4, (uint32_t)alen);
	p += PROTO_SETATTRS_FIXED;
	if (klen)
		memcpy(p, key, klen);
	put_attrs(p + klen, attrs, nattrs);
	return len;
}

size_t proto_encode_deltree(void *buf, size_t cap, uint64_t id,
			    const void *key, size_t klen)
{
	return encode_bytes(buf, cap, id, PROTO_OP_DELTREE, key, klen);
}

size_t proto_encode_simple(void *buf, size_t cap, uint64_t id, uint8_t op)
{
	if (PROTO_HDR_SIZE > cap)
		return PROTO_HDR_SIZE;
	put_hdr(buf, PROTO_HDR_SIZE, op, id);
	return PROTO_HDR_SIZE;
}

size_t proto_encode_reply(void *buf, size_t cap, uint8_t op, uint64_t id,
			  int32_t status, uint64_t revision, uint32_t blen)
{
	size_t len = PROTO_REPLY_HDR_SIZE + (size_t)blen;
	uint8_t *p = buf;

	if (len > cap)
		return len;
	put_hdr(p, (uint32_t)len, op, id);
	proto_put_u32(p + 16, (uint32_t)status);
	proto_put_u32(p + 20, 0);
	proto_put_u64(p + 24, revision);
	return len;
}
