/* Description: parent/child trees in the embedded writer: a parent must
 * exist, del of a parent is -ENOTEMPTY, cycles are -ELOOP, a re-put moves
 * a child, set_attrs keeps the parent, an owner's exit takes its subtrees;
 * then a 3-level tree of 100,001 nodes is removed by one del_tree commit:
 * nothing is left, a watcher sees every delete event, and a snapshot
 * reader in another process never sees a half-deleted tree. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmreg.h"
#include "shmreg_writer.h"
#include "../writer/internal.h"
#include "common/tc.h"

#define KIDS   100
#define GRAND  999
#define NODES  (1 + KIDS + KIDS * GRAND)

struct shared {
	_Atomic int phase;         /* 1: tree built; 2: deleted; 3: stop */
	_Atomic unsigned long whole, gone, bad, tries;
};

static int count_cb(const void *key, size_t klen, const void *val,
		    size_t vlen, const shmreg_info_t *info, void *arg)
{
	(void)key;
	(void)klen;
	(void)val;
	(void)vlen;
	(void)info;
	(*(int *)arg)++;
	return 0;
}

static int children_of(shmreg_t *r, const char *key)
{
	int n = 0;
	ssize_t rc = shmreg_children(r, key, strlen(key), count_cb, &n);

	TC_CHECK(rc >= 0, "children of %s: %zd", key, rc);
	TC_EQ(rc, n, "children count");
	return n;
}

static int64_t put_under(shmreg_writer_t *w, const char *key,
			 const char *parent, pid_t owner)
{
	shmreg_put_opts_t o = { .parent = parent,
				.parent_len = parent ? strlen(parent) : 0,
				.owner_pid = owner };

	return shmreg_writer_put(w, key, strlen(key), "v", 1, &o);
}

static int idle(struct tc_child *c, void *arg)
{
	(void)arg;
	tc_set_role(c->name);
	tc_wait_parent(c, 60000);
	return 0;
}

static void semantics(shmreg_writer_t *w, shmreg_t *r)
{
	struct tc_child *owner = tc_spawn("owner", idle, NULL);
	shmreg_attr_t a = { "kind", "dir" };
	char buf[64];

	TC_EQ(put_under(w, "a/b", "a", 0), -ENOENT, "missing parent");
	TC_CHECK(put_under(w, "a", NULL, 0) > 0, "root");
	TC_CHECK(put_under(w, "a/b", "a", 0) > 0, "child");
	TC_CHECK(put_under(w, "a/b/c", "a/b", 0) > 0, "grandchild");
	TC_CHECK(put_under(w, "x", NULL, 0) > 0, "other root");
	TC_EQ(children_of(r, "a"), 1, "children of a");
	TC_EQ(children_of(r, "a/b"), 1, "children of a/b");
	TC_EQ(children_of(r, "x"), 0, "children of x");
	TC_EQ(children_of(r, "nope"), 0, "children of an absent key");
	TC_EQ(shmreg_writer_del(w, "a", 1), -ENOTEMPTY, "del of a parent");
	TC_CHECK(shmreg_get(r, "a", 1, buf, sizeof(buf), NULL) == 1,
		 "a still there");
	TC_EQ(put_under(w, "a", "a/b/c", 0), -ELOOP, "a cycle");
	TC_EQ(put_under(w, "a", "a", 0), -ELOOP, "its own parent");
	/* set_attrs keeps the parent */
	TC_CHECK(shmreg_writer_set_attrs(w, "a/b", 3, &a, 1) > 0, "set");
	TC_EQ(children_of(r, "a"), 1, "still a child after set_attrs");
	TC_EQ(shmreg_get_attrs(r, "a/b", 3, buf, sizeof(buf)), 9, "attrs");
	/* a re-put with another parent moves the child and its subtree */
	TC_CHECK(put_under(w, "a/b", "x", 0) > 0, "move");
	TC_EQ(children_of(r, "a"), 0, "a after the move");
	TC_EQ(children_of(r, "x"), 1, "x after the move");
	TC_EQ(children_of(r, "a/b"), 1, "the subtree moved along");
	TC_CHECK(shmreg_writer_del(w, "a", 1) > 0, "a is a leaf now");
	/* a put without a parent makes it a root */
	TC_CHECK(put_under(w, "a/b", NULL, 0) > 0, "to a root");
	TC_EQ(children_of(r, "x"), 0, "x after un-parenting");
	TC_EQ(shmreg_writer_del_tree(w, "a/b", 3), 2, "del_tree of two");
	TC_EQ(shmreg_writer_del_tree(w, "a/b", 3), -ENOENT, "again");
	/* an owner's exit takes its subtrees, whoever owns the children */
	TC_CHECK(put_under(w, "o", NULL, owner->pid) > 0, "owned root");
	TC_CHECK(put_under(w, "o/1", "o", 0) > 0, "unowned child");
	TC_CHECK(put_under(w, "o/1/1", "o/1", 0) > 0, "grandchild");
	TC_EQ(shmreg_writer_del_owner(w, owner->pid), 3, "owner subtree");
	tc_tell(owner, 'x');
	tc_child_join(owner, 10000);
	tc_child_free(owner);
	TC_EQ(shmreg_get(r, "o/1/1", 5, NULL, 0, NULL), -ENOENT, "gone");
	TC_CHECK(shmreg_writer_del(w, "x", 1) > 0, "x");
	TC_EQ(w->entries, 0, "entries left");
	TC_EQ(w->attr_pairs, 0, "pairs left");
}

