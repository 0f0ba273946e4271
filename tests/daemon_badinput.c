/* SPDX-License-Identifier: MIT */
/* Description: shmregd under bad input: truncated frames, oversize and
 * undersize lengths, unknown ops, bad versions, reserved bits, bodies that
 * do not add up, random bytes, disconnects mid-frame, request-level errors,
 * and a client that never reads its replies; each gets the documented
 * treatment while a concurrent well-behaved client keeps being served. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/tc.h"
#include "daemon_harness.h"
#include "proto.h"

static struct dh h;
static shmreg_t *r;
static volatile int *stop_good;   /* shared: tells the good client to end */
static uint64_t tick_rev;         /* last revision of good:tick seen */

/* ---- the well-behaved client ---- */

static int good_client(struct tc_child *self, void *arg)
{
	shmreg_client_t *c = dh_connect(&h);
	shmreg_t *rd = dh_open(&h);
	uint64_t n = 0;

	(void)arg;
	tc_post(self, 'g');
	while (!__atomic_load_n(stop_good, __ATOMIC_ACQUIRE)) {
		char val[32], buf[32];
		int vl = snprintf(val, sizeof(val), "%llu",
				  (unsigned long long)n++);
		int64_t rev = shmreg_put(c, "good:tick", 9, val, (size_t)vl,
					 NULL);

		TC_CHECK(rev > 0, "good put: %s", strerror((int)-rev));
		TC_EQ(shmreg_get(rd, "good:tick", 9, buf, sizeof(buf), NULL),
		      vl, "good get");
		TC_CHECK(!memcmp(buf, val, (size_t)vl), "good value");
	}
	tc_log("good client: %llu round trips", (unsigned long long)n);
	TC_CHECK(n >= 100, "the good client was served (%llu)",
		 (unsigned long long)n);
	shmreg_close(rd);
	shmreg_disconnect(c);
	return 0;
}

/* Wait until the good client has made @n more puts (futex waits on its
 * key, no sleeping). */
static void good_progress(int n, const char *during)
{
	for (int i = 0; i < n; i++) {
		uint64_t nr = 0;
		int ret;

		if (!tick_rev) {
			shmreg_info_t info;
			ssize_t got = shmreg_await(r, "good:tick", 9, NULL, 0,
						 &info, 10ll * 1000000000);

			TC_CHECK(got >= 0, "good client never put: %s",
				 strerror((int)-got));
			tick_rev = info.mod_rev;
			continue;
		}
		ret = shmreg_watch_key(r, "good:tick", 9, tick_rev,
				       10ll * 1000000000, &nr);

		TC_CHECK(ret == 0, "good client stuck %s: %s", during,
			 strerror(-ret));
		tick_rev = nr;
	}
}

/* ---- raw connections ---- */

static void expect_reply(int fd, uint8_t op, uint64_t id, int status)
{
	uint8_t buf[PROTO_REPLY_MAX];
	struct proto_reply rep;

	TC_CHECK(dh_read_reply(fd, &rep, buf), "a reply (op %u id %llu)", op,
		 (unsigned long long)id);
	TC_EQ(rep.op, op, "reply op");
	TC_EQ(rep.id, id, "reply id");
	TC_EQ(rep.status, status, "reply status");
}

/* The daemon closes the connection: EOF (or a reset) within 10 s. */
static void expect_eof(int fd)
{
	TC_CHECK(dh_closed(fd, 10000, "connection closed"),
		 "connection closed in time");
}

static size_t hello(uint8_t *buf, uint64_t id, const char *name)
{
	return proto_encode_hello(buf, 4096, id, name, strlen(name));
}

/* ---- the cases ---- */

/* Frame-level errors: an error reply echoing the header, then EOF. */
static void frame_error(const char *what, const uint8_t *frame, size_t len,
			uint8_t op, uint64_t id, int status)
{
	uint64_t bad = dh_stats(&h).closed_bad;
	int fd = dh_raw_connect(&h);

	dh_send_all(fd, frame, len);
	expect_reply(fd, op, id, status);
	expect_eof(fd);
	close(fd);
	TC_EQ(dh_stats(&h).closed_bad, bad + 1, what);
	good_progress(20, what);
}

