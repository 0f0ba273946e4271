/* SPDX-License-Identifier: MIT */
/*
 * fuzz_segment.c - libFuzzer target: the reader against arbitrary segment
 * bytes.
 *
 * The mapped segment is untrusted input for every reader: a torn read, a
 * corrupt file or a hostile writer can show it any bytes, so every offset
 * and length read from it is checked before it is followed.  Each input is
 * written to a file of its own, opened with shmreg_open(), and read
 * through every read-only call of the API: stats, revision, list (all, by
 * prefix, stopped early), get of keys that the list found plus keys
 * derived from the input, get_attrs of those keys and find by the pairs
 * it reports and their children (inside a read_begin/read_validate
 * pair), the change stream (watch from as far back as the
 * ring reaches), and await / watch_key with a zero timeout, which never
 * blocks.  Nothing may crash, read out of bounds (ASan), hit undefined
 * behaviour (UBSan) or loop without bound (libFuzzer's -timeout), and every
 * result must be one the API documents.
 *
 * The same function is linked into fuzz/replay.c, an ordinary executable
 * that replays the seed corpus (and past crashers) in every ctest run.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shmreg.h"
#include "fuzz_tmp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Keys remembered from shmreg_list, fetched again with shmreg_get. */
#define FZ_KEYS    8
/* Stop the early-stopping list after this many entries. */
#define FZ_STOP_AT 3

struct fz_keys {
	size_t n;
	size_t klen[FZ_KEYS];
	uint8_t key[FZ_KEYS][SHMREG_KEY_MAX];
	size_t seen;
	size_t stop_at;  /* 0: never stop */
};

static char fz_path[PATH_MAX + 16];

static void fz_fail(const char *what, long long got)
{
	fprintf(stderr, "fuzz_segment: %s returned %lld, which the API does "
		"not document\n", what, got);
	abort();
}

/* At exit (fuzz_tmp.h): the input file goes, then the directory. */
static void fz_unlink(void)
{
	unlink(fz_path);
}

static int fz_list_cb(const void *key, size_t klen, const void *val,
		      size_t vlen, const shmreg_info_t *info, void *arg)
{
	struct fz_keys *k = arg;
	volatile uint8_t sink = 0;

	/* The library promises validated copies: touch every byte so ASan
	 * checks the buffers it hands out. */
	if (klen < 1 || klen > SHMREG_KEY_MAX)
		fz_fail("shmreg_list callback klen", (long long)klen);
	if (vlen > SHMREG_VALUE_MAX)
		fz_fail("shmreg_list callback vlen", (long long)vlen);
	for (size_t i = 0; i < klen; i++)
		sink ^= ((const uint8_t *)key)[i];
	for (size_t i = 0; i < vlen; i++)
		sink ^= ((const uint8_t *)val)[i];
	if (info)
		sink ^= (uint8_t)info->mod_rev;
	(void)sink;

	if (k->n < FZ_KEYS) {
		memcpy(k->key[k->n], key, klen);
		k->klen[k->n] = klen;
		k->n++;
	}
	k->seen++;
	return k->stop_at && k->seen >= k->stop_at ? 7 : 0;
}

static void fz_check_list(const char *what, ssize_t ret, const struct fz_keys *k)
{
	if (ret >= 0) {
		/* Stopped or not, the count of entries passed to the callback
		 * (a stopped walk counts the entry that stopped it). */
		if ((size_t)ret != k->seen ||
		    (k->stop_at && k->seen > k->stop_at))
			fz_fail(what, ret);
		return;
	}
	switch (-ret) {
	case EINVAL: case E2BIG: case EPROTO: case ENOMEM: case EAGAIN:
	case EOWNERDEAD:
		return;
	}
	fz_fail(what, ret);
}

