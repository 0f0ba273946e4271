/* SPDX-License-Identifier: MIT */
/* Description: the seqcount primitives of shm/seqcount.h - the single-
 * threaded contract of begin/retry, of the change ring's rev-as-seqcount
 * and of the reservation mark, and a writer thread rewriting a guarded
 * block while reader threads validate every copy they accept. */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "common/tc.h"
#include "seqcount.h"

#define WORDS 16 /* a 128-byte block, like an index slot */

struct block {
	_Atomic uint32_t seq;
	uint32_t pad;
	uint64_t w[WORDS];
};

static struct block blk;
static atomic_bool stop;
static atomic_ulong validated_total, rejected_total;

static void contract(void)
{
	_Atomic uint32_t seq = 0;
	uint32_t s;

	s = seq_read_begin(&seq);
	TC_EQ(s, 0, "fresh seqcount");
	TC_CHECK(!seq_read_retry(&seq, s), "an untouched section validates");

	seq_write_begin(&seq);
	TC_EQ(atomic_load(&seq), 1, "odd while writing");
	TC_CHECK(seq_read_retry(&seq, s), "a section overlapping a write fails");
	s = seq_read_begin(&seq);
	TC_CHECK(seq_read_retry(&seq, s), "a section begun on odd fails");
	seq_write_end(&seq);
	TC_EQ(atomic_load(&seq), 2, "even after writing");
	s = seq_read_begin(&seq);
	TC_CHECK(!seq_read_retry(&seq, s), "a section after the write validates");
}

/* A change-ring record's rev: 0 while rewritten, the revision once done. */
static void rev_contract(void)
{
	_Atomic uint64_t rev = 0, mark = 0;

	seq_rev_write_end(&rev, 7);
	TC_EQ(seq_rev_read_begin(&rev), 7, "a finished record's rev");
	TC_CHECK(seq_rev_read_check(&rev, 7), "an untouched record validates");
	TC_CHECK(!seq_rev_read_check(&rev, 6), "another revision fails");

	seq_rev_write_begin(&rev);
	TC_EQ(seq_rev_read_begin(&rev), 0, "0 while rewriting");
	TC_CHECK(!seq_rev_read_check(&rev, 7),
		 "a read overlapping the rewrite fails");
	seq_rev_write_end(&rev, 7 + 1024);
	TC_CHECK(!seq_rev_read_check(&rev, 7), "an overwritten record fails");
	TC_CHECK(seq_rev_read_check(&rev, 7 + 1024),
		 "the new record validates");

	seq_reserve_write(&mark, 100);
	TC_EQ(seq_reserve_read(&mark), 100, "the mark as reserved");
	seq_reserve_write(&mark, 164);
	TC_EQ(seq_reserve_read(&mark), 164, "the mark moved on");
}

static void *writer(void *arg)
{
	uint64_t v[WORDS];
	unsigned long n = (unsigned long)(uintptr_t)arg;

	for (unsigned long i = 1; i <= n; i++) {
		/* every word holds i: a copy mixing two writes shows it */
		for (int k = 0; k < WORDS; k++)
			v[k] = i * 0x9E3779B97F4A7C15ull + (uint64_t)k;
		seq_write_begin(&blk.seq);
		shm_store_words(blk.w, v, sizeof(v));
		seq_write_end(&blk.seq);
	}
	atomic_store(&stop, true);
	return NULL;
}

static void *reader(void *arg)
{
	unsigned long ok = 0, rejected = 0;

	(void)arg;
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		uint64_t v[WORDS];
		uint32_t s = seq_read_begin(&blk.seq);

		shm_load_words(v, blk.w, sizeof(v));
		if (seq_read_retry(&blk.seq, s)) {
			rejected++;
			continue;
		}
		/* word k of write i is i * golden + k */
		for (int k = 0; k < WORDS; k++)
			TC_CHECK(v[k] - (uint64_t)k == v[0],
				 "torn copy accepted: word %d of seq %u", k, s);
		ok++;
	}
	atomic_fetch_add(&validated_total, ok);
	atomic_fetch_add(&rejected_total, rejected);
	return NULL;
}

int main(void)
{
	pthread_t w, r[2];
	unsigned long writes = tc_sanitized() ? 300000 : 3000000;

	tc_init("unit_seqcount", 60);
	contract();
	rev_contract();
	for (int k = 0; k < WORDS; k++) /* "write 0" of the pattern */
		blk.w[k] = (uint64_t)k;

	for (int k = 0; k < 2; k++)
		TC_CHECK(pthread_create(&r[k], NULL, reader, NULL) == 0, "reader");
	TC_CHECK(pthread_create(&w, NULL, writer, (void *)(uintptr_t)writes) == 0,
		 "writer");
	pthread_join(w, NULL);
	for (int k = 0; k < 2; k++)
		pthread_join(r[k], NULL);
	tc_log("%lu writes, %lu validated copies, %lu rejected\n", writes,
	       atomic_load(&validated_total), atomic_load(&rejected_total));
	/* the readers must really have read: a floor, not a timing */
	TC_CHECK(atomic_load(&validated_total) >= 1000,
		 "too few validated reads (%lu)", atomic_load(&validated_total));
	TC_EQ(atomic_load(&blk.seq), 2 * writes, "final sequence");
	return 0;
}
