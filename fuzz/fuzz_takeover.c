/* SPDX-License-Identifier: MIT */
/*
 * fuzz_takeover.c - libFuzzer target: the writer taking over arbitrary
 * files at a registry's names (recovery after a crash, or whatever was
 * left there).
 *
 * Input: the segment file's bytes, optionally followed by a wait file: if
 * the input holds the separator "\n--wait--\n", what follows it is
 * written as SEGMENT.wait.  Then shmreg_writer_open on the name (a
 * takeover: the segment is validated, its undo record restored, its
 * entries copied through the validating reader path) must return 0 or a
 * documented -errno, never crash, fault or loop without bound; and when it
 * opens, gets and puts must work: a put of a new key, a read of it
 * through a reader handle, a put of every key the old segment listed, a
 * delete, then close.  A second open must then take the result over
 * cleanly too (what a writer made, a writer adopts).  A cleanly closed
 * input is adopted in place, unread, and gets the same calls, asked only
 * to survive them (fz_adopted()).
 *
 * Linked into fuzz/replay.c as well, which replays the seed corpus in
 * every ctest run.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shmreg.h"
#include "shmreg_writer.h"
#include "fuzz_tmp.h"
#include "layout.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_SEP "\n--wait--\n"
#define FZ_KEYS 16

/* Small, as the seeds are: a takeover builds (and zeroes) a whole new
 * segment per input, twice. */
static const shmreg_writer_opts_t fz_opts = {
	.initial_entries = 8, .initial_arena = 4096, .ring_events = 1024,
};

static char fz_seg[PATH_MAX + 16];

/* Before each input, and at exit (fuzz_tmp.h): the files of the registry
 * go (then, at exit, the directory). */
static void fz_unlink_all(void)
{
	static const char *const sfx[] = { "", ".wait", ".lock" };
	char p[PATH_MAX + 32];

	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s%s", fz_seg, sfx[i]);
		unlink(p);
	}
}

static void fz_fail(const char *what, long long got)
{
	fprintf(stderr, "fuzz_takeover: %s returned %lld\n", what, got);
	abort();
}

/* What shmreg_writer_open documents (shmreg_writer.h). */
static int fz_open_err_ok(int rc)
{
	return rc == -EPROTO || rc == -ENOMEM || rc == -ENOSPC ||
	       rc == -EBUSY || rc == -EPERM || rc == -EIO;
}

struct fz_keys {
	size_t n;
	size_t klen[FZ_KEYS];
	uint8_t key[FZ_KEYS][SHMREG_KEY_MAX];
};

static int fz_list_cb(const void *key, size_t klen, const void *val,
		      size_t vlen, const shmreg_info_t *info, void *arg)
{
	struct fz_keys *k = arg;

	(void)val;
	(void)vlen;
	(void)info;
	if (k->n < FZ_KEYS && klen <= SHMREG_KEY_MAX) {
		memcpy(k->key[k->n], key, klen);
		k->klen[k->n++] = klen;
	}
	return 0;
}

/*
 * Was the input a cleanly closed segment?  The writer adopts one in place
 * without reading its entries (constant-time takeover, writer/adopt.c), so
 * damage inside it stays: its slots may be odd, its objects zeroed, its
 * index full of garbage.  All that may be asked of the writer then is to
 * survive it: no crash, hang or leak, and each call an error or a result.
 * Any other input is recovered by copying through the validating reader
 * path, and the writer that results must work (@strict below).
 */
static bool fz_adopted(const uint8_t *data, size_t len)
{
	uint32_t st;

	if (len < offsetof(struct shm_hdr, state) + sizeof(st))
		return false;
	memcpy(&st, data + offsetof(struct shm_hdr, state), sizeof(st));
	return st == SHM_STATE_CLOSED;
}

static void fz_exercise(shmreg_writer_t *w, bool strict)
{
	struct fz_keys keys = { 0 };
	shmreg_t *r = shmreg_writer_reader(w);
	char buf[64];
	int64_t rev;
	ssize_t n;

	rev = shmreg_writer_put(w, "fuzz/new", 8, "value", 5, NULL);
	if (rev <= 0 && strict)
		fz_fail("put of a new key", rev);
	if (!r)
		fz_fail("shmreg_writer_reader", -1);
	n = shmreg_get(r, "fuzz/new", 8, buf, sizeof(buf), NULL);
	if ((n != 5 || memcmp(buf, "value", 5)) && strict)
		fz_fail("get of the new key", n);
	n = shmreg_list(r, NULL, 0, fz_list_cb, &keys);
	if (n < 0 && strict)
		fz_fail("list", n);
	for (size_t i = 0; i < keys.n; i++) {
		rev = shmreg_writer_put(w, keys.key[i], keys.klen[i], "x", 1,
					NULL);
		if (rev <= 0 && strict)
			fz_fail("put of a listed key", rev);
	}
	rev = shmreg_writer_del(w, "fuzz/new", 8);
	if (rev <= 0 && strict)
		fz_fail("del", rev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char wait[PATH_MAX + 32];
	shmreg_writer_t *w = NULL;
	const uint8_t *sep = memmem(data, size, FZ_SEP, strlen(FZ_SEP));
	size_t seg_len = sep ? (size_t)(sep - data) : size;
	bool strict;
	int rc;

	if (fz_tmp_setup("shmreg-fuzzt", "seg", fz_seg, sizeof(fz_seg),
			 fz_unlink_all) < 0)
		abort();
	fz_unlink_all();
	if (fz_write(fz_seg, 0644, data, seg_len) < 0)
		abort();
	if (sep) {
		size_t off = seg_len + strlen(FZ_SEP);

		snprintf(wait, sizeof(wait), "%s.wait", fz_seg);
		if (fz_write(wait, 0644, data + off, size - off) < 0)
			abort();
	}
	rc = shmreg_writer_open(fz_seg, &fz_opts, &w);
	if (rc < 0) {
		if (!fz_open_err_ok(rc))
			fz_fail("shmreg_writer_open", rc);
		fz_unlink_all();
		return 0;
	}
	strict = !fz_adopted(data, seg_len);
	fz_exercise(w, strict);
	shmreg_writer_close(w);
	/* what a writer left, the next one adopts */
	rc = shmreg_writer_open(fz_seg, &fz_opts, &w);
	if (rc < 0 && (strict || !fz_open_err_ok(rc)))
		fz_fail("second shmreg_writer_open", rc);
	if (rc < 0) {
		fz_unlink_all();
		return 0;
	}
	fz_exercise(w, strict);
	shmreg_writer_close(w);
	fz_unlink_all();
	return 0;
}
