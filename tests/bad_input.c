/* SPDX-License-Identifier: MIT */
/* Description: every error path of the reader and embedded writer API with
 * its exact errno: bad names, missing, garbage, empty, truncated and patched
 * segment files, size limits, NULL arguments, absent keys, compare-and-set,
 * a second writer (same and other process); plus the boundary sizes that
 * must work (0 B and 1 MiB values, a 1024 B key, short buffers). */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shmreg.h"
#include "shmreg_writer.h"
#include "layout.h"
#include "common/tc.h"

#define NAME "bad"

static const char *bad_names[] = {
	"", ".", "..", ".hidden", "a/b", "dir/", "a b", "tab\tname",
	"new\nline", "n\xc3\xa4me", "semi;colon", "star*", "back\\slash",
};

static void check_open_err(const char *path, int want, const char *what)
{
	shmreg_t *r = (shmreg_t *)0x1;
	int ret = shmreg_open(path, 0, &r);

	if (ret == 0)
		shmreg_close(r);
	TC_CHECK(ret == want, "shmreg_open(%s) [%s]: got %d (%s), want %d (%s)",
		 path, what, ret, strerror(-ret), want, strerror(-want));
}

static void test_names(void)
{
	char longname[SHMREG_NAME_MAX + 2];
	shmreg_writer_t *w = NULL;
	shmreg_t *r = NULL;
	char p[PATH_MAX];

	TC_EQ(shmreg_open(NULL, 0, &r), -EINVAL, "open NULL name");
	TC_EQ(shmreg_writer_open(NULL, NULL, &w), -EINVAL, "writer NULL name");
	for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		check_open_err(bad_names[i], -EINVAL, "bad name");
		TC_CHECK(shmreg_writer_open(bad_names[i], NULL, &w) == -EINVAL,
			 "writer_open(\"%s\") accepted a bad name",
			 bad_names[i]);
	}
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;     /* SHMREG_NAME_MAX + 1 bytes */
	check_open_err(longname, -EINVAL, "name too long");
	TC_EQ(shmreg_writer_open(longname, NULL, &w), -EINVAL, "long name");
	longname[SHMREG_NAME_MAX] = 0;          /* exactly the limit: valid */
	check_open_err(longname, -ENOENT, "longest name, no registry");

	check_open_err("nosuch", -ENOENT, "missing registry by name");
	check_open_err(tc_path(p, "nosuch"), -ENOENT, "missing registry path");
	check_open_err(tc_path(p, "nodir/nosuch"), -ENOENT, "missing dir");
	TC_EQ(shmreg_open("nosuch", 0, NULL), -EINVAL, "NULL out");
	TC_EQ(shmreg_open("nosuch", 0x100, &r), -EINVAL, "unknown flags");
	TC_EQ(shmreg_writer_open(NAME, NULL, NULL), -EINVAL, "writer NULL out");
}

static void test_writer_opts(void)
{
	shmreg_writer_opts_t o;
	shmreg_writer_t *w = NULL;

	memset(&o, 0, sizeof(o));
	o.ring_events = 1000;           /* not a power of two */
	TC_EQ(shmreg_writer_open("opts", &o, &w), -EINVAL, "ring_events 1000");
	o.ring_events = 512;            /* below the minimum of 1024 */
	TC_EQ(shmreg_writer_open("opts", &o, &w), -EINVAL, "ring_events 512");
	memset(&o, 0, sizeof(o));
	o.flags = 0x80000000u;
	TC_EQ(shmreg_writer_open("opts", &o, &w), -EINVAL, "unknown flags");
	/* a refused open leaves nothing behind for readers to find */
	check_open_err("opts", -ENOENT, "after refused writer opens");
}

/* Files that are not (whole) registries: each is refused with -EPROTO by
 * the reader.  A writer asked to take one over must not crash either (it
 * runs in a child so that a SIGBUS or SIGSEGV is seen as a failure). */
