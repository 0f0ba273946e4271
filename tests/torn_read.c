/* SPDX-License-Identifier: MIT */
/* Description: one writer process rewrites 10,000 self-checking values of
 * 8 B..4 KiB at full speed while two reader processes validate every read
 * across segment growth handoffs: zero torn, stale or wrong values, with
 * keys of 10 and 16 bytes (the general and the short get). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmreg.h"
#include "shmreg_writer.h"
#include "common/tc.h"

#define NAME       "torn"
#define NKEYS      10000u
#define PHASE1_KEYS 500u     /* keys in use before the growth phase */
#define NHOT       64u       /* keys rewritten far more often than others */
#define VMAX       4096u
#define NREADERS   2
#define RUN_NS     (3000000000ull)
#define PHASE1_NS  (1000000000ull)

struct reader_res {
	uint64_t found;          /* validated values */
	uint64_t enoent;         /* absent keys (never written yet) */
	uint64_t eagain;
	uint64_t found_gen0;     /* validated while on the first segment */
	uint64_t found_later;    /* validated after following a handoff */
	uint64_t found_short;    /* of them, 16-byte keys read without info,
	                          * their length a constant (the short get) */
	uint64_t gen0, gen_last;
};

struct shared {
	_Atomic uint32_t active;          /* keys [0, active) are in use */
	_Atomic uint8_t written[NKEYS];   /* set once the key's first put
	                                   * returned: it can never be absent
	                                   * again (nothing is deleted) */
	uint64_t puts;
	uint64_t gen_first, gen_last;
	uint64_t rev_last;
	struct reader_res rr[NREADERS];
};

static struct shared *sh;

/* Keys of 10 bytes and, for odd i, of 16.  Half the gets of 16-byte keys
 * ask for no metadata and pass the length as a constant: on x86-64 the
 * short get (include/shmreg_inline.h) inlined here; every other get takes
 * the general path, and both race the writer. */
static int key_of(char *buf, uint32_t i)
{
	return snprintf(buf, 24, i & 1 ? "torn:%011u" : "torn:%05u", i);
}

/* Sizes: half inline (key + value <= 80 B fits the 128 B slot), half
 * out of line up to 4 KiB, so both read paths race the writer. */
static size_t draw_size(uint64_t *rs, size_t klen)
{
	if (tc_rand(rs) & 1)
		return tc_range(rs, TV_MIN, 80 - klen);
	return tc_range(rs, 80 - klen + 1, VMAX);
}

