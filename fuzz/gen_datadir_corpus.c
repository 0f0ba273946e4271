/* SPDX-License-Identifier: MIT */
/*
 * gen_datadir_corpus.c - seeds for fuzz_datadir: real data directories
 * made by the embedded writer (puts with values, attributes, parents and
 * deadlines, deletes, snapshots), packed in fuzz_datadir's input format,
 * and damaged variants of them (a cut log, a flipped byte in the middle,
 * a zero page before valid records as a machine crash leaves an unsynced
 * tail) and a version 1 snapshot (the header rewritten: the records of a
 * version 2 one are also in version 1's order, parents first).
 *
 * Usage: gen_datadir_corpus OUTDIR
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shmreg_writer.h"

/* XXH3 for the rewritten snapshot header (as shm/hash.h uses it) */
#define XXH_INLINE_ALL
#include <xxhash.h>

static char tmp[4096], data[4200], reg[4200];

static void die(const char *what, int rc)
{
	fprintf(stderr, "gen_datadir_corpus: %s: %s\n", what, strerror(-rc));
	exit(1);
}

static void clear(void)
{
	DIR *d = opendir(data);
	struct dirent *e;
	char p[8400];

	if (!d)
		return;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.') {
			snprintf(p, sizeof(p), "%s/%s", data, e->d_name);
			unlink(p);
		}
	closedir(d);
}

/* How pack() damages or rewrites the files. */
struct damage {
	size_t zero_page;  /* > 0: 4096 zero bytes there in the first log */
	bool v1;           /* snapshots rewritten as version 1 */
	bool no_snaps;     /* the logs only */
};

/* A version 2 snapshot's header and trailer made version 1's. */
static void make_v1(uint8_t *b, size_t n)
{
	uint32_t one = 1;
	uint64_t check;

	if (n < 72)
		return;
	memcpy(b + 4, &one, 4);
	check = XXH3_64bits(b, 40);
	memcpy(b + 40, &check, 8);
	check = XXH3_64bits_withSeed(b + n - 24, 16, check);
	memcpy(b + n - 8, &check, 8);
}

/* Pack the directory's log.N / snap.N (N <= 8) into OUT/@name, with
 * @flags; @cut > 0 drops that many bytes off the last file packed,
 * @flip > 0 xors the byte at that offset of the first log; @dmg (may be
 * NULL) more. */
static void pack_damaged(const char *out, const char *name, uint8_t flags,
			 size_t cut, size_t flip, const struct damage *dmg)
{
	char p[8400];
	FILE *o;

	snprintf(p, sizeof(p), "%s/%s", out, name);
	o = fopen(p, "wb");
	if (!o)
		die(p, -errno);
	fputc(flags, o);
	for (int snap = !(dmg && dmg->no_snaps); snap >= 0; snap--) {
		for (unsigned seq = 1; seq <= 8; seq++) {
			static uint8_t buf[65535];
			FILE *f;
			size_t n;

			snprintf(p, sizeof(p), "%s/%s.%016x", data,
				 snap ? "snap" : "log", seq);
			f = fopen(p, "rb");
			if (!f)
				continue;
			n = fread(buf, 1, sizeof(buf), f);
			fclose(f);
			if (!snap && cut && cut < n && !access(p, F_OK)) {
				char q[8400];

				snprintf(q, sizeof(q), "%s/log.%016x", data,
					 seq + 1);
				if (access(q, F_OK))
					n -= cut; /* the last log */
			}
			if (!snap && flip && flip < n && seq == 1)
				buf[flip] ^= 0x5a;
			if (!snap && dmg && dmg->zero_page && seq == 1 &&
			    dmg->zero_page + 4096 < n)
				memset(buf + dmg->zero_page, 0, 4096);
			if (snap && dmg && dmg->v1)
				make_v1(buf, n);
			fputc((snap ? 0x80 : 0) | (seq - 1), o);
			fputc((int)(n & 0xff), o);
			fputc((int)(n >> 8), o);
			fwrite(buf, 1, n, o);
		}
	}
	fclose(o);
}

static void pack(const char *out, const char *name, uint8_t flags,
		 size_t cut, size_t flip)
{
	pack_damaged(out, name, flags, cut, flip, NULL);
}

