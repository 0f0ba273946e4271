/* SPDX-License-Identifier: MIT */
/*
 * decode.h - decode etcd v3 JSON gateway replies (untrusted input: every
 * field is checked; fuzz/fuzz_etcd.c feeds it arbitrary bytes).
 *
 * Gateway conventions (etcd 3.4): bytes fields are base64, int64 fields
 * come as JSON strings (numbers are accepted too), and proto3 defaults are
 * omitted, so an absent field means 0 / false / empty.
 */
#ifndef SHMREGD_MIRROR_DECODE_H
#define SHMREGD_MIRROR_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shmreg.h"

/* Revisions and lease ids above this are refused (the writer's limit). */
#define MDEC_REV_MAX ((int64_t)(INT64_MAX - (int64_t)UINT32_MAX))
/* Largest key / value accepted from etcd (decoded bytes); bigger ones are
 * decoded as "too big" and skipped by the mirror, never truncated. */
#define MDEC_BYTES_MAX (64u << 20)

struct mkv {
	uint8_t *key;               /* malloc'd, klen bytes (not terminated) */
	size_t klen;
	uint8_t *val;               /* malloc'd or NULL when vlen == 0 */
	size_t vlen;
	int64_t create_rev, mod_rev;
	int64_t lease;              /* 0: none */
};

struct mev {
	bool del;
	struct mkv kv;              /* a delete: key and mod_rev only */
};

enum mw_kind {
	MW_CREATED,                 /* the watch exists */
	MW_EVENTS,                  /* nev >= 1 events */
	MW_PROGRESS,                /* no events: header_rev is a safe point */
	MW_CANCELED,                /* compact_rev > 0: compacted away */
	MW_ERROR,                   /* {"error":...}: err_code, the gRPC code */
};

struct mwatch {
	enum mw_kind kind;
	int64_t header_rev;
	int64_t compact_rev;
	int err_code;
	struct mev *ev;             /* malloc'd */
	size_t nev;
};

struct mrange {
	int64_t header_rev;
	bool more;
	struct mkv *kvs;            /* malloc'd, in etcd's (key) order */
	size_t nkv;
};

/* Each returns 0, -EPROTO (malformed, a field of the wrong type or out of
 * range, bad base64) or -ENOMEM; on error nothing needs freeing. */
int mdec_watch(const char *json, size_t len, struct mwatch *out);
int mdec_range(const char *json, size_t len, struct mrange *out);
/* kv/put, kv/deleterange, kv/txn: the header revision, *deleted (for
 * deleterange; may be NULL) and *succeeded (txn; may be NULL). */
int mdec_write(const char *json, size_t len, int64_t *rev, int64_t *deleted,
	       bool *succeeded);
/* kv/txn whose failure branch ranges @n single keys (keys only): the
 * header revision, *succeeded, and when it failed, each key's mod_revision
 * in @mod_revs (0: absent). */
int mdec_txn_ranges(const char *json, size_t len, int64_t *rev,
		    bool *succeeded, int64_t *mod_revs, size_t n);
/* lease/grant and lease/keepalive ({"result":{...}} or bare): the lease
 * id and TTL (0 when absent: the lease is gone). */
int mdec_lease(const char *json, size_t len, int64_t *id, int64_t *ttl);
/* An error reply {"error":..,"code":N} or {"code":N,"message":..}: the
 * gRPC code, or 0 when the reply is not an error. */
int mdec_error_code(const char *json, size_t len);

/* The value of an attribute sidecar key (docs/multi-host.md): @n bytes of
 * "name\0value\0" pairs, at most @max of them, into @a (pointing into
 * @p).  Returns the number of pairs, or -EPROTO (not whole pairs, an empty
 * name, too many).  The writer checks names and values further. */
int mdec_attrs(const uint8_t *p, size_t n, shmreg_attr_t *a, unsigned max);

/* A parent link key after P + MIRROR_LINKS (docs/multi-host.md): the
 * decimal length of the parent (no leading zero), '/', the parent, '/',
 * the child.  mdec_link points @parent and @child into @p and returns 0,
 * or -EPROTO (no length, a zero length, one past the end, no '/' after
 * the parent, an empty child).  mdec_link_encode writes it to @out (NULL:
 * only the length) and returns its length. */
int mdec_link(const uint8_t *p, size_t n, const uint8_t **parent,
	      size_t *plen, const uint8_t **child, size_t *clen);
size_t mdec_link_encode(const uint8_t *parent, size_t plen,
			const uint8_t *child, size_t clen, uint8_t *out);

/* An owner record's key after P + MIRROR_OWNERS + host + '/' + registry
 * + '/' (req.c): "pid/<pid>/<start time>" or "conn/<serial>", decimal
 * without leading zeros.  Returns 0 or -EPROTO. */
struct mowner_rec {
	bool conn;                  /* a connection (serial), else a pid */
	int32_t pid;                /* > 0 */
	uint64_t start;             /* the pid's start time (0: unknown) */
	uint64_t serial;
};
int mdec_owner(const uint8_t *p, size_t n, struct mowner_rec *o);

void mdec_watch_free(struct mwatch *w);
void mdec_range_free(struct mrange *r);
void mkv_free(struct mkv *kv);

/* Base64 (RFC 4648, with padding) for requests; @out holds
 * mdec_b64_len(n) + 1 bytes and is terminated. */
size_t mdec_b64_len(size_t n);
void mdec_b64_encode(const uint8_t *in, size_t n, char *out);

#endif /* SHMREGD_MIRROR_DECODE_H */
