/* SPDX-License-Identifier: MIT */
/*
 * fuzz_datadir.c - libFuzzer target: arbitrary bytes as a registry's data
 * directory (writer/persist/).
 *
 * Every byte of a log or snapshot is untrusted.  An input is a packed
 * directory:
 *
 *   byte 0         flags: bit 0 the replay allows a torn tail, bit 1 keeps
 *                  the valid prefix, bit 2 also opens a writer on it (in
 *                  durability none), bit 3 lets any log end in an unsynced
 *                  tail (PREPLAY_UNSYNCED_LOGS, as that writer does)
 *   then files     u8 name (bit 7: snap, else log; bits 0-2: seq - 1),
 *                  u16 length (little-endian), that many bytes (cut short
 *                  at the end of the input)
 *
 * The files are written into a private directory and replayed into the
 * in-memory map a snapshot is built from (pdir_replay + kvmap), which must
 * return 0 or a clean -errno.  On success the map is written as a snapshot
 * and that snapshot must replay to the same number of entries (the writer
 * never produces a snapshot it cannot read).  With bit 2 the embedded
 * writer opens a registry on the directory as well (recovery into a
 * segment, torn-tail cutting, keep-prefix renames), puts one entry and
 * closes.  Nothing may crash, read out of bounds, or loop without bound.
 *
 * Linked into fuzz/replay.c as well, which replays the seed corpus (made
 * by gen_datadir_corpus.c from real data directories) in every ctest run.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_tmp.h"
#include "shmreg_writer.h"
#include "../writer/persist/persist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property broken: say which, then crash for libFuzzer. */
#define FZ_FAIL(...) (fprintf(stderr, "fuzz_datadir: " __VA_ARGS__), abort())

static char fz_data[PATH_MAX + 16], fz_reg[PATH_MAX + 16];

static void clear(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[PATH_MAX + 300];

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		unlink(p);
	}
	closedir(d);
}

static void fz_unlink(void)
{
	char p[PATH_MAX + 32];

	clear(fz_data);
	rmdir(fz_data);
	unlink(fz_reg);
	snprintf(p, sizeof(p), "%s.lock", fz_reg);
	unlink(p);
	snprintf(p, sizeof(p), "%s.wait", fz_reg);
	unlink(p);
}

static void unpack(const uint8_t *data, size_t size)
{
	size_t o = 1;

	while (o + 3 <= size) {
		uint8_t name = data[o];
		size_t len = (size_t)data[o + 1] | (size_t)data[o + 2] << 8;
		char p[PATH_MAX + 64];

		o += 3;
		if (len > size - o)
			len = size - o;
		snprintf(p, sizeof(p), "%s/%s.%016x", fz_data,
			 name & 0x80 ? "snap" : "log", (name & 7) + 1);
		(void)fz_write(p, 0600, data + o, len);
		o += len;
	}
}

/* The replayed map, written as a snapshot, reads back whole. */
static void roundtrip(struct kvmap *m, int dfd, uint64_t rev)
{
	struct kvmap *back = kvmap_new(0);
	struct preplay_res res;
	int fd = openat(dfd, "snap.0000000000000100",
			O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int64_t n;

	if (fd < 0 || !back)
		FZ_FAIL("roundtrip setup\n");
	n = kvmap_write(m, fd, 0x100, rev);
	close(fd);
	if (n < 0)
		FZ_FAIL("kvmap_write: %s\n", strerror((int)-n));
	struct psink sink = kvmap_sink(back);
	/* only the snapshot: everything below 0x100 is older */
	int rc = pdir_replay(dfd, fz_data, 0x101, 0, &sink, &res);

	if (rc != 0 || res.base_seq != 0x100 ||
	    kvmap_count(back) != (uint64_t)n)
		FZ_FAIL("snapshot did not read back: %d, base %llx, %llu of "
			"%lld\n", rc, (unsigned long long)res.base_seq,
			(unsigned long long)kvmap_count(back), (long long)n);
	kvmap_free(back);
	unlinkat(dfd, "snap.0000000000000100", 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct preplay_res res;
	struct kvmap *m;
	unsigned flags;
	int dfd, rc;

	if (fz_tmp_setup("fuzz_datadir", "reg", fz_reg, sizeof(fz_reg),
			 fz_unlink) < 0)
		return 0;
	snprintf(fz_data, sizeof(fz_data), "%s/data", fz_dir);
	if (size < 1)
		return 0;
	flags = data[0];
	mkdir(fz_data, 0700);
	clear(fz_data);
	unpack(data, size);
	dfd = open(fz_data, O_RDONLY | O_DIRECTORY);
	if (dfd < 0)
		return 0;
	m = kvmap_new(0);
	if (!m)
		FZ_FAIL("kvmap_new\n");
	struct psink sink = kvmap_sink(m);
	rc = pdir_replay(dfd, fz_data, UINT64_MAX,
			 (flags & 3) | (flags & 8 ? PREPLAY_UNSYNCED_LOGS : 0),
			 &sink, &res);
	if (rc != 0 && rc != -EBADMSG && rc != -ENOMEM) {
		FZ_FAIL("replay: %s\n", strerror(-rc));
	}
	if (rc == 0)
		roundtrip(m, dfd, res.max_rev);
	kvmap_free(m);
	if (flags & 4) {
		shmreg_writer_opts_t o = { .data_dir = fz_data,
					   .durability = SHMREG_DURABILITY_NONE };
		shmreg_writer_t *w;

		if (flags & 2)
			o.flags |= SHMREG_WRITER_KEEP_PREFIX;
		rc = shmreg_writer_open(fz_reg, &o, &w);
		if (rc == 0) {
			int64_t r = shmreg_writer_put(w, "k", 1, "v", 1, NULL);

			if (r <= 0)
				FZ_FAIL("put after open: %s\n",
					strerror((int)-r));
			shmreg_writer_close(w);
		} else if (rc != -EBADMSG && rc != -ENOMEM) {
			FZ_FAIL("writer open: %s\n", strerror(-rc));
		}
		unlink(fz_reg);
	}
	close(dfd);
	return 0;
}
