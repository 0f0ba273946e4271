/* SPDX-License-Identifier: MIT */
/*
 * fuzz_frame.c - libFuzzer target: the shmregd frame codec against arbitrary
 * bytes.
 *
 * Request frames are what any local process can send the daemon; replies
 * are what a client trusts from the socket.  The input is decoded as a
 * stream of requests, the way the daemon reads a connection, and as a
 * stream of replies, the way the client does.  Beyond "no crash, no
 * out-of-bounds read, no undefined behaviour":
 *   - every error is one that proto.h documents for that decoder;
 *   - every decoded frame re-encodes to exactly its input bytes (the
 *     decoder accepts nothing the encoder could not have written, and reads
 *     every field where the encoder puts it);
 *   - a decoder given only a prefix of a frame says "need more" or the same
 *     header error it gives the whole frame: the daemon decides on what has
 *     arrived, so a frame split across reads must not change the verdict.
 *
 * Linked into fuzz/replay.c too, which replays the seed corpus of valid
 * frames in every ctest run.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "batch_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(...)                                                            \
	do {                                                                 \
		fprintf(stderr, "fuzz_frame: " __VA_ARGS__);                 \
		fputc('\n', stderr);                                         \
		abort();                                                     \
	} while (0)

static uint8_t scratch[1u << 16];

static void same(const uint8_t *a, const uint8_t *b, size_t n, size_t got,
		 const char *what)
{
	if (got != n || memcmp(a, b, n))
		FAIL("%s: re-encoding differs (%zu vs %zu bytes)", what, got, n);
}

static void reencode_request(const uint8_t *f, size_t n,
			     const struct proto_req *q)
{
	shmreg_put_opts_t o;
	size_t got;

	if (n > sizeof(scratch))
		return; /* the fuzzer's inputs stay far below this */
	switch (q->op) {
	case PROTO_OP_HELLO:
		got = proto_encode_hello(scratch, sizeof(scratch), q->id,
					 q->u.hello.name, q->u.hello.nlen);
		break;
	case PROTO_OP_PUT:
		o = (shmreg_put_opts_t){
			.owner_pid = q->u.put.owner_pid,
			.flags = q->u.put.flags,
			.ttl_ns = q->u.put.ttl_ns,
			.expect_rev = q->u.put.expect_rev,
		};
		if (q->u.put.key != f + PROTO_HDR_SIZE + PROTO_PUT_FIXED ||
		    q->u.put.val != q->u.put.key + q->u.put.klen)
			FAIL("put pointers outside the frame");
		got = proto_encode_put(scratch, sizeof(scratch), q->id,
				       q->u.put.key, q->u.put.klen,
				       q->u.put.val, q->u.put.vlen, &o);
		break;
	case PROTO_OP_PUTX:
		/* more pairs than are kept cannot be re-encoded from them */
		if (q->u.put.attrs.n > SHMREG_ATTRS_MAX)
			return;
		proto_put_opts(q, &o);
		if (q->u.put.key != f + PROTO_HDR_SIZE + PROTO_PUTX_FIXED)
			FAIL("putx pointers outside the frame");
		got = proto_encode_putx(scratch, sizeof(scratch), q->id,
					q->u.put.key, q->u.put.klen,
					q->u.put.val, q->u.put.vlen, &o);
		break;
	case PROTO_OP_SETATTRS:
		if (q->u.setattrs.attrs.n > SHMREG_ATTRS_MAX)
			return;
		got = proto_encode_setattrs(scratch, sizeof(scratch), q->id,
					    q->u.setattrs.key,
					    q->u.setattrs.klen,
					    q->u.setattrs.attrs.a,
					    q->u.setattrs.attrs.n);
		break;
	case PROTO_OP_DEL:
		got = proto_encode_del(scratch, sizeof(scratch), q->id,
				       q->u.del.key, q->u.del.klen);
		break;
	case PROTO_OP_DELTREE:
		got = proto_encode_deltree(scratch, sizeof(scratch), q->id,
					   q->u.del.key, q->u.del.klen);
		break;
	case PROTO_OP_PING:
	case PROTO_OP_STATS:
	case PROTO_OP_RELOAD:
	case PROTO_OP_SNAPSHOT:
		got = proto_encode_simple(scratch, sizeof(scratch), q->id,
					  q->op);
		break;
	case PROTO_OP_REGISTRIES:
		got = proto_encode_registries(scratch, sizeof(scratch), q->id,
					      q->u.registries.first);
		break;
	case PROTO_OP_BATCH:
		bc_check_batch(f, n, q);
		return;
	default:
		FAIL("decoded an unknown op %u", q->op);
	}
	same(f, scratch, n, got, proto_op_name(q->op));
}

