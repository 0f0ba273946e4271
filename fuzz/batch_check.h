/* SPDX-License-Identifier: MIT */
/*
 * batch_check.h - what fuzz_frame.c and fuzz_batch.c both hold a decoded
 * BATCH to: every operation iterates, passes or fails proto_check_request
 * with a documented error, and the batch re-encodes to the same
 * operations (byte for byte when each record's op is the one the encoder
 * picks; a PUTX record without parent and attributes re-encodes as PUT,
 * so there the fields are compared instead).
 */
#ifndef FUZZ_BATCH_CHECK_H
#define FUZZ_BATCH_CHECK_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

#define BC_FAIL(...)                                                         \
	do {                                                                 \
		fprintf(stderr, "batch_check: " __VA_ARGS__);                \
		fputc('\n', stderr);                                         \
		abort();                                                     \
	} while (0)

static size_t bc_encode_op(uint8_t *p, size_t cap, const struct proto_req *o)
{
	shmreg_put_opts_t po;

	switch (o->op) {
	case PROTO_OP_PUT:
	case PROTO_OP_PUTX:
		proto_put_opts(o, &po);
		return proto_encode_batch_put(p, cap, o->u.put.key,
					      o->u.put.klen, o->u.put.val,
					      o->u.put.vlen, &po);
	case PROTO_OP_DEL:
	case PROTO_OP_DELTREE:
		return proto_encode_batch_key(p, cap, o->op, o->u.del.key,
					      o->u.del.klen);
	case PROTO_OP_SETATTRS:
		return proto_encode_batch_setattrs(p, cap, o->u.setattrs.key,
						   o->u.setattrs.klen,
						   o->u.setattrs.attrs.a,
						   o->u.setattrs.attrs.n);
	}
	BC_FAIL("an operation of op %u in a batch", o->op);
}

static int bc_same_bytes(const uint8_t *a, uint32_t al, const uint8_t *b,
			 uint32_t bl)
{
	return al == bl && (al == 0 || memcmp(a, b, al) == 0);
}

/* The fields two decodings of one operation must agree on. */
static void bc_same_op(const struct proto_req *a, const struct proto_req *b)
{
	int put_a = a->op == PROTO_OP_PUT || a->op == PROTO_OP_PUTX;
	int put_b = b->op == PROTO_OP_PUT || b->op == PROTO_OP_PUTX;

	if (put_a != put_b || (!put_a && a->op != b->op))
		BC_FAIL("re-encoded op %u as %u", a->op, b->op);
	if (put_a) {
		if (!bc_same_bytes(a->u.put.key, a->u.put.klen, b->u.put.key,
				   b->u.put.klen) ||
		    !bc_same_bytes(a->u.put.val, a->u.put.vlen, b->u.put.val,
				   b->u.put.vlen) ||
		    !bc_same_bytes(a->u.put.parent, a->u.put.plen,
				   b->u.put.parent, b->u.put.plen) ||
		    !bc_same_bytes(a->u.put.attrs.block, a->u.put.attrs.blen,
				   b->u.put.attrs.block, b->u.put.attrs.blen) ||
		    a->u.put.owner_pid != b->u.put.owner_pid ||
		    a->u.put.flags != b->u.put.flags ||
		    a->u.put.ttl_ns != b->u.put.ttl_ns ||
		    a->u.put.expect_rev != b->u.put.expect_rev)
			BC_FAIL("a put re-encodes differently");
	}
}

/* Check the decoded BATCH @q of the frame @f (@n bytes). */
static void bc_check_batch(const uint8_t *f, size_t n,
			   const struct proto_req *q)
{
	struct proto_batch_iter it, it2;
	struct proto_req o, o2, q2;
	size_t off = PROTO_HDR_SIZE + PROTO_BATCH_FIXED;
	uint8_t *buf;
	uint32_t count = 0;
	int rc;

	buf = malloc(n + 1);
	if (!buf)
		return;
	proto_batch_iter_init(&it, q);
	while ((rc = proto_batch_next(&it, &o)) > 0) {
		int c = proto_check_request(&o);
		size_t got;

		if (c != 0 && c != -EINVAL && c != -E2BIG)
			BC_FAIL("undocumented check error %d", c);
		count++;
		/* more pairs than are kept cannot be re-encoded from them */
		if ((o.op == PROTO_OP_PUTX &&
		     o.u.put.attrs.n > SHMREG_ATTRS_MAX) ||
		    (o.op == PROTO_OP_SETATTRS &&
		     o.u.setattrs.attrs.n > SHMREG_ATTRS_MAX)) {
			free(buf);
			return;
		}
		got = bc_encode_op(buf + off, off < n ? n - off : 0, &o);
		if (got > n - off)
			BC_FAIL("re-encoded batch longer than its frame");
		off += got;
	}
	if (rc < 0)
		BC_FAIL("iteration of a decoded batch failed: %d", rc);
	if (count != q->u.batch.nops)
		BC_FAIL("%u operations of %u", count, q->u.batch.nops);
	proto_encode_batch_hdr(buf, n, proto_get_u64(f + 8), off, count);
	if (off == n && memcmp(buf, f, n) == 0) {
		free(buf);
		return;
	}
	/* PUTX records that became (shorter) PUT ones: the same operations */
	if (proto_decode_request(buf, off, PROTO_FRAME_MAX, &q2) !=
	    (ssize_t)off)
		BC_FAIL("the re-encoded batch does not decode");
	proto_batch_iter_init(&it, q);
	proto_batch_iter_init(&it2, &q2);
	while (proto_batch_next(&it, &o) > 0) {
		if (proto_batch_next(&it2, &o2) <= 0)
			BC_FAIL("the re-encoded batch is shorter");
		bc_same_op(&o, &o2);
	}
	free(buf);
}

#endif /* FUZZ_BATCH_CHECK_H */
