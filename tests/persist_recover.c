/* SPDX-License-Identifier: MIT */
/* Description: a registry with a data directory comes back after close,
 * after a crash with its segment, and after its segment was removed, with
 * values, attributes, parents, deadlines and create revisions; owner-bound
 * and ephemeral entries (and what hangs below them) do not; expired ones do
 * not; revisions never go back; a second writer of the directory gets
 * -EBUSY, and a forked child does not keep it locked;
 * SHMREG_WRITER_TRUNCATE drops the history; bad options -EINVAL. */
#include <sys/wait.h>

#include "persist_common.h"

static shmreg_writer_t *w;

static void put(const char *k, const char *v, const shmreg_put_opts_t *o)
{
	int64_t r = shmreg_writer_put(w, k, strlen(k), v, strlen(v), o);

	TC_CHECK(r > 0, "put %s: %s", k, strerror((int)-r));
}

static void expect(shmreg_t *r, const char *k, const char *v)
{
	char buf[256];
	ssize_t n = shmreg_get(r, k, strlen(k), buf, sizeof(buf), NULL);

	if (!v) {
		TC_EQ(n, -ENOENT, k);
		return;
	}
	TC_EQ(n, (ssize_t)strlen(v), k);
	TC_CHECK(!memcmp(buf, v, (size_t)n), "%s: value %.*s", k, (int)n, buf);
}

static int count_fn(const void *k, size_t kl, const void *v, size_t vl,
		    const shmreg_info_t *i, void *arg)
{
	(void)k, (void)kl, (void)v, (void)vl, (void)i, (void)arg;
	return 0;
}

static void fill(void)
{
	shmreg_attr_t a[2] = { { "node", "a" }, { "cap", "gpu" } };
	shmreg_put_opts_t o = { .attrs = a, .nattrs = 2 };
	shmreg_put_opts_t child = { .parent = "dir", .parent_len = 3 };
	shmreg_put_opts_t ttl = { .ttl_ns = INT64_C(3600) * 1000000000 };
	shmreg_put_opts_t brief = { .ttl_ns = 1 };
	shmreg_put_opts_t owned = { .owner_pid = getpid() };
	shmreg_put_opts_t below = { .parent = "owned", .parent_len = 5 };

	put("plain", "v1", NULL);
	put("plain", "v2", NULL);           /* create_rev stays at the first */
	put("rich", "with attrs", &o);
	put("dir", "d", NULL);
	put("dir/x", "child", &child);
	put("ttl", "later", &ttl);
	put("brief", "gone", &brief);
	put("gone", "x", NULL);
	TC_CHECK(shmreg_writer_del(w, "gone", 4) > 0, "del");
	put("owned", "o", &owned);
	put("owned/kid", "k", &below);
	put("was-plain", "p", NULL);
	put("was-plain", "now owned", &owned); /* its persistent value goes */
	TC_CHECK(shmreg_writer_set_attrs(w, "plain", 5, a, 1) > 0, "set_attrs");
}

static void check(shmreg_t *r, uint64_t min_rev)
{
	char buf[256];
	shmreg_info_t info;
	ssize_t n;

	TC_CHECK(shmreg_revision(r) >= min_rev, "revision %llu < %llu",
		 (unsigned long long)shmreg_revision(r),
		 (unsigned long long)min_rev);
	expect(r, "plain", "v2");
	n = shmreg_get(r, "plain", 5, buf, sizeof(buf), &info);
	TC_EQ(n, 2, "plain");
	TC_EQ(info.create_rev, 1, "plain create_rev");
	TC_CHECK(info.mod_rev > info.create_rev, "plain mod_rev");
	n = shmreg_get_attrs(r, "plain", 5, buf, sizeof(buf));
	TC_EQ(n, 7, "plain attrs");
	TC_CHECK(!memcmp(buf, "node\0a\0", 7), "plain attrs bytes");
	expect(r, "rich", "with attrs");
	n = shmreg_get_attrs(r, "rich", 4, buf, sizeof(buf));
	TC_EQ(n, 15, "rich attrs");
	TC_CHECK(!memcmp(buf, "node\0a\0cap\0gpu\0", 15), "rich attrs bytes");
	shmreg_attr_t m = { "cap", "gpu" };
	TC_EQ(shmreg_find(r, &m, 1, count_fn, NULL), 1, "find cap=gpu");
	expect(r, "dir", "d");
	expect(r, "dir/x", "child");
	TC_EQ(shmreg_children(r, "dir", 3, count_fn, NULL), 1, "children of dir");
	expect(r, "ttl", "later");
	n = shmreg_get(r, "ttl", 3, buf, sizeof(buf), &info);
	TC_CHECK(info.expires_at_ns > 0, "ttl deadline kept");
	expect(r, "brief", NULL);
	expect(r, "gone", NULL);
	expect(r, "owned", NULL);
	expect(r, "owned/kid", NULL);
	expect(r, "was-plain", NULL);
}