static int writer_takeover_main(struct tc_child *c, void *arg)
{
	const char *path = arg;
	shmreg_writer_t *w;
	uint8_t v[8];
	int ret;

	(void)c;
	ret = shmreg_writer_open(path, NULL, &w);
	if (ret == 0) {
		int64_t rev = shmreg_writer_put(w, "k", 1, "value", 5, NULL);
		ssize_t n;

		TC_CHECK(rev > 0, "put after takeover: %lld", (long long)rev);
		n = shmreg_get(shmreg_writer_reader(w), "k", 1, v, sizeof(v),
			       NULL);
		TC_CHECK(n == 5 && !memcmp(v, "value", 5), "get: %zd", n);
		shmreg_writer_close(w);
	}
	tc_log("writer takeover of %s: %d (%s)", path, ret,
	       ret ? strerror(-ret) : "taken over");
	return 0;
}

static void check_bad_file(const char *file, const char *what)
{
	char p[PATH_MAX];
	struct tc_child *c;

	tc_path(p, file);
	check_open_err(p, -EPROTO, what);
	c = tc_spawn("takeover", writer_takeover_main, p);
	tc_child_join(c, 20000);
	tc_child_free(c);
}

static void patch_copy(const char *real, size_t size, const char *file,
		       size_t off, const void *patch, size_t plen,
		       const char *what)
{
	char p[PATH_MAX];

	tc_copy_file(real, tc_path(p, file), size, off, patch, plen);
	check_bad_file(file, what);
}

static void test_files(void)
{
	static uint8_t junk[65536], big[3000];
	shmreg_writer_opts_t o = { .flags = SHMREG_WRITER_TRUNCATE };
	char real[PATH_MAX], p[PATH_MAX];
	uint64_t rs = tc_seed(), v64;
	shmreg_writer_t *w;
	shmreg_t *r;
	struct stat sb;
	uint32_t v32;
	size_t size;
	ssize_t n;
	char key[32];
	int ret;

	for (size_t i = 0; i < sizeof(junk); i += 8) {
		v64 = tc_rand(&rs);
		memcpy(junk + i, &v64, 8);
	}
	tc_write_file(tc_path(p, "empty"), "", 0);
	check_bad_file("empty", "empty file");
	tc_write_file(tc_path(p, "garbage"), junk, sizeof(junk));
	check_bad_file("garbage", "64 KiB of random bytes");
	tc_write_file(tc_path(p, "short"), junk, 100);
	check_bad_file("short", "100 random bytes");
	memset(junk, 0, sizeof(junk));
	tc_write_file(tc_path(p, "zeros"), junk, sizeof(junk));
	check_bad_file("zeros", "64 KiB of zeros");

	/* a real segment with inline and out-of-line entries, closed */
	ret = shmreg_writer_open("real", &o, &w);
	TC_CHECK(ret == 0, "writer_open real: %s", strerror(-ret));
	for (int i = 0; i < 50; i++) {
		int klen = snprintf(key, sizeof(key), "real:%02d", i);
		size_t len = i & 1 ? sizeof(big) : 16;

		tv_build(big, len, key, (size_t)klen, (uint64_t)i);
		TC_CHECK(shmreg_writer_put(w, key, (size_t)klen, big, len,
					   NULL) > 0, "put %s", key);
	}
	shmreg_writer_close(w);
	tc_path(real, "shmreg.real");
	TC_CHECK(stat(real, &sb) == 0, "stat %s: %s", real, strerror(errno));
	size = (size_t)sb.st_size;
	TC_CHECK(size > 2 * SHM_HEADER_SIZE, "segment of %zu bytes", size);

	/* control: a whole copy opens and reads, so every refusal below is
	 * due to the damage, not to the copying */
	tc_copy_file(real, tc_path(p, "copy"), SIZE_MAX, 0, NULL, 0);
	ret = shmreg_open(p, 0, &r);
	TC_CHECK(ret == 0, "open a whole copy: %s", strerror(-ret));
	n = shmreg_get(r, "real:01", 7, big, sizeof(big), NULL);
	TC_EQ(n, sizeof(big), "get from the copy");
	TC_EQ(tv_check(big, (size_t)n, "real:01", 7, NULL), 0, "copy value");
	shmreg_close(r);

	{
		const size_t cuts[] = { 1, 8, 64, 100, SHM_HEADER_SIZE - 1,
					SHM_HEADER_SIZE, SHM_HEADER_SIZE + 1,
					SHM_HEADER_SIZE + SHM_SLOT_SIZE,
					size / 2, size - SHM_HEADER_SIZE,
					size - 1 };
		char what[64];

		for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
			snprintf(what, sizeof(what),
				 "first %zu of %zu bytes", cuts[i], size);
			patch_copy(real, cuts[i], "trunc", 0, NULL, 0, what);
		}
	}
	v32 = SHM_VERSION + 1;
	patch_copy(real, SIZE_MAX, "version", 8, &v32, 4, "version + 1");
	TC_EQ(offsetof(struct shm_hdr, version), 8, "version offset");
	v32 = 0;
	patch_copy(real, SIZE_MAX, "version0", 8, &v32, 4, "version 0");
	v64 = SHM_MAGIC ^ 1;
	patch_copy(real, SIZE_MAX, "magic", 0, &v64, 8, "wrong magic");
	v64 = __builtin_bswap64(SHM_MAGIC);
	patch_copy(real, SIZE_MAX, "swapped", 0, &v64, 8,
		   "magic of the other byte order");
	v64 = 2 * (uint64_t)size;
	patch_copy(real, SIZE_MAX, "segsize",
		   offsetof(struct shm_hdr, segment_size), &v64, 8,
		   "segment_size larger than the file");
	v64 = UINT64_C(1) << 40;
	patch_copy(real, SIZE_MAX, "indexcap",
		   offsetof(struct shm_hdr, index_cap), &v64, 8,
		   "index_cap beyond the file");
	v64 = (uint64_t)size + SHM_HEADER_SIZE;
	patch_copy(real, SIZE_MAX, "arenaoff",
		   offsetof(struct shm_hdr, arena_off), &v64, 8,
		   "arena_off beyond the file");
	v64 = UINT64_MAX - 8;
	patch_copy(real, SIZE_MAX, "arenasize",
		   offsetof(struct shm_hdr, arena_size), &v64, 8,
		   "arena_size overflowing");
	v32 = 3;
	patch_copy(real, SIZE_MAX, "ringev",
		   offsetof(struct shm_hdr, ring_events), &v32, 4,
		   "ring_events not a power of two");
	v32 = 128;
	patch_copy(real, SIZE_MAX, "hdrsize",
		   offsetof(struct shm_hdr, header_size), &v32, 4,
		   "header_size");
}

