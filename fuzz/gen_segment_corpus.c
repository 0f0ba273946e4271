/* SPDX-License-Identifier: MIT */
/* Description: writes the seed corpus of fuzz_segment (real segments of
 * several shapes, made by the embedded writer) and checks that each one
 * reads back as expected through the reader.
 *
 * Usage: gen_segment_corpus OUTDIR
 *
 * Regenerate the committed seeds (after a format change) with
 *   build/fuzz/gen_segment_corpus fuzz/corpus/segment
 * The seeds are kept small (a handful of index slots, a 1024-event ring,
 * a 4 KiB arena), so that libFuzzer mutates kilobytes, not megabytes.
 *
 * Shapes: empty, inline entries (with owner, TTL and flags), extern
 * entries (long keys, large values), after deletes (backward shifts),
 * after growth (several handoffs), closed, the retired segment left behind
 * by a handoff, and a wrapped change ring.
 *
 * Exit 0 when every seed was written and read back, 1 otherwise.
 */
#define _GNU_SOURCE /* nftw */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shmreg.h"
#include "shmreg_writer.h"

static char tmpdir[PATH_MAX / 2];
static const char *outdir;
static int failures;

#define CHECK(cond, ...)                                                    \
	do {                                                                \
		if (!(cond)) {                                              \
			fprintf(stderr, "gen_segment_corpus: %s:%d: ",      \
				__FILE__, __LINE__);                        \
			fprintf(stderr, __VA_ARGS__);                       \
			fputc('\n', stderr);                                \
			failures++;                                         \
		}                                                           \
	} while (0)

static const shmreg_writer_opts_t small_opts = {
	.flags = SHMREG_WRITER_TRUNCATE,
	.initial_entries = 8,
	.initial_arena = 4096,
	.ring_events = 1024,
};

static void seg_path(char *buf, size_t cap, const char *shape)
{
	snprintf(buf, cap, "%s/shmreg.%s", tmpdir, shape);
}

static shmreg_writer_t *open_writer(const char *shape)
{
	char path[PATH_MAX];
	shmreg_writer_t *w = NULL;
	int rc;

	seg_path(path, sizeof(path), shape);
	rc = shmreg_writer_open(path, &small_opts, &w);
	CHECK(rc == 0, "writer_open(%s): %s", path, strerror(-rc));
	return rc == 0 ? w : NULL;
}

/* Copy the file at @from to OUTDIR/@name; returns the bytes copied or -1. */
static long copy_file(const char *from, const char *name)
{
	char to[PATH_MAX], buf[65536];
	long total = 0;
	int in, out;
	ssize_t n;

	snprintf(to, sizeof(to), "%s/%s", outdir, name);
	in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		CHECK(0, "open %s: %s", from, strerror(errno));
		return -1;
	}
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0) {
		CHECK(0, "create %s: %s", to, strerror(errno));
		close(in);
		return -1;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		if (write(out, buf, (size_t)n) != n) {
			CHECK(0, "write %s: %s", to, strerror(errno));
			total = -1;
			break;
		}
		total += n;
	}
	close(in);
	close(out);
	printf("%-28s %8ld bytes\n", name, total);
	return total;
}

static long save(const char *shape, const char *name)
{
	char path[PATH_MAX];

	seg_path(path, sizeof(path), shape);
	return copy_file(path, name);
}

static void put(shmreg_writer_t *w, const char *key, const void *val,
		size_t vlen, const shmreg_put_opts_t *o)
{
	int64_t rev = shmreg_writer_put(w, key, strlen(key), val, vlen, o);

	CHECK(rev > 0, "put %s: %s", key, strerror((int)-rev));
}

static void put_num(shmreg_writer_t *w, int i, size_t vlen)
{
	char key[32], val[256];

	snprintf(key, sizeof(key), "key:%012d", i);
	for (size_t j = 0; j < vlen && j < sizeof(val); j++)
		val[j] = (char)('a' + (i + (int)j) % 26);
	put(w, key, val, vlen < sizeof(val) ? vlen : sizeof(val), NULL);
}

/* Open the saved copy OUTDIR/@name (NOFOLLOW: a copy has no successor) and
 * check its entry count, state and, when @key is given, that value. */