/* A forked child of the writer that outlives its close. */
static int bystander(struct tc_child *c, void *arg)
{
	(void)arg;
	tc_post(c, 'b');
	tc_wait_parent(c, 30000);
	return 0;
}

/* A child that fills the registry and dies without closing. */
static int crasher(struct tc_child *c, void *arg)
{
	(void)c;
	(void)arg;
	TC_EQ(pt_open("reg", SHMREG_DURABILITY_NONE, 0, &w), 0, "open");
	put("crash", "survives a process crash", NULL);
	_exit(0); /* no close: the log was written at each commit */
}

int main(void)
{
	shmreg_writer_t *w2;
	shmreg_writer_opts_t bad = { .durability = 3 };
	shmreg_t *r;
	uint64_t rev;
	char dir[4096];

	tc_init("persist_recover", 60);
	TC_EQ(pt_open("reg", SHMREG_DURABILITY_SYNC, 0, &w), 0, "open");
	fill();
	rev = shmreg_writer_revision(w);
	/* one writer per data directory, whatever the registry's name */
	shmreg_writer_opts_t o2 = { .data_dir = pt_datadir(dir, "reg") };
	TC_EQ(shmreg_writer_open("other", &o2, &w2), -EBUSY, "second writer");
	TC_EQ(shmreg_writer_open("other", &bad, &w2), -EINVAL, "durability 3");
	bad.durability = 0;
	bad.batch_ms = 60001;
	TC_EQ(shmreg_writer_open("other", &bad, &w2), -EINVAL, "batch_ms");
	TC_EQ(shmreg_writer_snapshot(NULL), -EINVAL, "snapshot NULL");
	shmreg_writer_close(w);

	/* a clean close, the segment still there: readers follow */
	TC_EQ(shmreg_open("reg", 0, &r), 0, "reader");
	TC_EQ(pt_open("reg", SHMREG_DURABILITY_SYNC, 0, &w), 0, "reopen");
	check(r, rev + 1);
	rev = shmreg_writer_revision(w);
	shmreg_writer_close(w);

	/* the segment removed (a reboot) */
	pt_drop_segment("reg");
	TC_EQ(pt_open("reg", SHMREG_DURABILITY_BATCH, 0, &w), 0, "after reboot");
	shmreg_close(r);
	TC_EQ(shmreg_open("reg", 0, &r), 0, "reader 2");
	check(r, rev);
	TC_CHECK(shmreg_writer_revision(w) >= rev, "revision went back");
	/* a snapshot, then the same again from it */
	TC_EQ(shmreg_writer_snapshot(w), 0, "snapshot");
	put("after-snap", "x", NULL);
	rev = shmreg_writer_revision(w);
	shmreg_writer_close(w);
	TC_CHECK(pt_last("reg", "snap") > 0, "a snapshot file");
	pt_drop_segment("reg");
	TC_EQ(pt_open("reg", SHMREG_DURABILITY_BATCH, 0, &w), 0, "from snapshot");
	shmreg_close(r);
	TC_EQ(shmreg_open("reg", 0, &r), 0, "reader 3");
	check(r, rev);
	expect(r, "after-snap", "x");
	shmreg_writer_close(w);

	/* a process crash in mode none: what was put is there */
	struct tc_child *c = tc_spawn("crasher", crasher, NULL);
	tc_child_join(c, 20000);
	tc_child_free(c);
	pt_drop_segment("reg");
	TC_EQ(pt_open("reg", SHMREG_DURABILITY_BATCH, 0, &w), 0, "after crash");
	shmreg_close(r);
	TC_EQ(shmreg_open("reg", 0, &r), 0, "reader 4");
	expect(r, "crash", "survives a process crash");
	check(r, rev);
	shmreg_writer_close(w);

	/* a forked child does not keep the data directory locked */
	TC_EQ(pt_open("reg", 0, 0, &w), 0, "open before fork");
	c = tc_spawn("bystander", bystander, NULL);
	tc_expect(c, 'b', 10000);
	shmreg_writer_close(w);
	TC_EQ(pt_open("reg", 0, 0, &w), 0, "reopen while the child lives");
	shmreg_writer_close(w);
	tc_tell(c, 'x');
	tc_child_join(c, 10000);
	tc_child_free(c);

	/* truncate: the history goes too */
	TC_EQ(pt_open("reg", 0, SHMREG_WRITER_TRUNCATE, &w), 0, "truncate");
	shmreg_writer_close(w);
	pt_drop_segment("reg");
	TC_EQ(pt_open("reg", 0, 0, &w), 0, "after truncate");
	shmreg_close(r);
	TC_EQ(shmreg_open("reg", 0, &r), 0, "reader 5");
	expect(r, "plain", NULL);
	TC_CHECK(shmreg_revision(r) >= rev, "revision after truncate");
	shmreg_writer_close(w);
	shmreg_close(r);
	return 0;
}
