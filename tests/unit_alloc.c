/* SPDX-License-Identifier: MIT */
/* Description: the arena allocator - size classes, bump allocation until
 * the arena is exhausted, and FIFO reuse of freed blocks after the
 * quarantine. */
#include <errno.h>
#include <string.h>

#include "common/tc.h"
#include "../writer/internal.h"

int main(void)
{
	struct shm_geom g = { .arena_off = 8192, .arena_size = 64 * 1024 };
	struct alloc a;
	uint64_t off[64], prev = 0;

	tc_init("unit_alloc", 30);
	/* classes: monotone, cover every size, waste at most a third */
	for (uint64_t need = 1; need < (UINT64_C(1) << 26); need = need * 5 / 4 + 1) {
		uint64_t c = alloc_class_size(need);

		TC_CHECK(c >= need && c >= prev, "class of %lu is %lu", need, c);
		TC_CHECK(need < 64 || c <= need + need / 2,
			 "class %lu wastes too much for %lu", c, need);
		prev = c;
	}
	TC_EQ(alloc_class_size(UINT64_C(1) << 62), 0, "no class that large");

	memset(&a, 0, sizeof(a));
	alloc_reset(&a, g.arena_size);
	/* bump: 64 blocks of 1 KiB fill 64 KiB exactly, then -ENOSPC */
	for (int i = 0; i < 64; i++) {
		TC_EQ(alloc_block(&a, &g, 1024, &off[i]), 0, "alloc");
		TC_EQ(off[i], g.arena_off + 1024u * (unsigned)i, "bump order");
	}
	uint64_t x;
	TC_EQ(alloc_block(&a, &g, 1024, &x), -ENOSPC, "arena exhausted");
	TC_EQ(alloc_block(&a, &g, 64, &x), -ENOSPC, "no space for a small one");
	/* freed blocks come back first-freed-first */
	for (int i = 10; i < 30; i++)
		TC_EQ(alloc_release(&a, off[i], 1024), 0, "release");
	for (int i = 10; i < 30; i++) {
		TC_EQ(alloc_block(&a, &g, 1000, &x), 0, "reuse");
		TC_EQ(x, off[i], "FIFO order");
	}
	TC_EQ(alloc_block(&a, &g, 1024, &x), -ENOSPC, "all reused");
	TC_EQ(alloc_release(&a, off[0], 1000), -EINVAL,
	      "a size that is not a class is refused");

	/* quarantine: with room left, a lone freed block is not reused */
	alloc_reset(&a, g.arena_size);
	TC_EQ(alloc_block(&a, &g, 128, &off[0]), 0, "alloc");
	TC_EQ(alloc_release(&a, off[0], 128), 0, "release");
	TC_EQ(alloc_block(&a, &g, 128, &x), 0, "alloc");
	TC_CHECK(x != off[0], "fresh block while the FIFO is short");
	alloc_free_all(&a);
	return 0;
}
