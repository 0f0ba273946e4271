/* SPDX-License-Identifier: MIT */
/* Description: 1 M changes (puts with values, attributes and parents,
 * set_attrs, deletes) with snapshots started in the middle, by request
 * and by log size; after a restart with the segment removed, the contents
 * equal a reference model, attributes and parents included, the files
 * were compacted, and the restart's time is reported. */
#include "persist_common.h"

#define DIRS  1000u
#define KEYS  200000u

struct model {
	uint32_t seq;      /* value: tv_build(seq), 0 = absent */
	uint16_t vlen;
	int16_t grp;       /* attribute grp=N, -1 = none */
	int16_t parent;    /* dir index, -1 = none */
};

static struct model *m;
static uint32_t dir_children[DIRS];

static void dname(unsigned i, char *b)
{
	snprintf(b, 16, "d%03u", i);
}

static void kname(unsigned i, char *b)
{
	snprintf(b, 16, "k%06u", i);
}

static void gname(int g, char *b)
{
	snprintf(b, 8, "%d", g);
}

static int count_fn(const void *k, size_t kl, const void *v, size_t vl,
		    const shmreg_info_t *i, void *arg)
{
	(void)k, (void)kl, (void)v, (void)vl, (void)i;
	(*(uint64_t *)arg)++;
	return 0;
}

static void verify(shmreg_t *r)
{
	uint8_t buf[128];
	char k[16], dn[16], g[8], want[32];
	uint64_t present = 0, listed = 0;

	for (unsigned i = 0; i < KEYS; i++) {
		ssize_t n;
		uint64_t seq;

		kname(i, k);
		n = shmreg_get(r, k, strlen(k), buf, sizeof(buf), NULL);
		if (!m[i].seq) {
			TC_EQ(n, -ENOENT, k);
			continue;
		}
		present++;
		TC_EQ(n, m[i].vlen, k);
		TC_CHECK(tv_check(buf, (size_t)n, k, strlen(k), &seq) == 0 &&
			 seq == m[i].seq, "%s: value", k);
		n = shmreg_get_attrs(r, k, strlen(k), buf, sizeof(buf));
		if (m[i].grp < 0) {
			TC_EQ(n, 0, k);
		} else {
			gname(m[i].grp, g);
			int wl = snprintf(want, sizeof(want), "grp%c%s%c", 0, g,
					  0);
			TC_EQ(n, wl, k);
			TC_CHECK(!memcmp(buf, want, (size_t)wl), "%s attrs", k);
		}
	}
	for (unsigned d = 0; d < DIRS; d++) {
		uint64_t c = 0;

		dname(d, dn);
		TC_EQ(shmreg_children(r, dn, strlen(dn), count_fn, &c), c, dn);
		TC_EQ(c, dir_children[d], dn);
	}
	TC_EQ(shmreg_list(r, "", 0, count_fn, &listed), listed, "list");
	TC_EQ(listed, present + DIRS, "entries");
}

int main(void)
{
	uint64_t st = tc_seed(), ops = 1000000 / tc_scale(), t0, t1;
	uint8_t v[128];
	char k[16], dn[16], g[8];
	shmreg_writer_t *w;
	shmreg_t *r;
	unsigned snaps = 0;

	tc_init("persist_snapshot", 600);
	m = calloc(KEYS, sizeof(*m));
	TC_CHECK(m, "calloc");
	TC_EQ(pt_open("reg", SHMREG_DURABILITY_BATCH, 0, &w), 0, "open");
	for (unsigned d = 0; d < DIRS; d++) {
		dname(d, dn);
		TC_CHECK(shmreg_writer_put(w, dn, strlen(dn), "dir", 3, NULL) > 0,
			 "dir");
	}
	for (uint64_t op = 1; op <= ops; op++) {
		unsigned i = (unsigned)tc_range(&st, 0, KEYS - 1);
		unsigned kind = (unsigned)tc_range(&st, 0, 99);
		shmreg_attr_t a = { "grp", g };
		int64_t rc;

		kname(i, k);
		if (kind < 70) {
			shmreg_put_opts_t o = { 0 };
			struct model nm = { .seq = (uint32_t)op, .grp = -1,
					    .parent = -1 };

			nm.vlen = (uint16_t)tc_range(&st, 16, 100);
			if (tc_range(&st, 0, 9) < 3) {
				nm.grp = (int16_t)tc_range(&st, 0, 9);
				gname(nm.grp, g);
				o.attrs = &a;
				o.nattrs = 1;
			}
			if (tc_range(&st, 0, 9) < 3) {
				nm.parent = (int16_t)tc_range(&st, 0, DIRS - 1);
				dname((unsigned)nm.parent, dn);
				o.parent = dn;
				o.parent_len = strlen(dn);
			}
			tv_build(v, nm.vlen, k, strlen(k), op);
			rc = shmreg_writer_put(w, k, strlen(k), v, nm.vlen, &o);
			TC_CHECK(rc > 0, "put: %s", strerror((int)-rc));
			if (m[i].seq && m[i].parent >= 0)
				dir_children[m[i].parent]--;
			if (nm.parent >= 0)
				dir_children[nm.parent]++;
			m[i] = nm;
		} else if (kind < 90) {
			rc = shmreg_writer_del(w, k, strlen(k));
			TC_EQ(rc < 0 ? rc : 0, m[i].seq ? 0 : -ENOENT, "del");
			if (m[i].seq && m[i].parent >= 0)
				dir_children[m[i].parent]--;
			m[i].seq = 0;
		} else {
			int grp = (int)tc_range(&st, 0, 9);

			gname(grp, g);
			rc = shmreg_writer_set_attrs(w, k, strlen(k), &a, 1);
			TC_EQ(rc < 0 ? rc : 0, m[i].seq ? 0 : -ENOENT, "attrs");
			if (m[i].seq)
				m[i].grp = (int16_t)grp;
		}
		if (op % (ops / 4) == 0) {
			rc = shmreg_writer_snapshot(w);
			TC_CHECK(rc == 0 || rc == -EALREADY, "snapshot: %s",
				 strerror((int)-rc));
			snaps += rc == 0;
		}
	}
	shmreg_writer_close(w);
	TC_CHECK(snaps >= 1, "no snapshot started");
	TC_CHECK(pt_last("reg", "snap") >= 2, "snapshots written");
	{
		char p[4096];

		/* compaction: the first logs are gone */
		TC_CHECK(access(pt_file(p, "reg", "log", 1), F_OK) < 0,
			 "log.1 still there");
	}
	pt_drop_segment("reg");
	t0 = tc_now_ns();
	TC_EQ(pt_open("reg", SHMREG_DURABILITY_BATCH, 0, &w), 0, "reopen");
	t1 = tc_now_ns();
	tc_log("restart after %llu changes: %.3f s", (unsigned long long)ops,
	       (double)(t1 - t0) / 1e9);
	TC_EQ(shmreg_open("reg", 0, &r), 0, "reader");
	verify(r);
	shmreg_close(r);
	shmreg_writer_close(w);
	/* and once more, with the segment kept: the same */
	TC_EQ(pt_open("reg", SHMREG_DURABILITY_BATCH, 0, &w), 0, "reopen 2");
	TC_EQ(shmreg_open("reg", 0, &r), 0, "reader 2");
	verify(r);
	shmreg_close(r);
	shmreg_writer_close(w);
	free(m);
	return 0;
}
