/* SPDX-License-Identifier: MIT */
/* Description: the short get (include/shmreg_inline.h: keys of 8..16
 * bytes, inline values of at most 64), both where shmreg.h inlines it into
 * the caller (a constant key length) and inside the library, against the
 * general path, shape by shape: every key length around it (8..17), every
 * value length that changes how the value is stored (0..80 - klen, and out
 * of line), and buffers smaller than, equal to and larger than the value.
 * Each get returns the value's length, stores exactly min(length, cap)
 * bytes (the rest of the buffer keeps its canary) and agrees with the same
 * get asking for metadata (the general path); a key that differs in any
 * byte, or is absent, or sits in a crowded probe chain, gets its exact
 * answer.  The header's hash of those keys is the library's.  Then, in a
 * crafted copy of a closed registry: a slot whose tag and length match but
 * whose key bytes differ (first or last byte) is not a hit, and one whose
 * value length makes no sense is refused with -EPROTO, not read. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include "shmreg.h"
#include "shmreg_writer.h"
#include "common/tc.h"
#include "hash.h"
#include "layout.h"

#define NAME   "getshort"
#define CANARY 0xee
#define BUFSZ  256u  /* > every vlen + 1 below */

static shmreg_writer_t *w;
static shmreg_t *r;

/* Key @id of @klen bytes, every byte depending on both. */
static void key_of(uint8_t *k, size_t klen, unsigned id)
{
	for (size_t i = 0; i < klen; i++)
		k[i] = (uint8_t)(0x41 + (id * 7 + i * 13 + klen) % 53);
}

static void value_of(uint8_t *v, size_t vlen, unsigned id)
{
	for (size_t i = 0; i < vlen; i++)
		v[i] = (uint8_t)(id * 31 + i * 17 + vlen);
}

/* shmreg_get with @klen a compile-time constant at each call: where
 * shmreg.h inlines the get (SHMREG_INLINE_GET: 8..16 bytes), the inline
 * one. */
static ssize_t get_const(const uint8_t *key, size_t klen, void *buf,
			 size_t cap)
{
	switch (klen) {
	case 8: return shmreg_get(r, key, 8, buf, cap, NULL);
	case 9: return shmreg_get(r, key, 9, buf, cap, NULL);
	case 10: return shmreg_get(r, key, 10, buf, cap, NULL);
	case 11: return shmreg_get(r, key, 11, buf, cap, NULL);
	case 12: return shmreg_get(r, key, 12, buf, cap, NULL);
	case 13: return shmreg_get(r, key, 13, buf, cap, NULL);
	case 14: return shmreg_get(r, key, 14, buf, cap, NULL);
	case 15: return shmreg_get(r, key, 15, buf, cap, NULL);
	case 16: return shmreg_get(r, key, 16, buf, cap, NULL);
	}
	return shmreg_get(r, key, klen, buf, cap, NULL);
}

/* Get @key with @cap into canaried buffers: from the library without and
 * with info, and with a constant key length (the inline get), and check
 * each against @want (@wlen bytes, or wlen < 0: that error). */
static void check_get(const uint8_t *key, size_t klen, size_t cap,
		      const uint8_t *want, ssize_t wlen, const char *what)
{
	uint8_t buf[BUFSZ], buf2[BUFSZ], buf3[BUFSZ];
	shmreg_info_t info;
	ssize_t n, n2, n3;
	size_t stored;

	memset(buf, CANARY, sizeof(buf));
	memset(buf2, CANARY, sizeof(buf2));
	memset(buf3, CANARY, sizeof(buf3));
	n = (shmreg_get)(r, key, klen, buf, cap, NULL);
	n2 = (shmreg_get)(r, key, klen, buf2, cap, &info);
	n3 = get_const(key, klen, buf3, cap);
	TC_CHECK(n == wlen, "%s: klen %zu cap %zu: got %zd, want %zd", what,
		 klen, cap, n, wlen);
	TC_CHECK(n2 == wlen, "%s (info): got %zd, want %zd", what, n2, wlen);
	TC_CHECK(n3 == wlen, "%s (inline): klen %zu cap %zu: got %zd, want %zd",
		 what, klen, cap, n3, wlen);
	stored = wlen < 0 ? 0 : ((size_t)wlen < cap ? (size_t)wlen : cap);
	TC_CHECK(!stored || (!memcmp(buf, want, stored) &&
			     !memcmp(buf2, want, stored) &&
			     !memcmp(buf3, want, stored)),
		 "%s: klen %zu cap %zu: value bytes", what, klen, cap);
	for (size_t i = stored; i < sizeof(buf); i++)
		TC_CHECK(buf[i] == CANARY && buf2[i] == CANARY &&
				 buf3[i] == CANARY,
			 "%s: klen %zu cap %zu: byte %zu past the copy written",
			 what, klen, cap, i);
	if (wlen >= 0)
		TC_EQ(info.vlen, (uint32_t)wlen, what);
}