static void fz_get(shmreg_t *r, const void *key, size_t klen)
{
	static uint8_t big[SHMREG_VALUE_MAX];
	uint8_t small[16];
	shmreg_info_t info;
	ssize_t n1, n2;

	/* Once into a small buffer (truncated copy), once into one that holds
	 * any value; and once with no buffer at all (cap 0). */
	n1 = shmreg_get(r, key, klen, small, sizeof(small), &info);
	n2 = shmreg_get(r, key, klen, big, sizeof(big), NULL);
	(void)shmreg_get(r, key, klen, NULL, 0, NULL);
	for (int i = 0; i < 2; i++) {
		ssize_t n = i ? n2 : n1;

		if (n >= 0) {
			if ((size_t)n > SHMREG_VALUE_MAX)
				fz_fail("shmreg_get length", n);
			if (i == 0 && info.vlen != (uint32_t)n)
				fz_fail("shmreg_get info.vlen", info.vlen);
			continue;
		}
		switch (-n) {
		case ENOENT: case EINVAL: case E2BIG: case EAGAIN:
		case EOWNERDEAD: case EPROTO:
			continue;
		}
		fz_fail("shmreg_get", n);
	}
}

/*
 * Every event of the change ring from @back revisions before the current
 * one (all with a prefix of @plen bytes of @prefix).  The file does not
 * change, so the stream must end (-ETIMEDOUT with timeout 0) after at most
 * as many events as there are revisions in the range: more would mean an
 * event was invented or repeated.
 */
static void fz_watch(shmreg_t *r, uint64_t back, const void *prefix,
		     size_t plen)
{
	uint64_t rev = shmreg_revision(r), start, last = 0, max;
	volatile uint8_t sink = 0;
	shmreg_watch_t *w;
	shmreg_event_t ev;
	int rc;

	start = rev > back ? rev - back : 0;
	rc = shmreg_watch_open(r, prefix, plen, start, &w);
	if (rc < 0) {
		switch (-rc) {
		case ERANGE: case ENOMEM:
			return;
		}
		fz_fail("shmreg_watch_open", rc);
	}
	max = rev - start;
	for (uint64_t n = 0;; n++) {
		rc = shmreg_watch_next(w, &ev, 0);
		if (rc < 0) {
			switch (-rc) {
			case ETIMEDOUT: case ERANGE: case ESHUTDOWN:
			case EOWNERDEAD: case EPROTO:
				shmreg_watch_close(w);
				return;
			}
			fz_fail("shmreg_watch_next", rc);
		}
		if (n >= max)
			fz_fail("shmreg_watch_next: events past the revision",
				(long long)n);
		if (ev.rev <= last || ev.rev <= start || ev.rev > rev)
			fz_fail("shmreg_watch_next: event revision",
				(long long)ev.rev);
		if (ev.type != SHMREG_EVENT_PUT && ev.type != SHMREG_EVENT_DEL)
			fz_fail("shmreg_watch_next: event type", ev.type);
		if (ev.klen < plen || ev.klen < 1 || ev.klen > SHMREG_KEY_MAX ||
		    (plen && memcmp(ev.key, prefix, plen)))
			fz_fail("shmreg_watch_next: event key", (long long)ev.klen);
		for (size_t i = 0; i < ev.klen; i++)
			sink ^= ((const uint8_t *)ev.key)[i];
		last = ev.rev;
	}
	(void)sink;
}

/* The attribute reads: get_attrs of a key (truncated, whole, and sized
 * only), then find by every pair it reported and by pairs of the corpus's
 * shape, all inside a snapshot pair whose verdict must be 0 or -EAGAIN. */
struct fz_find {
	size_t seen;
	size_t stop_at;
};

static int fz_find_cb(const void *key, size_t klen, const void *val,
		      size_t vlen, const shmreg_info_t *info, void *arg)
{
	struct fz_find *f = arg;
	volatile uint8_t sink = 0;

	if (klen < 1 || klen > SHMREG_KEY_MAX || vlen > SHMREG_VALUE_MAX)
		fz_fail("shmreg_find callback lengths", (long long)klen);
	for (size_t i = 0; i < klen; i++)
		sink ^= ((const uint8_t *)key)[i];
	for (size_t i = 0; i < vlen; i++)
		sink ^= ((const uint8_t *)val)[i];
	sink ^= (uint8_t)info->mod_rev;
	(void)sink;
	f->seen++;
	return f->stop_at && f->seen >= f->stop_at ? 1 : 0;
}

static void fz_find(shmreg_t *r, const shmreg_attr_t *m, unsigned n,
		    size_t stop_at)
{
	struct fz_find f = { .stop_at = stop_at };
	ssize_t ret = shmreg_find(r, m, n, fz_find_cb, &f);

	if (ret >= 0) {
		if ((size_t)ret != f.seen || (stop_at && f.seen > stop_at))
			fz_fail("shmreg_find count", ret);
		return;
	}
	switch (-ret) {
	case EPROTO: case ENOMEM: case EAGAIN:
		return;
	}
	fz_fail("shmreg_find", ret);
}

