/* SPDX-License-Identifier: MIT */
/* Description: BATCH through shmregd, all or nothing: a failing
 * compare-and-set in the middle leaves everything as it was (exact index,
 * errno and revision); a parent put earlier in the batch, a
 * compare-and-set on the batch's own put, delete-then-delete of a child
 * and its parent all work; cycles, deletes with children and missing
 * keys are refused with their index; a whole batch is one commit (one
 * snapshot, consecutive revisions, one change event per operation); and a
 * token moved between 200 keys in daemon batches is counted exactly once
 * by two snapshot reader processes.  Raw frames: the bytes
 * docs/protocol.md documents, an operation over a size limit (its index),
 * one operation too many (refused whole, the connection goes on). */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/tc.h"
#include "daemon_harness.h"
#include "proto.h"

#define NKEYS    200
#define NREADERS 2
#define MOVES    3000
#define MIN_SNAPS 100 /* validated snapshots per reader, at least */

static struct dh h;

static void put_b(shmreg_batch_t *b, const char *k, const char *v,
		  const shmreg_put_opts_t *o)
{
	TC_EQ(shmreg_batch_put(b, k, strlen(k), v, strlen(v), o), 0, k);
}

static shmreg_batch_t *begin(shmreg_client_t *c)
{
	shmreg_batch_t *b = NULL;

	TC_EQ(shmreg_batch_begin(c, &b), 0, "batch_begin");
	return b;
}

static bool has(shmreg_t *r, const char *k)
{
	return shmreg_get(r, k, strlen(k), NULL, 0, NULL) >= 0;
}

static void check_val(shmreg_t *r, const char *k, const char *want)
{
	char buf[64];
	ssize_t n = shmreg_get(r, k, strlen(k), buf, sizeof(buf), NULL);

	TC_CHECK(n == (ssize_t)strlen(want) && !memcmp(buf, want, (size_t)n),
		 "%s: got %zd bytes (%.*s), want %s", k, n,
		 n > 0 ? (int)n : 0, buf, want);
}

/* A failing compare-and-set in the middle: nothing changes. */
static void test_cas_middle(shmreg_client_t *c, shmreg_t *r)
{
	shmreg_batch_t *b;
	uint64_t rev0;
	uint32_t failed = 7;
	int64_t ret;

	TC_CHECK(shmreg_put(c, "cas/e", 5, "old", 3, NULL) > 0, "put e");
	TC_CHECK(shmreg_put(c, "cas/c", 5, "old", 3, NULL) > 0, "put c");
	rev0 = shmreg_revision(r);
	b = begin(c);
	put_b(b, "cas/a", "1", NULL);
	put_b(b, "cas/b", "1", NULL);
	put_b(b, "cas/c", "new",
	      &(shmreg_put_opts_t){ .expect_rev = rev0 + 100 });
	put_b(b, "cas/d", "1", NULL);
	TC_EQ(shmreg_batch_del(b, "cas/e", 5), 0, "del e");
	ret = shmreg_batch_commit(b, &failed);
	TC_EQ(ret, -EEXIST, "commit with a failing compare-and-set");
	TC_EQ(failed, 2, "failed index");
	TC_EQ(shmreg_revision(r), rev0, "revision after a refused batch");
	TC_CHECK(!has(r, "cas/a") && !has(r, "cas/b") && !has(r, "cas/d"),
		 "a refused batch wrote something");
	check_val(r, "cas/c", "old");
	check_val(r, "cas/e", "old");

	/* "only if absent" on a key that exists, as the last operation */
	b = begin(c);
	put_b(b, "cas/a", "1", NULL);
	put_b(b, "cas/e", "x", &(shmreg_put_opts_t){
				       .expect_rev = SHMREG_REV_ABSENT });
	TC_EQ(shmreg_batch_commit(b, &failed), -EEXIST, "absent-only");
	TC_EQ(failed, 1, "failed index");
	TC_EQ(shmreg_revision(r), rev0, "revision");

	/* the right revision: all of it, consecutive revisions */
	b = begin(c);
	put_b(b, "cas/a", "1", NULL);
	put_b(b, "cas/c", "new", &(shmreg_put_opts_t){ .expect_rev = rev0 });
	TC_EQ(shmreg_batch_del(b, "cas/e", 5), 0, "del e");
	ret = shmreg_batch_commit(b, &failed);
	TC_EQ(ret, (int64_t)rev0 + 3, "commit");
	TC_EQ(failed, SHMREG_BATCH_NONE, "failed index on success");
	check_val(r, "cas/a", "1");
	check_val(r, "cas/c", "new");
	TC_CHECK(!has(r, "cas/e"), "cas/e still there");
}

