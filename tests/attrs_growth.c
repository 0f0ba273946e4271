/* Description: no put fails -ENOSPC while the registry can grow, however
 * full of posting arrays its arena is when the index doubles.  A handoff
 * that rebuilt the attribute index entry by entry regrew every posting
 * array from its smallest block and left the outgrown blocks behind in the
 * new arena, so an index growth (which keeps the arena's size) ran out of
 * arena once live data neared it: issue 9's grandchild put of tests/tree.c
 * failed that way with a pair index sized ahead (here: made large by
 * distinct pairs put and deleted first, since a pair index never shrinks).
 * Trees of 100,100 entries (3 levels) are built from 16 starting arena
 * sizes spread over one octave, so that the index doubling meets the arena
 * at every fill level (before the fix, 1482752 bytes failed), alternately
 * with that large pair index; every put must succeed, and children, finds
 * and the subtree removal must be exact afterwards.  Under a sanitizer
 * every fourth size only (the run is ten times slower). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "shmreg.h"
#include "shmreg_writer.h"
#include "common/tc.h"

#define KIDS  100
#define GRAND 999

static int count_cb(const void *key, size_t klen, const void *val,
		    size_t vlen, const shmreg_info_t *info, void *arg)
{
	(void)key, (void)klen, (void)val, (void)vlen, (void)info;
	(*(int *)arg)++;
	return 0;
}

static int64_t put(shmreg_writer_t *w, const char *k, const char *parent,
		   const shmreg_attr_t *a)
{
	shmreg_put_opts_t o = { .attrs = a, .nattrs = a ? 1 : 0 };

	if (parent) {
		o.parent = parent;
		o.parent_len = strlen(parent);
	}
	return shmreg_writer_put(w, k, strlen(k), "v", 1, &o);
}

static void build(uint64_t arena, bool wide_pairs)
{
	shmreg_writer_opts_t wo = { .flags = SHMREG_WRITER_TRUNCATE,
				    .initial_arena = arena };
	shmreg_attr_t kind = { "kind", "leaf" };
	shmreg_writer_t *w;
	shmreg_t *r;
	char k[48], p[48], v[16];
	int n;

	TC_EQ(shmreg_writer_open("growth", &wo, &w), 0, "open");
	r = shmreg_writer_reader(w);
	TC_CHECK(r, "reader");
	if (wide_pairs) {
		/* a pair index of 512 slots (what sizing it for 1024
		 * entries / 4 gave), then emptied */
		for (int i = 0; i < 300; i++) {
			shmreg_attr_t a = { "id", v };

			snprintf(v, sizeof(v), "%d", i);
			snprintf(k, sizeof(k), "tmp/%d", i);
			TC_CHECK(put(w, k, NULL, &a) > 0, "put %s", k);
		}
		for (int i = 0; i < 300; i++) {
			snprintf(k, sizeof(k), "tmp/%d", i);
			TC_CHECK(shmreg_writer_del(w, k, strlen(k)) > 0, "del");
		}
	}
	TC_CHECK(put(w, "root", NULL, NULL) > 0, "root");
	for (int c = 0; c < KIDS; c++) {
		snprintf(p, sizeof(p), "root/%03d", c);
		TC_CHECK(put(w, p, "root", NULL) > 0, "child %s", p);
		for (int g = 0; g < GRAND; g++) {
			int64_t rev;

			snprintf(k, sizeof(k), "root/%03d/%03d", c, g);
			rev = put(w, k, p, g % 10 ? NULL : &kind);
			TC_CHECK(rev > 0, "arena %llu%s: grandchild %s: %lld",
				 (unsigned long long)arena,
				 wide_pairs ? " (wide pair index)" : "", k,
				 (long long)rev);
		}
	}
	n = 0;
	TC_EQ(shmreg_children(r, "root", 4, count_cb, &n), KIDS, "children");
	TC_EQ(n, KIDS, "children of root");
	n = 0;
	TC_EQ(shmreg_children(r, "root/007", 8, count_cb, &n), GRAND,
	      "grandchildren");
	n = 0;
	TC_EQ(shmreg_find(r, &kind, 1, count_cb, &n), KIDS * (GRAND / 10 + 1),
	      "find");
	TC_EQ(shmreg_writer_del_tree(w, "root", 4), 1 + KIDS + KIDS * GRAND,
	      "del_tree");
	shmreg_writer_close(w);
}

int main(void)
{
	tc_init("attrs_growth", 120);
	tc_dir();
	for (unsigned i = 0; i < 16; i += tc_sanitized() ? 4 : 1) {
		uint64_t a = (uint64_t)(1048576.0 * pow(2.0, i / 16.0));
		build(a & ~UINT64_C(4095), i & 1);
	}
	tc_log("ok");
	return 0;
}