static void test_frames(void)
{
	uint8_t f[256];
	size_t n;

	/* length over the limit: refused from the header alone */
	proto_encode_simple(f, sizeof(f), 7, PROTO_OP_PING);
	proto_put_u32(f, PROTO_FRAME_MAX + 1);
	frame_error("oversize", f, PROTO_HDR_SIZE, PROTO_OP_PING, 7,
		    -EMSGSIZE);
	proto_put_u32(f, 0xffffffffu);
	frame_error("huge", f, PROTO_HDR_SIZE, PROTO_OP_PING, 7, -EMSGSIZE);
	proto_put_u32(f, 3);
	frame_error("undersize", f, PROTO_HDR_SIZE, PROTO_OP_PING, 7,
		    -EMSGSIZE);

	proto_encode_simple(f, sizeof(f), 8, PROTO_OP_PING);
	f[4] = 99;
	frame_error("unknown op", f, PROTO_HDR_SIZE, 99, 8, -EOPNOTSUPP);
	f[4] = 0;
	frame_error("op 0", f, PROTO_HDR_SIZE, 0, 8, -EOPNOTSUPP);

	proto_encode_simple(f, sizeof(f), 9, PROTO_OP_PING);
	f[5] = 2;
	frame_error("version", f, PROTO_HDR_SIZE, PROTO_OP_PING, 9, -EPROTO);

	proto_encode_simple(f, sizeof(f), 10, PROTO_OP_PING);
	f[6] = 1;
	frame_error("reserved flags", f, PROTO_HDR_SIZE, PROTO_OP_PING, 10,
		    -EBADMSG);

	/* bodies that do not add up */
	n = proto_encode_put(f, sizeof(f), 11, "key", 3, "value", 5, NULL);
	proto_put_u32(f + PROTO_HDR_SIZE, 4); /* klen one too many */
	frame_error("put lengths", f, n, PROTO_OP_PUT, 11, -EBADMSG);
	n = proto_encode_put(f, sizeof(f), 12, "key", 3, "value", 5, NULL);
	proto_put_u32(f + PROTO_HDR_SIZE + 4, 0xfffffff0u); /* vlen wraps */
	frame_error("put vlen", f, n, PROTO_OP_PUT, 12, -EBADMSG);
	n = proto_encode_del(f, sizeof(f), 13, "key", 3);
	proto_put_u32(f + PROTO_HDR_SIZE + 4, 1); /* reserved */
	frame_error("del reserved", f, n, PROTO_OP_DEL, 13, -EBADMSG);
	n = proto_encode_simple(f, sizeof(f), 14, PROTO_OP_STATS);
	proto_put_u32(f, PROTO_HDR_SIZE + 4);
	memset(f + PROTO_HDR_SIZE, 0, 4);
	frame_error("stats body", f, PROTO_HDR_SIZE + 4, PROTO_OP_STATS, 14,
		    -EBADMSG);
	n = hello(f, 15, h.reg);
	proto_put_u32(f, (uint32_t)n - 1);
	frame_error("hello short", f, n - 1, PROTO_OP_HELLO, 15, -EBADMSG);

	/* a frame error after good requests: those are answered first */
	{
		uint8_t two[64];
		size_t a = proto_encode_simple(two, sizeof(two), 1,
					       PROTO_OP_PING);
		uint64_t bad = dh_stats(&h).closed_bad;
		int fd = dh_raw_connect(&h);

		proto_encode_simple(two + a, sizeof(two) - a, 2, PROTO_OP_PING);
		two[a + 5] = 0x77;
		dh_send_all(fd, two, 2 * PROTO_HDR_SIZE);
		expect_reply(fd, PROTO_OP_PING, 1, 0);
		expect_reply(fd, PROTO_OP_PING, 2, -EPROTO);
		expect_eof(fd);
		close(fd);
		TC_EQ(dh_stats(&h).closed_bad, bad + 1, "second frame bad");
	}
}

/* Truncated frames: a peer that half-closes mid-frame gets -EBADMSG (with
 * the id when the header was complete); one that disconnects does not
 * disturb anyone. */
