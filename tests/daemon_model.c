/* SPDX-License-Identifier: MIT */
/* Description: the data model through shmregd: puts with attributes and a
 * parent, set_attrs, del (-ENOTEMPTY) and del_tree from a client, seen by a
 * reader with find, get_attrs and children; an ephemeral parent leaving
 * with its subtree; the pipelined put; the daemon's argument checks of
 * PUTX and SETATTRS frames from a raw connection. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/tc.h"
#include "daemon_harness.h"
#include "proto.h"

static struct dh h;

static int count_fn(const void *key, size_t klen, const void *val,
		    size_t vlen, const shmreg_info_t *info, void *arg)
{
	(void)key, (void)klen, (void)val, (void)vlen, (void)info;
	(*(int *)arg)++;
	return 0;
}

static int64_t put(shmreg_client_t *c, const char *key, const char *parent,
		   const shmreg_attr_t *a, uint32_t na)
{
	shmreg_put_opts_t o = {
		.attrs = a,
		.nattrs = na,
		.parent = parent,
		.parent_len = parent ? strlen(parent) : 0,
	};

	return shmreg_put(c, key, strlen(key), "v", 1, &o);
}

static void test_model(shmreg_t *r, shmreg_client_t *c)
{
	shmreg_attr_t a[] = { { "role", "db" }, { "zone", "eu" } };
	shmreg_attr_t b[] = { { "role", "cache" } };
	shmreg_attr_t many[SHMREG_ATTRS_MAX + 1];
	shmreg_attr_t bad[] = { { "a=b", "x" } };
	char buf[256];
	int64_t rev, rev2;
	ssize_t n;
	int cnt;

	rev = put(c, "svc", NULL, a, 2);
	TC_CHECK(rev > 0, "put with attrs: %lld", (long long)rev);
	n = shmreg_get_attrs(r, "svc", 3, buf, sizeof(buf));
	TC_EQ(n, (ssize_t)sizeof("role\0db\0zone\0eu"), "attrs bytes");
	TC_CHECK(!memcmp(buf, "role\0db\0zone\0eu", (size_t)n), "attrs");
	cnt = 0;
	TC_EQ(shmreg_find(r, &a[1], 1, count_fn, &cnt), (ssize_t)1, "find");

	TC_CHECK(put(c, "svc/a", "svc", b, 1) > 0, "child a");
	TC_CHECK(put(c, "svc/b", "svc", NULL, 0) > 0, "child b");
	rev = put(c, "svc/a/x", "svc/a", NULL, 0);
	TC_CHECK(rev > 0, "grandchild");
	cnt = 0;
	TC_EQ(shmreg_children(r, "svc", 3, count_fn, &cnt), (ssize_t)2,
	      "children of svc");

	/* the writer's errors, through the daemon */
	TC_EQ(put(c, "k", "nope", NULL, 0), -ENOENT, "missing parent");
	TC_EQ(put(c, "svc", "svc/a/x", NULL, 0), -ELOOP, "cycle");
	TC_EQ(put(c, "svc", "svc", NULL, 0), -ELOOP, "own parent");
	for (unsigned i = 0; i < SHMREG_ATTRS_MAX + 1; i++)
		many[i] = (shmreg_attr_t){ "n", "v" };
	TC_EQ(put(c, "k", NULL, many, SHMREG_ATTRS_MAX + 1), -E2BIG,
	      "too many attrs");
	TC_EQ(put(c, "k", NULL, bad, 1), -EINVAL, "name with =");
	TC_EQ(shmreg_revision(r), (uint64_t)rev, "failures use no revision");

	/* set_attrs: the value stays, one revision */
	rev2 = shmreg_set_attrs(c, "svc/a", 5, a, 2);
	TC_EQ(rev2, rev + 1, "set_attrs revision");
	n = shmreg_get(r, "svc/a", 5, buf, sizeof(buf), NULL);
	TC_EQ(n, (ssize_t)1, "value kept");
	n = shmreg_get_attrs(r, "svc/a", 5, buf, sizeof(buf));
	TC_EQ(n, (ssize_t)sizeof("role\0db\0zone\0eu"), "new attrs");
	TC_EQ(shmreg_set_attrs(c, "svc/a", 5, NULL, 0), rev + 2, "clear");
	TC_EQ(shmreg_get_attrs(r, "svc/a", 5, buf, sizeof(buf)), (ssize_t)0,
	      "cleared");
	TC_EQ(shmreg_set_attrs(c, "none", 4, a, 2), -ENOENT, "set absent");
	TC_EQ(shmreg_set_attrs(c, "svc", 3, bad, 1), -EINVAL, "set bad");
	TC_EQ(shmreg_set_attrs(c, "svc", 3, many, SHMREG_ATTRS_MAX + 1),
	      -E2BIG, "set too many");

	/* deletes */
	TC_EQ(shmreg_del(c, "svc", 3), -ENOTEMPTY, "del with children");
	TC_EQ(shmreg_del_tree(c, "svc/a", 5), 2, "del_tree a");
	TC_EQ(shmreg_del_tree(c, "svc/a", 5), -ENOENT, "del_tree absent");
	TC_EQ(shmreg_del_tree(c, "svc", 3), 2, "del_tree svc");
	TC_EQ(shmreg_get(r, "svc/b", 5, buf, sizeof(buf), NULL),
	      (ssize_t)-ENOENT, "subtree gone");
	TC_EQ(shmreg_ping(c), (int64_t)shmreg_revision(r), "ping");
}