static void verify(const char *name, uint64_t entries, int state,
		   const char *key, const void *val, size_t vlen)
{
	char path[PATH_MAX];
	shmreg_stats_t st;
	shmreg_t *r = NULL;
	char buf[8192];
	ssize_t n;
	int rc;

	snprintf(path, sizeof(path), "%s/%s", outdir, name);
	if (path[0] != '/') {
		char cwd[PATH_MAX / 2];

		if (!getcwd(cwd, sizeof(cwd)))
			return;
		snprintf(path, sizeof(path), "%s/%s/%s", cwd, outdir, name);
	}
	rc = shmreg_open(path, SHMREG_OPEN_NOFOLLOW, &r);
	CHECK(rc == 0, "open %s: %s", path, strerror(-rc));
	if (rc)
		return;
	rc = shmreg_stats(r, &st);
	CHECK(rc == 0, "stats %s: %s", name, strerror(-rc));
	CHECK(st.entries == entries, "%s: %llu entries, expected %llu", name,
	      (unsigned long long)st.entries, (unsigned long long)entries);
	/* A copy has no lock file beside it, so readers ask about the pid
	 * its header records (shm/liveness.h): this process, still running
	 * here, so "dead" may read as "open" until this process exits. */
	if (state)
		CHECK(st.state == state ||
		      (state == SHMREG_STATE_DEAD &&
		       st.state == SHMREG_STATE_OPEN),
		      "%s: state %d, expected %d", name, st.state, state);
	if (key) {
		n = shmreg_get(r, key, strlen(key), buf, sizeof(buf), NULL);
		CHECK(n == (ssize_t)vlen, "%s: get %s returned %zd, expected %zu",
		      name, key, n, vlen);
		if (n == (ssize_t)vlen)
			CHECK(memcmp(buf, val, vlen) == 0, "%s: get %s: wrong value",
			      name, key);
	}
	shmreg_close(r);
}

static int rm_one(const char *p, const struct stat *sb, int type,
		  struct FTW *ftw)
{
	(void)sb;
	(void)type;
	(void)ftw;
	return remove(p) < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
	shmreg_put_opts_t o;
	shmreg_writer_t *w;
	char big[3000], longkey[301], path[PATH_MAX];
	const char *base = getenv("SHMREG_DIR");
	int fd;

