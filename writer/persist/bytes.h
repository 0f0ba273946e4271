/* SPDX-License-Identifier: MIT */
/*
 * bytes.h - fixed-width fields of the log and snapshot files, read from
 * any alignment.  The files are little-endian (docs/format.md), as is
 * every machine shmreg builds for; memcpy keeps the reads free of
 * alignment and aliasing assumptions about untrusted bytes.
 */
#ifndef WRITER_PERSIST_BYTES_H
#define WRITER_PERSIST_BYTES_H

#include <stdint.h>
#include <string.h>

static inline uint64_t rd64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static inline uint32_t rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static inline uint16_t rd16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return v;
}

#endif