static void test_truncated(void)
{
	uint8_t f[256];
	size_t n = proto_encode_put(f, sizeof(f), 21, "key", 3, "value", 5,
				    NULL);
	uint64_t bad = dh_stats(&h).closed_bad;
	uint8_t rbuf[PROTO_REPLY_MAX];
	struct proto_reply rep;
	int fd;

	fd = dh_raw_connect(&h);
	dh_send_all(fd, f, n - 2);
	shutdown(fd, SHUT_WR);
	expect_reply(fd, PROTO_OP_PUT, 21, -EBADMSG);
	expect_eof(fd);
	close(fd);

	fd = dh_raw_connect(&h);
	dh_send_all(fd, f, 10); /* not even a header */
	shutdown(fd, SHUT_WR);
	TC_CHECK(dh_read_reply(fd, &rep, rbuf), "reply to a partial header");
	TC_EQ(rep.id, 0, "no id to echo");
	TC_EQ(rep.status, -EBADMSG, "partial header");
	expect_eof(fd);
	close(fd);
	TC_EQ(dh_stats(&h).closed_bad, bad + 2, "truncated frames counted");
	TC_EQ(shmreg_get(r, "key", 3, NULL, 0, NULL), -ENOENT,
	      "a truncated put wrote nothing");

	/* disconnects mid-frame: a header promising 16 MiB, then gone */
	for (int i = 0; i < 10; i++) {
		fd = dh_raw_connect(&h);
		proto_encode_put(f, sizeof(f), 30, "key", 3, NULL, 0, NULL);
		proto_put_u32(f, PROTO_FRAME_MAX);
		proto_put_u32(f + PROTO_HDR_SIZE + 4, PROTO_FRAME_MAX -
			      PROTO_HDR_SIZE - PROTO_PUT_FIXED - 3);
		dh_send_all(fd, f, 100);
		close(fd);
	}
	good_progress(20, "after disconnects mid-frame");
}

/* Random bytes: an error reply, then the connection is closed.  A made-up
 * length that asks for more bytes is cut short by the half-close. */
static void test_random(void)
{
	uint64_t seed = tc_seed();
	uint8_t junk[4096];

	for (int round = 0; round < 30; round++) {
		uint8_t rbuf[PROTO_REPLY_MAX];
		struct proto_reply rep;
		int fd = dh_raw_connect(&h);

		for (size_t i = 0; i < sizeof(junk); i += 8) {
			uint64_t v = tc_rand(&seed);

			memcpy(junk + i, &v, 8);
		}
		dh_send_all(fd, junk, sizeof(junk));
		shutdown(fd, SHUT_WR);
		TC_CHECK(dh_read_reply(fd, &rep, rbuf), "reply to junk");
		TC_CHECK(rep.status == -EMSGSIZE || rep.status == -EPROTO ||
			 rep.status == -EOPNOTSUPP || rep.status == -EBADMSG,
			 "junk status %d", rep.status);
		expect_eof(fd);
		close(fd);
	}
	good_progress(20, "after random bytes");
}

/* Request-level errors keep the connection open. */
static void test_requests(void)
{
	uint8_t f[2048], big[SHMREG_KEY_MAX + 1];
	shmreg_put_opts_t o = { 0 };
	int fd = dh_raw_connect(&h);
	size_t n;

	memset(big, 'b', sizeof(big));
	dh_send_all(fd, f, hello(f, 1, "not-served"));
	expect_reply(fd, PROTO_OP_HELLO, 1, -ENOENT);
	dh_send_all(fd, f, proto_encode_put(f, sizeof(f), 2, "k", 1, "v", 1,
					    NULL));
	expect_reply(fd, PROTO_OP_PUT, 2, -ENOTCONN);
	dh_send_all(fd, f, proto_encode_del(f, sizeof(f), 3, "k", 1));
	expect_reply(fd, PROTO_OP_DEL, 3, -ENOTCONN);
	dh_send_all(fd, f, hello(f, 4, h.reg));
	expect_reply(fd, PROTO_OP_HELLO, 4, 0);
	dh_send_all(fd, f, hello(f, 5, h.reg));
	expect_reply(fd, PROTO_OP_HELLO, 5, -EISCONN);
	dh_send_all(fd, f, hello(f, 6, ""));
	expect_reply(fd, PROTO_OP_HELLO, 6, -EINVAL);
	dh_send_all(fd, f, proto_encode_put(f, sizeof(f), 7, "", 0, "v", 1,
					    NULL));
	expect_reply(fd, PROTO_OP_PUT, 7, -EINVAL);
	dh_send_all(fd, f, proto_encode_put(f, sizeof(f), 8, big, sizeof(big),
					    "v", 1, NULL));
	expect_reply(fd, PROTO_OP_PUT, 8, -E2BIG);
	o.flags = 0x40;
	dh_send_all(fd, f, proto_encode_put(f, sizeof(f), 9, "k", 1, "v", 1,
					    &o));
	expect_reply(fd, PROTO_OP_PUT, 9, -EINVAL);
	o = (shmreg_put_opts_t){ .owner_pid = -1 };
	dh_send_all(fd, f, proto_encode_put(f, sizeof(f), 10, "k", 1, "v", 1,
					    &o));
	expect_reply(fd, PROTO_OP_PUT, 10, -EINVAL);
	o = (shmreg_put_opts_t){ .ttl_ns = -1 };
	dh_send_all(fd, f, proto_encode_put(f, sizeof(f), 11, "k", 1, "v", 1,
					    &o));
	expect_reply(fd, PROTO_OP_PUT, 11, -EINVAL);
	dh_send_all(fd, f, proto_encode_del(f, sizeof(f), 12, "", 0));
	expect_reply(fd, PROTO_OP_DEL, 12, -EINVAL);
	/* ids need not be sequential on the wire: they are echoed */
	n = proto_encode_put(f, sizeof(f), 0xfeedfacecafebeefull, "k", 1, "v",
			     1, NULL);
	dh_send_all(fd, f, n);
	expect_reply(fd, PROTO_OP_PUT, 0xfeedfacecafebeefull, 0);
	dh_send_all(fd, f, proto_encode_simple(f, sizeof(f), 13,
					       PROTO_OP_PING));
	expect_reply(fd, PROTO_OP_PING, 13, 0);
	close(fd);
}

