/* SPDX-License-Identifier: MIT */
/* client_batch.c - shmreg_batch_*: operations collected into one BATCH
 * frame, applied by shmregd all or nothing. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "validate.h"
#include "client_internal.h"

/*
 * The batch is the frame itself: the records are encoded as they are
 * added (each checked first with the single calls' checks, so a batch
 * holds only operations the daemon can decode), and the header is
 * written in front when it is committed.  Nothing is sent before
 * shmreg_batch_commit, so an aborted batch costs no round trip.
 */

#define BATCH_HDR (PROTO_HDR_SIZE + PROTO_BATCH_FIXED)

struct shmreg_batch {
	shmreg_client_t *c;
	uint8_t *buf;               /* header room, then the records */
	size_t len, cap;
	uint32_t nops;
};

SHMREG_EXPORT
int shmreg_batch_begin(shmreg_client_t *c, shmreg_batch_t **out)
{
	shmreg_batch_t *b;

	if (!c || !out)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->c = c;
	b->len = BATCH_HDR;
	*out = b;
	return 0;
}

/* Room for a record of @n bytes, within the frame and operation limits. */
static uint8_t *room(shmreg_batch_t *b, size_t n, int *err)
{
	size_t cap = b->cap ? b->cap : 4096;
	uint8_t *p;

	if (b->nops == PROTO_BATCH_OPS_MAX || n > PROTO_FRAME_MAX - b->len) {
		*err = -E2BIG;
		return NULL;
	}
	while (cap - b->len < n)
		cap *= 2;
	if (cap != b->cap) {
		p = realloc(b->buf, cap);
		if (!p) {
			*err = -ENOMEM;
			return NULL;
		}
		b->buf = p;
		b->cap = cap;
	}
	p = b->buf + b->len;
	b->len += n;
	b->nops++;
	return p;
}

SHMREG_EXPORT
int shmreg_batch_put(shmreg_batch_t *b, const void *key, size_t klen,
		     const void *val, size_t vlen,
		     const shmreg_put_opts_t *opts)
{
	int err = b ? client_check_put(key, klen, val, vlen, opts) : -EINVAL;
	size_t n;
	uint8_t *p;

	if (err)
		return err;
	n = proto_encode_batch_put(NULL, 0, key, klen, val, vlen, opts);
	p = room(b, n, &err);
	if (!p)
		return err;
	proto_encode_batch_put(p, n, key, klen, val, vlen, opts);
	return 0;
}

static int add_key(shmreg_batch_t *b, uint8_t op, const void *key,
		   size_t klen)
{
	int err = b ? client_check_del(key, klen) : -EINVAL;
	size_t n;
	uint8_t *p;

	if (err)
		return err;
	n = proto_encode_batch_key(NULL, 0, op, key, klen);
	p = room(b, n, &err);
	if (!p)
		return err;
	proto_encode_batch_key(p, n, op, key, klen);
	return 0;
}

SHMREG_EXPORT
int shmreg_batch_del(shmreg_batch_t *b, const void *key, size_t klen)
{
	return add_key(b, PROTO_OP_DEL, key, klen);
}

SHMREG_EXPORT
int shmreg_batch_del_tree(shmreg_batch_t *b, const void *key, size_t klen)
{
	return add_key(b, PROTO_OP_DELTREE, key, klen);
}

SHMREG_EXPORT
int shmreg_batch_set_attrs(shmreg_batch_t *b, const void *key, size_t klen,
			   const shmreg_attr_t *attrs, uint32_t nattrs)
{
	int err = b ? shm_check_key(key, klen) : -EINVAL;
	size_t n;
	uint8_t *p;

	if (err == 0)
		err = shm_check_attrs(attrs, nattrs);
	if (err)
		return err;
	n = proto_encode_batch_setattrs(NULL, 0, key, klen, attrs, nattrs);
	p = room(b, n, &err);
	if (!p)
		return err;
	proto_encode_batch_setattrs(p, n, key, klen, attrs, nattrs);
	return 0;
}

SHMREG_EXPORT
void shmreg_batch_abort(shmreg_batch_t *b)
{
	if (!b)
		return;
	free(b->buf);
	free(b);
}

/* Queue the frame and wait for its reply. */
static int64_t send_batch(shmreg_batch_t *b, uint32_t *failed)
{
	shmreg_client_t *c = b->c;
	uint8_t hdr[BATCH_HDR];
	uint64_t id;
	uint8_t *p;
	int ret;

	ret = client_request(c, b->len, &p, &id);
	if (ret)
		return ret;
	proto_encode_batch_hdr(hdr, sizeof(hdr), id, b->len, b->nops);
	memcpy(p, hdr, sizeof(hdr));
	if (b->len > BATCH_HDR)
		memcpy(p + BATCH_HDR, b->buf + BATCH_HDR, b->len - BATCH_HDR);
	ret = client_sync_wait(c, id);
	if (ret < 0)
		return ret;
	/* proto_decode_reply() admits a BATCH reply with its 8-byte body,
	 * or an error without one */
	if (c->sync_blen == PROTO_BATCH_REPLY && failed)
		*failed = proto_get_u32(c->sync_body);
	return c->sync_status < 0 ? c->sync_status : (int64_t)c->sync_rev;
}

SHMREG_EXPORT
int64_t shmreg_batch_commit(shmreg_batch_t *b, uint32_t *failed)
{
	int64_t ret;

	if (failed)
		*failed = SHMREG_BATCH_NONE;
	if (!b)
		return -EINVAL;
	ret = send_batch(b, failed);
	shmreg_batch_abort(b);
	return ret;
}
