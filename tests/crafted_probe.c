/* SPDX-License-Identifier: MIT */
/* Description: a crafted segment cannot make a get walk further than the
 * writer's probe limit.  Every slot of a 2^18-slot index is filled with a
 * valid-looking entry of another key (no empty slot anywhere), and then
 * shift_seq is also held odd so that every walk is retried: a get of an
 * absent key must answer within the bound that SHM_PROBE_LIMIT and the
 * retry budget give, not one that grows with the index.  Before the
 * limit, a walk went as far as a max_probe field read from the file said:
 * here the whole index, on each of 320 attempts (about 84 M slot reads,
 * seconds of CPU), against 328 K with the limit. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/tc.h"
#include "shmreg.h"
#include "shmreg_writer.h"
#include "hash.h"
#include "layout.h"

#define ENTRIES (3u << 16) /* pre-sized: an index of 2^18 slots */

static double cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Fill every slot with an inline entry of an 8-byte key whose tag can
 * match no key of the test (and hold shift_seq at @shift). */
static uint64_t craft(const char *path, uint32_t shift)
{
	struct stat st;
	struct shm_hdr *h;
	uint8_t *base;
	int fd = open(path, O_RDWR);

	TC_CHECK(fd >= 0 && fstat(fd, &st) == 0, "open %s", path);
	base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE,
		    MAP_SHARED, fd, 0);
	TC_CHECK(base != MAP_FAILED, "mmap");
	h = (struct shm_hdr *)base;
	for (uint64_t i = 0; i < h->index_cap; i++) {
		struct shm_slot *s = (struct shm_slot *)(base + h->index_off +
							 i * SHM_SLOT_SIZE);

		memset(s, 0, sizeof(*s));
		s->tag = 0x5a5a5a5a;
		s->klen = 8;
		s->kind = SHM_KIND_INLINE;
		memcpy(s->data, "crafted!", 8);
	}
	atomic_store(&h->shift_seq, shift);
	uint64_t cap = h->index_cap;

	munmap(base, (size_t)st.st_size);
	close(fd);
	return cap;
}

static void probe(const char *path, uint32_t shift, ssize_t want1,
		  ssize_t want2)
{
	shmreg_t *r;
	char buf[64];
	double t0, ms;
	ssize_t n;

	craft(path, shift);
	TC_EQ(shmreg_open(path, 0, &r), 0, "open crafted");
	t0 = cpu_ms();
	n = shmreg_get(r, "absent-key", 10, buf, sizeof(buf), NULL);
	ms = cpu_ms() - t0;
	tc_log("shift_seq %u: get returned %zd after %.1f ms of CPU", shift,
	       n, ms);
	TC_CHECK(n == want1 || n == want2, "get of an absent key: %zd", n);
	/* the limit bounds the walk at 1,025 slots; 320 attempts of those
	 * take a few ms here (250 ms leaves room for a sanitizer build and
	 * a busy machine); the whole index 320 times takes seconds */
	TC_CHECK(ms < 250, "get took %.1f ms of CPU: the walk is not bounded "
		 "by SHM_PROBE_LIMIT", ms);
	shmreg_close(r);
}

int main(void)
{
	shmreg_writer_opts_t o = { .initial_entries = ENTRIES };
	shmreg_writer_t *w;
	char path[4096];

	tc_path(path, "shmreg.crafted");
	TC_EQ(shmreg_writer_open(path, &o, &w), 0, "writer");
	TC_CHECK(shmreg_writer_put(w, "present", 7, "v", 1, NULL) > 0, "put");
	shmreg_writer_close(w);
	TC_CHECK(SHM_PROBE_LIMIT + 1 < (1u << 18), "the index is larger than "
		 "the walk bound");

	/* no empty slot anywhere: one walk of SHM_PROBE_LIMIT + 1 slots,
	 * then a confirmed absence */
	probe(path, 0, -ENOENT, -ENOENT);
	/* and every walk retried as if a shift were in progress: the retry
	 * budget runs out (-EAGAIN; -EOWNERDEAD: no writer) */
	probe(path, 1, -EAGAIN, -EOWNERDEAD);
	tc_log("pass");
	return 0;
}