/* The slot of the one 16-byte key @key in the segment at @base. */
static struct shm_slot *slot_of(uint8_t *base, const uint8_t *key)
{
	struct shm_hdr *h = (struct shm_hdr *)base;

	for (uint64_t i = 0; i < h->index_cap; i++) {
		struct shm_slot *s = (struct shm_slot *)(base + h->index_off +
							 i * SHM_SLOT_SIZE);

		if (s->klen == 16 && !memcmp(s->data, key, 16))
			return s;
	}
	TC_CHECK(0, "no slot holds the key");
	return NULL;
}

static void crafted_checks(void)
{
	shmreg_writer_opts_t o = { .flags = SHMREG_WRITER_TRUNCATE };
	shmreg_writer_t *cw;
	shmreg_t *cr;
	uint8_t key[16], val[64];
	char path[4096];
	struct stat st;
	struct shm_slot *s;
	uint8_t *base;
	int fd;

	tc_path(path, "shmreg.getshort-crafted");
	key_of(key, 16, 4242);
	value_of(val, 64, 4242);
	TC_EQ(shmreg_writer_open(path, &o, &cw), 0, "crafted writer");
	TC_CHECK(shmreg_writer_put(cw, key, 16, val, 64, NULL) > 0, "put");
	shmreg_writer_close(cw);
	fd = open(path, O_RDWR);
	TC_CHECK(fd >= 0 && fstat(fd, &st) == 0, "open %s", path);
	base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE,
		    MAP_SHARED, fd, 0);
	TC_CHECK(base != MAP_FAILED, "mmap");
	close(fd);
	TC_EQ(shmreg_open(path, 0, &cr), 0, "crafted reader");
	r = cr;
	check_get(key, 16, 64, val, 64, "crafted, untouched");

	s = slot_of(base, key);
	s->data[0] ^= 1;     /* same tag and length, first byte differs */
	check_get(key, 16, 64, NULL, -ENOENT, "first key byte differs");
	s->data[0] ^= 1;
	s->data[15] ^= 0x80; /* last byte */
	check_get(key, 16, 64, NULL, -ENOENT, "last key byte differs");
	s->data[15] ^= 0x80;
	check_get(key, 16, 64, val, 64, "crafted, restored");
	s->vlen = 200;       /* an inline value longer than the slot */
	check_get(key, 16, 64, NULL, -EPROTO, "inline vlen past the slot");

	shmreg_close(cr);
	munmap(base, (size_t)st.st_size);
}

/* The header's hash of 8..16-byte keys is the format's (XXH3-64, the
 * library's shm_hash()), for every length and many keys. */
static void hash_checks(void)
{
#if SHMREG_INLINE_GET
	uint8_t k[16];
	uint64_t x = 0x9e3779b97f4a7c15u;

	for (size_t klen = 8; klen <= 16; klen++)
		for (unsigned t = 0; t < 10000; t++) {
			for (size_t i = 0; i < klen; i++) {
				x ^= x << 13, x ^= x >> 7, x ^= x << 17;
				k[i] = (uint8_t)x;
			}
			TC_CHECK(shmreg__hash_8to16(k, klen) ==
					 shm_hash(k, klen),
				 "hash of a %zu-byte key", klen);
		}
#endif
}

