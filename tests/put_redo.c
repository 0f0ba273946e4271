/* SPDX-License-Identifier: MIT */
/* Description: the common put's undo record holds the slot's new contents
 * (writer/slot_write.h): a writer that dies with that record armed and the
 * slot half written leaves a registry the next writer takes over with the
 * entry whole and new - value, revisions, the revision raised past the
 * entry's - and every other entry as it was; a writer that dies after
 * building the image but before arming it leaves the old value. */
#define _GNU_SOURCE
#include <errno.h>
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

/* The child: a writer with NKEYS entries ("v<i>"), then the common put of
 * key 7 as "new!" cut off: @armed, with the record armed and the slot
 * half written (seqcount odd), else with the image built only.  It exits
 * without closing: a crash for the next writer. */
static void die_in_put(int armed)
{
	shmreg_writer_opts_t o = { .flags = SHMREG_WRITER_TRUNCATE };
	struct shmreg_writer *w;
	struct shm_slot old, *dst;
	char k[16], v[16];
	uint64_t hash, rev;
	int64_t at;

	if (shmreg_writer_open(NAME, &o, &w) < 0)
		_exit(10);
	for (unsigned i = 0; i < NKEYS; i++) {
		key_of(k, i);
		snprintf(v, sizeof(v), "v%u", i);
		if (shmreg_writer_put(w, k, strlen(k), v, strlen(v), NULL) <= 0)
			_exit(11);
	}
	key_of(k, 7);
	hash = shm_hash(k, strlen(k));
	at = index_find(w, k, strlen(k), hash, &old);
	if (at < 0)
		_exit(12);
	rev = w->revision + 1;
	inline_image(w, hash, rev, k, strlen(k), "new!", 4);
	if (armed) {
		/* index_write_image() up to its first data stores */
		struct shm_hdr *h = w->map.hdr;

		dst = shm_slot_at(&w->map, (uint64_t)at);
		atomic_store_explicit(&h->undo_data[3], old.create_rev,
				      memory_order_relaxed);
		atomic_store_explicit(&h->undo_slot, (uint64_t)at + 1,
				      memory_order_release);
		seq_write_begin(&dst->seq);
		memset(dst->data, 0xee, 8); /* a torn key */
	}
	_exit(0);
}

static void run(int armed)
{
	shmreg_writer_t *w;
	shmreg_t *r;
	shmreg_info_t info;
	pid_t pid = fork();
	int status;
	char k[16], v[16], buf[16];
	uint64_t base = 0;

	TC_CHECK(pid >= 0, "fork");
	if (pid == 0)
		die_in_put(armed);
	TC_EQ(waitpid(pid, &status, 0), pid, "waitpid");
	TC_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		 "child status %d", status);

	TC_EQ(shmreg_writer_open(NAME, NULL, &w), 0, "takeover");
	TC_EQ(shmreg_open(NAME, 0, &r), 0, "reader");
	for (unsigned i = 0; i < NKEYS; i++) {
		ssize_t n;

		key_of(k, i);
		if (i == 7 && armed)
			strcpy(v, "new!");
		else
			snprintf(v, sizeof(v), "v%u", i);
		n = shmreg_get(r, k, strlen(k), buf, sizeof(buf), &info);
		TC_EQ(n, (ssize_t)strlen(v), k);
		TC_CHECK(!memcmp(buf, v, strlen(v)), "%s: '%.*s', want '%s'", k,
			 (int)n, buf, v);
		/* key i was put as revision base + i + 1 (a truncating
		 * open goes on from the old registry's revision) */
		if (i == 0)
			base = info.create_rev - 1;
		TC_EQ(info.create_rev, base + i + 1, k);
		TC_EQ(info.mod_rev, base + (i == 7 && armed ? NKEYS + 1 : i + 1),
		      k);
	}
	/* the kept new value's revision is passed; nothing lost */
	TC_EQ(shmreg_writer_revision(w), base + (armed ? NKEYS + 1 : NKEYS),
	      "revision after the takeover");
	TC_CHECK(shmreg_writer_put(w, "after", 5, "x", 1, NULL) > 0,
		 "a put after the takeover");
	shmreg_close(r);
	shmreg_writer_close(w);
}

int main(void)
{
	tc_init("put_redo", 60);
	tc_dir();
	run(1);
	run(0);
	return 0;
}
