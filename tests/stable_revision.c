/* SPDX-License-Identifier: MIT */
/* Description: shmreg_stable_revision: the revision after each change,
 * -EAGAIN (with the revision before it) while a batch is open, the same
 * revision across a segment handoff, -EINVAL for NULL arguments, and a
 * handle of a removed registry keeps its own revision while a new one
 * starts again. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "shmreg.h"
#include "shmreg_writer.h"
#include "common/tc.h"

static int64_t put(shmreg_writer_t *w, const char *key, const char *val)
{
	int64_t rev = shmreg_writer_put(w, key, strlen(key), val, strlen(val),
					NULL);

	TC_CHECK(rev > 0, "put %s: %lld", key, (long long)rev);
	return rev;
}

/* shmreg_stable_revision(@r) returns @want_rc with revision @want_rev */
static void expect(shmreg_t *r, int want_rc, int64_t want_rev,
		   const char *what)
{
	uint64_t rev = 0;

	TC_EQ(shmreg_stable_revision(r, &rev), want_rc, what);
	TC_EQ(rev, want_rev, what);
}

int main(void)
{
	shmreg_writer_opts_t opts = { .initial_entries = 8 };
	shmreg_writer_t *w;
	shmreg_t *r, *r2;
	uint64_t rev;
	int64_t last;
	char path[4096], key[32];

	tc_init("stable_revision", 60);
	tc_path(path, "shmreg.stable");
	TC_EQ(shmreg_writer_open(path, &opts, &w), 0, "writer open");
	last = put(w, "a", "1");
	TC_EQ(shmreg_open(path, 0, &r), 0, "reader open");
	expect(r, 0, last, "after a put");
	last = put(w, "a", "2");
	expect(r, 0, last, "after a second put");

	/* a batch holds commit_seq odd: -EAGAIN, the revision before it,
	 * until it ends; its changes' revision then */
	TC_EQ(shmreg_writer_batch_begin(w), 0, "batch begin");
	expect(r, -EAGAIN, last, "batch open, nothing in it yet");
	put(w, "b", "1");
	expect(r, -EAGAIN, last + 1, "batch open with a change stored");
	last = put(w, "c", "1");
	TC_EQ(shmreg_writer_batch_end(w), 0, "batch end");
	expect(r, 0, last, "after the batch");

	/* growth: a handoff to a new segment keeps the revision, and the
	 * handle follows it */
	shmreg_stats_t st;
	TC_EQ(shmreg_stats(r, &st), 0, "stats");
	uint64_t gen = st.generation;
	for (int i = 0; i < 64; i++) {
		snprintf(key, sizeof(key), "grow/%02d", i);
		last = put(w, key, "x");
	}
	TC_EQ(shmreg_stats(r, &st), 0, "stats after growth");
	TC_CHECK(st.generation > gen, "no handoff: generation %llu",
		 (unsigned long long)st.generation);
	expect(r, 0, last, "after the handoffs");
	/* a handoff of its own takes no revision: the same one again */
	expect(r, 0, last, "the same revision again");

	TC_EQ(shmreg_stable_revision(NULL, &rev), -EINVAL, "NULL handle");
	TC_EQ(shmreg_stable_revision(r, NULL), -EINVAL, "NULL rev");

	/* removed and made again: the old handle keeps reading the removed
	 * file and its revision; a new handle sees the new registry's */
	shmreg_writer_close(w);
	TC_EQ(unlink(path), 0, "remove the segment");
	TC_EQ(shmreg_writer_open(path, NULL, &w), 0, "writer of a new one");
	int64_t fresh = put(w, "a", "new");
	TC_CHECK(fresh < last, "a new registry starts again: %lld",
		 (long long)fresh);
	expect(r, 0, last, "the removed registry's handle");
	TC_EQ(shmreg_open(path, 0, &r2), 0, "reader of the new one");
	expect(r2, 0, fresh, "the new registry's handle");
	shmreg_close(r2);
	shmreg_close(r);
	shmreg_writer_close(w);
	return 0;
}
