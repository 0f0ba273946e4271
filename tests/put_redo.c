/* SPDX-License-Identifier: MIT */
/* Description: the common put's undo record holds the slot's new contents
 * (writer/slot_write.h): a writer that dies with that record armed and the
 * slot half written leaves a registry the next writer takes over with the
 * entry whole and new - value, mod_rev, the create_rev it had (a replace
 * never writes that word), the revision raised past the entry's - and
 * every other entry as it was; the same for an insert cut off.  A writer
 * that dies with the record armed but the slot not yet opened, or with the
 * image built while the record is still armed for the slot of the put
 * before (slot writes never disarm it), leaves every entry as it was:
 * a taker-over restores only an odd slot. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmreg.h"
#include "shmreg_writer.h"
#include "common/tc.h"
#include "hash.h"
#include "internal.h"
#include "seqcount.h"
#include "slot_write.h"

#define NAME  "redo"
#define NKEYS 100u

static void key_of(char *k, unsigned i)
{
	snprintf(k, 16, "redo:%04u", i);
}

/* How the child's common put of key 7 as "new!" is cut off. */
enum cut {
	CUT_TORN,       /* record armed, slot half written (seqcount odd) */
	CUT_ARMED,      /* record armed, slot not yet opened */
	CUT_IMAGE,      /* image built only: the record still armed for
	                 * the slot of the put before (key NKEYS - 1's) */
	CUT_INSERT,     /* a new key's insert, slot half written */
};

static const char *const cut_name[] = {
	"torn replace", "armed, not opened", "image only", "torn insert",
};

#define NEW_KEY "redo:new"

/* The child: a writer with NKEYS entries ("v<i>"), then the common put
 * cut off as @cut says (the steps of put_common() in writer.c and
 * slot_write.h, in their order).  It exits without closing: a crash for
 * the next writer. */
static void die_in_put(enum cut cut)
{
	shmreg_writer_opts_t o = { .flags = SHMREG_WRITER_TRUNCATE };
	struct shmreg_writer *w;
	struct shm_slot old, *dst;
	char k[16], v[16];
	uint64_t hash, rev, slot;
	int64_t at;

	if (shmreg_writer_open(NAME, &o, &w) < 0)
		_exit(10);
	for (unsigned i = 0; i < NKEYS; i++) {
		key_of(k, i);
		snprintf(v, sizeof(v), "v%u", i);
		if (shmreg_writer_put(w, k, strlen(k), v, strlen(v), NULL) <= 0)
			_exit(11);
	}
	if (cut == CUT_INSERT)
		strcpy(k, NEW_KEY);
	else
		key_of(k, 7);
	hash = shm_hash(k, strlen(k));
	at = index_lookup(w, k, strlen(k), hash, &old, &slot);
	if ((cut == CUT_INSERT) != (at < 0) || (at < 0 && slot == UINT64_MAX))
		_exit(12);
	if (at >= 0)
		slot = (uint64_t)at;
	rev = w->revision + 1;
	inline_image(w->map.hdr, hash, rev, k, strlen(k), "new!", 4);
	if (cut == CUT_IMAGE)
		_exit(0);
	dst = shm_slot_at(&w->map, slot);
	if (cut == CUT_INSERT) {
		/* index_insert_image() up to its first data stores */
		struct shm_hdr *h = w->map.hdr;

		atomic_store_explicit((_Atomic uint32_t *)(void *)h->undo_data,
				      SHM_UNDO_WHOLE, memory_order_relaxed);
		atomic_store_explicit(&h->undo_data[3], rev,
				      memory_order_relaxed);
		undo_arm(w->map.hdr, slot);
		undo_arm_for_section();
		seq_write_begin(&dst->seq);
		atomic_store_explicit((_Atomic uint32_t *)&dst->tag,
				      (uint32_t)hash, memory_order_relaxed);
		_exit(0);
	}
	undo_arm(w->map.hdr, slot);
	if (cut == CUT_ARMED)
		_exit(0);
	/* index_replace_image() up to its first data stores */
	undo_arm_for_section();
	seq_write_begin(&dst->seq);
	memset(dst->data, 0xee, 8); /* a torn key */
	_exit(0);
}

static void run(enum cut cut)
{
	/* the put's new value is kept only when its slot was cut off odd */
	bool kept = cut == CUT_TORN || cut == CUT_INSERT;
	shmreg_writer_t *w;
	shmreg_t *r;
	shmreg_info_t info;
	pid_t pid = fork();
	int status;
	char k[16], v[16], buf[16];
	uint64_t base = 0;
	ssize_t n;

	TC_CHECK(pid >= 0, "fork");
	if (pid == 0)
		die_in_put(cut);
	TC_EQ(waitpid(pid, &status, 0), pid, "waitpid");
	TC_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		 "child status %d", status);

	TC_EQ(shmreg_writer_open(NAME, NULL, &w), 0, cut_name[cut]);
	TC_EQ(shmreg_open(NAME, 0, &r), 0, "reader");
	for (unsigned i = 0; i < NKEYS; i++) {
		key_of(k, i);
		if (i == 7 && cut == CUT_TORN)
			strcpy(v, "new!");
		else
			snprintf(v, sizeof(v), "v%u", i);
		n = shmreg_get(r, k, strlen(k), buf, sizeof(buf), &info);
		TC_EQ(n, (ssize_t)strlen(v), k);
			TC_CHECK(!memcmp(buf, v, strlen(v)), "%s: %s: '%.*s', want '%s'",
			 cut_name[cut], k, (int)n, buf, v);
		/* key i was put as revision base + i + 1 (a truncating
		 * open goes on from the old registry's revision); a replace
		 * kept by the takeover keeps its create_rev */
		if (i == 0)
			base = info.create_rev - 1;
		TC_EQ(info.create_rev, base + i + 1, k);
		TC_EQ(info.mod_rev,
		      base + (i == 7 && cut == CUT_TORN ? NKEYS + 1 : i + 1),
		      k);
	}
	n = shmreg_get(r, NEW_KEY, strlen(NEW_KEY), buf, sizeof(buf), &info);
	if (cut == CUT_INSERT) {
		TC_EQ(n, 4, "the inserted key kept");
		TC_CHECK(!memcmp(buf, "new!", 4), "inserted value");
		TC_EQ(info.create_rev, base + NKEYS + 1, "its create_rev");
		TC_EQ(info.mod_rev, base + NKEYS + 1, "its mod_rev");
	} else {
		TC_EQ(n, -ENOENT, cut_name[cut]);
	}
	/* the kept new value's revision is passed; nothing lost */
	TC_EQ(shmreg_writer_revision(w), base + (kept ? NKEYS + 1 : NKEYS),
	      cut_name[cut]);
	TC_CHECK(shmreg_writer_put(w, "after", 5, "x", 1, NULL) > 0,
		 "a put after the takeover");
	shmreg_close(r);
	shmreg_writer_close(w);
}

int main(void)
{
	tc_init("put_redo", 60);
	tc_dir();
	run(CUT_TORN);
	run(CUT_ARMED);
	run(CUT_IMAGE);
	run(CUT_INSERT);
	return 0;
}
