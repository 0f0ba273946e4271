/* SPDX-License-Identifier: MIT */
/*
 * fuzz_batch.c - libFuzzer target: BATCH bodies, and the bodies of the
 * replies to BATCH, RELOAD and REGISTRIES, against arbitrary bytes.
 *
 * fuzz_frame.c reaches BATCH too, but through a 16-byte header the fuzzer
 * must first get right; here the input is the body itself (wrapped in a
 * valid header), so mutations go to the records.  Beyond "no crash, no
 * out-of-bounds read": the decoder's errors are the documented ones, a
 * decoded batch iterates to exactly nops operations that re-encode to the
 * same operations (batch_check.h), and a reply body is accepted only in
 * a layout its decoder documents, every record of a REGISTRIES reply
 * inside the body.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "batch_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void request(const uint8_t *data, size_t size)
{
	size_t n = PROTO_HDR_SIZE + size;
	uint8_t *f = malloc(n);
	struct proto_req q;
	ssize_t r;

	if (!f)
		return;
	f[4] = PROTO_OP_BATCH;
	f[5] = PROTO_VERSION;
	f[6] = f[7] = 0;
	proto_put_u32(f, (uint32_t)n);
	proto_put_u64(f + 8, 42);
	memcpy(f + PROTO_HDR_SIZE, data, size);
	r = proto_decode_request(f, n, PROTO_FRAME_MAX, &q);
	if (r < 0 && r != -EBADMSG && r != -EMSGSIZE)
		BC_FAIL("undocumented batch error %zd", r);
	if (r == 0)
		BC_FAIL("a whole frame needs more bytes");
	if (r > 0) {
		int c = proto_check_request(&q);

		if (c != 0 && c != -E2BIG)
			BC_FAIL("undocumented batch check %d", c);
		bc_check_batch(f, n, &q);
	}
	free(f);
}

static void reply(const uint8_t *data, size_t size, uint8_t op,
		  int32_t status)
{
	uint8_t f[PROTO_REPLY_MAX];
	struct proto_reply rep;
	ssize_t r;

	if (size > PROTO_REPLY_MAX - PROTO_REPLY_HDR_SIZE)
		size = PROTO_REPLY_MAX - PROTO_REPLY_HDR_SIZE;
	proto_encode_reply(f, sizeof(f), op, 7, status, 9, (uint32_t)size);
	memcpy(f + PROTO_REPLY_HDR_SIZE, data, size);
	r = proto_decode_reply(f, PROTO_REPLY_HDR_SIZE + size, &rep);
	if (r < 0 && r != -EPROTO)
		BC_FAIL("undocumented reply error %zd", r);
	if (r <= 0)
		return;
	if (op == PROTO_OP_BATCH && rep.blen != PROTO_BATCH_REPLY &&
	    !(status < 0 && rep.blen == 0))
		BC_FAIL("a BATCH reply of %u bytes", rep.blen);
	if (op == PROTO_OP_RELOAD && rep.blen &&
	    proto_get_u32(rep.body) + PROTO_RELOAD_FIXED != rep.blen)
		BC_FAIL("a RELOAD message beyond its body");
	if (op == PROTO_OP_REGISTRIES && status == 0) {
		/* the client's walk: every record inside the body */
		uint32_t n = proto_get_u32(rep.body + 4), off = 8;

		for (uint32_t i = 0; i < n; i++) {
			uint32_t nlen = proto_get_u32(rep.body + off + 20);

			off += PROTO_REGISTRY_REC + nlen;
			if (off > rep.blen)
				BC_FAIL("registry record %u past the body", i);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* private copies: the decoders must not depend on the buffer being
	 * larger than what they were told */
	uint8_t *copy = malloc(size ? size : 1);

	if (!copy)
		return 0;
	memcpy(copy, data, size);
	request(copy, size);
	reply(copy, size, PROTO_OP_BATCH, size & 1 ? -17 : 0);
	reply(copy, size, PROTO_OP_RELOAD, size & 1 ? -22 : 0);
	reply(copy, size, PROTO_OP_REGISTRIES, 0);
	free(copy);
	return 0;
}