static int never_called(const void *key, size_t klen, const void *val,
			size_t vlen, const shmreg_info_t *info, void *arg)
{
	(void)key, (void)klen, (void)val, (void)vlen, (void)info, (void)arg;
	TC_CHECK(0, "shmreg_list called back on a refused call");
	return 1;
}

static int64_t put(shmreg_writer_t *w, const char *k, const void *v,
		   size_t vlen, const shmreg_put_opts_t *o)
{
	return shmreg_writer_put(w, k, strlen(k), v, vlen, o);
}

static int second_writer_main(struct tc_child *c, void *arg)
{
	shmreg_writer_t *w2 = NULL;
	int ret;

	(void)c;
	ret = shmreg_writer_open(arg, NULL, &w2);
	if (ret == 0)
		shmreg_writer_close(w2);
	return ret < 0 ? -ret : 100;
}

static void test_writer_and_get(void)
{
	shmreg_writer_opts_t o = { .flags = SHMREG_WRITER_TRUNCATE };
	static uint8_t key[SHMREG_KEY_MAX + 1], buf[4096];
	const size_t mib = 1u << 20;
	uint8_t *huge = malloc(SHMREG_VALUE_MAX + 1);
	uint8_t *back = malloc(SHMREG_VALUE_MAX + 1);
	shmreg_put_opts_t po;
	shmreg_writer_t *w, *w2 = NULL;
	shmreg_info_t info;
	shmreg_stats_t st;
	struct tc_child *c;
	int64_t rev, rev0;
	shmreg_t *r;
	char p[PATH_MAX];
	int ret;

	TC_CHECK(huge && back, "malloc");
	for (size_t i = 0; i < SHMREG_VALUE_MAX + 1; i++)
		huge[i] = (uint8_t)(i * 7 + (i >> 12));
	memset(key, 'k', sizeof(key));

	ret = shmreg_writer_open(NAME, &o, &w);
	TC_CHECK(ret == 0, "writer_open: %s", strerror(-ret));
	ret = shmreg_open(NAME, 0, &r);
	TC_CHECK(ret == 0, "open: %s", strerror(-ret));
	rev0 = put(w, "present", "0123456789", 10, NULL);
	TC_CHECK(rev0 > 0, "put: %lld", (long long)rev0);

	/* puts that must be refused, changing nothing */
	TC_EQ(shmreg_writer_put(NULL, "k", 1, "v", 1, NULL), -EINVAL, "NULL w");
	TC_EQ(shmreg_writer_put(w, key, 0, "v", 1, NULL), -EINVAL, "klen 0");
	TC_EQ(shmreg_writer_put(w, NULL, 3, "v", 1, NULL), -EINVAL, "NULL key");
	TC_EQ(shmreg_writer_put(w, NULL, 0, "v", 1, NULL), -EINVAL,
	      "NULL key, klen 0");
	TC_EQ(shmreg_writer_put(w, key, SHMREG_KEY_MAX + 1, "v", 1, NULL),
	      -E2BIG, "klen 1025");
	TC_EQ(shmreg_writer_put(w, "k", 1, huge, SHMREG_VALUE_MAX + 1, NULL),
	      -E2BIG, "vlen over SHMREG_VALUE_MAX");
	TC_EQ(shmreg_writer_put(w, "k", 1, NULL, 5, NULL), -EINVAL,
	      "NULL val, vlen 5");
	memset(&po, 0, sizeof(po));
	po.flags = 0x80000000u;
	TC_EQ(put(w, "k", "v", 1, &po), -EINVAL, "unknown put flags");
	TC_EQ(shmreg_writer_revision(w), rev0, "revision after refused puts");
	TC_EQ(shmreg_get(r, "k", 1, buf, sizeof(buf), NULL), -ENOENT,
	      "a refused put stored nothing");

	/* deletes */
	TC_EQ(shmreg_writer_del(NULL, "k", 1), -EINVAL, "del NULL w");
	TC_EQ(shmreg_writer_del(w, NULL, 1), -EINVAL, "del NULL key");
	TC_EQ(shmreg_writer_del(w, "k", 0), -EINVAL, "del klen 0");
	TC_EQ(shmreg_writer_del(w, key, SHMREG_KEY_MAX + 1), -E2BIG,
	      "del klen 1025");
	TC_EQ(shmreg_writer_del(w, "absent", 6), -ENOENT, "del absent");
	TC_EQ(shmreg_writer_revision(w), rev0, "del absent: writer revision");
	TC_EQ(shmreg_revision(r), rev0, "del absent: reader revision");
	TC_EQ(shmreg_writer_batch_end(w), -EINVAL, "batch_end without begin");
	TC_EQ(shmreg_writer_revision(w), rev0, "revision after refusals");

	/* gets that must be refused */
	TC_EQ(shmreg_get(NULL, "present", 7, buf, 1, NULL), -EINVAL, "NULL r");
	TC_EQ(shmreg_get(r, NULL, 7, buf, 1, NULL), -EINVAL, "get NULL key");
	TC_EQ(shmreg_get(r, "present", 0, buf, 1, NULL), -EINVAL, "klen 0");
	TC_EQ(shmreg_get(r, key, SHMREG_KEY_MAX + 1, buf, 1, NULL), -E2BIG,
	      "get klen 1025");
	TC_EQ(shmreg_get(r, "present", 7, NULL, 5, NULL), -EINVAL,
	      "NULL buf, cap 5");
	TC_EQ(shmreg_get(r, "absent", 6, buf, sizeof(buf), NULL), -ENOENT,
	      "get absent");
	TC_EQ(shmreg_revision(NULL), 0, "revision of NULL");
	TC_EQ(shmreg_stats(NULL, &st), -EINVAL, "stats NULL r");
	TC_EQ(shmreg_stats(r, NULL), -EINVAL, "stats NULL st");
	TC_EQ(shmreg_list(r, NULL, 0, NULL, NULL), -EINVAL, "list NULL fn");
	shmreg_close(NULL);
	shmreg_writer_close(NULL);

	/* short buffers: the full length, exactly cap bytes copied */
	memset(buf, 0xaa, sizeof(buf));
	TC_EQ(shmreg_get(r, "present", 7, buf, 4, &info), 10, "cap 4");
	TC_CHECK(!memcmp(buf, "0123", 4) && buf[4] == 0xaa,
		 "cap 4 copied other than 4 bytes");
	TC_EQ(info.vlen, 10, "info.vlen");
	TC_EQ(info.mod_rev, rev0, "info.mod_rev");
	TC_EQ(shmreg_get(r, "present", 7, NULL, 0, NULL), 10, "length only");
	tv_build(huge, 3000, "ool", 3, 1);
	rev = put(w, "ool", huge, 3000, NULL);
	TC_CHECK(rev == rev0 + 1, "put ool: %lld", (long long)rev);
	memset(buf, 0xaa, sizeof(buf));
	TC_EQ(shmreg_get(r, "ool", 3, buf, 100, NULL), 3000, "ool cap 100");
	TC_CHECK(!memcmp(buf, huge, 100) && buf[100] == 0xaa,
		 "ool cap 100 copied other than 100 bytes");

	/* boundary sizes that must work */
	rev = put(w, "empty", NULL, 0, NULL);
	TC_EQ(rev, rev0 + 2, "0-byte value");
	memset(&info, 0xff, sizeof(info));
	TC_EQ(shmreg_get(r, "empty", 5, buf, sizeof(buf), &info), 0, "get 0 B");
	TC_EQ(info.vlen, 0, "info.vlen of 0 B");
	TC_EQ(info.mod_rev, rev, "info.mod_rev of 0 B");
	TC_EQ(shmreg_get(r, "empty", 5, NULL, 0, NULL), 0, "0 B, NULL buf");

	for (size_t i = 0; i < mib; i++)
		huge[i] = (uint8_t)(i * 13 + (i >> 9));
	rev = put(w, "mib", huge, mib, NULL);
	TC_EQ(rev, rev0 + 3, "1 MiB value");
	memset(back, 0, mib + 1);
	TC_EQ(shmreg_get(r, "mib", 3, back, mib + 1, &info), mib, "get 1 MiB");
	TC_CHECK(!memcmp(back, huge, mib), "1 MiB value differs");
	TC_EQ(info.vlen, mib, "info.vlen of 1 MiB");

	rev = put(w, "max", huge, SHMREG_VALUE_MAX, NULL);
	TC_EQ(rev, rev0 + 4, "SHMREG_VALUE_MAX value");
	TC_EQ(shmreg_get(r, "max", 3, back, SHMREG_VALUE_MAX + 1, NULL),
	      SHMREG_VALUE_MAX, "get SHMREG_VALUE_MAX");
	TC_CHECK(!memcmp(back, huge, SHMREG_VALUE_MAX), "max value differs");
	TC_EQ(shmreg_writer_del(w, "max", 3), rev0 + 5, "del max");

	rev = shmreg_writer_put(w, key, SHMREG_KEY_MAX, "long", 4, NULL);
	TC_EQ(rev, rev0 + 6, "1024-byte key");
	TC_EQ(shmreg_get(r, key, SHMREG_KEY_MAX, buf, sizeof(buf), NULL), 4,
	      "get 1024-byte key");
	TC_CHECK(!memcmp(buf, "long", 4), "1024-byte key's value");
	/* a 1023-byte prefix of it is another key */
	TC_EQ(shmreg_get(r, key, SHMREG_KEY_MAX - 1, buf, sizeof(buf), NULL),
	      -ENOENT, "1023-byte prefix");
	TC_EQ(shmreg_writer_del(w, key, SHMREG_KEY_MAX), rev0 + 7,
	      "del 1024-byte key");
	TC_EQ(shmreg_get(r, key, SHMREG_KEY_MAX, buf, sizeof(buf), NULL),
	      -ENOENT, "1024-byte key deleted");
	TC_EQ(shmreg_list(r, key, SHMREG_KEY_MAX + 1, never_called, NULL),
	      -E2BIG, "list prefix over SHMREG_KEY_MAX");
	TC_EQ(shmreg_list(r, NULL, 3, never_called, NULL), -EINVAL,
	      "list NULL prefix, plen 3");

	/* compare-and-set */
	rev0 = (int64_t)shmreg_writer_revision(w);
	memset(&po, 0, sizeof(po));
	po.expect_rev = SHMREG_REV_ABSENT;
	rev = put(w, "cas", "one", 3, &po);
	TC_EQ(rev, rev0 + 1, "create with SHMREG_REV_ABSENT");
	TC_EQ(shmreg_get(r, "cas", 3, buf, sizeof(buf), &info), 3, "get cas");
	TC_EQ(info.create_rev, rev, "create_rev");
	TC_EQ(info.mod_rev, rev, "mod_rev");
	TC_EQ(put(w, "cas", "two", 3, &po), -EEXIST,
	      "SHMREG_REV_ABSENT on an existing key");
	po.expect_rev = (uint64_t)rev + 1;
	TC_EQ(put(w, "cas", "two", 3, &po), -EEXIST, "wrong expect_rev");
	po.expect_rev = (uint64_t)rev - 1;
	TC_EQ(put(w, "cas", "two", 3, &po), -EEXIST, "older expect_rev");
	TC_EQ(shmreg_writer_revision(w), rev, "revision after failed CAS");
	TC_EQ(shmreg_get(r, "cas", 3, buf, sizeof(buf), &info), 3, "get");
	TC_CHECK(!memcmp(buf, "one", 3) && info.mod_rev == (uint64_t)rev,
		 "a failed CAS changed the value");
	po.expect_rev = (uint64_t)rev;
	TC_EQ(put(w, "cas", "two", 3, &po), rev + 1, "CAS with the right rev");
	TC_EQ(shmreg_get(r, "cas", 3, buf, sizeof(buf), &info), 3, "get");
	TC_CHECK(!memcmp(buf, "two", 3), "CAS value");
	TC_EQ(info.create_rev, rev, "create_rev kept by a replace");
	TC_EQ(info.mod_rev, rev + 1, "mod_rev of the replace");

	/* a second writer: from this process (by name and by path) and from
	 * another one; the first writer's registry is untouched */
	rev0 = (int64_t)shmreg_writer_revision(w);
	TC_EQ(shmreg_writer_open(NAME, NULL, &w2), -EBUSY, "same process");
	TC_EQ(shmreg_writer_open(tc_path(p, "shmreg." NAME), NULL, &w2), -EBUSY,
	      "same process, by path");
	o.flags = SHMREG_WRITER_TRUNCATE;
	TC_EQ(shmreg_writer_open(NAME, &o, &w2), -EBUSY, "same, TRUNCATE");
	c = tc_spawn("writer2", second_writer_main, (void *)NAME);
	tc_child_wait(c, 10000);
	TC_CHECK(WIFEXITED(c->status) && WEXITSTATUS(c->status) == EBUSY,
		 "second writer in another process: status 0x%x (want exit "
		 "%d)", c->status, EBUSY);
	tc_child_free(c);
	TC_EQ(shmreg_writer_revision(w), rev0, "revision after -EBUSY");
	TC_EQ(shmreg_get(r, "present", 7, buf, sizeof(buf), NULL), 10,
	      "data after -EBUSY");
	TC_CHECK(!memcmp(buf, "0123456789", 10), "data after -EBUSY");
	TC_EQ(shmreg_stats(r, &st), 0, "stats");
	TC_EQ(st.state, SHMREG_STATE_OPEN, "state after -EBUSY");
	TC_EQ(st.writer_pid, getpid(), "writer_pid after -EBUSY");
	TC_EQ(put(w, "after", "x", 1, NULL), rev0 + 1, "first writer writes");

	/* after a close, the next writer takes the contents over */
	shmreg_writer_close(w);
	TC_EQ(shmreg_stats(r, &st), 0, "stats");
	TC_EQ(st.state, SHMREG_STATE_CLOSED, "state after close");
	ret = shmreg_writer_open(NAME, NULL, &w);
	TC_CHECK(ret == 0, "reopen after close: %s", strerror(-ret));
	TC_EQ(shmreg_writer_revision(w), rev0 + 1, "revision carried over");
	TC_EQ(shmreg_get(r, "present", 7, buf, sizeof(buf), NULL), 10,
	      "contents carried over");
	TC_EQ(shmreg_get(r, "mib", 3, back, mib, NULL), mib,
	      "1 MiB value carried over");
	for (size_t i = 0; i < mib; i++)
		huge[i] = (uint8_t)(i * 13 + (i >> 9));
	TC_CHECK(!memcmp(back, huge, mib), "1 MiB value carried over");
	shmreg_writer_close(w);
	ret = shmreg_writer_open(NAME, &o, &w);
	TC_CHECK(ret == 0, "reopen with TRUNCATE: %s", strerror(-ret));
	TC_EQ(shmreg_get(r, "present", 7, buf, sizeof(buf), NULL), -ENOENT,
	      "TRUNCATE drops the contents");
	TC_EQ(shmreg_stats(r, &st), 0, "stats");
	TC_EQ(st.entries, 0, "entries after TRUNCATE");
	shmreg_writer_close(w);
	shmreg_close(r);
	free(huge);
	free(back);
}