static int writer_main(struct tc_child *c, void *arg)
{
	shmreg_writer_opts_t o = {
		.flags = SHMREG_WRITER_TRUNCATE,
		.initial_entries = 1024,
		/* room for phase 1 (500 keys of <= 4 KiB, with free lists) so
		 * that the first handoffs come with phase 2's 9,500 new keys,
		 * while the readers are reading */
		.initial_arena = 8u << 20,
	};
	shmreg_writer_t *w;
	shmreg_stats_t st;
	uint64_t rs = tc_seed() ^ 0x5772, seq = 0, t0, now;
	int64_t rev, prev;
	uint32_t sweep = 0, nwritten = 0;
	static uint8_t val[VMAX];
	char key[24];
	int ret, klen;

	(void)arg;
	ret = shmreg_writer_open(NAME, &o, &w);
	TC_CHECK(ret == 0, "shmreg_writer_open: %s", strerror(-ret));
	TC_EQ(shmreg_stats(shmreg_writer_reader(w), &st), 0, "stats");
	sh->gen_first = st.generation;
	prev = (int64_t)shmreg_writer_revision(w);
	atomic_store_explicit(&sh->active, PHASE1_KEYS, memory_order_release);
	tc_post(c, 'o');
	TC_EQ(tc_wait_parent(c, 10000), 'g', "go");

	t0 = tc_now_ns();
	for (uint64_t n = 0;; n++) {
		uint32_t active, i;
		size_t len;

		if ((n & 255) == 0) {
			now = tc_now_ns();
			/* run for RUN_NS, and on until every key was
			 * written (a loaded machine may slow us down) */
			if (now - t0 >= RUN_NS && nwritten == NKEYS)
				break;
			if (now - t0 >= PHASE1_NS)
				/* release: a reader that picks a key below
				 * active also sees whether it was written */
				atomic_store_explicit(&sh->active, NKEYS,
						      memory_order_release);
		}
		active = atomic_load_explicit(&sh->active,
					      memory_order_relaxed);
		/* alternate a sweep over every active key with a hot key, so
		 * that readers often hit a key while it is being rewritten */
		if (n & 1)
			i = (uint32_t)tc_range(&rs, 0, NHOT - 1);
		else
			i = sweep++ % active;
		klen = key_of(key, i);
		len = draw_size(&rs, (size_t)klen);
		tv_build(val, len, key, (size_t)klen, ++seq);
		rev = shmreg_writer_put(w, key, (size_t)klen, val, len, NULL);
		TC_CHECK(rev == prev + 1, "put %s (%zu B) returned %lld after "
			 "revision %lld", key, len, (long long)rev,
			 (long long)prev);
		prev = rev;
		if (!atomic_load_explicit(&sh->written[i],
					  memory_order_relaxed)) {
			/* release: pairs with the reader's acquire load; the
			 * put has returned, so the key is published */
			atomic_store_explicit(&sh->written[i], 1,
					      memory_order_release);
			nwritten++;
		}
	}
	TC_EQ(shmreg_stats(shmreg_writer_reader(w), &st), 0, "stats");
	sh->puts = seq;
	sh->gen_last = st.generation;
	sh->rev_last = (uint64_t)prev;
	tc_log("%llu puts in %.1f s, generation %llu -> %llu, index %llu "
	       "slots, arena %llu B", (unsigned long long)seq,
	       (double)(tc_now_ns() - t0) / 1e9,
	       (unsigned long long)sh->gen_first,
	       (unsigned long long)st.generation,
	       (unsigned long long)st.index_capacity,
	       (unsigned long long)st.arena_bytes);
	tc_post(c, 'd');
	TC_EQ(tc_wait_parent(c, 30000), 'q', "quit");
	shmreg_writer_close(w);
	return 0;
}

