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
	case PROTO_OP_BATCH:
		return "batch";
	case PROTO_OP_RELOAD:
		return "reload";
	case PROTO_OP_REGISTRIES:
		return "registries";
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

static int decode_body(const uint8_t *b, uint64_t blen, struct proto_req *req);

/* The operations a BATCH may carry: the writes, nothing that selects or
 * reports (HELLO, STATS ...) and no BATCH inside a BATCH. */
static bool batch_op_ok(uint8_t op)
{
	return op == PROTO_OP_PUT || op == PROTO_OP_PUTX ||
	       op == PROTO_OP_DEL || op == PROTO_OP_SETATTRS ||
	       op == PROTO_OP_DELTREE;
}

/* One record at @p of the @left bytes still to walk: its operation in
 * *@sub and its length, or -EBADMSG. */
static int64_t decode_batch_rec(const uint8_t *p, uint32_t left,
				struct proto_req *sub)
{
	uint32_t blen;
	int rc;

	memset(sub, 0, sizeof(*sub));
	if (left < PROTO_BATCH_REC_HDR)
		return -EBADMSG;
	sub->op = p[0];
	blen = proto_get_u32(p + 4);
	if (!batch_op_ok(sub->op) || p[1] || p[2] || p[3] ||
	    blen > left - PROTO_BATCH_REC_HDR)
		return -EBADMSG;
	rc = decode_body(p + PROTO_BATCH_REC_HDR, blen, sub);
	if (rc < 0)
		return -EBADMSG; /* a record that is not its op's layout */
	return (int64_t)PROTO_BATCH_REC_HDR + blen;
}

/* The whole layout is checked here, once: nops records that fill the
 * body exactly.  At most nops records are walked, and each takes at least
 * PROTO_BATCH_REC_HDR + 8 bytes, so the walk is bounded by the frame. */
static int decode_batch(const uint8_t *b, uint64_t blen, struct proto_req *req)
{
	struct proto_batch_iter it;
	struct proto_req sub;
	int rc;

	if (blen < PROTO_BATCH_FIXED || proto_get_u32(b + 4) != 0)
		return -EBADMSG;
	req->u.batch.nops = proto_get_u32(b);
	req->u.batch.recs = b + PROTO_BATCH_FIXED;
	req->u.batch.rlen = (uint32_t)(blen - PROTO_BATCH_FIXED);
	proto_batch_iter_init(&it, req);
	while ((rc = proto_batch_next(&it, &sub)) > 0)
		;
	if (rc < 0 || it.left != 0)
		return -EBADMSG;
	return 0;
}

void proto_batch_iter_init(struct proto_batch_iter *it,
			   const struct proto_req *batch)
{
	it->p = batch->u.batch.recs;
	it->left = batch->u.batch.rlen;
	it->ops_left = batch->u.batch.nops;
}

