/* SPDX-License-Identifier: MIT */
/* Description: a data directory on a tiny tmpfs fills up: puts are
 * refused with -ENOSPC (exactly), nothing acknowledged is lost, reads go
 * on, and puts succeed again once space returns; the same through shmregd
 * (the client gets -ENOSPC, the daemon keeps serving, its log counters
 * say it synced), and SNAPSHOT through the wire (0 with a data directory,
 * -ENOTSUP without).  Needs root (to mount the tmpfs): skipped otherwise. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/tc.h"
#include "persist_common.h"
#include "persist_daemon.h"
#include "proto.h"
#include "shmreg_writer.h"

#define VLEN 3000u

static char data[4200], filler[4200];

/* Occupy @n bytes of the tmpfs with a file we can remove later. */
static void fill(size_t n)
{
	static char buf[65536];
	int fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	TC_CHECK(fd >= 0, "filler");
	memset(buf, 'f', sizeof(buf));
	while (n) {
		size_t k = n < sizeof(buf) ? n : sizeof(buf);
		ssize_t w = write(fd, buf, k);

		if (w <= 0)
			break; /* full already: fine */
		n -= (size_t)w;
	}
	close(fd);
}

static void val(uint8_t *v, const char *k, uint64_t i)
{
	tv_build(v, VLEN, k, strlen(k), i);
}

/* Puts until one is refused; returns how many were acknowledged. */
static unsigned put_until_full(shmreg_writer_t *w, shmreg_client_t *c,
			       unsigned first)
{
	uint8_t v[VLEN];
	char k[32];

	for (unsigned i = first;; i++) {
		int64_t r;

		snprintf(k, sizeof(k), "k%05u", i);
		val(v, k, i);
		r = w ? shmreg_writer_put(w, k, strlen(k), v, VLEN, NULL)
		      : shmreg_put(c, k, strlen(k), v, VLEN, NULL);
		if (r == -ENOSPC)
			return i;
		TC_CHECK(r > 0, "put %s: %s", k, strerror((int)-r));
		TC_CHECK(i < 100000, "never full");
	}
}

static void check_all(shmreg_t *r, unsigned n)
{
	uint8_t buf[VLEN];
	char k[32];

	for (unsigned i = 0; i < n; i++) {
		ssize_t got;

		snprintf(k, sizeof(k), "k%05u", i);
		got = shmreg_get(r, k, strlen(k), buf, sizeof(buf), NULL);
		TC_CHECK(got == VLEN && tv_check(buf, VLEN, k, strlen(k),
						 NULL) == 0,
			 "%s lost (%zd)", k, got);
	}
}

static void embedded(void)
{
	shmreg_writer_opts_t o = { .data_dir = data,
				   .durability = SHMREG_DURABILITY_SYNC };
	shmreg_writer_t *w;
	shmreg_t *r;
	unsigned n, m;
	char seg[4096];

	tc_path(seg, "emb");
	TC_EQ(shmreg_writer_open(seg, &o, &w), 0, "open");
	fill(1u << 20);
	n = put_until_full(w, NULL, 0);
	TC_CHECK(n > 10, "only %u puts fit", n);
	/* full: refused again, reads go on, the registry is unchanged */
	r = shmreg_writer_reader(w);
	{
		uint8_t v[VLEN];

		val(v, "again", 0);
		TC_EQ(shmreg_writer_put(w, "again", 5, v, VLEN, NULL), -ENOSPC,
		      "still full");
	}
	check_all(r, n);
	TC_EQ(shmreg_get(r, "again", 5, NULL, 0, NULL), -ENOENT,
	      "a refused put is not visible");
	/* space returns */
	unlink(filler);
	m = put_until_full(w, NULL, n);
	TC_CHECK(m > n + 10, "no put after space returned (%u, %u)", n, m);
	shmreg_writer_close(w);
	/* and all of it after a restart from the files */
	unlink(seg);
	unlink(filler);
	TC_EQ(shmreg_writer_open(seg, &o, &w), 0, "reopen");
	check_all(shmreg_writer_reader(w), m);
	shmreg_writer_close(w);
	/* make room for the daemon's turn */
	DIR *d = opendir(data);
	struct dirent *e;
	char p[8400];

	TC_CHECK(d, "opendir");
	while ((e = readdir(d)))
		if (e->d_name[0] != '.') {
			snprintf(p, sizeof(p), "%s/%s", data, e->d_name);
			unlink(p);
		}
	closedir(d);
}

static void through_daemon(void)
{
	struct dh h;
	const char *args[] = { "--data-dir", pt_tiny_path(), "--durability", "sync",
			       NULL };
	shmreg_client_t *c;
	shmreg_t *r;
	unsigned n, m;

	dh_init(&h, "dreg");
	dh_start(&h, args);
	c = dh_connect(&h);
	fill(1u << 20);
	n = put_until_full(NULL, c, 0);
	TC_CHECK(n > 10, "daemon: only %u puts fit", n);
	TC_EQ(shmreg_ping(c) >= 0, 1, "daemon serves after ENOSPC");
	/* sync: the acknowledged puts were synced, at most one sync each */
	uint64_t syncs = pd_stat(&h, "dreg", PROTO_STAT_LOG_SYNCS);
	TC_CHECK(syncs >= 1 && syncs <= n + 2, "log syncs %llu for %u puts",
		 (unsigned long long)syncs, n);
	r = dh_open(&h);
	check_all(r, n);
	unlink(filler);
	m = put_until_full(NULL, c, n);
	TC_CHECK(m > n + 10, "daemon: no put after space returned");
	shmreg_disconnect(c);
	shmreg_close(r);
	TC_EQ(dh_stop(&h, SIGTERM), 0, "stop");
	unlink(filler);
	dh_start(&h, args);
	r = dh_open(&h);
	check_all(r, m);
	/* SNAPSHOT through the wire: started (the stop waits for it) */
	c = dh_connect(&h);
	TC_EQ(shmreg_client_snapshot(c), 0, "snapshot");
	shmreg_disconnect(c);
	shmreg_close(r);
	TC_EQ(dh_stop(&h, SIGTERM), 0, "stop 2");
	/* the snapshot needs room the full tmpfs may not have: it fails
	 * (logged) and the logs stay; either way nothing is lost */
	/* and the data survives a restart */
	dh_start(&h, args);
	r = dh_open(&h);
	check_all(r, m);
	shmreg_close(r);
	TC_EQ(dh_stop(&h, SIGTERM), 0, "stop 3");
	/* a registry without a data directory: -ENOTSUP */
	dh_start(&h, NULL);
	c = dh_connect(&h);
	TC_EQ(shmreg_client_snapshot(c), -ENOTSUP, "snapshot without data dir");
	TC_EQ(pd_stat(&h, "dreg", PROTO_STAT_LOG_WRITES), 0, "no log writes");
	shmreg_disconnect(c);
	TC_EQ(dh_stop(&h, SIGTERM), 0, "stop 4");
	dh_cleanup(&h);
}

int main(void)
{
	const char *mnt;

	tc_init("persist_enospc", 120);
	mnt = pt_mount_tiny();
	if (!mnt)
		return TC_SKIP;
	snprintf(data, sizeof(data), "%s/emb", mnt);
	snprintf(filler, sizeof(filler), "%s/filler", mnt);
	embedded();
	through_daemon();
	return 0;
}
