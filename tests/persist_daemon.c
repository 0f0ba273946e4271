/* SPDX-License-Identifier: MIT */
/* persist_daemon.c - see persist_daemon.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/tc.h"
#include "hash.h"
#include "persist_daemon.h"
#include "proto.h"

uint64_t pd_stat(struct dh *h, const char *reg, unsigned f)
{
	uint8_t buf[PROTO_REPLY_MAX], req[256];
	struct proto_reply rep;
	int fd = dh_raw_connect(h);
	size_t n;

	n = proto_encode_hello(req, sizeof(req), 1, reg, strlen(reg));
	dh_send_all(fd, req, n);
	TC_CHECK(dh_read_reply(fd, &rep, buf) && rep.status == 0, "hello");
	n = proto_encode_simple(req, sizeof(req), 2, PROTO_OP_STATS);
	dh_send_all(fd, req, n);
	TC_CHECK(dh_read_reply(fd, &rep, buf) && rep.status == 0, "stats");
	TC_CHECK(rep.blen >= 8 + 8 * (f + 1), "stats has field %u", f);
	close(fd);
	return proto_get_u64(rep.body + 8 + 8 * f);
}

/* The log file format (docs/format.md): a 32-byte header, then records
 * of 8-byte multiples: magic (4), length (4), check (8: XXH3-64 of bytes
 * [16, len), seed magic | len << 32), ..., key length at 44 (2), the key
 * at 56. */
#define LOG_HDR   32u
#define REC_HDR   56u
#define REC_MAGIC 0x31525253u

/* A whole record: its checksum holds (a record the daemon is writing
 * right now may show its first bytes and not yet the rest). */
static bool whole(const uint8_t *p, uint32_t len)
{
	uint64_t check;

	memcpy(&check, p + 8, 8);
	return XXH3_64bits_withSeed(p + 16, len - 16,
				    REC_MAGIC | (uint64_t)len << 32) == check;
}

void pd_log_open(struct pd_log *l, const char *dir, const char *name)
{
	char path[8192], best[300] = "";
	struct dirent *e;
	DIR *d;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	d = opendir(path);
	TC_CHECK(d, "opendir %s: %s", path, strerror(errno));
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, "log.", 4) && strlen(e->d_name) == 20 &&
		    strcmp(e->d_name, best) > 0)
			snprintf(best, sizeof(best), "%s", e->d_name);
	closedir(d);
	TC_CHECK(best[0], "no log in %s", path);
	snprintf(path, sizeof(path), "%s/%s/%s", dir, name, best);
	l->fd = open(path, O_RDONLY | O_CLOEXEC);
	TC_CHECK(l->fd >= 0, "open %s: %s", path, strerror(errno));
	l->off = LOG_HDR;
	l->records = 0;
}

void pd_log_scan(struct pd_log *l, void (*fn)(const uint8_t *key,
					      uint32_t klen, void *arg),
		 void *arg)
{
	static uint8_t buf[1u << 20];
	ssize_t got = pread(l->fd, buf, sizeof(buf), (off_t)l->off);
	size_t o = 0;

	TC_CHECK(got >= 0, "read the log: %s", strerror(errno));
	while (o + REC_HDR <= (size_t)got) {
		uint32_t magic, len;
		uint16_t klen;

		memcpy(&magic, buf + o, 4);
		memcpy(&len, buf + o + 4, 4);
		memcpy(&klen, buf + o + 44, 2);
		if (magic != REC_MAGIC || len < REC_HDR ||
		    o + ((len + 7u) & ~7u) > (size_t)got || !whole(buf + o, len))
			break; /* the end, so far */
		fn(buf + o + REC_HDR, klen, arg);
		l->records++;
		o += (len + 7u) & ~7u;
	}
	l->off += o;
}

void pd_log_close(struct pd_log *l)
{
	close(l->fd);
	l->fd = -1;
}