static void node_key(char *k, int c, int g)
{
	if (c < 0)
		strcpy(k, "r");
	else if (g < 0)
		snprintf(k, 32, "r/c%03d", c);
	else
		snprintf(k, 32, "r/c%03d/g%03d", c, g);
}

/* Another process: in validated snapshots the root and three random
 * nodes are all present or all absent. */
static int snapper(struct tc_child *c, void *arg)
{
	struct shared *sh = arg;
	uint64_t rs = tc_seed() + 17;
	shmreg_t *r = NULL;

	tc_set_role(c->name);
	for (int t = 0; t < 2000 && shmreg_open("tree", 0, &r) < 0; t++)
		tc_wait_parent(c, 5);
	TC_CHECK(r, "open");
	tc_post(c, 'R');
	while (atomic_load(&sh->phase) < 3) {
		uint64_t tok = shmreg_read_begin(r);
		char k[32];
		int present = 0;

		node_key(k, -1, -1);
		present += shmreg_get(r, k, strlen(k), NULL, 0, NULL) >= 0;
		for (int i = 0; i < 3; i++) {
			node_key(k, (int)tc_range(&rs, 0, KIDS - 1),
				 (int)tc_range(&rs, 0, GRAND) - 1);
			present += shmreg_get(r, k, strlen(k), NULL, 0,
					      NULL) >= 0;
		}
		atomic_fetch_add(&sh->tries, 1);
		if (shmreg_read_validate(r, tok) != 0)
			continue;
		if (atomic_load(&sh->phase) < 1)
			continue; /* still being built */
		if (present == 4)
			atomic_fetch_add(&sh->whole, 1);
		else if (present == 0)
			atomic_fetch_add(&sh->gone, 1);
		else
			atomic_fetch_add(&sh->bad, 1);
	}
	shmreg_close(r);
	return 0;
}