static int count_cb(const void *k, size_t kl, const void *v, size_t vl,
		    const shmreg_info_t *i, void *arg)
{
	(void)k, (void)kl, (void)v, (void)vl, (void)i;
	++*(int *)arg;
	return 0;
}

static int count_children(shmreg_t *r, const char *k)
{
	int n = 0;

	TC_CHECK(shmreg_children(r, k, strlen(k), count_cb,
				 &n) >= 0, "children %s", k);
	return n;
}

/* Trees inside one batch. */
static void test_trees(shmreg_client_t *c, shmreg_t *r)
{
	shmreg_put_opts_t under_p = { .parent = "t/p", .parent_len = 3 };
	shmreg_put_opts_t under_c = { .parent = "t/p/c", .parent_len = 5 };
	shmreg_batch_t *b;
	uint64_t rev0 = shmreg_revision(r);
	uint32_t failed;
	int64_t ret;

	/* a parent put earlier in the batch, and a compare-and-set on the
	 * batch's own put (its revision is rev0 + 1) */
	b = begin(c);
	put_b(b, "t/p", "p", NULL);
	put_b(b, "t/p/c", "c", &under_p);
	put_b(b, "t/p/c/g", "g", &under_c);
	put_b(b, "t/p", "p2", &(shmreg_put_opts_t){ .expect_rev = rev0 + 1 });
	ret = shmreg_batch_commit(b, &failed);
	TC_EQ(ret, (int64_t)rev0 + 4, "parents in the batch");
	TC_EQ(count_children(r, "t/p"), 1, "children of t/p");
	TC_EQ(count_children(r, "t/p/c"), 1, "children of t/p/c");
	check_val(r, "t/p", "p2");
	rev0 = (uint64_t)ret;

	/* a parent that does not exist, and one deleted earlier */
	b = begin(c);
	put_b(b, "t/x", "x", &(shmreg_put_opts_t){ .parent = "t/none",
						   .parent_len = 6 });
	TC_EQ(shmreg_batch_commit(b, &failed), -ENOENT, "missing parent");
	TC_EQ(failed, 0, "index");
	b = begin(c);
	TC_EQ(shmreg_batch_del_tree(b, "t/p/c", 5), 0, "del_tree");
	put_b(b, "t/x", "x", &under_c);
	TC_EQ(shmreg_batch_commit(b, &failed), -ENOENT, "parent deleted "
	      "earlier in the batch");
	TC_EQ(failed, 1, "index");

	/* cycles: under its own descendant, directly and through a move
	 * earlier in the batch; under itself */
	b = begin(c);
	put_b(b, "t/p", "p", &(shmreg_put_opts_t){ .parent = "t/p/c/g",
						   .parent_len = 7 });
	TC_EQ(shmreg_batch_commit(b, &failed), -ELOOP, "cycle");
	TC_EQ(failed, 0, "index");
	b = begin(c);
	put_b(b, "t/q", "q", NULL);
	put_b(b, "t/p", "p", &(shmreg_put_opts_t){ .parent = "t/q",
						   .parent_len = 3 });
	put_b(b, "t/q", "q", &(shmreg_put_opts_t){ .parent = "t/p/c",
						   .parent_len = 5 });
	TC_EQ(shmreg_batch_commit(b, &failed), -ELOOP, "cycle in the batch");
	TC_EQ(failed, 2, "index");
	b = begin(c);
	put_b(b, "t/q", "q", &(shmreg_put_opts_t){ .parent = "t/q",
						   .parent_len = 3 });
	TC_EQ(shmreg_batch_commit(b, &failed), -ELOOP, "own parent");
	TC_EQ(failed, 0, "index");

	/* a delete with children; deleting the children first works; a
	 * delete of a key the batch deleted already */
	b = begin(c);
	TC_EQ(shmreg_batch_del(b, "t/p/c", 5), 0, "del");
	TC_EQ(shmreg_batch_commit(b, &failed), -ENOTEMPTY, "del with child");
	TC_EQ(failed, 0, "index");
	b = begin(c);
	TC_EQ(shmreg_batch_del(b, "t/p/c/g", 7), 0, "del");
	TC_EQ(shmreg_batch_del(b, "t/p/c", 5), 0, "del");
	TC_EQ(shmreg_batch_del(b, "t/p/c", 5), 0, "del");
	TC_EQ(shmreg_batch_commit(b, &failed), -ENOENT, "deleted twice");
	TC_EQ(failed, 2, "index");
	TC_EQ(shmreg_revision(r), rev0, "revision after refused batches");
	TC_EQ(count_children(r, "t/p/c"), 1, "children of t/p/c");

	/* a child moved away makes its old parent deletable */
	b = begin(c);
	put_b(b, "t/p/c/g", "g", NULL);
	TC_EQ(shmreg_batch_del(b, "t/p/c", 5), 0, "del");
	TC_EQ(shmreg_batch_set_attrs(b, "t/p/c/g", 7, &(shmreg_attr_t){
					     "role", "leaf" }, 1), 0, "attrs");
	TC_EQ(shmreg_batch_commit(b, &failed), (int64_t)rev0 + 3, "moved");
	TC_CHECK(!has(r, "t/p/c") && has(r, "t/p/c/g"), "move and delete");
	/* a tree delete of the rest counts every entry it removes */
	b = begin(c);
	TC_EQ(shmreg_batch_del_tree(b, "t/p", 3), 0, "del_tree");
	TC_EQ(shmreg_batch_del_tree(b, "t/p/c/g", 7), 0, "del_tree");
	TC_EQ(shmreg_batch_commit(b, &failed), (int64_t)rev0 + 5, "del_tree");
	TC_CHECK(!has(r, "t/p") && !has(r, "t/p/c/g"), "del_tree");
}