/* The children of a key, all and stopped after the first. */
static void fz_children(shmreg_t *r, const void *key, size_t klen)
{
	/* stopped after the first only when there was more than one: a
	 * segment that spends the retry budget costs each call 320 backoffs */
	for (size_t stop = 0, more = 1; stop < 2 && more; stop++) {
		struct fz_find f = { .stop_at = stop };
		ssize_t ret = shmreg_children(r, key, klen, fz_find_cb, &f);

		if (ret >= 0) {
			if ((size_t)ret != f.seen || (stop && f.seen > stop))
				fz_fail("shmreg_children count", ret);
			more = ret > 1;
			continue;
		}
		more = 0;
		switch (-ret) {
		case EINVAL: case E2BIG: case EPROTO: case ENOMEM: case EAGAIN:
			continue;
		}
		fz_fail("shmreg_children", ret);
	}
}

static void fz_attrs(shmreg_t *r, const void *key, size_t klen)
{
	static char buf[SHMREG_ATTRS_MAX *
			(SHMREG_ATTR_NAME_MAX + SHMREG_ATTR_VALUE_MAX + 2)];
	char small[8];
	shmreg_attr_t m[SHMREG_ATTRS_MAX];
	uint64_t tok = shmreg_read_begin(r);
	ssize_t n;
	size_t pos = 0;
	unsigned nm = 0;
	int rc;

	n = shmreg_get_attrs(r, key, klen, buf, sizeof(buf));
	/* truncated, and sized only: only for entries that have some */
	if (n > 0) {
		(void)shmreg_get_attrs(r, key, klen, small, sizeof(small));
		(void)shmreg_get_attrs(r, key, klen, NULL, 0);
	}
	if (n < 0) {
		switch (-n) {
		case ENOENT: case EINVAL: case E2BIG: case EAGAIN:
		case EOWNERDEAD: case EPROTO:
			break;
		default:
			fz_fail("shmreg_get_attrs", n);
		}
	} else if ((size_t)n > sizeof(buf)) {
		fz_fail("shmreg_get_attrs length", n);
	} else {
		/* whole pairs of NUL-terminated strings, as promised */
		while (pos < (size_t)n && nm < SHMREG_ATTRS_MAX) {
			size_t a = strnlen(buf + pos, (size_t)n - pos), b;

			if (pos + a >= (size_t)n)
				fz_fail("shmreg_get_attrs: unterminated name",
					(long long)pos);
			b = strnlen(buf + pos + a + 1, (size_t)n - pos - a - 1);
			if (pos + a + 1 + b >= (size_t)n)
				fz_fail("shmreg_get_attrs: unterminated value",
					(long long)pos);
			m[nm].name = buf + pos;
			m[nm].value = buf + pos + a + 1;
			nm++;
			pos += a + b + 2;
		}
		if (pos != (size_t)n)
			fz_fail("shmreg_get_attrs: trailing bytes",
				(long long)(n - (ssize_t)pos));
		for (unsigned i = 0; i < nm; i++)
			fz_find(r, &m[i], 1, 0);
		if (nm)
			fz_find(r, m, nm, 1);
	}
	fz_children(r, key, klen);
	rc = shmreg_read_validate(r, tok);
	if (rc != 0 && rc != -EAGAIN)
		fz_fail("shmreg_read_validate", rc);
}

