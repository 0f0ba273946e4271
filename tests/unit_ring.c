/* SPDX-License-Identifier: MIT */
/* Description: the change ring - every committed put and delete readable by
 * revision with its key, nothing for a delete of an absent key, lapped
 * records and keys reported as -ERANGE, and the ring carried across a
 * segment handoff with its revisions unchanged. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/tc.h"
#include "../writer/internal.h"
#include "../reader/internal.h"
#include "ring_read.h"
#include "hash.h"

static void expect_event(const struct shm_map *m, uint64_t rev, uint32_t op,
			 const char *key)
{
	struct shm_ring_event ev;
	uint8_t kb[SHMREG_KEY_MAX];

	TC_EQ(shm_ring_read(m, rev, &ev, kb), 0, "ring read");
	TC_EQ(ev.rev, rev, "rev");
	TC_EQ(ev.op, op, "op");
	TC_EQ(ev.klen, strlen(key), "klen");
	TC_CHECK(memcmp(kb, key, ev.klen) == 0, "key of rev %lu", rev);
	TC_EQ(ev.hash, shm_hash(key, strlen(key)), "hash");
}

int main(void)
{
	shmreg_writer_opts_t o = { .initial_entries = 16, .ring_events = 1024 };
	shmreg_writer_t *w;
	shmreg_t *r;
	char k[64];
	struct shm_ring_event ev;
	uint8_t kb[SHMREG_KEY_MAX];

	tc_init("unit_ring", 60);
	TC_EQ(shmreg_writer_open("ring", &o, &w), 0, "writer open");
	TC_EQ(shmreg_open("ring", 0, &r), 0, "reader open");

	TC_EQ(shmreg_writer_put(w, "alpha", 5, "x", 1, NULL), 1, "put");
	TC_EQ(shmreg_writer_put(w, "beta", 4, "y", 1, NULL), 2, "put");
	TC_EQ(shmreg_writer_del(w, "alpha", 5), 3, "del");
	TC_EQ(shmreg_writer_del(w, "alpha", 5), -ENOENT, "del absent");
	struct shm_map *m = reader_map(r);
	expect_event(m, 1, SHM_OP_PUT, "alpha");
	expect_event(m, 2, SHM_OP_PUT, "beta");
	expect_event(m, 3, SHM_OP_DEL, "alpha");
	TC_EQ(shm_ring_read(m, 4, &ev, kb), -EAGAIN,
	      "no record for a delete that changed nothing");
	TC_EQ(shmreg_revision(r), 3, "revision");

	/* 3,000 more changes through a 1,024-record ring, with growth (the
	 * index starts at 16 entries) - revisions go on across handoffs */
	uint64_t gen0 = w->map.generation;
	for (int i = 0; i < 3000; i++) {
		snprintf(k, sizeof(k), "key-%d-%.*s", i, i % 40,
			 "0123456789012345678901234567890123456789");
		TC_EQ(shmreg_writer_put(w, k, strlen(k), "v", 1, NULL), 4 + i,
		      "put");
	}
	m = reader_map(r);
	TC_CHECK(m->generation > gen0, "the registry grew (handoffs)");
	uint64_t cur = shmreg_revision(r);
	TC_EQ(cur, 3003, "revision after 3,000 puts");
	uint64_t oldest = shm_ring_oldest(m, cur);
	TC_EQ(oldest, cur - 1024 + 1, "the ring keeps exactly ring_events");
	for (uint64_t rev = oldest; rev <= cur; rev++) {
		int i = (int)(rev - 4);

		snprintf(k, sizeof(k), "key-%d-%.*s", i, i % 40,
			 "0123456789012345678901234567890123456789");
		expect_event(m, rev, SHM_OP_PUT, k);
	}
	TC_EQ(shm_ring_read(m, oldest - 1, &ev, kb), -ERANGE, "lapped record");
	TC_EQ(shm_ring_read(m, 1, &ev, kb), -ERANGE, "long gone");

	/* a handoff copies the ring: same revisions, same keys */
	TC_EQ(handoff(w, &w->map, 2 * w->map.g.index_cap, w->map.g.arena_size),
	      0, "explicit handoff");
	m = reader_map(r);
	for (uint64_t rev = oldest; rev <= cur; rev++)
		TC_EQ(shm_ring_read(m, rev, &ev, kb), 0, "after handoff");
	TC_EQ(shmreg_revision(r), cur, "revision unchanged by a handoff");

	shmreg_close(r);
	shmreg_writer_close(w);
	return 0;
}