/* Bad arguments are refused when added; whole-request errors. */
static void test_errors(shmreg_client_t *c, shmreg_t *r)
{
	shmreg_client_t *none;
	shmreg_batch_t *b = begin(c);
	uint32_t failed = 0;
	uint64_t rev0 = shmreg_revision(r);
	char big[SHMREG_KEY_MAX + 1];

	memset(big, 'k', sizeof(big));
	TC_EQ(shmreg_batch_put(b, "", 0, "v", 1, NULL), -EINVAL, "empty key");
	TC_EQ(shmreg_batch_put(b, big, sizeof(big), "v", 1, NULL), -E2BIG,
	      "long key");
	TC_EQ(shmreg_batch_set_attrs(b, "k", 1, &(shmreg_attr_t){ "a=b", "" },
				     1), -EINVAL, "bad attribute name");
	/* nothing was added: an empty batch commits as the revision */
	TC_EQ(shmreg_batch_commit(b, &failed), (int64_t)rev0, "empty batch");
	TC_EQ(failed, SHMREG_BATCH_NONE, "failed");
	shmreg_batch_abort(begin(c));
	shmreg_batch_abort(NULL);
	TC_EQ(shmreg_batch_commit(NULL, &failed), -EINVAL, "NULL");

	/* an owner that does not exist, at index 1 */
	b = begin(c);
	put_b(b, "err/a", "1", NULL);
	put_b(b, "err/b", "1", &(shmreg_put_opts_t){ .owner_pid = 0x7ffffff0 });
	TC_EQ(shmreg_batch_commit(b, &failed), -ESRCH, "dead owner");
	TC_EQ(failed, 1, "index");
	b = begin(c);
	TC_EQ(shmreg_batch_set_attrs(b, "err/none", 8, NULL, 0), 0, "attrs");
	TC_EQ(shmreg_batch_commit(b, &failed), -ENOENT, "attrs of nothing");
	TC_EQ(failed, 0, "index");
	TC_EQ(shmreg_revision(r), rev0, "revision");

	/* a connection without a registry */
	TC_EQ(shmreg_connect(h.sock, NULL, &none), 0, "connect without");
	b = begin(none);
	put_b(b, "err/a", "1", NULL);
	failed = 0;
	TC_EQ(shmreg_batch_commit(b, &failed), -ENOTCONN, "no registry");
	TC_EQ(failed, SHMREG_BATCH_NONE, "failed");
	shmreg_disconnect(none);
}