static int reader_main(struct tc_child *c, void *arg)
{
	struct reader_res *res = &sh->rr[(intptr_t)arg];
	static uint64_t last_seq[NKEYS], last_rev[NKEYS];
	static uint8_t buf[2 * VMAX];
	uint64_t rs = tc_seed() ^ (0x7265 + (uint64_t)(intptr_t)arg);
	uint64_t t0, gen;
	shmreg_stats_t st;
	shmreg_info_t info;
	shmreg_t *r;
	char key[24];
	int ret;

	ret = shmreg_open(NAME, 0, &r);
	TC_CHECK(ret == 0, "shmreg_open: %s", strerror(-ret));
	TC_EQ(shmreg_stats(r, &st), 0, "stats");
	res->gen0 = gen = st.generation;
	tc_post(c, 'r');
	TC_EQ(tc_wait_parent(c, 10000), 'g', "go");

	t0 = tc_now_ns();
	for (uint64_t n = 0;; n++) {
		uint32_t i, active;
		uint64_t s;
		ssize_t len;
		uint8_t was_written;
		int klen;

		if ((n & 1023) == 0) {
			if (tc_now_ns() - t0 >= RUN_NS)
				break;
			TC_EQ(shmreg_stats(r, &st), 0, "stats");
			TC_CHECK(st.generation >= gen, "generation went back "
				 "from %llu to %llu", (unsigned long long)gen,
				 (unsigned long long)st.generation);
			gen = st.generation;
		}
		active = atomic_load_explicit(&sh->active,
					      memory_order_acquire);
		switch (tc_rand(&rs) & 31) {
		case 0:                   /* anywhere, written or not */
			i = (uint32_t)tc_range(&rs, 0, NKEYS - 1);
			break;
		case 1 ... 8:             /* hot keys */
			i = (uint32_t)tc_range(&rs, 0, NHOT - 1);
			break;
		default:
			i = (uint32_t)tc_range(&rs, 0, active - 1);
			break;
		}
		klen = key_of(key, i);
		/* acquire: pairs with the writer's release store after the put
		 * returned; loaded before the get, so a set flag means the key
		 * was published before the get started */
		was_written = atomic_load_explicit(&sh->written[i],
						   memory_order_acquire);
		memset(&info, 0xa5, sizeof(info));
		bool brief = klen == 16 && (tc_rand(&rs) & 1);

		len = brief ? shmreg_get(r, key, 16, buf, sizeof(buf), NULL)
			    : shmreg_get(r, key, (size_t)klen, buf,
					 sizeof(buf), &info);
		if (len == -ENOENT) {
			TC_CHECK(!was_written, "%s: -ENOENT for a key that was "
				 "written", key);
			res->enoent++;
			continue;
		}
		if (len == -EAGAIN) {
			res->eagain++;
			continue;
		}
		TC_CHECK(len >= 0, "get %s: %s", key, strerror((int)-len));
		if (len < (ssize_t)TV_MIN || len > (ssize_t)VMAX ||
		    tv_check(buf, (size_t)len, key, (size_t)klen, &s)) {
			tv_dump(key, buf, len > 0 && len <= (ssize_t)sizeof(buf)
					  ? (size_t)len : 0);
			TC_CHECK(0, "%s: torn or wrong value of %zd bytes "
				 "(mod_rev %llu, generation %llu)", key, len,
				 (unsigned long long)info.mod_rev,
				 (unsigned long long)gen);
		}
		if (brief)
			goto monotonic;
		TC_EQ(info.vlen, len, "info.vlen");
		TC_CHECK(info.mod_rev > 0 && info.create_rev > 0 &&
			 info.create_rev <= info.mod_rev,
			 "%s: create_rev %llu mod_rev %llu", key,
			 (unsigned long long)info.create_rev,
			 (unsigned long long)info.mod_rev);
		TC_EQ(info.owner_pid, 0, "info.owner_pid");
		TC_EQ(info.expires_at_ns, 0, "info.expires_at_ns");
		/* one process's reads of one key never go back in time: a
		 * value older than one already seen would be a stale read
		 * (for instance from a retired segment) */
		TC_CHECK(info.mod_rev >= last_rev[i], "%s: mod_rev went back "
			 "from %llu to %llu", key,
			 (unsigned long long)last_rev[i],
			 (unsigned long long)info.mod_rev);
		last_rev[i] = info.mod_rev;
monotonic:
		if (s != UINT64_MAX) {
			TC_CHECK(s >= last_seq[i], "%s: value went back from "
				 "put #%llu to #%llu", key,
				 (unsigned long long)last_seq[i],
				 (unsigned long long)s);
			last_seq[i] = s;
		}
		res->found++;
		res->found_short += brief;
		if (gen == res->gen0)
			res->found_gen0++;
		else
			res->found_later++;
	}
	TC_EQ(shmreg_stats(r, &st), 0, "stats");
	res->gen_last = st.generation;
	tc_log("%llu validated reads (%llu of 16-byte keys without info, %llu "
	       "on the first segment, %llu after a handoff), %llu absent, "
	       "%llu -EAGAIN, generation %llu -> %llu",
	       (unsigned long long)res->found,
	       (unsigned long long)res->found_short,
	       (unsigned long long)res->found_gen0,
	       (unsigned long long)res->found_later,
	       (unsigned long long)res->enoent,
	       (unsigned long long)res->eagain,
	       (unsigned long long)res->gen0,
	       (unsigned long long)res->gen_last);
	shmreg_close(r);
	return 0;
}

static int count_fn(const void *key, size_t klen, const void *val,
		    size_t vlen, const shmreg_info_t *info, void *arg)
{
	(void)info;
	TC_CHECK(tv_check(val, vlen, key, klen, NULL) == 0,
		 "list: torn value for %.*s", (int)klen, (const char *)key);
	++*(uint64_t *)arg;
	return 0;
}

