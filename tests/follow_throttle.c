/* SPDX-License-Identifier: MIT */
/* Description: a reader that looked at the name while the writer had
 * retired the segment but not yet renamed its successor over the name
 * (the throttled follow found nothing newer) still finds a key put into
 * the successor right after: a miss on a retired segment looks at the name
 * again, unthrottled.  The window is made by hand: the test stores RETIRED
 * into the segment's state word itself, lets the reader look, and puts the
 * state back before the writer grows the index for real. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shmreg.h"
#include "shmreg_writer.h"
#include "layout.h"
#include "common/tc.h"

#define ROUNDS 20

/* The state word of the segment file at @path, mapped writable. */
static _Atomic uint32_t *state_word(const char *path, void **map)
{
	int fd = open(path, O_RDWR);

	TC_CHECK(fd >= 0, "open %s", path);
	*map = mmap(NULL, SHM_HEADER_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
		    fd, 0);
	TC_CHECK(*map != MAP_FAILED, "mmap");
	close(fd);
	return &((struct shm_hdr *)*map)->state;
}

int main(void)
{
	char seg[PATH_MAX];
	unsigned found = 0;

	tc_init("follow_throttle", 60);
	tc_dir();
	tc_path(seg, "shmreg.ft");
	for (int round = 0; round < ROUNDS; round++) {
		shmreg_writer_opts_t o = { .flags = SHMREG_WRITER_TRUNCATE,
					   .initial_entries = 8 };
		shmreg_writer_t *w;
		shmreg_t *r;
		shmreg_stats_t st0, st1;
		void *map;
		_Atomic uint32_t *state;
		char k[32], v[8];
		unsigned n = 0;

		TC_EQ(shmreg_writer_open("ft", &o, &w), 0, "writer open");
		TC_EQ(shmreg_open("ft", 0, &r), 0, "reader open");
		TC_EQ(shmreg_stats(r, &st0), 0, "stats");
		state = state_word(seg, &map);
		TC_EQ(atomic_load(state), SHM_STATE_OPEN, "state");
		/* the writer between its RETIRED store and the rename: the
		 * reader's miss looks at the name and finds the same file */
		atomic_store(state, SHM_STATE_RETIRED);
		TC_EQ(shmreg_get(r, "absent", 6, v, sizeof(v), NULL), -ENOENT,
		      "miss on the retired segment");
		atomic_store(state, SHM_STATE_OPEN);
		munmap(map, SHM_HEADER_SIZE);
		/* a real handoff, then a put into the successor */
		do {
			snprintf(k, sizeof(k), "fill/%u", n++);
			TC_CHECK(shmreg_writer_put(w, k, strlen(k), "f", 1,
						   NULL) > 0, "fill");
			TC_EQ(shmreg_stats(shmreg_writer_reader(w), &st1), 0,
			      "stats");
		} while (st1.generation == st0.generation);
		TC_CHECK(shmreg_writer_put(w, "new", 3, "n", 1, NULL) > 0,
			 "put new");
		/* the put returned: every get from now on sees it */
		TC_EQ(shmreg_get(r, "new", 3, v, sizeof(v), NULL), 1,
		      "get of a key put into the successor");
		TC_EQ(v[0], 'n', "value");
		found++;
		shmreg_close(r);
		shmreg_writer_close(w);
	}
	tc_log("%u rounds, the key found in each", found);
	TC_EQ(found, ROUNDS, "rounds");
	return 0;
}
