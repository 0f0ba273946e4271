/* SPDX-License-Identifier: MIT */
/*
 * prefetch.h - start a cache miss ahead of the load that needs it.
 *
 * On x86-64 an asm statement, not __builtin_prefetch(): GCC 12 deleted the
 * builtin's prefetches from an inlined helper whose other results the
 * caller did not use (seen in the writer's put entry, whose only job there
 * is to start the slot's miss).  A volatile asm stays where it is written.
 * prefetcht0, not prefetchw: the latter is not in the x86-64 baseline.
 */
#ifndef SHM_PREFETCH_H
#define SHM_PREFETCH_H

static inline void shm_prefetch(const void *p)
{
#if defined(__x86_64__)
	__asm__ volatile("prefetcht0 %0" : : "m"(*(const char *)p));
#else
	__builtin_prefetch(p);
#endif
}

#endif /* SHM_PREFETCH_H */
