/* SPDX-License-Identifier: MIT */
/* Description: shmregd --input-budget: 12 clients each send all but the
 * last byte of a 16 MiB put to a daemon with a 32 MiB budget.  At most one
 * frame fits; every other one is answered -EAGAIN (counted in
 * over_budget) while its connection stays usable; the daemon stays up, its
 * RSS stays within the budget plus a fixed allowance, a small put from
 * another client succeeds meanwhile, and the budget is all given back once
 * the clients are gone. */
#include <errno.h>
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

#define NCLI 12
#define BUDGET (32ull << 20)
#define PREFIX (PROTO_HDR_SIZE + PROTO_PUT_FIXED + 3)
#define FRAME (PREFIX + SHMREG_VALUE_MAX)
#define CHUNK (256u << 10)

static struct dh h;

struct cli {
	int fd;
	size_t sent;              /* bytes of the PUT frame sent */
	uint8_t rep[PROTO_REPLY_MAX];
	size_t got;
	bool replied;             /* its PUT was answered */
	int32_t status;
};

static struct cli cl[NCLI];
static uint8_t prefix[NCLI][PREFIX];
static uint8_t zeros[CHUNK];

/* Blocking read of one reply (10 s at most). */
static void read_reply(int fd, uint64_t id, int32_t status)
{
	uint8_t buf[PROTO_REPLY_MAX];
	struct proto_reply rep;

	TC_CHECK(dh_read_reply(fd, &rep, buf), "recv: EOF");
	TC_EQ(rep.id, id, "reply id");
	TC_EQ(rep.status, status, "reply status");
}

/* Take what a client's socket holds of its PUT's reply, without
 * blocking. */
static void take_reply(struct cli *c)
{
	struct proto_reply rep;
	ssize_t n;

	if (c->replied)
		return;
	n = recv(c->fd, c->rep + c->got, PROTO_REPLY_HDR_SIZE - c->got,
		 MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	TC_CHECK(n > 0, "client %td: recv: %s", c - cl,
		 n < 0 ? strerror(errno) : "EOF: the daemon closed it");
	c->got += (size_t)n;
	n = proto_decode_reply(c->rep, c->got, &rep);
	TC_CHECK(n >= 0, "client %td: malformed reply", c - cl);
	if (n == 0)
		return;
	TC_EQ(rep.id, 2, "PUT reply id");
	c->replied = true;
	c->status = rep.status;
}

static uint64_t rss_of(pid_t pid)
{
	char path[64], line[256];
	unsigned long long kb = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	TC_CHECK(f, "%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %llu kB", &kb) == 1)
			break;
	fclose(f);
	TC_CHECK(kb, "no VmRSS for the daemon");
	return kb << 10;
}

static unsigned replied(void)
{
	unsigned n = 0;

	for (int i = 0; i < NCLI; i++)
		n += cl[i].replied;
	return n;
}