/* Put options over their limits: the client refuses them before sending
 * anything, and the daemon, given them in a raw frame, replies -EINVAL,
 * stores nothing and serves on.  ttl_ns = INT64_MAX used to be
 * acknowledged and never visible (now + ttl_ns overflowed), and aborted a
 * UBSan build of the daemon. */
static void test_put_limits(void)
{
	static const int64_t bad_ttl[] = {
		INT64_MAX, SHMREG_TTL_MAX_NS + 1, -1,
	};
	shmreg_put_opts_t o = { 0 };
	shmreg_client_t *c = dh_connect(&h);
	uint8_t f[256], buf[8];
	shmreg_completion_t cq;
	shmreg_info_t info;
	uint64_t id = 100;
	int fd = dh_raw_connect(&h);

	for (size_t i = 0; i < sizeof(bad_ttl) / sizeof(bad_ttl[0]); i++) {
		o = (shmreg_put_opts_t){ .ttl_ns = bad_ttl[i] };
		TC_CHECK(shmreg_put(c, "ttl", 3, "v", 1, &o) == -EINVAL,
			 "client put, ttl_ns %lld", (long long)bad_ttl[i]);
		TC_CHECK(shmreg_put_async(c, "ttl", 3, "v", 1, &o) == -EINVAL,
			 "client put_async, ttl_ns %lld",
			 (long long)bad_ttl[i]);
	}
	TC_EQ(shmreg_client_wait(c, &cq, 1, 0), 0,
	      "the refused put_async queued nothing");
	TC_CHECK(shmreg_ping(c) >= 0, "the client connection is fine");

	dh_send_all(fd, f, hello(f, 1, h.reg));
	expect_reply(fd, PROTO_OP_HELLO, 1, 0);
	for (size_t i = 0; i < sizeof(bad_ttl) / sizeof(bad_ttl[0]); i++) {
		o = (shmreg_put_opts_t){ .ttl_ns = bad_ttl[i] };
		dh_send_all(fd, f, proto_encode_put(f, sizeof(f), ++id,
						    "ttl", 3, "v", 1, &o));
		expect_reply(fd, PROTO_OP_PUT, id, -EINVAL);
	}
	TC_EQ(shmreg_get(r, "ttl", 3, buf, sizeof(buf), NULL), -ENOENT,
	      "a refused put stored nothing");
	/* the same connection goes on: the limit itself is accepted */
	o = (shmreg_put_opts_t){ .ttl_ns = SHMREG_TTL_MAX_NS };
	dh_send_all(fd, f, proto_encode_put(f, sizeof(f), ++id, "ttl", 3, "v",
					    1, &o));
	expect_reply(fd, PROTO_OP_PUT, id, 0);
	TC_EQ(shmreg_get(r, "ttl", 3, buf, sizeof(buf), &info), 1,
	      "a put with the longest TTL is visible");
	TC_CHECK(info.expires_at_ns > SHMREG_TTL_MAX_NS,
		 "expires_at_ns %lld", (long long)info.expires_at_ns);
	dh_send_all(fd, f, proto_encode_simple(f, sizeof(f), ++id,
					       PROTO_OP_PING));
	expect_reply(fd, PROTO_OP_PING, id, 0);
	close(fd);
	shmreg_disconnect(c);
	good_progress(20, "after out-of-range put options");
}