int proto_batch_next(struct proto_batch_iter *it, struct proto_req *sub)
{
	int64_t n;

	if (it->ops_left == 0)
		return 0;
	n = decode_batch_rec(it->p, it->left, sub);
	if (n < 0)
		return (int)n;
	it->p += n;
	it->left -= (uint32_t)n;
	it->ops_left--;
	return 1;
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
	case PROTO_OP_RELOAD:
	case PROTO_OP_SNAPSHOT:
		return blen == 0 ? 0 : -EBADMSG;
	case PROTO_OP_PUTX:
		return decode_putx(b, blen, req);
	case PROTO_OP_SETATTRS:
		return decode_setattrs(b, blen, req);
	case PROTO_OP_BATCH:
		return decode_batch(b, blen, req);
	case PROTO_OP_REGISTRIES:
		if (blen != PROTO_REGISTRIES_FIXED || proto_get_u32(b + 4))
			return -EBADMSG;
		req->u.registries.first = proto_get_u32(b);
		return 0;
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
	/* memset, then fields: a plain put's options must be all-zero bytes,
	 * padding included, for the writer's fast path (shmreg_writer_put
	 * compares them with the defaults); and no attributes is NULL, not
	 * the address of the empty decoded array */
	memset(o, 0, sizeof(*o));
	o->owner_pid = req->u.put.owner_pid;
	o->flags = req->u.put.flags;
	o->ttl_ns = req->u.put.ttl_ns;
	o->expect_rev = req->u.put.expect_rev;
	o->attrs = req->u.put.attrs.n ? req->u.put.attrs.a : NULL;
	o->nattrs = req->u.put.attrs.n;
	o->parent = req->u.put.parent;
	o->parent_len = req->u.put.plen;
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
	case PROTO_OP_BATCH:
		return req->u.batch.nops > PROTO_BATCH_OPS_MAX ? -E2BIG : 0;
	case PROTO_OP_PING:
	case PROTO_OP_STATS:
	case PROTO_OP_RELOAD:
	case PROTO_OP_REGISTRIES:
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
	if (rep->op == PROTO_OP_BATCH && rep->blen == PROTO_BATCH_REPLY)
		return rep->len;
	if (rep->op == PROTO_OP_RELOAD && rep->blen >= PROTO_RELOAD_FIXED)
		return proto_get_u32(rep->body + 4) == 0 &&
				       (uint64_t)proto_get_u32(rep->body) +
						       PROTO_RELOAD_FIXED ==
					       rep->blen
			       ? (ssize_t)rep->len
			       : -EPROTO;
	if (rep->status == 0 && rep->op == PROTO_OP_REGISTRIES)
		return proto_registries_check(rep) == 0 ? (ssize_t)rep->len
							 : -EPROTO;
	/* BATCH and RELOAD without a body: an error about no operation
	 * (-ENOTCONN ...); a success always has one */
	if (rep->status == 0 &&
	    (rep->op == PROTO_OP_BATCH || rep->op == PROTO_OP_RELOAD))
		return -EPROTO;
	return rep->blen == 0 ? (ssize_t)rep->len : -EPROTO;
}

