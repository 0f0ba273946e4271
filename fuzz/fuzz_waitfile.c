/* SPDX-License-Identifier: MIT */
/*
 * fuzz_waitfile.c - libFuzzer target: the wait file as the writer sees it.
 *
 * Readers map SEGMENT.wait read-write (writer/notify.c), so every byte of
 * it is input the writer must survive: each input is written as the wait
 * file of a registry path of its own, then the writer's side runs on it
 * exactly as a writer would - notify_open (which vets, re-modes, reserves
 * and maps the file, restoring a scribbled identity line), notify_key for
 * hashes drawn from the input (every slot that input marks as having
 * waiters is reached, and bit 0 "someone sleeps" makes it FUTEX_WAKE), then
 * notify_all and notify_close.  Nothing may crash, fault (a short file is
 * grown, never mapped past its end), read out of bounds (ASan), hit
 * undefined behaviour (UBSan) or loop without bound (-timeout): the CAS
 * loop on a scribbled word gives up after 8 tries.  notify_open may refuse
 * the file (-errno); it must not fail for a regular file of ours whatever
 * it holds.
 *
 * Linked into fuzz/replay.c as well, which replays the seed corpus in
 * every ctest run.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../writer/notify.h"
#include "wait_layout.h"
#include "fuzz_tmp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fz_seg[PATH_MAX + 16], fz_wait[PATH_MAX + 32];

/* At exit (fuzz_tmp.h): the wait file goes, then the directory. */
static void fz_unlink(void)
{
	if (fz_wait[0])
		unlink(fz_wait);
}

/* The private directory (fuzz_tmp.h) and the registry path in it. */
static int fz_setup(void)
{
	if (fz_tmp_setup("shmreg-fuzzw", "seg", fz_seg, sizeof(fz_seg),
			 fz_unlink) < 0)
		return -1;
	if (!fz_wait[0])
		snprintf(fz_wait, sizeof(fz_wait), "%s.wait", fz_seg);
	return 0;
}

/* A hash whose top bits pick wait slot @slot (shm_wait_slot_of). */
static uint64_t fz_hash_of_slot(uint32_t slot, uint64_t low)
{
	return ((uint64_t)slot << (64 - SHM_WAIT_SLOT_BITS)) |
	       (low & ((UINT64_C(1) << (64 - SHM_WAIT_SLOT_BITS)) - 1));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct notify *n = NULL;
	int rc;

	if (fz_setup() < 0 || fz_write(fz_wait, 0600, data, size) < 0)
		abort();
	rc = notify_open(&n, fz_seg, 0600);
	if (rc < 0) {
		/* a regular file of ours, whatever its bytes, is adopted:
		 * only resource errors may refuse it */
		if (rc != -ENOMEM && rc != -ENOSPC && rc != -EMFILE) {
			fprintf(stderr, "fuzz_waitfile: notify_open: %d\n", rc);
			abort();
		}
		unlink(fz_wait);
		return 0;
	}
	/* the slots the input wrote to (those with waiters are woken), and
	 * hashes taken from the input's bytes */
	for (size_t off = SHM_WAIT_HDR_SIZE; off + SHM_WAIT_SLOT_SIZE <= size &&
	     off < SHM_WAIT_FILE_SIZE; off += SHM_WAIT_SLOT_SIZE) {
		uint64_t v;

		memcpy(&v, data + off, sizeof(v));
		if (v)
			notify_key(n, fz_hash_of_slot(
				(uint32_t)((off - SHM_WAIT_HDR_SIZE) /
					   SHM_WAIT_SLOT_SIZE), v));
	}
	for (size_t off = 0; off + 8 <= size && off < 512; off += 8) {
		uint64_t h;

		memcpy(&h, data + off, sizeof(h));
		notify_key(n, h);
	}
	notify_key(n, 0);
	notify_key(n, UINT64_MAX);
	notify_all(n);
	notify_close(n);
	unlink(fz_wait);
	return 0;
}