int main(void)
{
	static const char *const args[] = { "--input-budget", "32", NULL };
	uint64_t base, rss, rss_max, slack, deadline;
	shmreg_daemon_stats_t ds;
	shmreg_client_t *small;
	unsigned fitted = 0;
	int64_t rev;

	tc_init("daemon_budget", 120);
	dh_init(&h, "budget");
	/* ASan keeps freed blocks in quarantine (256 MiB by default): that
	 * would be its memory, not the daemon's; keep it small */
	if (tc_sanitized()) {
		const char *a = getenv("ASAN_OPTIONS");
		char opts[512];

		snprintf(opts, sizeof(opts), "%s%squarantine_size_mb=4",
			 a ? a : "", a && *a ? ":" : "");
		setenv("ASAN_OPTIONS", opts, 1);
	}
	dh_start(&h, args);

	for (int i = 0; i < NCLI; i++) {
		uint8_t hello[64], *p = prefix[i];
		size_t n = proto_encode_hello(hello, sizeof(hello), 1, h.reg,
					      strlen(h.reg));

		cl[i].fd = dh_raw_connect(&h);
		dh_send_all(cl[i].fd, hello, n);
		read_reply(cl[i].fd, 1, 0);
		/* a PUT of key bNN and a SHMREG_VALUE_MAX value */
		proto_put_u32(p, FRAME);
		p[4] = PROTO_OP_PUT;
		p[5] = PROTO_VERSION;
		p[6] = p[7] = 0;
		proto_put_u64(p + 8, 2);
		memset(p + 16, 0, PROTO_PUT_FIXED);
		proto_put_u32(p + 16, 3);
		proto_put_u32(p + 20, SHMREG_VALUE_MAX);
		{
			char key[4];

			snprintf(key, sizeof(key), "b%02d", i);
			memcpy(p + 48, key, 3);   /* no NUL in the frame */
		}
	}
	/* the daemon's size with every client connected: the allowance on
	 * top of the budget covers its receive buffer ring (4 MiB, touched
	 * as data arrives), reply buffers and allocator slack */
	base = rss_max = rss_of(h.pid);
	slack = tc_sanitized() ? 24ull << 20 : 12ull << 20;

	/* all but the last byte of every frame, from all clients at once */
	deadline = tc_now_ns() + 90ull * 1000000000;
	for (;;) {
		struct pollfd p[NCLI];
		int busy = 0;

		for (int i = 0; i < NCLI; i++) {
			p[i].fd = cl[i].fd;
			p[i].events = POLLIN;
			if (cl[i].sent < FRAME - 1) {
				p[i].events |= POLLOUT;
				busy++;
			}
		}
		if (!busy)
			break;
		TC_CHECK(tc_now_ns() < deadline, "sending took over 90 s");
		TC_CHECK(poll(p, NCLI, 1000) >= 0 || errno == EINTR, "poll");
		for (int i = 0; i < NCLI; i++) {
			struct cli *c = &cl[i];
			const uint8_t *src = zeros;
			size_t len = FRAME - 1 - c->sent;
			ssize_t n;

			if (p[i].revents & POLLIN)
				take_reply(c);
			if (!(p[i].revents & POLLOUT) || c->sent >= FRAME - 1)
				continue;
			if (c->sent < PREFIX) {
				src = prefix[i] + c->sent;
				len = PREFIX - c->sent;
			} else if (len > CHUNK) {
				len = CHUNK;
			}
			n = send(c->fd, src, len, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			TC_CHECK(n > 0, "client %d: send: %s", i,
				 strerror(errno));
			c->sent += (size_t)n;
		}
		rss = rss_of(h.pid);
		if (rss > rss_max)
			rss_max = rss;
	}

	/* every frame but at most one is refused: two do not fit in the
	 * 7/8 of the budget that large frames may use.  Wait until each is
	 * answered, or the one left holds a buffer of its frame's full size
	 * (then it has passed its last budget check) */
	deadline = tc_now_ns() + 30ull * 1000000000;
	for (;;) {
		struct pollfd p[NCLI];

		if (replied() == NCLI)
			break;
		if (replied() == NCLI - 1 && dh_stats(&h).in_buffered >= FRAME)
			break;
		TC_CHECK(tc_now_ns() < deadline,
			 "only %u of %d frames answered", replied(), NCLI);
		for (int i = 0; i < NCLI; i++) {
			p[i].fd = cl[i].fd;
			p[i].events = POLLIN;
		}
		TC_CHECK(poll(p, NCLI, 10) >= 0 || errno == EINTR, "poll");
		for (int i = 0; i < NCLI; i++)
			if (p[i].revents & POLLIN)
				take_reply(&cl[i]);
	}
	for (int i = 0; i < NCLI; i++) {
		if (!cl[i].replied) {
			fitted++;
			continue;
		}
		TC_EQ(cl[i].status, -EAGAIN, "refused frame's status");
	}
	rss = rss_of(h.pid);
	if (rss > rss_max)
		rss_max = rss;
	ds = dh_stats(&h);
	tc_log("%u of %d frames fitted; over_budget %llu, in_buffered %llu; "
	       "RSS %llu MiB at start, %llu MiB at most (bound %llu MiB)",
	       fitted, NCLI, (unsigned long long)ds.over_budget,
	       (unsigned long long)ds.in_buffered,
	       (unsigned long long)(base >> 20),
	       (unsigned long long)(rss_max >> 20),
	       (unsigned long long)((base + BUDGET + slack) >> 20));
	TC_CHECK(fitted <= 1, "%u frames of 16 MiB fitted in 32 MiB", fitted);
	TC_EQ(ds.over_budget, NCLI - fitted, "refusals counted");
	TC_CHECK(ds.in_buffered <= BUDGET, "in_buffered %llu over the budget",
		 (unsigned long long)ds.in_buffered);
	TC_CHECK(rss_max <= base + BUDGET + slack,
		 "daemon RSS %llu MiB, over %llu MiB at start + the budget",
		 (unsigned long long)(rss_max >> 20),
		 (unsigned long long)(base >> 20));

	/* small frames are still served, while the partial frames stay */
	small = dh_connect(&h);
	rev = shmreg_put(small, "small", 5, "v", 1, NULL);
	TC_CHECK(rev > 0, "small put while over budget: %s",
		 strerror((int)-rev));
	shmreg_disconnect(small);

	/* a refused frame's bytes were discarded, so its connection goes
	 * on (the last byte ends the frame, a PING follows); the frame that
	 * fitted completes */
	for (int i = 0; i < NCLI; i++) {
		uint8_t last[1 + PROTO_HDR_SIZE] = { 0 };

		proto_encode_simple(last + 1, PROTO_HDR_SIZE, 3,
				    PROTO_OP_PING);
		dh_send_all(cl[i].fd, last, sizeof(last));
		if (!cl[i].replied)
			read_reply(cl[i].fd, 2, 0);
		read_reply(cl[i].fd, 3, 0);
		close(cl[i].fd);
	}
	TC_CHECK(kill(h.pid, 0) == 0, "the daemon is alive");

	/* the budget comes back as the connections close */
	deadline = tc_now_ns() + 10ull * 1000000000;
	while ((ds = dh_stats(&h)).connections > 1 || ds.in_buffered) {
		TC_CHECK(tc_now_ns() < deadline, "in_buffered %llu with %llu "
			 "connections, 10 s after the clients left",
			 (unsigned long long)ds.in_buffered,
			 (unsigned long long)ds.connections);
		poll(NULL, 0, 10);
	}
	TC_EQ(dh_stop(&h, SIGTERM), 0, "daemon exit");
	dh_cleanup(&h);
	tc_log("ok");
	return 0;
}
