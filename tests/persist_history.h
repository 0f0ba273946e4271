/* SPDX-License-Identifier: MIT */
/*
 * persist_history.h - the log the damage tests start from: N puts of keys
 * key0000.. with tv_build values of known lengths, in sync mode, so that
 * log.1 holds exactly those records at known offsets (rec_end); and the
 * checks that exactly a prefix of them was recovered.
 */
#ifndef TESTS_PERSIST_HISTORY_H
#define TESTS_PERSIST_HISTORY_H

#include "persist_common.h"

#define N 200

static size_t rec_end[N];  /* offset in log.1 after record i */
static size_t log_len;     /* log.1's length */
static char *pristine;     /* and its bytes (the tests read them) */

static inline size_t rec_size(size_t klen, size_t vlen)
{
	return (56 + klen + vlen + 7) & ~(size_t)7;
}

static inline size_t vlen_of(int i)
{
	return 8 + (size_t)(i * 37 % 300);
}

static inline void key_of(int i, char *k)
{
	snprintf(k, 16, "key%04d", i);
}

static inline void write_history(void)
{
	shmreg_writer_t *w;
	uint8_t v[400];
	char k[16];
	size_t off = 32; /* the log header */

	TC_EQ(pt_open("reg", SHMREG_DURABILITY_SYNC, 0, &w), 0, "open");
	for (int i = 0; i < N; i++) {
		key_of(i, k);
		tv_build(v, vlen_of(i), k, strlen(k), (uint64_t)i);
		TC_CHECK(shmreg_writer_put(w, k, strlen(k), v, vlen_of(i),
					   NULL) == i + 1, "put %d", i);
		off += rec_size(strlen(k), vlen_of(i));
		rec_end[i] = off;
	}
	shmreg_writer_close(w);
}

static inline void clear_dir(void)
{
	char dir[4096], p[8192];
	struct dirent *e;
	DIR *d = opendir(pt_datadir(dir, "reg"));

	TC_CHECK(d, "opendir");
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && strcmp(e->d_name, "lock")) {
			snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
			unlink(p);
		}
	closedir(d);
	pt_drop_segment("reg");
}

/* Exactly keys 0..n-1 are there, with their values. */
static inline void expect_prefix(int n, const char *what)
{
	shmreg_t *r;
	uint8_t buf[400];
	char k[16];

	TC_EQ(shmreg_open("reg", 0, &r), 0, what);
	for (int i = 0; i < N; i++) {
		ssize_t got;

		key_of(i, k);
		got = shmreg_get(r, k, strlen(k), buf, sizeof(buf), NULL);
		if (i >= n) {
			if (got != -ENOENT)
				tc_fail_at(__FILE__, __LINE__, what,
					   "%s: key %d of %d present", what, i,
					   n);
			continue;
		}
		if (got != (ssize_t)vlen_of(i) ||
		    tv_check(buf, (size_t)got, k, strlen(k), NULL))
			tc_fail_at(__FILE__, __LINE__, what,
				   "%s: key %d of %d: %zd", what, i, n, got);
	}
	shmreg_close(r);
}

/* The number of records wholly before offset @off. */
static inline int records_before(size_t off)
{
	int n = 0;

	while (n < N && rec_end[n] <= off)
		n++;
	return n;
}

static inline void open_expect(int rc, uint32_t flags, int prefix,
			       const char *what)
{
	shmreg_writer_t *w;

	TC_EQ(pt_open("reg", 0, flags, &w), rc, what);
	if (rc == 0) {
		shmreg_writer_close(w);
		expect_prefix(prefix, what);
	}
}

/* write_history(), then log_len and pristine from the log it wrote. */
static inline void write_pristine(void)
{
	char p[4096];
	FILE *f;

	write_history();
	log_len = (size_t)pt_size(pt_file(p, "reg", "log", 1));
	TC_EQ(log_len, rec_end[N - 1], "log length");
	pristine = malloc(log_len);
	f = fopen(p, "rb");
	TC_CHECK(pristine && f && fread(pristine, 1, log_len, f) == log_len,
		 "read log");
	fclose(f);
}

#endif /* TESTS_PERSIST_HISTORY_H */