/* A list callback that returns @ret on its @at-th call, 0 before. */
struct list_script {
	int at;
	int ret;
	int calls;
};

static int scripted(const void *key, size_t klen, const void *val,
		    size_t vlen, const shmreg_info_t *info, void *arg)
{
	struct list_script *s = arg;

	(void)key, (void)klen, (void)val, (void)vlen, (void)info;
	return ++s->calls == s->at ? s->ret : 0;
}

static ssize_t list_with(shmreg_t *r, const char *prefix, int at, int ret,
			 int *calls)
{
	struct list_script s = { .at = at, .ret = ret };
	ssize_t n = shmreg_list(r, prefix, strlen(prefix), scripted, &s);

	*calls = s.calls;
	return n;
}

/* shmreg_list's return: the count of entries passed to fn (the one that
 * stopped the walk included), or fn's -errno when it aborted, or an error
 * of its own; a positive stop value is never returned as such. */
static void test_list_contract(void)
{
	shmreg_writer_opts_t o = { .flags = SHMREG_WRITER_TRUNCATE };
	shmreg_writer_t *w;
	shmreg_t *r;
	char k[16];
	int ret, calls;

	ret = shmreg_writer_open("list", &o, &w);
	TC_CHECK(ret == 0, "writer_open: %s", strerror(-ret));
	ret = shmreg_open("list", 0, &r);
	TC_CHECK(ret == 0, "open: %s", strerror(-ret));
	for (int i = 0; i < 5; i++) {
		snprintf(k, sizeof(k), "l/%d", i);
		TC_CHECK(put(w, k, "v", 1, NULL) == i + 1, "put %s", k);
	}
	TC_EQ(put(w, "other", "v", 1, NULL), 6, "put other");

	TC_EQ(list_with(r, "l/", 0, 0, &calls), 5, "walk to the end");
	TC_EQ(calls, 5, "calls of a full walk");
	TC_EQ(list_with(r, "", 0, 0, &calls), 6, "walk everything");
	TC_EQ(calls, 6, "calls of a walk of everything");
	TC_EQ(list_with(r, "l/", 3, 1, &calls), 3, "stopped at the 3rd");
	TC_EQ(calls, 3, "calls of a walk stopped at the 3rd");
	TC_EQ(list_with(r, "l/", 1, 7, &calls), 1, "stopped at the 1st");
	TC_EQ(calls, 1, "calls of a walk stopped at the 1st");
	TC_EQ(list_with(r, "l/", 5, INT32_MAX, &calls), 5,
	      "stopped at the last: the count, not the stop value");
	TC_EQ(calls, 5, "calls of a walk stopped at the last");
	TC_EQ(list_with(r, "l/", 2, -ECANCELED, &calls), -ECANCELED,
	      "aborted at the 2nd: fn's value");
	TC_EQ(calls, 2, "calls of a walk aborted at the 2nd");
	TC_EQ(list_with(r, "l/", 1, -EIO, &calls), -EIO,
	      "aborted at the 1st");
	TC_EQ(calls, 1, "calls of a walk aborted at the 1st");
	TC_EQ(list_with(r, "none/", 1, 1, &calls), 0, "no match: 0");
	TC_EQ(calls, 0, "no match: no call");
	shmreg_writer_close(w);
	shmreg_close(r);
}