int main(void)
{
	static const size_t vlens[] = { 0,  1,  3,  4,  7,  8,  9,  15, 16,
					17, 31, 32, 33, 47, 48, 49, 63, 64,
					65, 72, 100, 200 };
	shmreg_writer_opts_t wo = { .flags = SHMREG_WRITER_TRUNCATE,
				    .initial_entries = 2048 };
	uint8_t key[32], val[512];
	unsigned id = 0, checked = 0, short_shaped = 0;

	tc_init("get_short", 60);
	tc_dir();
	hash_checks();
	TC_EQ(shmreg_writer_open(NAME, &wo, &w), 0, "open");
	TC_EQ(shmreg_open(NAME, 0, &r), 0, "reader");

	for (size_t klen = 8; klen <= 17; klen++) {
		for (size_t j = 0; j < sizeof(vlens) / sizeof(vlens[0]); j++) {
			size_t vlen = vlens[j];
			size_t caps[] = { 0, 1, vlen ? vlen - 1 : 0, vlen,
					  vlen + 1, 64, BUFSZ };

			key_of(key, klen, ++id);
			value_of(val, vlen, id);
			TC_CHECK(shmreg_writer_put(w, key, klen, val, vlen,
						   NULL) > 0,
				 "put klen %zu vlen %zu", klen, vlen);
			for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]);
			     c++) {
				check_get(key, klen, caps[c], val,
					  (ssize_t)vlen, "stored");
				checked++;
			}
			short_shaped += klen == 16 && vlen <= 64;
			/* the same key with any one byte changed: absent */
			for (size_t b = 0; b < klen; b++) {
				key[b] ^= 0x20;
				check_get(key, klen, BUFSZ, NULL, -ENOENT,
					  "one byte off");
				key[b] ^= 0x20;
			}
		}
	}
	TC_CHECK(short_shaped == 18, "%u short-shaped entries", short_shaped);

	/* an expiring 16-byte entry (the short get hands it over), then a
	 * replace that drops the expiry */
	shmreg_put_opts_t ttl = { .ttl_ns = INT64_C(3600000000000) };

	key_of(key, 16, ++id);
	value_of(val, 64, id);
	TC_CHECK(shmreg_writer_put(w, key, 16, val, 64, &ttl) > 0, "put ttl");
	check_get(key, 16, BUFSZ, val, 64, "expiring");
	value_of(val, 40, id);
	TC_CHECK(shmreg_writer_put(w, key, 16, val, 40, NULL) > 0, "replace");
	check_get(key, 16, BUFSZ, val, 40, "replaced");
	TC_CHECK(shmreg_writer_del(w, key, 16) > 0, "delete");
	check_get(key, 16, BUFSZ, NULL, -ENOENT, "deleted");

	/* a crowded index: 16-byte keys at 3/4 load, many of them far from
	 * their home slot, each found (and a deleted half absent) */
	shmreg_stats_t st;

	TC_EQ(shmreg_stats(r, &st), 0, "stats");
	unsigned fill = (unsigned)(st.index_capacity * 3 / 4 - st.entries);
	unsigned base = id;

	for (unsigned i = 0; i < fill; i++) {
		key_of(key, 16, base + i);
		memcpy(key, &i, sizeof(i)); /* unique */
		value_of(val, 64, base + i);
		TC_CHECK(shmreg_writer_put(w, key, 16, val, 64, NULL) > 0,
			 "fill %u", i);
	}
	for (unsigned i = 0; i < fill; i += 2) {
		key_of(key, 16, base + i);
		memcpy(key, &i, sizeof(i));
		TC_CHECK(shmreg_writer_del(w, key, 16) > 0, "del %u", i);
	}
	for (unsigned i = 0; i < fill; i++) {
		key_of(key, 16, base + i);
		memcpy(key, &i, sizeof(i));
		value_of(val, 64, base + i);
		check_get(key, 16, 64, val, i & 1 ? 64 : -ENOENT, "crowded");
		checked++;
	}
	TC_CHECK(fill > 500 && checked > 1500, "%u filled, %u checked", fill,
		 checked);

	shmreg_close(r);
	shmreg_writer_close(w);
	crafted_checks();
	tc_log("%u gets checked, %u in a crowded index\n", checked, fill);
	return 0;
}
