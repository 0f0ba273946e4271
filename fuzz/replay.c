/* SPDX-License-Identifier: MIT */
/* Description: replays a fuzz target's corpus (seeds and past crashers)
 * through its LLVMFuzzerTestOneInput, plus deterministic truncations and
 * byte flips of every file, in an ordinary (gcc, sanitizer or plain) build.
 *
 * Usage: replay [DIR|FILE ...]; with no argument, the directories listed
 * (colon-separated) in $SHMREG_FUZZ_CORPUS.  Every regular file of every
 * directory is fed to the target, in name order so that a failure is
 * reproducible.  Exit 0 when every input ran, 1 when there was nothing to
 * replay or an input could not be read (a crash fails by itself).
 *
 * $SHMREG_FUZZ_VARIANTS (default 24) sets how many mutated variants of each
 * file are run; 0 replays the files alone.
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static unsigned long rp_files, rp_runs;
static long rp_variants = 24;

static int rp_read(const char *path, uint8_t **out, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	size_t got = 0;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	/* +1: malloc(0) may return NULL, and an empty input is valid. */
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return -1;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	*out = buf;
	*len = got;
	return 0;
}

static uint64_t rp_next(uint64_t *s)
{
	/* xorshift64: deterministic, so a failing variant is reproducible
	 * from the file name and the variant number printed below. */
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/*
 * Variants of one input: truncations at the lengths where a segment's
 * regions begin (the header page, and halves/quarters of the file), and
 * bursts of byte flips.  Three flips in four land in the first 8 KiB, where
 * the header and the first index slots hold the offsets and lengths a
 * reader follows.
 */
static void rp_variants_of(const char *name, const uint8_t *data, size_t len)
{
	uint64_t seed = 0x9e3779b97f4a7c15ull ^ len;
	uint8_t *m;

	if (!len || rp_variants <= 0)
		return;
	m = malloc(len);
	if (!m)
		abort();
	for (const char *p = name; *p; p++)
		seed = (seed ^ (uint8_t)*p) * 0x100000001b3ull;
	if (!seed)
		seed = 1;
	for (long v = 0; v < rp_variants; v++) {
		size_t n = len;

		memcpy(m, data, len);
		if (v < 4) {
			static const size_t cut[2] = { 4095, 4096 + 64 };

			n = v < 2 ? cut[v] : (v == 2 ? len / 2 : len - len / 4);
			if (n > len)
				n = len / 3;
		} else {
			int flips = 1 + (int)(rp_next(&seed) % 8);

			for (int f = 0; f < flips; f++) {
				uint64_t x = rp_next(&seed);
				size_t at = (x & 3) ? (x >> 8) % (len < 8192 ?
								  len : 8192)
						    : (x >> 8) % len;

				m[at] ^= (uint8_t)(1u << ((x >> 2) & 7)) |
					 (uint8_t)((x & 0x30) ? 0 : x >> 40);
			}
		}
		if (getenv("SHMREG_FUZZ_VERBOSE"))
			fprintf(stderr, "replay: %s variant %ld (%zu bytes)\n",
				name, v, n);
		LLVMFuzzerTestOneInput(m, n);
		rp_runs++;
	}
	free(m);
}

static int rp_file(const char *path)
{
	uint8_t *data;
	size_t len;

	if (rp_read(path, &data, &len) < 0)
		return -1;
	if (getenv("SHMREG_FUZZ_VERBOSE"))
		fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
	LLVMFuzzerTestOneInput(data, len);
	rp_files++;
	rp_runs++;
	rp_variants_of(path, data, len);
	free(data);
	return 0;
}

static int rp_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int rp_path(const char *path)
{
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct stat st;
	int ret = 0;
	DIR *d;

	if (stat(path, &st) < 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return rp_file(path);

	d = opendir(path);
	if (!d) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while ((de = readdir(d))) {
		char full[4096];

		if (de->d_name[0] == '.')
			continue;
		if ((size_t)snprintf(full, sizeof(full), "%s/%s", path,
				     de->d_name) >= sizeof(full))
			continue;
		if (stat(full, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (n == cap) {
			char **nn = realloc(names, (cap = cap ? 2 * cap : 64) *
						   sizeof(*names));
			if (!nn)
				abort();
			names = nn;
		}
		names[n] = strdup(full);
		if (!names[n])
			abort();
		n++;
	}
	closedir(d);
	qsort(names, n, sizeof(*names), rp_cmp);
	for (size_t i = 0; i < n; i++) {
		if (rp_file(names[i]) < 0)
			ret = -1;
		free(names[i]);
	}
	free(names);
	return ret;
}

int main(int argc, char **argv)
{
	const char *env = getenv("SHMREG_FUZZ_CORPUS");
	const char *var = getenv("SHMREG_FUZZ_VARIANTS");
	int failed = 0;

	if (var)
		rp_variants = strtol(var, NULL, 10);
	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);

	if (argc > 1) {
		for (int i = 1; i < argc; i++)
			if (rp_path(argv[i]) < 0)
				failed = 1;
	} else if (env && *env) {
		char *list = strdup(env), *save = NULL;

		if (!list)
			return 1;
		for (char *p = strtok_r(list, ":", &save); p;
		     p = strtok_r(NULL, ":", &save))
			if (rp_path(p) < 0)
				failed = 1;
		free(list);
	} else {
		fprintf(stderr, "usage: %s DIR|FILE ... "
			"(or set SHMREG_FUZZ_CORPUS)\n", argv[0]);
		return 1;
	}

	printf("replay: %lu files, %lu inputs run\n", rp_files, rp_runs);
	if (!rp_files) {
		/* A replay of nothing proves nothing: the corpus went missing. */
		fprintf(stderr, "replay: no corpus file found\n");
		return 1;
	}
	return failed;
}