static int64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Put options out of range are refused and store nothing; the longest TTL
 * is stored with the deadline it asks for.  Before SHMREG_TTL_MAX_NS, a
 * ttl_ns near INT64_MAX overflowed now + ttl_ns (UBSan aborts there) into
 * a deadline in the past: the put succeeded, the entry was never seen. */
static void test_put_opts(void)
{
	shmreg_writer_opts_t o = { .flags = SHMREG_WRITER_TRUNCATE };
	static const int64_t bad_ttl[] = {
		SHMREG_TTL_MAX_NS + 1, INT64_MAX, INT64_MAX - 1000000000, -1,
		INT64_MIN,
	};
	shmreg_put_opts_t po;
	shmreg_writer_t *w;
	shmreg_info_t info;
	shmreg_stats_t st;
	int64_t rev, t0, t1;
	shmreg_t *r;
	char buf[8];
	int ret;

	ret = shmreg_writer_open("opts", &o, &w);
	TC_CHECK(ret == 0, "writer_open: %s", strerror(-ret));
	ret = shmreg_open("opts", 0, &r);
	TC_CHECK(ret == 0, "open: %s", strerror(-ret));

	for (size_t i = 0; i < sizeof(bad_ttl) / sizeof(bad_ttl[0]); i++) {
		memset(&po, 0, sizeof(po));
		po.ttl_ns = bad_ttl[i];
		TC_CHECK(put(w, "ttl", "v", 1, &po) == -EINVAL,
			 "ttl_ns %lld accepted", (long long)bad_ttl[i]);
	}
	memset(&po, 0, sizeof(po));
	po.owner_pid = -1;
	TC_EQ(put(w, "ttl", "v", 1, &po), -EINVAL, "owner_pid -1");
	memset(&po, 0, sizeof(po));
	po.flags = SHMREG_EPHEMERAL << 1;
	TC_EQ(put(w, "ttl", "v", 1, &po), -EINVAL, "next unknown flag");
	TC_EQ(shmreg_writer_revision(w), 0, "revision after refused puts");
	TC_EQ(shmreg_get(r, "ttl", 3, buf, sizeof(buf), NULL), -ENOENT,
	      "a refused put stored nothing");
	TC_EQ(shmreg_stats(r, &st), 0, "stats");
	TC_EQ(st.entries, 0, "entries after refused puts");

	memset(&po, 0, sizeof(po));
	po.ttl_ns = SHMREG_TTL_MAX_NS;
	t0 = realtime_ns();
	rev = put(w, "ttl", "v", 1, &po);
	t1 = realtime_ns();
	TC_EQ(rev, 1, "put with ttl_ns SHMREG_TTL_MAX_NS");
	TC_EQ(shmreg_get(r, "ttl", 3, buf, sizeof(buf), &info), 1,
	      "the longest TTL is visible");
	TC_CHECK(info.expires_at_ns >= t0 + SHMREG_TTL_MAX_NS &&
		 info.expires_at_ns <= t1 + SHMREG_TTL_MAX_NS,
		 "expires_at_ns %lld not in [%lld, %lld]",
		 (long long)info.expires_at_ns,
		 (long long)(t0 + SHMREG_TTL_MAX_NS),
		 (long long)(t1 + SHMREG_TTL_MAX_NS));
	shmreg_writer_close(w);
	shmreg_close(r);
}

int main(void)
{
	tc_init("bad_input", 55);
	tc_dir();
	test_names();
	test_writer_opts();
	test_writer_and_get();
	test_put_opts();
	test_list_contract();
	test_files();
	tc_log("pass");
	return 0;
}
