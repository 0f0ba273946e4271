/* SPDX-License-Identifier: MIT */
/* Description: 1 M entries put into a registry started at 1,024 entries
 * and a small arena (100,000 under a sanitizer): every put succeeds with
 * the next revision (no capacity error), and a reader opened before the
 * growth reads all of them back, with exact stats and an exact listing. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmreg.h"
#include "shmreg_writer.h"
#include "common/tc.h"

#define NAME    "growth"
#define NKEYS_FULL 1000000u

static int key_of(char *buf, uint32_t i)
{
	return snprintf(buf, 24, "growth:%07u", i);
}

/* Mostly inline values, every 64th out of line, so that the index and the
 * arena both grow. */
static size_t size_of(uint32_t i)
{
	return i % 64 == 0 ? 200 + i % 300 : TV_MIN + i % 40;
}

struct list_state {
	uint64_t n, bytes;
};

static int list_fn(const void *key, size_t klen, const void *val,
		   size_t vlen, const shmreg_info_t *info, void *arg)
{
	struct list_state *ls = arg;

	TC_CHECK(tv_check(val, vlen, key, klen, NULL) == 0 &&
		 info->vlen == vlen, "list: bad entry %.*s", (int)klen,
		 (const char *)key);
	ls->n++;
	ls->bytes += klen + vlen;
	return 0;
}

int main(void)
{
	shmreg_writer_opts_t o = { .flags = SHMREG_WRITER_TRUNCATE,
				   .initial_entries = 1024,
				   .initial_arena = 64u << 10 };
	struct list_state ls = { 0 };
	uint64_t bytes = 0, rev0, t0;
	uint32_t nkeys;
	shmreg_stats_t st0, st;
	shmreg_writer_t *w;
	shmreg_info_t info;
	uint8_t val[512], buf[512];
	shmreg_t *r;
	char key[24];
	int ret;

	tc_init("growth", 110);
	tc_dir();
	/* 1 M in plain builds; under a sanitizer 100,000 still take the
	 * registry through ten doublings */
	nkeys = NKEYS_FULL / tc_scale();
	TC_CHECK(nkeys >= 20000, "SHMREG_TEST_SCALE leaves %u keys", nkeys);
	ret = shmreg_writer_open(NAME, &o, &w);
	TC_CHECK(ret == 0, "writer_open: %s", strerror(-ret));
	/* opened on the first, smallest segment: must follow every handoff */
	ret = shmreg_open(NAME, 0, &r);
	TC_CHECK(ret == 0, "shmreg_open: %s", strerror(-ret));
	TC_EQ(shmreg_stats(r, &st0), 0, "stats");
	TC_CHECK(st0.index_capacity < 4096, "the registry starts with %llu "
		 "slots for 1,024 entries",
		 (unsigned long long)st0.index_capacity);
	rev0 = shmreg_revision(r);

	t0 = tc_now_ns();
	for (uint32_t i = 0; i < nkeys; i++) {
		int klen = key_of(key, i);
		size_t len = size_of(i);
		int64_t rev;

		tv_build(val, len, key, (size_t)klen, i);
		rev = shmreg_writer_put(w, key, (size_t)klen, val, len, NULL);
		TC_CHECK(rev == (int64_t)(rev0 + i + 1), "put #%u (%s): %lld "
			 "(%s)", i, key, (long long)rev,
			 rev < 0 ? strerror((int)-rev) : "wrong revision");
		bytes += (uint64_t)klen + len;
	}
	tc_log("%u puts in %.2f s", nkeys, (double)(tc_now_ns() - t0) / 1e9);

	t0 = tc_now_ns();
	for (uint32_t i = 0; i < nkeys; i++) {
		int klen = key_of(key, i);
		ssize_t n = shmreg_get(r, key, (size_t)klen, buf, sizeof(buf),
				       &info);

		TC_CHECK(n == (ssize_t)size_of(i), "get %s: %zd", key, n);
		TC_CHECK(tv_check(buf, (size_t)n, key, (size_t)klen, NULL) == 0,
			 "%s: wrong value", key);
		TC_CHECK(info.mod_rev == rev0 + i + 1 &&
			 info.create_rev == info.mod_rev, "%s: revisions %llu "
			 "%llu", key, (unsigned long long)info.create_rev,
			 (unsigned long long)info.mod_rev);
	}
	tc_log("%u gets in %.2f s", nkeys, (double)(tc_now_ns() - t0) / 1e9);
	key_of(key, nkeys);
	TC_EQ(shmreg_get(r, key, strlen(key), buf, sizeof(buf), NULL),
	      -ENOENT, "one past the last key");

	TC_EQ(shmreg_stats(r, &st), 0, "stats");
	tc_log("generation %llu -> %llu, index %llu -> %llu slots, arena "
	       "%llu -> %llu B, segment %llu B",
	       (unsigned long long)st0.generation,
	       (unsigned long long)st.generation,
	       (unsigned long long)st0.index_capacity,
	       (unsigned long long)st.index_capacity,
	       (unsigned long long)st0.arena_bytes,
	       (unsigned long long)st.arena_bytes,
	       (unsigned long long)st.segment_bytes);
	TC_EQ(st.entries, nkeys, "stats.entries");
	TC_EQ(st.bytes_used, bytes, "stats.bytes_used");
	TC_EQ(st.revision, rev0 + nkeys, "stats.revision");
	TC_CHECK(st.generation > st0.generation, "no handoff happened");
	TC_CHECK(st.index_capacity >= nkeys, "index of %llu slots for %u "
		 "entries", (unsigned long long)st.index_capacity, nkeys);
	TC_EQ(st.state, SHMREG_STATE_OPEN, "stats.state");

	TC_EQ(shmreg_list(r, NULL, 0, list_fn, &ls), nkeys, "list");
	TC_EQ(ls.n, nkeys, "entries listed");
	TC_EQ(ls.bytes, bytes, "bytes listed");
	ls.n = ls.bytes = 0;
	/* a prefix: exactly the 10,000 keys growth:000xxxx below 10,000 */
	TC_EQ(shmreg_list(r, "growth:000", 10, list_fn, &ls), 10000,
	      "list by prefix");
	TC_EQ(ls.n, 10000, "entries listed by prefix");

	shmreg_writer_close(w);
	shmreg_close(r);
	tc_log("pass");
	return 0;
}
