/* SPDX-License-Identifier: MIT */
/*
 * record.h - the log record: one committed change, self-checking
 * (docs/format.md, "Log and snapshot files", has the table).
 *
 * Every record is 8-byte aligned and padded with zeros to a multiple of 8:
 *
 *   off size
 *     0  4  magic       PREC_MAGIC
 *     4  4  len         bytes of the record without its padding, this
 *                       header included: PREC_HDR + klen + plen + alen + vlen
 *     8  8  check       XXH3-64 of bytes [16, len), seed = magic | len << 32
 *                       (so a bit flip in magic or len fails it too)
 *    16  8  rev         the change's revision, 1..WRITER_REV_MAX
 *    24  8  create_rev  PUT: the entry's create_rev (<= rev); else 0
 *    32  8  expires_at  PUT: CLOCK_REALTIME ns deadline, 0 = never; else 0
 *    40  4  vlen        PUT: value bytes
 *    44  2  klen        PUT, DEL: key bytes, 1..SHMREG_KEY_MAX; MARK: 0
 *    46  2  plen        PUT: parent key bytes, 0 = no parent
 *    48  2  alen        PUT: attribute bytes ("name\0value\0" pairs)
 *    50  1  nattrs      PUT: attribute pairs, 0..SHMREG_ATTRS_MAX
 *    51  1  op          PREC_PUT, PREC_DEL, PREC_MARK
 *    52  4  zero
 *    56     key, parent, attrs, value, then zero padding
 *
 * PREC_MARK carries no entry: it records a revision the registry reached
 * (readers may have seen it) so that recovery never starts below it.
 */
#ifndef WRITER_PERSIST_RECORD_H
#define WRITER_PERSIST_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "shmreg.h"
#include "validate.h"

#define PREC_MAGIC 0x31525253u /* "SRR1" little-endian */
#define PREC_HDR   56u
#define PREC_PUT   1u
#define PREC_DEL   2u
#define PREC_MARK  3u

/* Key + value bytes an entry without attributes or parent keeps in its
 * index slot (SHM_SLOT_INLINE): the rest needs arena room. */
#define PREC_INLINE_MAX 80u

/* Highest revision a record may carry: WRITER_REV_MAX (internal.h). */
#define PREC_REV_MAX ((uint64_t)INT64_MAX - UINT32_MAX)

/* The longest record: header, key, parent, attributes, value. */
#define PREC_MAX (PREC_HDR + 2u * SHMREG_KEY_MAX + SHM_ATTR_BYTES_MAX + \
		  SHMREG_VALUE_MAX)

/* A decoded record; the pointers point into the decoded bytes. */
struct prec {
	uint64_t rev, create_rev;
	int64_t expires_at;
	uint32_t op, klen, plen, alen, vlen, nattrs;
	const uint8_t *key, *parent, *attrs, *val;
};

/* Bytes a record with these lengths takes, padding included. */
static inline size_t prec_size(size_t klen, size_t plen, size_t alen,
			       size_t vlen)
{
	return (PREC_HDR + klen + plen + alen + vlen + 7) & ~(size_t)7;
}

/* Encode @r (its pointers name the bytes to copy) into @out, which has
 * prec_size() bytes.  Returns the bytes written. */
size_t prec_encode(uint8_t *out, const struct prec *r);

/* Decode the record at @p, of which @avail bytes are readable.  Returns
 * its padded size, 0 when @avail is too short for the length it claims
 * (or for a header), or -1 when the bytes are not a valid record (bad
 * magic, length, checksum, field or padding).  Never reads past @avail. */
long prec_decode(const uint8_t *p, size_t avail, struct prec *r);
/* The fields of a record prec_decode() accepted before (the same bytes,
 * unchanged since: a private read-only mapping), without checking again. */
void prec_fields(const uint8_t *p, struct prec *r);

/* Encode @n checked attributes as "name\0value\0" pairs into @out (room
 * for SHM_ATTR_BYTES_MAX bytes); returns the bytes. */
uint32_t prec_attrs_encode(uint8_t *out, const shmreg_attr_t *a, uint32_t n);
/* The inverse, into @a (SHMREG_ATTRS_MAX room), pointing into @enc; the
 * record decoder has checked the pairs. */
void prec_attrs_decode(const uint8_t *enc, uint32_t alen, uint32_t n,
		       shmreg_attr_t *a);

#endif /* WRITER_PERSIST_RECORD_H */
