/* SPDX-License-Identifier: MIT */
/*
 * record.c - encode and decode log records (layout in record.h).
 *
 * The decoder is the one place where bytes read from a data directory are
 * trusted: every length is checked against what is readable before it is
 * used, the checksum is verified before any field is believed, and the
 * fields must then be consistent with each other and with the limits of
 * shmreg.h, so a record that decodes is one the writer could have made.
 */
#include <string.h>

#include "bytes.h"
#include "hash.h"
#include "record.h"

static uint64_t check_of(const uint8_t *p, uint32_t len)
{
	return XXH3_64bits_withSeed(p + 16, len - 16,
				    PREC_MAGIC | (uint64_t)len << 32);
}

size_t prec_encode(uint8_t *out, const struct prec *r)
{
	uint32_t len = PREC_HDR + r->klen + r->plen + r->alen + r->vlen;
	size_t size = prec_size(r->klen, r->plen, r->alen, r->vlen);
	uint16_t k = (uint16_t)r->klen, pl = (uint16_t)r->plen,
		 al = (uint16_t)r->alen;
	uint32_t magic = PREC_MAGIC;
	uint8_t *d = out + PREC_HDR;
	uint64_t check;

	memset(out, 0, PREC_HDR);
	memset(out + size - 8, 0, 8); /* the padding */
	memcpy(out, &magic, 4);
	memcpy(out + 4, &len, 4);
	memcpy(out + 16, &r->rev, 8);
	memcpy(out + 24, &r->create_rev, 8);
	memcpy(out + 32, &r->expires_at, 8);
	memcpy(out + 40, &r->vlen, 4);
	memcpy(out + 44, &k, 2);
	memcpy(out + 46, &pl, 2);
	memcpy(out + 48, &al, 2);
	out[50] = (uint8_t)r->nattrs;
	out[51] = (uint8_t)r->op;
	if (r->klen)
		memcpy(d, r->key, r->klen);
	d += r->klen;
	if (r->plen)
		memcpy(d, r->parent, r->plen);
	d += r->plen;
	if (r->alen)
		memcpy(d, r->attrs, r->alen);
	d += r->alen;
	if (r->vlen)
		memcpy(d, r->val, r->vlen);
	check = check_of(out, len);
	memcpy(out + 8, &check, 8);
	return size;
}

/* @n "name\0value\0" pairs filling exactly @alen bytes at @a, each within
 * the limits of shm_check_attr(). */
static int attrs_ok(const uint8_t *a, uint32_t alen, uint32_t n)
{
	const uint8_t *end = a + alen;

	for (uint32_t i = 0; i < n; i++) {
		for (int part = 0; part < 2; part++) {
			size_t max = part ? SHMREG_ATTR_VALUE_MAX
					  : SHMREG_ATTR_NAME_MAX;
			const uint8_t *z = memchr(a, 0, (size_t)(end - a));

			if (!z || (size_t)(z - a) > max)
				return -1;
			if (!part && (z == a || memchr(a, '=', (size_t)(z - a))))
				return -1;
			a = z + 1;
		}
	}
	return a == end ? 0 : -1;
}

/* The fields of a checksummed record agree with its op and the limits. */
static int fields_ok(const uint8_t *p, const struct prec *r)
{
	if (rd32(p + 52) != 0 || r->rev == 0 || r->rev > PREC_REV_MAX)
		return -1;
	switch (r->op) {
	case PREC_PUT:
		if (r->klen == 0 || r->klen > SHMREG_KEY_MAX ||
		    r->plen > SHMREG_KEY_MAX || r->vlen > SHMREG_VALUE_MAX ||
		    r->nattrs > SHMREG_ATTRS_MAX ||
		    r->alen > SHM_ATTR_BYTES_MAX || r->create_rev == 0 ||
		    r->create_rev > r->rev || r->expires_at < 0)
			return -1;
		return attrs_ok(r->attrs, r->alen, r->nattrs);
	case PREC_DEL:
		if (r->klen == 0 || r->klen > SHMREG_KEY_MAX)
			return -1;
		break;
	case PREC_MARK:
		if (r->klen)
			return -1;
		break;
	default:
		return -1;
	}
	/* DEL and MARK carry nothing else */
	return r->plen || r->alen || r->vlen || r->nattrs || r->create_rev ||
	       r->expires_at ? -1 : 0;
}

long prec_decode(const uint8_t *p, size_t avail, struct prec *r)
{
	uint32_t len;
	size_t size;

	if (avail < PREC_HDR)
		return 0;
	if (rd32(p) != PREC_MAGIC)
		return -1;
	len = rd32(p + 4);
	if (len < PREC_HDR || len > PREC_MAX)
		return -1;
	size = ((size_t)len + 7) & ~(size_t)7;
	if (size > avail)
		return 0;
	if (check_of(p, len) != rd64(p + 8))
		return -1;
	for (size_t i = len; i < size; i++)
		if (p[i])
			return -1;
	prec_fields(p, r);
	if ((uint64_t)PREC_HDR + r->klen + r->plen + r->alen + r->vlen != len)
		return -1;
	if (fields_ok(p, r) < 0)
		return -1;
	return (long)size;
}

void prec_fields(const uint8_t *p, struct prec *r)
{
	r->rev = rd64(p + 16);
	r->create_rev = rd64(p + 24);
	r->expires_at = (int64_t)rd64(p + 32);
	r->vlen = rd32(p + 40);
	r->klen = rd16(p + 44);
	r->plen = rd16(p + 46);
	r->alen = rd16(p + 48);
	r->nattrs = p[50];
	r->op = p[51];
	r->key = p + PREC_HDR;
	r->parent = r->key + r->klen;
	r->attrs = r->parent + r->plen;
	r->val = r->attrs + r->alen;
}

uint32_t prec_attrs_encode(uint8_t *out, const shmreg_attr_t *a, uint32_t n)
{
	uint32_t len = 0;

	for (uint32_t i = 0; i < n; i++) {
		size_t nl = strlen(a[i].name) + 1, vl = strlen(a[i].value) + 1;

		memcpy(out + len, a[i].name, nl);
		len += (uint32_t)nl;
		memcpy(out + len, a[i].value, vl);
		len += (uint32_t)vl;
	}
	return len;
}

void prec_attrs_decode(const uint8_t *enc, uint32_t alen, uint32_t n,
		       shmreg_attr_t *a)
{
	const char *s = (const char *)enc;

	(void)alen;
	for (uint32_t i = 0; i < n; i++) {
		a[i].name = s;
		s += strlen(s) + 1;
		a[i].value = s;
		s += strlen(s) + 1;
	}
}