/* One commit, one event per operation. */
static void test_events(shmreg_client_t *c, shmreg_t *r)
{
	shmreg_watch_t *w;
	shmreg_batch_t *b = begin(c);
	shmreg_event_t ev;
	uint64_t rev0 = shmreg_revision(r);
	uint32_t failed;

	TC_EQ(shmreg_watch_open(r, "ev/", 3, rev0, &w), 0, "watch");
	for (int i = 0; i < 50; i++) {
		char k[16];

		snprintf(k, sizeof(k), "ev/%02d", i);
		put_b(b, k, "v", NULL);
	}
	TC_EQ(shmreg_batch_del(b, "ev/07", 5), 0, "del");
	TC_EQ(shmreg_batch_commit(b, &failed), (int64_t)rev0 + 51, "commit");
	for (int i = 0; i < 51; i++) {
		TC_EQ(shmreg_watch_next(w, &ev, 5000000000LL), 0, "event");
		TC_EQ(ev.rev, rev0 + 1 + (uint64_t)i, "event revision");
		TC_EQ(ev.type, i < 50 ? SHMREG_EVENT_PUT : SHMREG_EVENT_DEL,
		      "event type");
	}
	shmreg_watch_close(w);
}

/* The byte layout docs/protocol.md gives for a BATCH, sent raw: it
 * decodes, and is refused and then applied as documented. */
static void test_doc_frame(shmreg_t *r)
{
	static const uint8_t doc[] = {
		0x53, 0, 0, 0, 9, 1, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0,
		2, 0, 0, 0, 0, 0, 0, 0,
		3, 0, 0, 0, 9, 0, 0, 0,
		1, 0, 0, 0, 0, 0, 0, 0, 'a',
		2, 0, 0, 0, 0x22, 0, 0, 0,
		1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		'b', '1',
	};
	uint8_t buf[PROTO_REPLY_MAX], hello[64];
	struct proto_reply rep;
	uint64_t rev0;
	size_t n = proto_encode_hello(hello, sizeof(hello), 1, h.reg,
				      strlen(h.reg));
	int fd = dh_raw_connect(&h);

	TC_EQ(sizeof(doc), 83, "the documented frame's length");
	dh_send_all(fd, hello, n);
	TC_CHECK(dh_read_reply(fd, &rep, buf), "hello reply");
	TC_EQ(rep.status, 0, "hello");
	rev0 = shmreg_revision(r);
	/* "a" is absent: the delete at index 0 refuses the batch */
	dh_send_all(fd, doc, sizeof(doc));
	TC_CHECK(dh_read_reply(fd, &rep, buf), "batch reply");
	TC_EQ(rep.status, -ENOENT, "documented batch without 'a'");
	TC_EQ(rep.id, 9, "id");
	TC_EQ(rep.blen, PROTO_BATCH_REPLY, "reply body");
	TC_EQ(proto_get_u32(rep.body), 0, "failed_index");
	TC_EQ(proto_get_u32(rep.body + 4), 0, "applied");
	TC_EQ(rep.revision, rev0, "revision");
	TC_CHECK(!has(r, "b"), "b put by a refused batch");
	/* with "a" there: both applied, revisions rev0 + 2 and + 3 */
	n = proto_encode_put(hello, sizeof(hello), 2, "a", 1, "x", 1, NULL);
	dh_send_all(fd, hello, n);
	TC_CHECK(dh_read_reply(fd, &rep, buf), "put reply");
	TC_EQ(rep.revision, rev0 + 1, "put a");
	dh_send_all(fd, doc, sizeof(doc));
	TC_CHECK(dh_read_reply(fd, &rep, buf), "batch reply");
	TC_EQ(rep.status, 0, "documented batch");
	TC_EQ(rep.revision, rev0 + 3, "revision of the last change");
	TC_EQ(proto_get_u32(rep.body), SHMREG_BATCH_NONE, "failed_index");
	TC_EQ(proto_get_u32(rep.body + 4), 2, "applied");
	TC_CHECK(!has(r, "a"), "a");
	check_val(r, "b", "1");
	close(fd);
}

/* What the client refuses before sending, sent raw: the daemon's own
 * check of each operation names the one over its limit; a batch of more
 * than SHMREG_BATCH_OPS_MAX operations is refused whole. */