/* A connection's ephemeral entry goes with its subtree when it closes,
 * even with a child another connection put under it. */
static void test_ephemeral_tree(shmreg_t *r, shmreg_client_t *c)
{
	shmreg_client_t *e = dh_connect(&h);
	shmreg_put_opts_t o = { .flags = SHMREG_EPHEMERAL };
	char buf[8];

	TC_CHECK(shmreg_put(e, "eph", 3, "v", 1, &o) > 0, "ephemeral parent");
	TC_CHECK(put(c, "eph/c", "eph", NULL, 0) > 0, "child of it");
	shmreg_disconnect(e);
	TC_EQ(dh_wait_gone(r, "eph", 5000), 0, "parent gone");
	TC_EQ(shmreg_get(r, "eph/c", 5, buf, sizeof(buf), NULL),
	      (ssize_t)-ENOENT, "child gone with it");
}

/* The pipelined put shares the encoder: attributes and a parent too. */
static void test_async(shmreg_t *r, shmreg_client_t *c)
{
	shmreg_attr_t a[] = { { "kind", "async" } };
	shmreg_put_opts_t o = { .attrs = a, .nattrs = 1 };
	shmreg_put_opts_t child = { .parent = "as", .parent_len = 2 };
	shmreg_completion_t cq[2];
	char buf[64];
	int got = 0, cnt = 0;

	TC_CHECK(shmreg_put_async(c, "as", 2, "1", 1, &o) > 0, "async put");
	TC_CHECK(shmreg_put_async(c, "as/c", 4, "2", 1, &child) > 0,
		 "async child");
	while (got < 2) {
		int n = shmreg_client_wait(c, cq + got, 2 - got, -1);

		TC_CHECK(n > 0, "wait: %d", n);
		got += n;
	}
	TC_CHECK(cq[0].result > 0 && cq[1].result == cq[0].result + 1,
		 "async results %lld %lld", (long long)cq[0].result,
		 (long long)cq[1].result);
	TC_EQ(shmreg_get_attrs(r, "as", 2, buf, sizeof(buf)),
	      (ssize_t)sizeof("kind\0async"), "async attrs");
	TC_EQ(shmreg_children(r, "as", 2, count_fn, &cnt), (ssize_t)1,
	      "async child there");
	TC_EQ(shmreg_del_tree(c, "as", 2), 2, "cleanup");
}

/* A raw frame the client would have refused: the daemon checks it too,
 * answers, and keeps the connection. */
static void test_raw(void)
{
	uint8_t f[256], rbuf[PROTO_REPLY_MAX];
	shmreg_attr_t bad[] = { { "", "x" } };
	struct proto_reply rep;
	size_t n;
	int fd = dh_raw_connect(&h);

	n = proto_encode_hello(f, sizeof(f), 1, h.reg, strlen(h.reg));
	dh_send_all(fd, f, n);
	TC_CHECK(dh_read_reply(fd, &rep, rbuf), "hello reply");
	TC_EQ(rep.status, 0, "hello");
	n = proto_encode_setattrs(f, sizeof(f), 2, "k", 1, bad, 1);
	dh_send_all(fd, f, n);
	TC_CHECK(dh_read_reply(fd, &rep, rbuf), "setattrs reply");
	TC_EQ(rep.status, -EINVAL, "empty attribute name");
	/* a block that is not whole pairs: a framing error */
	n = proto_encode_setattrs(f, sizeof(f), 3, "k", 1, NULL, 0);
	memcpy(f + n, "ab", 2);
	proto_put_u32(f, (uint32_t)n + 2);
	proto_put_u32(f + PROTO_HDR_SIZE + 4, 2);
	dh_send_all(fd, f, n + 2);
	TC_CHECK(dh_read_reply(fd, &rep, rbuf), "bad block reply");
	TC_EQ(rep.status, -EBADMSG, "unterminated attribute block");
	TC_CHECK(dh_closed(fd, 2000, "after a bad block"), "closed");
	close(fd);
}

int main(void)
{
	shmreg_client_t *c;
	shmreg_t *r;

	tc_init("daemon_model", 60);
	dh_init(&h, "model");
	dh_start(&h, NULL);
	r = dh_open(&h);
	c = dh_connect(&h);

	test_model(r, c);
	test_ephemeral_tree(r, c);
	test_async(r, c);
	test_raw();

	shmreg_disconnect(c);
	shmreg_close(r);
	dh_cleanup(&h);
	tc_log("ok");
	return 0;
}
