/* SPDX-License-Identifier: MIT */
/*
 * fuzz_stage.c - libFuzzer target: arbitrary bytes as the stage file a
 * crashed embedded batch-mode writer leaves beside its segment
 * (writer/persist/log_stage.c).
 *
 * An input is one flags byte, then the stage file:
 *
 *   bit 0   make the header name this target's data directory and its
 *           log.0000000000000001 (device, inodes, seq, and the header's
 *           check recomputed), so that recovery goes on to write the
 *           staged records into that log and replay it
 *   bit 1   open with SHMREG_WRITER_KEEP_PREFIX
 *
 * pstage_parse must return 0, -EBADMSG or -ENOMEM, and on 0 every byte it
 * calls good must decode as whole records.  Then an embedded writer
 * (durability none) opens a registry on a data directory holding an
 * empty log.1 with the bytes as its stage: 0, -EBADMSG or -EEXIST (a
 * stage of another directory), never a crash; when it opens, one put and
 * a close must work.
 *
 * Seeds (corpus/stage): small stages (a 4 KiB ring) made by encoding
 * records with the writer's own prec_encode into the layout of
 * log_stage.c: empty, a few records, records wrapping the ring's end, a
 * damaged record, a foreign directory, a bad header.
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
#include "hash.h"
#include "shmreg_writer.h"
#include "../writer/persist/persist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_FAIL(...) (fprintf(stderr, "fuzz_stage: " __VA_ARGS__), abort())

static char fz_reg[PATH_MAX + 16], fz_data[PATH_MAX + 16];

static void fz_unlink(void)
{
	static const char *const sfx[] = { "", ".lock", ".wait", ".stage",
					   ".stage.damaged" };
	char p[PATH_MAX + 300];
	struct dirent *e;
	DIR *d;

	for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", fz_reg, sfx[i]);
		unlink(p);
	}
	d = opendir(fz_data);
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", fz_data, e->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(fz_data);
}

static void check_parse(const uint8_t *f, size_t n)
{
	struct pstage_info in;
	uint8_t *rec;
	int rc = pstage_parse(f, n, &in, &rec);

	if (rc != 0 && rc != -EBADMSG && rc != -ENOMEM)
		FZ_FAIL("pstage_parse: %d\n", rc);
	if (rc != 0)
		return;
	if (in.from < in.to && in.good > in.to - in.from)
		FZ_FAIL("good %llu beyond the range\n",
			(unsigned long long)in.good);
	for (uint64_t o = 0; o < in.good;) {
		struct prec r;
		long len = prec_decode(rec + o, in.good - o, &r);

		if (len <= 0)
			FZ_FAIL("bytes called good do not decode at %llu\n",
				(unsigned long long)o);
		o += (uint64_t)len;
	}
	free(rec);
}

/* The header's identity fields made this directory's and log.1's. */
static void own(uint8_t *f, int dfd, int log_fd)
{
	struct stat d, l;
	uint64_t v[5], check;

	if (fstat(dfd, &d) < 0 || fstat(log_fd, &l) < 0)
		return;
	v[0] = (uint64_t)d.st_dev;
	v[1] = (uint64_t)d.st_ino;
	v[2] = 1;
	v[3] = (uint64_t)l.st_ino;
	memcpy(f + 16, v, 32);
	check = XXH3_64bits(f, 48);
	memcpy(f + 48, &check, 8);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	shmreg_writer_opts_t o = { .durability = SHMREG_DURABILITY_NONE };
	char p[PATH_MAX + 64];
	uint8_t hdr[PLOG_HDR], *f;
	shmreg_writer_t *w;
	int dfd, lfd, rc;

	if (size < 1 || fz_tmp_setup("fuzz_stage", "reg", fz_reg,
				     sizeof(fz_reg), fz_unlink) < 0)
		return 0;
	snprintf(fz_data, sizeof(fz_data), "%s/data", fz_dir);
	fz_unlink();
	check_parse(data + 1, size - 1);

	mkdir(fz_data, 0700);
	dfd = open(fz_data, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	snprintf(p, sizeof(p), "%s/" PLOG_NAME, fz_data, 1ull);
	lfd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (dfd < 0 || lfd < 0)
		FZ_FAIL("setup: %s\n", strerror(errno));
	plog_header(hdr, 1);
	if (pwrite(lfd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr))
		FZ_FAIL("log header\n");
	f = malloc(size);
	if (!f)
		return 0;
	memcpy(f, data + 1, size - 1);
	if ((data[0] & 1) && size - 1 >= 64)
		own(f, dfd, lfd);
	close(lfd);
	close(dfd);
	snprintf(p, sizeof(p), "%s.stage", fz_reg);
	(void)fz_write(p, 0600, f, size - 1);
	free(f);

	o.data_dir = fz_data;
	if (data[0] & 2)
		o.flags |= SHMREG_WRITER_KEEP_PREFIX;
	rc = shmreg_writer_open(fz_reg, &o, &w);
	if (rc == 0) {
		int64_t r = shmreg_writer_put(w, "k", 1, "v", 1, NULL);

		if (r <= 0)
			FZ_FAIL("put after open: %s\n", strerror((int)-r));
		shmreg_writer_close(w);
	} else if (rc != -EBADMSG && rc != -EEXIST && rc != -ENOMEM) {
		FZ_FAIL("writer open: %s\n", strerror(-rc));
	}
	fz_unlink();
	return 0;
}
