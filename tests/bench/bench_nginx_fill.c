/* SPDX-License-Identifier: MIT */
/*
 * bench_nginx_fill.c - fill the registry of tests/bench/bench_nginx.sh:
 * N keys of 16 bytes with 64-byte values, the same ones bench_nginx.lua
 * generates for lua_shared_dict, then close the writer (the contents stay
 * readable).  Usage: bench_nginx_fill REGISTRY N
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmreg_writer.h"

/* The key and value of entry @i; bench_nginx.lua's bench_key and
 * bench_value must make the same bytes. */
static void bench_entry(uint32_t i, char key[17], char val[65])
{
	/* a uint32_t has at most 10 digits: both fit exactly */
	snprintf(key, 17, "bench/%010" PRIu32, i);
	snprintf(val, 65, "value-%010" PRIu32 "-%-47s", i, "padding-to-64-bytes");
}

int main(int argc, char **argv)
{
	shmreg_writer_opts_t opts = { .flags = SHMREG_WRITER_TRUNCATE };
	shmreg_writer_t *w;
	char key[17], val[65];
	unsigned long n;
	int ret;

	if (argc != 3 || (n = strtoul(argv[2], NULL, 10)) == 0 ||
	    n > UINT32_MAX) {
		fprintf(stderr, "usage: bench_nginx_fill REGISTRY N\n");
		return 2;
	}
	opts.initial_entries = n;
	opts.initial_arena = 64u << 20;
	ret = shmreg_writer_open(argv[1], &opts, &w);
	if (ret < 0) {
		fprintf(stderr, "bench_nginx_fill: open %s: %s\n", argv[1],
			strerror(-ret));
		return 1;
	}
	for (uint32_t i = 0; i < n; i++) {
		int64_t rev;

		bench_entry(i, key, val);
		rev = shmreg_writer_put(w, key, 16, val, 64, NULL);
		if (rev < 0) {
			fprintf(stderr, "bench_nginx_fill: put %s: %s\n", key,
				strerror((int)-rev));
			shmreg_writer_close(w);
			return 1;
		}
	}
	shmreg_writer_close(w);
	return 0;
}