static void test_raw_limits(shmreg_t *r)
{
	char name[SHMREG_ATTR_NAME_MAX + 2];
	shmreg_attr_t a = { name, "v" };
	uint8_t buf[PROTO_REPLY_MAX], f[512];
	struct proto_reply rep;
	uint64_t rev0 = shmreg_revision(r);
	size_t off = PROTO_HDR_SIZE + PROTO_BATCH_FIXED;
	int fd = dh_raw_connect(&h);
	size_t n = proto_encode_hello(f, sizeof(f), 1, h.reg, strlen(h.reg));

	dh_send_all(fd, f, n);
	TC_CHECK(dh_read_reply(fd, &rep, buf) && rep.status == 0, "hello");
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = 0;
	off += proto_encode_batch_put(f + off, sizeof(f) - off, "lim/a", 5,
				      "1", 1, NULL);
	off += proto_encode_batch_setattrs(f + off, sizeof(f) - off, "lim/a",
					   5, &a, 1);
	TC_CHECK(off <= sizeof(f), "frame fits");
	proto_encode_batch_hdr(f, sizeof(f), 2, off, 2);
	dh_send_all(fd, f, off);
	TC_CHECK(dh_read_reply(fd, &rep, buf), "batch reply");
	TC_EQ(rep.status, -E2BIG, "attribute name over the limit");
	TC_EQ(proto_get_u32(rep.body), 1, "failed_index");
	TC_EQ(rep.revision, rev0, "revision");
	TC_CHECK(!has(r, "lim/a"), "lim/a applied");
	/* one operation past the maximum, each record whole: a request
	 * error without a body; the connection goes on */
	{
		uint32_t nops = SHMREG_BATCH_OPS_MAX + 1;
		size_t rec = proto_encode_batch_key(NULL, 0, PROTO_OP_DEL,
						    "x", 1);
		size_t len = PROTO_HDR_SIZE + PROTO_BATCH_FIXED + nops * rec;
		uint8_t *big = malloc(len);

		TC_CHECK(big, "malloc");
		for (uint32_t i = 0; i < nops; i++)
			proto_encode_batch_key(big + PROTO_HDR_SIZE +
					       PROTO_BATCH_FIXED + i * rec,
					       rec, PROTO_OP_DEL, "x", 1);
		proto_encode_batch_hdr(big, len, 3, len, nops);
		dh_send_all(fd, big, len);
		free(big);
		TC_CHECK(dh_read_reply(fd, &rep, buf), "batch reply");
		TC_EQ(rep.status, -E2BIG, "too many operations");
		TC_EQ(rep.blen, 0, "no body");
		n = proto_encode_simple(f, sizeof(f), 4, PROTO_OP_PING);
		dh_send_all(fd, f, n);
		TC_CHECK(dh_read_reply(fd, &rep, buf), "ping reply");
		TC_EQ(rep.status, 0, "ping after a refused batch");
		TC_EQ(rep.revision, rev0, "revision");
	}
	close(fd);
}

static int reg_cb(const char *name, const shmreg_stats_t *st, void *arg)
{
	int *n = arg;

	if (*n == 0) {
		TC_CHECK(strcmp(name, "dbatch") == 0, "first registry %s", name);
		TC_CHECK(st->entries > 0 && st->state == SHMREG_STATE_OPEN,
			 "dbatch stats");
	} else {
		TC_CHECK(strcmp(name, "dbatch2") == 0, "second registry %s",
			 name);
		TC_EQ(st->entries, 0, "dbatch2 entries");
		TC_EQ(st->revision, 0, "dbatch2 revision");
	}
	++*n;
	return 0;
}

static void test_registries(shmreg_client_t *c)
{
	shmreg_client_t *none;
	char msg[256];
	int n = 0;

	TC_EQ(shmreg_client_registries(c, reg_cb, &n), 2, "registries");
	TC_EQ(n, 2, "reported");
	TC_EQ(shmreg_connect(h.sock, NULL, &none), 0, "connect without");
	n = 0;
	TC_EQ(shmreg_client_registries(none, reg_cb, &n), 2, "registries");
	TC_EQ(shmreg_client_reload(none, msg, sizeof(msg)), -ENOTCONN,
	      "reload without a registry");
	shmreg_disconnect(none);
	TC_EQ(shmreg_client_reload(c, msg, sizeof(msg)), -ENOENT,
	      "reload without --load");
	TC_CHECK(strstr(msg, "has no --load"), "reload message: %s", msg);
}

/* ---- the token ---- */

struct shared {
	_Atomic int stop;
	_Atomic unsigned long snaps[NREADERS], bad[NREADERS];
};

static void key_of(unsigned i, char *k)
{
	snprintf(k, 32, "tok/%03u", i);
}

