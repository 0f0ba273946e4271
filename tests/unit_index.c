/* SPDX-License-Identifier: MIT */
/* Description: the writer's index - insert, replace, delete by backward
 * shift (no tombstones), the probe invariant after every change, growth,
 * shift_seq accounting, and the undo journal's restore of a cut-off write. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/tc.h"
#include "../writer/internal.h"
#include "hash.h"
#include "lookup.h"
#include "seqcount.h"

/* The home of an entry, from its key's hash computed afresh; the slot's
 * own copy of the hash (tag, hash_hi) must agree with it. */
static uint64_t home_of(const struct shm_map *m, const struct shm_slot *s)
{
	const uint8_t *key = s->data;
	uint64_t hash;

	if (s->kind != SHM_KIND_INLINE) {
		struct shm_ext_ref ref;

		memcpy(&ref, s->data, sizeof(ref));
		key = m->base + ref.obj_off + SHM_OBJ_HDR;
	}
	hash = shm_hash(key, s->klen);
	TC_EQ(s->tag, shm_tag(hash), "slot tag");
	TC_EQ(s->hash_hi, shm_hash_hi(hash), "slot hash_hi");
	return shm_home(&m->g, hash);
}

/* Every entry is reachable from its home without crossing an empty slot,
 * no further than SHM_PROBE_LIMIT, and the entry count matches the
 * header. */
static void check_invariant(struct shmreg_writer *w)
{
	const struct shm_map *m = &w->map;
	uint64_t cap = m->g.index_cap, live = 0;
	uint64_t maxp = SHM_PROBE_LIMIT;

	for (uint64_t i = 0; i < cap; i++) {
		const struct shm_slot *s = shm_slot_at(m, i);

		TC_CHECK(!(atomic_load(&s->seq) & 1), "slot %lu left odd", i);
		if (s->klen == 0)
			continue;
		live++;
		uint64_t h = home_of(m, s), d = (i + cap - h) % cap;

		TC_CHECK(d <= maxp, "slot %lu is %lu from home > limit %lu",
			 i, d, maxp);
		for (uint64_t j = h; j != i; j = (j + 1) % cap)
			TC_CHECK(shm_slot_at(m, j)->klen != 0,
				 "empty slot %lu between home %lu and entry %lu",
				 j, h, i);
	}
	TC_EQ(live, atomic_load(&m->hdr->entries), "live entries");
}

static void key_of(char *k, int i)
{
	snprintf(k, 32, "k%06d", i);
}

static int list_count(const void *key, size_t klen, const void *val,
		      size_t vlen, const shmreg_info_t *info, void *arg)
{
	(void)key, (void)klen, (void)val, (void)vlen, (void)info, (void)arg;
	return 0;
}