int proto_registries_check(const struct proto_reply *rep)
{
	uint32_t n, off = PROTO_REGISTRIES_FIXED;

	if (rep->blen < PROTO_REGISTRIES_FIXED)
		return -EPROTO;
	n = proto_get_u32(rep->body + 4);
	if (n > proto_get_u32(rep->body))
		return -EPROTO;
	/* n records, each at least PROTO_REGISTRY_REC bytes: bounded by
	 * the reply's length */
	for (uint32_t i = 0; i < n; i++) {
		uint32_t nlen;

		if (rep->blen - off < PROTO_REGISTRY_REC)
			return -EPROTO;
		nlen = proto_get_u32(rep->body + off + 20);
		if (nlen == 0 || nlen > rep->blen - off - PROTO_REGISTRY_REC)
			return -EPROTO;
		off += PROTO_REGISTRY_REC + nlen;
	}
	return off == rep->blen ? 0 : -EPROTO;
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

/* The encoding side of decode_bytes(): the body only. */
static void bytes_body(uint8_t *p, const void *bytes, size_t n)
{
	proto_put_u32(p, (uint32_t)n);
	proto_put_u32(p + 4, 0);
	if (n)
		memcpy(p + 8, bytes, n);
}

static size_t encode_bytes(void *buf, size_t cap, uint64_t id, uint8_t op,
			   const void *bytes, size_t n)
{
	size_t len = PROTO_HDR_SIZE + 8 + n;
	uint8_t *p = buf;

	if (len > cap)
		return len;
	put_hdr(p, (uint32_t)len, op, id);
	bytes_body(p + PROTO_HDR_SIZE, bytes, n);
	return len;
}

size_t proto_encode_hello(void *buf, size_t cap, uint64_t id,
			  const void *name, size_t nlen)
{
	return encode_bytes(buf, cap, id, PROTO_OP_HELLO, name, nlen);
}

static const shmreg_put_opts_t no_opts;

/* PUT's 32 fixed bytes, also the start of PUTX's */
static void put_fixed(uint8_t *p, size_t klen, size_t vlen,
		      const shmreg_put_opts_t *opts)
{
	proto_put_u32(p, (uint32_t)klen);
	proto_put_u32(p + 4, (uint32_t)vlen);
	proto_put_u32(p + 8, (uint32_t)opts->owner_pid);
	proto_put_u32(p + 12, opts->flags);
	proto_put_u64(p + 16, (uint64_t)opts->ttl_ns);
	proto_put_u64(p + 24, opts->expect_rev);
}

static size_t put_body_len(size_t klen, size_t vlen)
{
	return PROTO_PUT_FIXED + klen + vlen;
}

static void put_body(uint8_t *p, const void *key, size_t klen,
		     const void *val, size_t vlen,
		     const shmreg_put_opts_t *opts)
{
	put_fixed(p, klen, vlen, opts);
	if (klen)
		memcpy(p + PROTO_PUT_FIXED, key, klen);
	if (vlen)
		memcpy(p + PROTO_PUT_FIXED + klen, val, vlen);
}

size_t proto_encode_put(void *buf, size_t cap, uint64_t id,
			const void *key, size_t klen,
			const void *val, size_t vlen,
			const shmreg_put_opts_t *opts)
{
	size_t len = PROTO_HDR_SIZE + put_body_len(klen, vlen);
	uint8_t *p = buf;

	if (len > cap)
		return len;
	put_hdr(p, (uint32_t)len, PROTO_OP_PUT, id);
	put_body(p + PROTO_HDR_SIZE, key, klen, val, vlen,
		 opts ? opts : &no_opts);
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

static size_t putx_body_len(size_t klen, size_t vlen,
			    const shmreg_put_opts_t *opts)
{
	return PROTO_PUTX_FIXED + klen + vlen + opts->parent_len +
	       attrs_len(opts->attrs, opts->nattrs);
}

static void putx_body(uint8_t *p, const void *key, size_t klen,
		      const void *val, size_t vlen,
		      const shmreg_put_opts_t *opts)
{
	size_t alen = attrs_len(opts->attrs, opts->nattrs);

	put_fixed(p, klen, vlen, opts);
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
}

size_t proto_encode_putx(void *buf, size_t cap, uint64_t id,
			 const void *key, size_t klen,
			 const void *val, size_t vlen,
			 const shmreg_put_opts_t *opts)
{
	size_t len;
	uint8_t *p = buf;

	if (!opts)
		opts = &no_opts;
	len = PROTO_HDR_SIZE + putx_body_len(klen, vlen, opts);
	if (len > cap)
		return len;
	put_hdr(p, (uint32_t)len, PROTO_OP_PUTX, id);
	putx_body(p + PROTO_HDR_SIZE, key, klen, val, vlen, opts);
	return len;
}

static size_t setattrs_body_len(size_t klen, const shmreg_attr_t *attrs,
				size_t nattrs)
{
	return PROTO_SETATTRS_FIXED + klen + attrs_len(attrs, nattrs);
}

static void setattrs_body(uint8_t *p, const void *key, size_t klen,
			  const shmreg_attr_t *attrs, size_t nattrs)
{
	proto_put_u32(p, (uint32_t)klen);
	proto_put_u32(p + 4, (uint32_t)attrs_len(attrs, nattrs));
	p += PROTO_SETATTRS_FIXED;
	if (klen)
		memcpy(p, key, klen);
	put_attrs(p + klen, attrs, nattrs);
}

size_t proto_encode_setattrs(void *buf, size_t cap, uint64_t id,
			     const void *key, size_t klen,
			     const shmreg_attr_t *attrs, size_t nattrs)
{
	size_t len = PROTO_HDR_SIZE + setattrs_body_len(klen, attrs, nattrs);
	uint8_t *p = buf;

	if (len > cap)
		return len;
	put_hdr(p, (uint32_t)len, PROTO_OP_SETATTRS, id);
	setattrs_body(p + PROTO_HDR_SIZE, key, klen, attrs, nattrs);
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

size_t proto_encode_registries(void *buf, size_t cap, uint64_t id,
			       uint32_t first)
{
	size_t len = PROTO_HDR_SIZE + PROTO_REGISTRIES_FIXED;
	uint8_t *p = buf;

	if (len > cap)
		return len;
	put_hdr(p, (uint32_t)len, PROTO_OP_REGISTRIES, id);
	proto_put_u32(p + PROTO_HDR_SIZE, first);
	proto_put_u32(p + PROTO_HDR_SIZE + 4, 0);
	return len;
}

/* ---- BATCH ---- */

size_t proto_encode_batch_hdr(void *buf, size_t cap, uint64_t id,
			      size_t len, uint32_t nops)
{
	uint8_t *p = buf;

	if (PROTO_HDR_SIZE + PROTO_BATCH_FIXED > cap)
		return PROTO_HDR_SIZE + PROTO_BATCH_FIXED;
	put_hdr(p, (uint32_t)len, PROTO_OP_BATCH, id);
	proto_put_u32(p + PROTO_HDR_SIZE, nops);
	proto_put_u32(p + PROTO_HDR_SIZE + 4, 0);
	return PROTO_HDR_SIZE + PROTO_BATCH_FIXED;
}

static void rec_hdr(uint8_t *p, uint8_t op, size_t blen)
{
	p[0] = op;
	p[1] = p[2] = p[3] = 0;
	proto_put_u32(p + 4, (uint32_t)blen);
}

size_t proto_encode_batch_put(void *buf, size_t cap, const void *key,
			      size_t klen, const void *val, size_t vlen,
			      const shmreg_put_opts_t *opts)
{
	bool x;
	size_t blen;
	uint8_t *p = buf;

	if (!opts)
		opts = &no_opts;
	/* the choice the client makes for a single put (client.c) */
	x = opts->nattrs || opts->parent_len;
	blen = x ? putx_body_len(klen, vlen, opts) : put_body_len(klen, vlen);
	if (PROTO_BATCH_REC_HDR + blen > cap)
		return PROTO_BATCH_REC_HDR + blen;
	rec_hdr(p, x ? PROTO_OP_PUTX : PROTO_OP_PUT, blen);
	if (x)
		putx_body(p + PROTO_BATCH_REC_HDR, key, klen, val, vlen, opts);
	else
		put_body(p + PROTO_BATCH_REC_HDR, key, klen, val, vlen, opts);
	return PROTO_BATCH_REC_HDR + blen;
}

size_t proto_encode_batch_key(void *buf, size_t cap, uint8_t op,
			      const void *key, size_t klen)
{
	size_t blen = 8 + klen;

	if (PROTO_BATCH_REC_HDR + blen > cap)
		return PROTO_BATCH_REC_HDR + blen;
	rec_hdr(buf, op, blen);
	bytes_body((uint8_t *)buf + PROTO_BATCH_REC_HDR, key, klen);
	return PROTO_BATCH_REC_HDR + blen;
}

size_t proto_encode_batch_setattrs(void *buf, size_t cap, const void *key,
				   size_t klen, const shmreg_attr_t *attrs,
				   size_t nattrs)
{
	size_t blen = setattrs_body_len(klen, attrs, nattrs);

	if (PROTO_BATCH_REC_HDR + blen > cap)
		return PROTO_BATCH_REC_HDR + blen;
	rec_hdr(buf, PROTO_OP_SETATTRS, blen);
	setattrs_body((uint8_t *)buf + PROTO_BATCH_REC_HDR, key, klen, attrs,
		      nattrs);
	return PROTO_BATCH_REC_HDR + blen;
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
