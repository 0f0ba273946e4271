/* SPDX-License-Identifier: MIT */
/* Description: the writer's commits at given revisions (writer/revision.c,
 * the etcd mirror's entry points): a gap becomes NOP records that a watcher
 * skips, events keep the given revisions; several changes at one revision
 * are one record a watcher reports as -ERANGE; slot revisions apart from
 * the commit revision; a revision that changed nothing still passes; a
 * revision not above the current one is -ERANGE, a nested begin -EINVAL;
 * a gap longer than the ring writes only ring_events records; a handoff
 * in the middle of a held revision keeps the ring. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/tc.h"
#include "../writer/internal.h"
#include "../reader/internal.h"
#include "ring_read.h"
#include "shmreg_mirror.h"

static void expect_watch(shmreg_watch_t *wt, int type, uint64_t rev,
			 const char *key)
{
	shmreg_event_t ev;

	TC_EQ(shmreg_watch_next(wt, &ev, 0), 0, "watch event");
	TC_EQ(ev.type, type, "event type");
	TC_EQ(ev.rev, rev, "event revision");
	TC_EQ(ev.klen, strlen(key), "event key length");
	TC_CHECK(memcmp(ev.key, key, ev.klen) == 0, "event key at %lu",
		 (unsigned long)rev);
}

static int64_t put_at(shmreg_writer_t *w, uint64_t rev, const char *k,
		      const char *v)
{
	int64_t rc;

	TC_EQ(shmreg_writer_mirror_begin(w, rev, false), 0, "begin");
	rc = shmreg_writer_put(w, k, strlen(k), v, strlen(v), NULL);
	TC_EQ(shmreg_writer_mirror_end(w, rev), 0, "end");
	return rc;
}

int main(void)
{
	shmreg_writer_opts_t o = { .initial_entries = 16, .ring_events = 1024 };
	struct shm_ring_event e;
	uint8_t kb[SHMREG_KEY_MAX];
	shmreg_writer_t *w;
	shmreg_watch_t *wt;
	shmreg_info_t info;
	shmreg_event_t ev;
	shmreg_t *r;
	char k[64];

	tc_init("mirror_revision", 60);
	TC_EQ(shmreg_writer_open("mrev", &o, &w), 0, "writer open");
	TC_EQ(shmreg_open("mrev", 0, &r), 0, "reader open");
	TC_EQ(shmreg_watch_open(r, NULL, 0, 0, &wt), 0, "watch open");

	/* a gap: revisions 1..4 are other prefixes' */
	TC_EQ(put_at(w, 5, "a", "1"), 5, "put at 5");
	TC_EQ(shmreg_revision(r), 5, "revision 5");
	struct shm_map *m = reader_map(r);
	for (uint64_t rev = 1; rev < 5; rev++) {
		TC_EQ(shm_ring_read(m, rev, &e, kb), 0, "gap record");
		TC_EQ(e.op, SHM_OP_NOP, "gap record is a NOP");
	}
	TC_EQ(put_at(w, 9, "b", "2"), 9, "put at 9");
	/* a delete at 12 */
	TC_EQ(shmreg_writer_mirror_begin(w, 12, false), 0, "begin 12");
	TC_EQ(shmreg_writer_del(w, "a", 1), 12, "del at 12");
	TC_EQ(shmreg_writer_mirror_end(w, 12), 0, "end 12");
	/* the watcher sees exactly the three changes, with their revisions */
	expect_watch(wt, SHMREG_EVENT_PUT, 5, "a");
	expect_watch(wt, SHMREG_EVENT_PUT, 9, "b");
	expect_watch(wt, SHMREG_EVENT_DEL, 12, "a");
	TC_EQ(shmreg_watch_next(wt, &ev, 0), -ETIMEDOUT, "nothing more");

	/* a revision that changed nothing here (a delete of an absent key)
	 * still passes, as a NOP */
	TC_EQ(shmreg_writer_mirror_begin(w, 14, false), 0, "begin 14");
	TC_EQ(shmreg_writer_del(w, "zz", 2), -ENOENT, "del absent");
	TC_EQ(shmreg_writer_mirror_end(w, 14), 0, "end 14");
	TC_EQ(shmreg_revision(r), 14, "revision 14");
	TC_EQ(shmreg_watch_next(wt, &ev, 0), -ETIMEDOUT, "a NOP is no event");

	/* slot revisions apart from the commit revision (a resync) */
	TC_EQ(shmreg_writer_mirror_begin(w, 20, true), 0, "begin 20 many");
	TC_EQ(shmreg_writer_mirror_slot(w, 7, 3), 0, "slot 7/3");
	TC_EQ(shmreg_writer_put(w, "c", 1, "x", 1, NULL), 20, "put c");
	TC_EQ(shmreg_writer_mirror_slot(w, 18, 18), 0, "slot 18");
	TC_EQ(shmreg_writer_put(w, "d", 1, "y", 1, NULL), 20, "put d");
	TC_EQ(shmreg_writer_mirror_slot(w, 0, 0), 0, "slot back");
	TC_EQ(shmreg_writer_del(w, "b", 1), 20, "del b at 20");
	TC_EQ(shmreg_writer_mirror_end(w, 20), 0, "end 20");
	TC_EQ(shmreg_get(r, "c", 1, NULL, 0, &info), 1, "get c");
	TC_EQ(info.mod_rev, 7, "c's mod_rev is etcd's");
	TC_EQ(info.create_rev, 3, "c's create_rev is etcd's");
	TC_EQ(shmreg_get(r, "d", 1, NULL, 0, &info), 1, "get d");
	TC_EQ(info.mod_rev, 18, "d's mod_rev");
	TC_EQ(shmreg_get(r, "b", 1, NULL, 0, &info), -ENOENT, "b deleted");
	TC_EQ(shmreg_revision(r), 20, "one revision for three changes");
	m = reader_map(r);
	TC_EQ(shm_ring_read(m, 20, &e, kb), 0, "record 20");
	TC_EQ(e.op, SHM_OP_MANY, "record 20 is MANY");
	TC_EQ(shmreg_watch_next(wt, &ev, 0), -ERANGE,
	      "several changes at one revision: the watcher resyncs");
	shmreg_watch_close(wt);

	/* refused: not above the current revision, nested, bad slots */
	TC_EQ(shmreg_writer_mirror_begin(w, 20, false), -ERANGE, "rev == cur");
	TC_EQ(shmreg_writer_mirror_begin(w, 3, false), -ERANGE, "rev < cur");
	TC_EQ(shmreg_writer_mirror_begin(w, 21, true), 0, "begin 21");
	TC_EQ(shmreg_writer_mirror_begin(w, 22, false), -EINVAL, "nested");
	TC_EQ(shmreg_writer_mirror_end(w, 21), 0, "end 21 (nothing: NOP)");
	TC_EQ(shmreg_writer_mirror_slot(w, 5, 6), -EINVAL, "create > mod");
	TC_EQ(shmreg_writer_mirror_slot(w, 5, 0), -EINVAL, "create 0");
	TC_EQ(shmreg_writer_mirror_begin(NULL, 30, false), -EINVAL, "NULL");
	/* after the mirror entry points, ordinary commits go on at + 1 */
	TC_EQ(shmreg_writer_put(w, "e", 1, "z", 1, NULL), 22, "plain put");

	/* a gap longer than the ring: only the last ring_events records */
	TC_EQ(shmreg_watch_open(r, NULL, 0, 22, &wt), 0, "watch from 22");
	TC_EQ(put_at(w, 22 + 5000, "f", "far"), 5022, "put after a long gap");
	m = reader_map(r);
	TC_EQ(shm_ring_read(m, 5022 - 1023, &e, kb), 0, "oldest gap record");
	TC_EQ(e.op, SHM_OP_NOP, "a NOP");
	TC_EQ(shm_ring_read(m, 100, &e, kb), -ERANGE, "older ones gone");
	TC_EQ(shmreg_watch_next(wt, &ev, 0), -ERANGE,
	      "a watcher a ring behind falls behind");
	shmreg_watch_close(wt);

	/* a handoff (growth) inside a held revision keeps the ring, and
	 * the revision is held across it */
	TC_EQ(shmreg_watch_open(r, NULL, 0, 5022, &wt), 0, "watch from 5022");
	uint64_t gen0 = w->map.generation;
	TC_EQ(shmreg_writer_mirror_begin(w, 6000, true), 0, "begin 6000");
	for (int i = 0; i < 200; i++) {
		snprintf(k, sizeof(k), "grow-%d", i);
		TC_EQ(shmreg_writer_put(w, k, strlen(k), "v", 1, NULL), 6000,
		      "put at 6000");
	}
	TC_EQ(shmreg_writer_mirror_end(w, 6000), 0, "end 6000");
	TC_CHECK(w->map.generation > gen0, "the registry grew");
	m = reader_map(r);
	TC_EQ(shm_ring_read(m, 5999, &e, kb), 0, "gap record after growth");
	TC_EQ(e.op, SHM_OP_NOP, "still a NOP");
	TC_EQ(shm_ring_read(m, 6000, &e, kb), 0, "record 6000");
	TC_EQ(e.op, SHM_OP_MANY, "record 6000 MANY");
	TC_EQ(shmreg_watch_next(wt, &ev, 0), -ERANGE, "MANY after growth");
	shmreg_watch_close(wt);
	TC_EQ(shmreg_get(r, "grow-199", 8, NULL, 0, &info), 1, "get grow-199");
	TC_EQ(info.mod_rev, 6000, "its revision");

	shmreg_close(r);
	shmreg_writer_close(w);
	return 0;
}