/* A client that pipelines and never reads: the daemon stops reading it
 * (its sends block), buffers a bounded amount, keeps serving others, and
 * closes it after --stall-timeout.  The flood only ends when the daemon
 * has closed the connection: every byte it reads makes room, so nothing
 * short of that keeps it stuck for good. */
static void test_never_reads(void)
{
	shmreg_daemon_stats_t before = dh_stats(&h), after;
	uint8_t f[256], rbuf[PROTO_REPLY_MAX];
	struct proto_reply rep;
	size_t flen = 0, foff = 0, sent = 0;
	bool served = false;
	struct pollfd p;
	int fd = dh_raw_connect(&h);
	uint64_t id = 1;

	dh_send_all(fd, f, hello(f, id++, h.reg));
	TC_CHECK(dh_read_reply(fd, &rep, rbuf) && rep.status == 0, "hello");
	TC_CHECK(fcntl(fd, F_SETFL, O_NONBLOCK) == 0, "nonblock");
	for (;;) {
		ssize_t n;

		if (foff == flen) {
			flen = proto_encode_put(f, sizeof(f), id++, "flood", 5,
						"0123456789abcdef", 16, NULL);
			foff = 0;
		}
		n = send(fd, f + foff, flen - foff, MSG_NOSIGNAL);
		if (n > 0) {
			foff += (size_t)n;
			sent += (size_t)n;
			TC_CHECK(sent < (64u << 20), "the daemon never pushed "
				 "back (%zu bytes taken)", sent);
			continue;
		}
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
			break; /* closed by the daemon */
		TC_CHECK(n < 0 && errno == EAGAIN, "flood send: %s",
			 strerror(errno));
		/* our socket is full: once the daemon has paused us, the
		 * others must still be served */
		if (!served && dh_stats(&h).pauses > before.pauses) {
			good_progress(50, "while a client does not read");
			served = true;
		}
		p = (struct pollfd){ .fd = fd, .events = POLLOUT | POLLRDHUP };
		TC_EQ(poll(&p, 1, 10000), 1, "the daemon reads or closes");
		if (p.revents & (POLLRDHUP | POLLHUP | POLLERR))
			break;
	}
	tc_log("non-reading client: %zu bytes (%llu requests) taken before "
	       "it was closed", sent, (unsigned long long)id);
	TC_CHECK(sent < (4u << 20), "took %zu bytes from a client that does "
		 "not read", sent);
	close(fd);
	after = dh_stats(&h);
	TC_CHECK(after.pauses > before.pauses, "receive paused");
	TC_EQ(after.stalled, before.stalled + 1, "closed as stalled");
	TC_CHECK(after.out_highwater <= (64u << 10) + PROTO_REPLY_MAX,
		 "replies buffered for one connection: %llu",
		 (unsigned long long)after.out_highwater);
	good_progress(20, "after the stalled client");
}

int main(void)
{
	static const char *const args[] = {
		"--stall-timeout", "300", "--max-inflight", "64", NULL
	};
	struct tc_child *good;
	shmreg_daemon_stats_t ds;

	tc_init("daemon_badinput", 120);
	stop_good = tc_shared(sizeof(*stop_good));
	dh_init(&h, "bad");
	dh_start(&h, args);
	r = dh_open(&h);
	good = tc_spawn("good", good_client, NULL);
	tc_expect(good, 'g', 10000);
	good_progress(10, "at start");

	test_frames();
	test_truncated();
	test_random();
	test_requests();
	test_put_limits();
	test_never_reads();

	__atomic_store_n(stop_good, 1, __ATOMIC_RELEASE);
	tc_child_join(good, 30000);
	tc_child_free(good);
	ds = dh_stats(&h);
	tc_log("daemon: %llu requests, %llu connections closed for bad "
	       "frames, %llu stalled, %llu pauses",
	       (unsigned long long)ds.requests,
	       (unsigned long long)ds.closed_bad,
	       (unsigned long long)ds.stalled, (unsigned long long)ds.pauses);
	shmreg_close(r);
	TC_EQ(dh_stop(&h, SIGTERM), 0, "the daemon survived and exits cleanly");
	dh_cleanup(&h);
	tc_log("ok");
	return 0;
}