int main(void)
{
	struct tc_child *wr, *rd[NREADERS];
	/* sanitizers slow every access ~3-10x; the floor still proves that
	 * reads happened by the hundred thousand in a plain build */
	uint64_t floor = tc_sanitized() ? 20000 : 100000;
	static uint8_t buf[2 * VMAX];
	shmreg_stats_t st;
	shmreg_t *r;
	uint64_t listed = 0;
	char key[24];
	int ret;

	tc_init("torn_read", 50);
	tc_dir();
	tv_selftest();
	tc_seed();
	sh = tc_shared(sizeof(*sh));

	wr = tc_spawn("writer", writer_main, NULL);
	tc_expect(wr, 'o', 10000);
	/* the readers map the first segment before any handoff */
	for (intptr_t i = 0; i < NREADERS; i++) {
		char name[16];

		snprintf(name, sizeof(name), "reader%d", (int)i + 1);
		rd[i] = tc_spawn(name, reader_main, (void *)i);
		tc_expect(rd[i], 'r', 10000);
	}
	for (int i = 0; i < NREADERS; i++)
		tc_tell(rd[i], 'g');
	tc_tell(wr, 'g');
	for (int i = 0; i < NREADERS; i++)
		tc_child_join(rd[i], 30000);
	tc_expect(wr, 'd', 30000);

	TC_CHECK(sh->puts >= NKEYS, "the writer made only %llu puts",
		 (unsigned long long)sh->puts);
	TC_CHECK(sh->gen_last > sh->gen_first, "no growth handoff happened "
		 "(generation %llu)", (unsigned long long)sh->gen_last);
	for (uint32_t i = 0; i < NKEYS; i++)
		TC_CHECK(sh->written[i], "key %u was never written", i);
	for (int i = 0; i < NREADERS; i++) {
		struct reader_res *x = &sh->rr[i];

		TC_CHECK(x->found >= floor, "reader%d validated only %llu "
			 "reads (floor %llu)", i + 1,
			 (unsigned long long)x->found,
			 (unsigned long long)floor);
		TC_CHECK(x->found_short * 8 >= x->found, "reader%d: only %llu "
			 "of %llu reads without info", i + 1,
			 (unsigned long long)x->found_short,
			 (unsigned long long)x->found);
		TC_EQ(x->gen0, sh->gen_first,
		      "reader mapped the first segment");
		TC_EQ(x->gen_last, sh->gen_last,
		      "reader followed every handoff without reopening");
		TC_CHECK(x->found_gen0 > 0 && x->found_later > 0,
			 "reader%d did not read across a handoff (%llu before, "
			 "%llu after)", i + 1,
			 (unsigned long long)x->found_gen0,
			 (unsigned long long)x->found_later);
		/* -EAGAIN is the documented answer to a writer that keeps
		 * one entry busy; with 64 hot keys it must stay rare */
		TC_CHECK(x->eagain * 100 <= x->found, "reader%d: %llu -EAGAIN "
			 "for %llu reads", i + 1,
			 (unsigned long long)x->eagain,
			 (unsigned long long)x->found);
	}

	/* the final contents, with the writer idle: every key, exactly */
	ret = shmreg_open(NAME, 0, &r);
	TC_CHECK(ret == 0, "shmreg_open: %s", strerror(-ret));
	for (uint32_t i = 0; i < NKEYS; i++) {
		int klen = key_of(key, i);
		ssize_t len = shmreg_get(r, key, (size_t)klen, buf, sizeof(buf),
					 NULL);

		TC_CHECK(len >= (ssize_t)TV_MIN && len <= (ssize_t)VMAX,
			 "final get %s: %zd", key, len);
		TC_CHECK(tv_check(buf, (size_t)len, key, (size_t)klen,
				  NULL) == 0, "final %s: torn value", key);
	}
	TC_EQ(shmreg_stats(r, &st), 0, "stats");
	TC_EQ(st.entries, NKEYS, "stats.entries");
	TC_EQ(st.revision, sh->rev_last, "stats.revision");
	TC_EQ(st.state, SHMREG_STATE_OPEN, "stats.state");
	TC_EQ(shmreg_list(r, NULL, 0, count_fn, &listed), NKEYS, "list");
	TC_EQ(listed, NKEYS, "entries listed");

	tc_tell(wr, 'q');
	tc_child_join(wr, 10000);
	tc_child_free(wr);
	for (int i = 0; i < NREADERS; i++)
		tc_child_free(rd[i]);
	TC_EQ(shmreg_stats(r, &st), 0, "stats");
	TC_EQ(st.state, SHMREG_STATE_CLOSED, "stats.state after close");
	shmreg_close(r);
	tc_log("pass");
	return 0;
}
