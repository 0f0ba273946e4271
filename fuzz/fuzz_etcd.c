/* SPDX-License-Identifier: MIT */
/*
 * fuzz_etcd.c - libFuzzer target: the etcd mirror's decoder of the v3 JSON
 * gateway's replies (writer/daemon/mirror/decode.c) against arbitrary
 * bytes.  Every byte etcd (or whatever answers at its URL) sends reaches
 * it: watch stream messages, range pages, write and lease replies.
 *
 * The first byte picks the decoder, the rest is the reply (or, for 5, the
 * value of an attribute sidecar key, and as well the tail of a parent
 * link key and of an owner record's key).  Beyond "no
 * crash, no out-of-bounds read, no leak, no undefined behaviour":
 *   - an error is -EPROTO or -ENOMEM and leaves nothing allocated;
 *   - what decodes is what the mirror relies on: every kv has a key and a
 *     revision in (0, MDEC_REV_MAX], create_revision <= mod_revision; a
 *     watch message's events are in revision order, at or below its
 *     header revision; a range's kvs are at or below its header revision;
 *   - base64 round-trips: encoding a decoded key and decoding a reply that
 *     holds it gives the same bytes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "fuzz_etcd: %s\n", #c); \
	abort(); } } while (0)

static void check_kv(const struct mkv *kv)
{
	CHECK(kv->klen > 0 && kv->key);
	CHECK(kv->mod_rev > 0 && kv->mod_rev <= MDEC_REV_MAX);
	CHECK(kv->create_rev >= 0 && kv->create_rev <= kv->mod_rev);
	CHECK(kv->vlen == 0 || kv->val);
}

/* Encode @kv's key, wrap it in a range reply, decode: the same bytes. */
static void roundtrip(const struct mkv *kv)
{
	size_t n = mdec_b64_len(kv->klen);
	char *b = malloc(n + 1), *json = malloc(n + 128);
	struct mrange r;

	CHECK(b && json);
	mdec_b64_encode(kv->key, kv->klen, b);
	snprintf(json, n + 128, "{\"header\":{\"revision\":\"%lld\"},\"kvs\":"
		 "[{\"key\":\"%s\",\"mod_revision\":\"%lld\"}]}",
		 (long long)kv->mod_rev, b, (long long)kv->mod_rev);
	CHECK(mdec_range(json, strlen(json), &r) == 0);
	CHECK(r.nkv == 1 && r.kvs[0].klen == kv->klen &&
	      !memcmp(r.kvs[0].key, kv->key, kv->klen));
	mdec_range_free(&r);
	free(b);
	free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data + 1;
	size_t n = size ? size - 1 : 0;
	int rc;

	if (size == 0)
		return 0;
	switch (data[0] % 6) {
	case 0: {
		struct mwatch w;

		rc = mdec_watch(p, n, &w);
		CHECK(rc == 0 || rc == -EPROTO || rc == -ENOMEM);
		if (rc)
			break;
		CHECK(w.kind != MW_EVENTS || w.nev > 0);
		for (size_t i = 0; i < w.nev; i++) {
			check_kv(&w.ev[i].kv);
			CHECK(i == 0 || w.ev[i].kv.mod_rev >=
					w.ev[i - 1].kv.mod_rev);
			CHECK(!w.header_rev || w.ev[i].kv.mod_rev <= w.header_rev);
		}
		if (w.nev)
			roundtrip(&w.ev[0].kv);
		mdec_watch_free(&w);
		break;
	}
	case 1: {
		struct mrange r;

		rc = mdec_range(p, n, &r);
		CHECK(rc == 0 || rc == -EPROTO || rc == -ENOMEM);
		if (rc)
			break;
		CHECK(r.header_rev > 0);
		for (size_t i = 0; i < r.nkv; i++) {
			check_kv(&r.kvs[i]);
			CHECK(r.kvs[i].mod_rev <= r.header_rev);
		}
		mdec_range_free(&r);
		break;
	}
	case 2: {
		int64_t rev = -1, del = -1;
		bool ok;

		rc = mdec_write(p, n, &rev, &del, &ok);
		CHECK(rc == 0 || rc == -EPROTO);
		if (rc == 0)
			CHECK(rev > 0 && rev <= MDEC_REV_MAX && del >= 0);
		break;
	}
	case 3: {
		int64_t id, ttl, rev = -1, mods[4];
		bool ok;

		rc = mdec_txn_ranges(p, n, &rev, &ok, mods, 4);
		CHECK(rc == 0 || rc == -EPROTO || rc == -ENOMEM);
		if (rc == 0 && !ok)
			for (int i = 0; i < 4; i++)
				CHECK(mods[i] >= 0 && mods[i] <= MDEC_REV_MAX);

		rc = mdec_lease(p, n, &id, &ttl);
		CHECK(rc == 0 || rc == -EPROTO);
		if (rc == 0)
			CHECK(id >= 0 && ttl >= -1);
		break;
	}
	case 4:
		rc = mdec_error_code(p, n);
		CHECK(rc >= 0 && rc <= 255);
		break;
	default: {
		shmreg_attr_t a[SHMREG_ATTRS_MAX];
		const uint8_t *par, *ch;
		size_t plen, clen;

		struct mowner_rec rec;

		/* an owner record is a pid with its start time, or a
		 * connection: printed back, the same bytes */
		if (mdec_owner((const uint8_t *)p, n, &rec) == 0) {
			char back[64];
			int bn = rec.conn
				? snprintf(back, sizeof(back), "conn/%llu",
					   (unsigned long long)rec.serial)
				: snprintf(back, sizeof(back), "pid/%d/%llu",
					   (int)rec.pid,
					   (unsigned long long)rec.start);

			CHECK(rec.conn || rec.pid > 0);
			CHECK(bn > 0 && (size_t)bn == n && !memcmp(back, p, n));
		}
		/* a link decodes into two non-empty keys inside the input
		 * and encodes back to the same bytes */
		if (mdec_link((const uint8_t *)p, n, &par, &plen, &ch,
			      &clen) == 0) {
			uint8_t *back;

			CHECK(plen > 0 && clen > 0);
			CHECK(par + plen < ch && ch + clen == data + size);
			CHECK(mdec_link_encode(par, plen, ch, clen, NULL) == n);
			back = malloc(n);
			CHECK(back);
			mdec_link_encode(par, plen, ch, clen, back);
			CHECK(!memcmp(back, p, n));
			free(back);
		}

		rc = mdec_attrs((const uint8_t *)p, n, a, SHMREG_ATTRS_MAX);
		CHECK(rc == -EPROTO || (rc >= 0 && rc <= SHMREG_ATTRS_MAX));
		for (int i = 0; i < rc; i++) {
			/* terminated inside the input, names not empty */
			CHECK(a[i].name[0] != 0);
			CHECK((const char *)a[i].value + strlen(a[i].value) <
			      p + n);
		}
		break;
	}
	}
	return 0;
}