static int reader(struct tc_child *c, void *arg)
{
	struct shared *sh = arg;
	unsigned id = (unsigned)(c->name[6] - '0');
	shmreg_t *r = dh_open(&h);

	tc_set_role(c->name);
	tc_post(c, 'R');
	while (!atomic_load(&sh->stop)) {
		uint64_t tok = shmreg_read_begin(r);
		unsigned holders = 0, absent = 0;

		for (unsigned i = 0; i < NKEYS; i++) {
			char k[32], v[4];
			ssize_t n;

			key_of(i, k);
			n = shmreg_get(r, k, strlen(k), v, sizeof(v), NULL);
			if (n == 1 && v[0] == '1')
				holders++;
			else if (n != 1)
				absent++;
		}
		if (shmreg_read_validate(r, tok) != 0)
			continue;
		atomic_fetch_add(&sh->snaps[id], 1);
		if (holders != 1 || absent) {
			tc_log("validated snapshot with %u holders, %u absent",
			       holders, absent);
			atomic_fetch_add(&sh->bad[id], 1);
		}
	}
	shmreg_close(r);
	return 0;
}

static void test_token(shmreg_client_t *c, shmreg_t *r)
{
	struct shared *sh = tc_shared(sizeof(*sh));
	struct tc_child *rd[NREADERS];
	shmreg_batch_t *b = begin(c);
	uint64_t rs = tc_seed();
	unsigned holder = 0;
	uint32_t failed;
	uint64_t give_up;
	int m;

	for (unsigned i = 0; i < NKEYS; i++) {
		char k[32];

		key_of(i, k);
		put_b(b, k, i == holder ? "1" : "0", NULL);
	}
	TC_CHECK(shmreg_batch_commit(b, &failed) > 0, "initial batch");
	for (unsigned i = 0; i < NREADERS; i++) {
		char name[16];

		snprintf(name, sizeof(name), "reader%u", i);
		rd[i] = tc_spawn(name, reader, sh);
	}
	for (unsigned i = 0; i < NREADERS; i++)
		tc_expect(rd[i], 'R', 20000);
	/* the moves go on past MOVES until every reader has validated
	 * MIN_SNAPS snapshots, so the floor below is never timing's verdict */
	give_up = tc_now_ns() + 60000000000ull;
	for (m = 0; m < MOVES ||
		    !tc_counts_reached(sh->snaps, NREADERS, MIN_SNAPS); m++) {
		unsigned next = (unsigned)tc_range(&rs, 0, NKEYS - 1);
		char k[32];
		int64_t ret;

		TC_CHECK(m < MOVES || tc_now_ns() < give_up, "the readers "
			 "validated only %lu and %lu snapshots in 60 s",
			 atomic_load(&sh->snaps[0]), atomic_load(&sh->snaps[1]));
		b = begin(c);
		key_of(holder, k);
		/* the old holder through a compare-and-set on its value's
		 * revision would need a get; "0" is enough to move it */
		put_b(b, k, "0", NULL);
		key_of(next, k);
		put_b(b, k, "1", NULL);
		ret = shmreg_batch_commit(b, &failed);
		TC_CHECK(ret > 0, "move %d: %lld", m, (long long)ret);
		holder = next;
	}
	atomic_store(&sh->stop, 1);
	for (unsigned i = 0; i < NREADERS; i++) {
		tc_child_join(rd[i], 30000);
		tc_log("reader%u: %lu validated snapshots, %lu wrong", i,
		       sh->snaps[i], sh->bad[i]);
		TC_EQ(sh->bad[i], 0, "validated snapshots without one holder");
		TC_CHECK(sh->snaps[i] >= MIN_SNAPS, "reader%u: only %lu validated "
			 "snapshots", i, sh->snaps[i]);
		tc_child_free(rd[i]);
	}
	tc_log("%d moves", m);
	(void)r;
}

int main(void)
{
	shmreg_client_t *c;
	shmreg_t *r;

	tc_init("daemon_batch", 150);
	tc_dir();
	dh_init(&h, "dbatch");
	dh_start(&h, (const char *const[]){ "--registry", "dbatch2", NULL });
	c = dh_connect(&h);
	r = dh_open(&h);
	test_cas_middle(c, r);
	test_trees(c, r);
	test_errors(c, r);
	test_events(c, r);
	test_doc_frame(r);
	test_raw_limits(r);
	test_registries(c);
	test_token(c, r);
	shmreg_disconnect(c);
	shmreg_close(r);
	TC_EQ(dh_stop(&h, SIGTERM), 0, "daemon exit status");
	dh_cleanup(&h);
	return 0;
}