/* await and watch_key with a zero timeout: a decision, never a wait. */
static void fz_await(shmreg_t *r, const void *key, size_t klen)
{
	uint8_t buf[64];
	uint64_t nrev;
	ssize_t n;

	n = shmreg_await(r, key, klen, buf, sizeof(buf), NULL, 0);
	if (n < 0) {
		switch (-n) {
		case ETIMEDOUT: case ESHUTDOWN: case EOWNERDEAD: case EPROTO:
			break;
		default:
			fz_fail("shmreg_await", n);
		}
	}
	n = shmreg_watch_key(r, key, klen, 0, 0, &nrev);
	if (n < 0) {
		switch (-n) {
		case ENOENT: case ETIMEDOUT: case ESHUTDOWN: case EOWNERDEAD:
		case EPROTO:
			break;
		default:
			fz_fail("shmreg_watch_key", n);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_keys *k;
	shmreg_stats_t st;
	shmreg_t *r = NULL;
	ssize_t ret;
	int rc;

	if (fz_tmp_setup("shmreg-fuzz", "shmreg.fuzz", fz_path,
			 sizeof(fz_path), fz_unlink) < 0 ||
	    fz_write(fz_path, 0600, data, size) < 0) {
		/* Not a finding about the library: no space or no tmp dir. */
		perror("fuzz_segment: cannot write the input file");
		abort();
	}

	rc = shmreg_open(fz_path, 0, &r);
	if (rc < 0) {
		/* -EAGAIN: a segment marked retired whose name holds nothing
		 * newer (open gives up after a bounded number of re-reads). */
		switch (-rc) {
		case EPROTO: case EINVAL: case ENOMEM: case EAGAIN:
			return 0;
		}
		fz_fail("shmreg_open", rc);
	}

	rc = shmreg_stats(r, &st);
	if (rc < 0 && rc != -EPROTO)
		fz_fail("shmreg_stats", rc);
	(void)shmreg_revision(r);

	k = calloc(1, sizeof(*k));
	if (!k)
		abort();

	/* Everything, then stopped early, then by the prefix of a found key
	 * (or of the input's last bytes when the list found nothing). */
	ret = shmreg_list(r, NULL, 0, fz_list_cb, k);
	fz_check_list("shmreg_list", ret, k);

	{
		struct fz_keys stop = { .stop_at = FZ_STOP_AT };

		ret = shmreg_list(r, "", 0, fz_list_cb, &stop);
		fz_check_list("shmreg_list (stopped)", ret, &stop);
	}
	{
		struct fz_keys *pk = calloc(1, sizeof(*pk));
		const void *prefix;
		size_t plen;

		if (!pk)
			abort();
		if (k->n) {
			prefix = k->key[0];
			plen = k->klen[0] > 4 ? 4 : k->klen[0];
		} else {
			plen = size < 4 ? size : 4;
			prefix = data + size - plen;
		}
		ret = shmreg_list(r, prefix, plen, fz_list_cb, pk);
		fz_check_list("shmreg_list (prefix)", ret, pk);
		free(pk);
	}

	/* Keys that exist (as far as the list could tell), keys of the seed
	 * corpus's shape, and keys made of input bytes. */
	for (size_t i = 0; i < k->n; i++)
		fz_get(r, k->key[i], k->klen[i]);
	fz_get(r, "key:000000000001", 16);
	fz_get(r, "ext/0", 5);
	if (size) {
		size_t klen = size < 16 ? size : 16;

		fz_get(r, data, klen);
		fz_get(r, data + size - klen, klen);
		fz_get(r, data + size / 2, size - size / 2 < 24 ?
			   size - size / 2 : 24);
	}
	/* The change stream, all of it and by prefix, from deep in the
	 * past (beyond any ring in the corpus: -ERANGE or every event) and
	 * from within the ring's reach. */
	fz_watch(r, 1u << 20, NULL, 0);
	fz_watch(r, 64, NULL, 0);
	if (k->n)
		fz_watch(r, 2048, k->key[0], k->klen[0] > 4 ? 4 : k->klen[0]);
	if (k->n)
		fz_await(r, k->key[0], k->klen[0]);
	fz_await(r, "key:000000000001", 16);

	/* Attributes: of the listed keys and of the corpus's shape. */
	for (size_t i = 0; i < k->n; i++)
		fz_attrs(r, k->key[i], k->klen[i]);
	fz_attrs(r, "svc/gpu0", 8);
	fz_attrs(r, "cat", 3);
	{
		static const shmreg_attr_t seeds[] = {
			{ "capability", "gpu" }, { "node", "n1" },
			{ "health", "ok" }, { "zone", "" },
		};

		fz_find(r, seeds, 3, 0);
		fz_find(r, seeds + 3, 1, 2);
	}

	/* Argument checks must hold on any segment. */
	if (shmreg_get(r, "", 0, NULL, 0, NULL) != -EINVAL)
		fz_fail("shmreg_get of an empty key", 0);

	free(k);
	shmreg_close(r);
	return 0;
}