static void history(bool snapshot)
{
	shmreg_writer_opts_t o = { .data_dir = data,
				   .durability = SHMREG_DURABILITY_NONE };
	shmreg_attr_t a[2] = { { "node", "a" }, { "cap", "gpu" } };
	shmreg_put_opts_t rich = { .attrs = a, .nattrs = 2 };
	shmreg_put_opts_t kid = { .parent = "dir", .parent_len = 3,
				  .ttl_ns = INT64_C(1) << 50 };
	shmreg_writer_t *w;
	char k[32], v[200];
	int rc;

	clear();
	unlink(reg);
	rc = shmreg_writer_open(reg, &o, &w);
	if (rc < 0)
		die("open", rc);
	shmreg_writer_put(w, "dir", 3, "d", 1, NULL);
	/* roots for the snapshot's hash-ordered section, enough bytes for
	 * the first log to span three pages */
	for (int i = 0; i < 48; i++) {
		snprintf(k, sizeof(k), "p%02d", i);
		memset(v, 'A' + i % 26, sizeof(v));
		shmreg_writer_put(w, k, strlen(k), v, 150, NULL);
	}
	for (int i = 0; i < 20; i++) {
		snprintf(k, sizeof(k), "dir/%d", i);
		memset(v, 'a' + i, sizeof(v));
		shmreg_writer_put(w, k, strlen(k), v, (size_t)(i * 9), &kid);
		if (i == 10 && snapshot) {
			rc = shmreg_writer_snapshot(w);
			if (rc < 0)
				die("snapshot", rc);
		}
	}
	shmreg_writer_put(w, "rich", 4, "r", 1, &rich);
	shmreg_writer_set_attrs(w, "rich", 4, a, 1);
	shmreg_writer_del(w, "dir/3", 5);
	shmreg_writer_del_tree(w, "dir", 3);
	shmreg_writer_put(w, "last", 4, "l", 1, NULL);
	shmreg_writer_close(w);
}

int main(int argc, char **argv)
{
	const char *out = argc > 1 ? argv[1] : NULL;

	if (!out) {
		fprintf(stderr, "usage: gen_datadir_corpus OUTDIR\n");
		return 2;
	}
	mkdir(out, 0755);
	snprintf(tmp, sizeof(tmp), "/tmp/gen_datadir.XXXXXX");
	if (!mkdtemp(tmp))
		die("mkdtemp", -errno);
	snprintf(data, sizeof(data), "%s/data", tmp);
	snprintf(reg, sizeof(reg), "%s/reg", tmp);
	history(false);
	pack(out, "log-only", 1, 0, 0);
	pack(out, "log-only-open", 5, 0, 0);
	pack(out, "log-torn", 1, 13, 0);
	pack(out, "log-torn-open", 5, 13, 0);
	pack(out, "log-middle-flip", 1, 0, 200);
	pack(out, "log-middle-flip-keep", 7, 0, 200);
	pack(out, "log-strict", 0, 0, 0);
	pack_damaged(out, "log-unsynced-page", 1, 0, 0,
		     &(struct damage){ .zero_page = 4096 });
	pack_damaged(out, "log-unsynced-page-open", 5, 0, 0,
		     &(struct damage){ .zero_page = 4096 });
	history(true);
	pack(out, "snap-and-logs", 1, 0, 0);
	pack(out, "snap-and-logs-open", 5, 0, 0);
	pack(out, "snap-torn-log", 5, 21, 0);
	pack_damaged(out, "snap-v1-open", 5, 0, 0,
		     &(struct damage){ .v1 = true });
	/* bit 3: an older log may end in an unsynced tail (mode none) */
	pack_damaged(out, "older-log-unsynced-none", 13, 0, 0,
		     &(struct damage){ .zero_page = 4096, .no_snaps = true });
	clear();
	rmdir(data);
	char p[4300];
	unlink(reg);
	snprintf(p, sizeof(p), "%s.lock", reg);
	unlink(p);
	snprintf(p, sizeof(p), "%s.wait", reg);
	unlink(p);
	rmdir(tmp);
	return 0;
}
