/* SPDX-License-Identifier: MIT */
/*
 * d_tag.h - the alignment of the objects an io_uring completion names.
 *
 * shmregd's user_data is a pointer with a D_TAG_* (daemon.h) in its low
 * four bits, so every object submitted with a tag must be 16-byte aligned.
 * Declaring its struct D_TAGGED makes that true for statics, members and
 * arrays; malloc's own alignment (16 on x86-64 and arm64 glibc) covers the
 * heap.
 */
#ifndef SHMREGD_D_TAG_H
#define SHMREGD_D_TAG_H

#define D_TAGGED __attribute__((aligned(16)))

#endif