int main(void)
{
	shmreg_writer_opts_t o = { .initial_entries = 64, .ring_events = 1024 };
	shmreg_writer_t *w;
	shmreg_t *r;
	char k[32], v[200];
	uint64_t seed = tc_seed(), rs = seed;
	int present[600] = { 0 };
	uint8_t buf[256];
	shmreg_info_t info;

	tc_init("unit_index", 60);
	TC_EQ(shmreg_writer_open("idx", &o, &w), 0, "writer open");
	TC_EQ(shmreg_open("idx", 0, &r), 0, "reader open");
	uint64_t cap0 = w->map.g.index_cap;

	/* insert and replace: create_rev stays, mod_rev moves */
	TC_EQ(shmreg_writer_put(w, "a", 1, "1", 1, NULL), 1, "first put");
	TC_EQ(shmreg_writer_put(w, "a", 1, "22", 2, NULL), 2, "replace");
	TC_EQ(shmreg_get(r, "a", 1, buf, sizeof(buf), &info), 2, "get");
	TC_CHECK(memcmp(buf, "22", 2) == 0, "replaced value");
	TC_EQ(info.create_rev, 1, "create_rev kept");
	TC_EQ(info.mod_rev, 2, "mod_rev moved");
	TC_EQ(shmreg_writer_del(w, "a", 1), 3, "delete");
	TC_EQ(shmreg_get(r, "a", 1, buf, sizeof(buf), NULL), -ENOENT, "gone");
	check_invariant(w);

	/* random inserts and deletes, inline and extern, checking the probe
	 * invariant after every change and the contents periodically */
	uint32_t shifts0 = atomic_load(&w->map.hdr->shift_seq);
	for (int step = 0; step < 20000; step++) {
		int i = (int)tc_range(&rs, 0, 599);
		size_t vlen = (size_t)(i % 3 == 0 ? 150 : 8);

		key_of(k, i);
		memset(v, 'a' + i % 26, vlen);
		if (present[i] && tc_range(&rs, 0, 1)) {
			TC_CHECK(shmreg_writer_del(w, k, strlen(k)) > 0, "del %s", k);
			present[i] = 0;
		} else {
			TC_CHECK(shmreg_writer_put(w, k, strlen(k), v, vlen, NULL) > 0,
				 "put %s", k);
			present[i] = 1;
		}
		if (step % 97 == 0)
			check_invariant(w);
		if (step % 1000 == 0) {
			for (int j = 0; j < 600; j++) {
				key_of(k, j);
				ssize_t n = shmreg_get(r, k, strlen(k), buf,
						       sizeof(buf), NULL);
				if (present[j])
					TC_EQ(n, j % 3 == 0 ? 150 : 8, k);
				else
					TC_EQ(n, -ENOENT, k);
			}
		}
	}
	check_invariant(w);
	uint32_t shifts = atomic_load(&w->map.hdr->shift_seq) - shifts0;
	tc_log("index %lu -> %lu slots, shift_seq +%u (seed %lu)\n",
	       cap0, w->map.g.index_cap, shifts, (unsigned long)seed);
	TC_CHECK(w->map.g.index_cap > cap0, "the index grew past 64 entries");
	TC_CHECK(shifts > 0 && shifts % 2 == 0,
		 "deletes moved entries under shift_seq (+%u, even)", shifts);
	/* no tombstones: a full delete leaves an all-empty index */
	for (int j = 0; j < 600; j++) {
		key_of(k, j);
		if (present[j])
			TC_CHECK(shmreg_writer_del(w, k, strlen(k)) > 0, "del");
	}
	for (uint64_t i = 0; i < w->map.g.index_cap; i++)
		TC_EQ(shm_slot_at(&w->map, i)->klen, 0, "slot empty after deletes");

	/* a batch spanning a growth handoff: the commit stays open (odd) in
	 * the new segment until the batch ends, then is even */
	{
		uint64_t cap = w->map.g.index_cap;

		TC_EQ(shmreg_writer_batch_begin(w), 0, "batch begin");
		for (int j = 0; w->map.g.index_cap == cap; j++) {
			snprintf(k, sizeof(k), "batch%d", j);
			TC_CHECK(shmreg_writer_put(w, k, strlen(k), "v", 1, NULL) > 0,
				 "put in batch");
			TC_CHECK(atomic_load(&w->map.hdr->commit_seq) & 1,
				 "commit open during the batch");
		}
		TC_EQ(shmreg_writer_batch_end(w), 0, "batch end");
		TC_EQ(atomic_load(&w->map.hdr->commit_seq) & 1, 0,
		      "commit closed after the batch");
		TC_EQ(shmreg_writer_batch_end(w), -EINVAL, "unbalanced end");
	}

	/* a slot whose seqcount was left odd (bytes damaged in a segment
	 * adopted in place): the writer's next write of it ends even */
	TC_CHECK(shmreg_writer_put(w, "odd", 3, "one", 3, NULL) > 0, "put odd");
	{
		struct shm_slot copy;
		int64_t at = index_find(w, "odd", 3, shm_hash("odd", 3), &copy);
		struct shm_slot *s = shm_slot_at(&w->map, (uint64_t)at);

		TC_CHECK(at >= 0, "odd found");
		atomic_fetch_add(&s->seq, 1);
		TC_EQ(shmreg_get(r, "odd", 3, buf, sizeof(buf), NULL), -EAGAIN,
		      "an odd slot is not read");
		TC_CHECK(shmreg_writer_put(w, "odd", 3, "two", 3, NULL) > 0,
			 "put over the odd slot");
		TC_EQ(atomic_load(&s->seq) & 1, 0, "the slot's count even again");
		TC_EQ(shmreg_get(r, "odd", 3, buf, sizeof(buf), NULL), 3,
		      "readable again");
		TC_CHECK(memcmp(buf, "two", 3) == 0, "the new value");
	}

	/* an extern entry whose object was damaged under an unchanged slot
	 * (a segment adopted in place is not scanned): -EPROTO from the get
	 * and the list, not -EAGAIN after the whole retry budget */
	{
		char big[200];
		struct shm_slot copy;
		struct shm_ext_ref ref;
		int64_t at;

		memset(big, 'b', sizeof(big));
		TC_CHECK(shmreg_writer_put(w, "ext", 3, big, sizeof(big),
					   NULL) > 0, "put ext");
		at = index_find(w, "ext", 3, shm_hash("ext", 3), &copy);
		TC_CHECK(at >= 0 && copy.kind != SHM_KIND_INLINE,
			 "ext found, out of line");
		memcpy(&ref, copy.data, sizeof(ref));
		/* the object's header (its mod_rev): no longer this entry's */
		memset(w->map.base + ref.obj_off + 8, 0, SHM_OBJ_HDR - 8);
		TC_EQ(shmreg_get(r, "ext", 3, big, sizeof(big), NULL), -EPROTO,
		      "get of a damaged object");
		TC_EQ(shmreg_list(r, "ext", 3, list_count, NULL), -EPROTO,
		      "list over a damaged object");
		TC_EQ(shmreg_writer_del(w, "ext", 3) > 0, 1, "del ext");
	}

	/* undo journal: simulate a writer that died inside a slot write */
	TC_CHECK(shmreg_writer_put(w, "u", 1, "old", 3, NULL) > 0, "put u");
	{
		struct shm_slot copy;
		int64_t at = index_find(w, "u", 1, shm_hash("u", 1), &copy);
		struct shm_slot *s = shm_slot_at(&w->map, (uint64_t)at);
		struct shm_hdr *h = w->map.hdr;

		TC_CHECK(at >= 0, "u found");
		shm_store_words((void *)h->undo_data, s, SHM_SLOT_SIZE);
		atomic_store(&h->undo_slot, (uint64_t)at + 1);
		seq_write_begin(&s->seq);
		memcpy(s->data + 1, "NEW", 3); /* torn: the write stops here */
		TC_EQ(shmreg_get(r, "u", 1, buf, sizeof(buf), NULL), -EAGAIN,
		      "a slot left odd is not read (writer alive: -EAGAIN)");
		index_undo_restore(&w->map);
		TC_EQ(shmreg_get(r, "u", 1, buf, sizeof(buf), NULL), 3, "restored");
		TC_CHECK(memcmp(buf, "old", 3) == 0, "old value back, not torn");
		TC_EQ(atomic_load(&h->undo_slot), 0, "undo disarmed");
	}
	shmreg_close(r);
	shmreg_writer_close(w);
	return 0;
}