	if (argc != 2) {
		fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
		return 1;
	}
	outdir = argv[1];
	if (mkdir(outdir, 0755) < 0 && errno != EEXIST) {
		perror(outdir);
		return 1;
	}
	snprintf(tmpdir, sizeof(tmpdir), "%s/shmreg-gen.XXXXXX",
		 base && base[0] == '/' ? base : "/tmp");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7 + 3);

	/* empty: a fresh segment, no entry, revision 0 */
	if ((w = open_writer("empty"))) {
		save("empty", "seg-empty");
		shmreg_writer_close(w);
		verify("seg-empty", 0, SHMREG_STATE_DEAD, NULL, NULL, 0);
	}

	/* inline: small entries, one with each put option */
	if ((w = open_writer("inline"))) {
		for (int i = 1; i <= 3; i++)
			put_num(w, i, 8 * (size_t)i);
		o = (shmreg_put_opts_t){ .owner_pid = getpid() };
		put(w, "owned", "by me", 5, &o);
		o = (shmreg_put_opts_t){ .ttl_ns = 3600ll * 1000000000ll };
		put(w, "ttl", "an hour", 7, &o);
		put(w, "e", "", 0, NULL);
		save("inline", "seg-inline");
		shmreg_writer_close(w);
		verify("seg-inline", 6, SHMREG_STATE_DEAD, "owned", "by me", 5);
	}

	/* extern: a long key and values too large for a slot (arena objects
	 * of several size classes), next to an inline one */
	if ((w = open_writer("extern"))) {
		memset(longkey, 'k', sizeof(longkey) - 1);
		longkey[sizeof(longkey) - 1] = '\0';
		put(w, "ext/0", big, 100, NULL);
		put(w, "ext/1", big, 700, NULL);
		put(w, longkey, "v", 1, NULL);
		put_num(w, 1, 16);
		save("extern", "seg-extern");
		shmreg_writer_close(w);
		verify("seg-extern", 4, SHMREG_STATE_DEAD, "ext/1", big, 700);
	}

	/* deleted: a run of entries with holes punched into it (backward
	 * shifts), and an extern entry replaced (its old block freed) */
	if ((w = open_writer("deleted"))) {
		for (int i = 0; i < 6; i++)
			put_num(w, i, 24);
		put(w, "ext/0", big, 300, NULL);
		put(w, "ext/0", big + 1, 300, NULL);
		for (int i = 0; i < 6; i += 2) {
			char key[32];
			int64_t rev;

			snprintf(key, sizeof(key), "key:%012d", i);
			rev = shmreg_writer_del(w, key, strlen(key));
			CHECK(rev > 0, "del %s: %s", key, strerror((int)-rev));
		}
		save("deleted", "seg-deleted");
		shmreg_writer_close(w);
		verify("seg-deleted", 4, SHMREG_STATE_DEAD, "ext/0", big + 1,
		       300);
	}

	/* grown and retired: hold the first segment open, then grow the
	 * index and the arena past their initial sizes (handoffs); the held
	 * file is the retired original */
	if ((w = open_writer("grown"))) {
		seg_path(path, sizeof(path), "grown");
		fd = open(path, O_RDONLY | O_CLOEXEC);
		CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
		for (int i = 0; i < 24; i++)
			put_num(w, i, 40);
		put(w, "ext/big", big, sizeof(big), NULL);
		put(w, "ext/big2", big, sizeof(big), NULL);
		save("grown", "seg-grown");
		if (fd >= 0) {
			char fdpath[64];

			snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", fd);
			copy_file(fdpath, "seg-retired");
			close(fd);
		}
		shmreg_writer_close(w);
		verify("seg-grown", 26, SHMREG_STATE_DEAD, "ext/big", big,
		       sizeof(big));
		/* a retired copy has no successor: not opened here */
	}

	/* closed: the writer closed cleanly */
	if ((w = open_writer("closed"))) {
		for (int i = 0; i < 4; i++)
			put_num(w, i, 12);
		put(w, "ext/0", big, 200, NULL);
		shmreg_writer_close(w);
		save("closed", "seg-closed");
		verify("seg-closed", 5, SHMREG_STATE_CLOSED, "ext/0", big, 200);
	}

	/* attrs: entries with attributes (inline-sized and extern values,
	 * a repeated name, an empty value), pairs shared by several entries
	 * so posting arrays grow and shrink, and an attribute change and a
	 * delete that free postings and a pair slot */
	if ((w = open_writer("attrs"))) {
		static const shmreg_attr_t gpu[] = {
			{ "capability", "gpu" }, { "capability", "inference" },
			{ "node", "n1" }, { "health", "ok" }, { "zone", "" } };
		static const shmreg_attr_t cpu[] = {
			{ "capability", "cpu" }, { "node", "n2" },
			{ "health", "ok" } };
		static const shmreg_attr_t bad[] = { { "health", "bad" } };

		o = (shmreg_put_opts_t){ .attrs = gpu, .nattrs = 5 };
		put(w, "svc/gpu0", "10.0.0.1:80", 11, &o);
		put(w, "svc/gpu1", big, 500, &o);
		o = (shmreg_put_opts_t){ .attrs = cpu, .nattrs = 3 };
		for (int i = 0; i < 9; i++) {
			char key[32];

			snprintf(key, sizeof(key), "svc/cpu%d", i);
			put(w, key, "10.0.1.1:80", 11, &o);
		}
		CHECK(shmreg_writer_set_attrs(w, "svc/cpu3", 8, bad, 1) > 0,
		      "set_attrs");
		for (int i = 4; i < 9; i++) {
			char key[32];

			snprintf(key, sizeof(key), "svc/cpu%d", i);
			CHECK(shmreg_writer_del(w, key, strlen(key)) > 0, "del");
		}
		put_num(w, 1, 8);
		/* a catalog tree: a root, two children, a grandchild */
		put(w, "cat", "root", 4, NULL);
		o = (shmreg_put_opts_t){ .parent = "cat", .parent_len = 3 };
		put(w, "cat/books", "b", 1, &o);
		put(w, "cat/music", big, 200, &o);
		o = (shmreg_put_opts_t){ .parent = "cat/books",
					 .parent_len = 9, .attrs = bad,
					 .nattrs = 1 };
		put(w, "cat/books/sf", "s", 1, &o);
		save("attrs", "seg-attrs");
		shmreg_writer_close(w);
		verify("seg-attrs", 11, SHMREG_STATE_DEAD, "svc/gpu0",
		       "10.0.0.1:80", 11);
	}

	/* ring: more changes than the ring holds (1024), over few keys,
	 * so the ring has wrapped and its key byte ring too */
	if ((w = open_writer("ring"))) {
		for (int i = 0; i < 1100; i++) {
			put_num(w, i % 5, 16);
			if (i % 7 == 6) {
				char key[32];

				snprintf(key, sizeof(key), "key:%012d", i % 5);
				shmreg_writer_del(w, key, strlen(key));
			}
		}
		save("ring", "seg-ring");
		shmreg_writer_close(w);
	}

	/* the writer leaves lock (and wait) files beside each segment */
	if (nftw(tmpdir, rm_one, 8, FTW_DEPTH | FTW_PHYS) < 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	if (failures)
		fprintf(stderr, "gen_segment_corpus: %d failures\n", failures);
	return failures ? 1 : 0;
}