static void check_request_error(ssize_t r)
{
	if (r != -EMSGSIZE && r != -EPROTO && r != -EOPNOTSUPP &&
	    r != -EBADMSG)
		FAIL("undocumented request error %zd", r);
}

/* Prefixes of a frame must not change the verdict. */
static void check_prefixes(const uint8_t *p, size_t n, ssize_t full)
{
	size_t cuts[] = { 0, 1, PROTO_HDR_SIZE - 1, PROTO_HDR_SIZE,
			  PROTO_HDR_SIZE + 1, n / 2, n - 1 };
	struct proto_req q;

	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		ssize_t r;

		if (cuts[i] >= n)
			continue;
		r = proto_decode_request(p, cuts[i], PROTO_FRAME_MAX, &q);
		if (r == 0)
			continue;
		/* a complete header can be refused early: then it must be
		 * the same refusal as for the whole input */
		if (cuts[i] < PROTO_HDR_SIZE || r > 0 || r != full)
			FAIL("prefix %zu of %zu: %zd, whole: %zd", cuts[i], n,
			     r, full);
	}
}

static void requests(const uint8_t *data, size_t size)
{
	size_t off = 0;

	/* at most size / PROTO_HDR_SIZE frames: each is >= 16 bytes */
	while (off < size) {
		struct proto_req q;
		ssize_t r = proto_decode_request(data + off, size - off,
						 PROTO_FRAME_MAX, &q);
		int c;

		if (r == 0)
			return;
		if (r < 0) {
			check_request_error(r);
			check_prefixes(data + off, size - off, r);
			return;
		}
		if ((size_t)r > size - off || (size_t)r < PROTO_HDR_SIZE)
			FAIL("frame length %zd out of the input", r);
		check_prefixes(data + off, (size_t)r, r);
		c = proto_check_request(&q);
		if (c != 0 && c != -EINVAL && c != -E2BIG)
			FAIL("undocumented check error %d", c);
		reencode_request(data + off, (size_t)r, &q);
		off += (size_t)r;
	}
}

static void replies(const uint8_t *data, size_t size)
{
	size_t off = 0;

	while (off < size) {
		struct proto_reply rep;
		ssize_t r = proto_decode_reply(data + off, size - off, &rep);
		size_t got;

		if (r == 0)
			return;
		if (r < 0) {
			if (r != -EPROTO)
				FAIL("undocumented reply error %zd", r);
			return;
		}
		if ((size_t)r > size - off || rep.blen + PROTO_REPLY_HDR_SIZE !=
						      (size_t)r)
			FAIL("reply length %zd inconsistent", r);
		got = proto_encode_reply(scratch, sizeof(scratch), rep.op,
					 rep.id, rep.status, rep.revision,
					 rep.blen);
		if (got <= sizeof(scratch))
			memcpy(scratch + PROTO_REPLY_HDR_SIZE, rep.body,
			       rep.blen);
		same(data + off, scratch, (size_t)r, got, "reply");
		off += (size_t)r;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* a private copy: the decoders must not depend on the buffer being
	 * larger than what they were told */
	uint8_t *copy = malloc(size ? size : 1);

	if (!copy)
		return 0;
	memcpy(copy, data, size);
	requests(copy, size);
	replies(copy, size);
	free(copy);
	return 0;
}