int main(void)
{
	shmreg_writer_opts_t wo = { .flags = SHMREG_WRITER_TRUNCATE,
				    .ring_events = 1u << 17 };
	struct shared *sh;
	struct tc_child *sn;
	shmreg_writer_t *w;
	shmreg_watch_t *wa;
	shmreg_event_t ev;
	shmreg_t *r;
	char k[32], p[32];
	uint64_t before;
	int64_t n;
	unsigned long dels = 0, seen_root = 0;
	uint64_t t0;

	tc_init("tree", 150);
	tc_dir();
	sh = tc_shared(sizeof(*sh));
	sn = tc_spawn("snapper", snapper, sh);
	TC_EQ(shmreg_writer_open("tree", &wo, &w), 0, "writer open");
	r = shmreg_writer_reader(w);
	TC_CHECK(r, "reader");
	tc_expect(sn, 'R', 20000);

	semantics(w, r);

	/* the big tree: one batch, so snapshot readers see it whole */
	TC_EQ(shmreg_writer_batch_begin(w), 0, "batch");
	node_key(k, -1, -1);
	TC_CHECK(put_under(w, k, NULL, 0) > 0, "root");
	for (int c = 0; c < KIDS; c++) {
		node_key(k, c, -1);
		node_key(p, -1, -1);
		TC_CHECK(put_under(w, k, p, 0) > 0, "child");
		for (int g = 0; g < GRAND; g++) {
			char gk[32];

			node_key(gk, c, g);
			int64_t gr = put_under(w, gk, k, 0);
			TC_CHECK(gr > 0, "grandchild: %lld", (long long)gr);
		}
	}
	TC_EQ(shmreg_writer_batch_end(w), 0, "batch end");
	TC_EQ(w->entries, NODES, "nodes");
	TC_EQ(children_of(r, "r"), KIDS, "children of the root");
	TC_EQ(children_of(r, "r/c042"), GRAND, "children of a child");
	atomic_store(&sh->phase, 1);
	/* let the snapper see the whole tree a while */
	t0 = tc_now_ns();
	while (atomic_load(&sh->whole) < 200 &&
	       tc_now_ns() - t0 < UINT64_C(5000000000))
		tc_hear(sn, 1);

	before = shmreg_revision(r);
	TC_EQ(shmreg_watch_open(r, NULL, 0, before, &wa), 0, "watch");
	TC_EQ(shmreg_writer_del(w, "r", 1), -ENOTEMPTY, "del of the root");
	n = shmreg_writer_del_tree(w, "r", 1);
	TC_EQ(n, NODES, "removed by del_tree");
	TC_EQ(shmreg_revision(r), before + NODES, "one revision each");
	atomic_store(&sh->phase, 2);

	/* every delete event, each key once (the root last: leaves first) */
	for (;;) {
		int rc = shmreg_watch_next(wa, &ev, 0);

		if (rc == -ETIMEDOUT)
			break;
		TC_EQ(rc, 0, "watch_next");
		TC_EQ(ev.type, SHMREG_EVENT_DEL, "event type");
		dels++;
		if (ev.klen == 1 && !memcmp(ev.key, "r", 1)) {
			seen_root++;
			TC_EQ(dels, NODES, "the root's event is the last");
		}
	}
	shmreg_watch_close(wa);
	TC_EQ(dels, NODES, "delete events");
	TC_EQ(seen_root, 1, "root events");
	TC_EQ(w->entries, 0, "entries left");
	TC_EQ(w->attr_pairs, 0, "pair slots left");
	TC_EQ(w->apos.n, 0, "postings left");
	TC_EQ(w->arena_live, 0, "arena bytes left");
	TC_EQ(children_of(r, "r"), 0, "children after");

	t0 = tc_now_ns();
	while (atomic_load(&sh->gone) < 200 &&
	       tc_now_ns() - t0 < UINT64_C(5000000000))
		tc_hear(sn, 1);
	atomic_store(&sh->phase, 3);
	tc_child_join(sn, 30000);
	tc_child_free(sn);
	tc_log("snapshots: %lu whole, %lu gone, %lu half (of %lu tries)",
	       sh->whole, sh->gone, sh->bad, sh->tries);
	TC_EQ(sh->bad, 0, "half-deleted trees seen");
	TC_CHECK(sh->whole >= 200 && sh->gone >= 200,
		 "too few validated snapshots: %lu whole, %lu gone",
		 sh->whole, sh->gone);
	shmreg_writer_close(w);
	return 0;
}
