/* SPDX-License-Identifier: MIT */
/*
 * txn.c - pieces of the txn bodies batch.c and tree.c build (loop
 * thread): keys with the prefix and bytes as base64 JSON strings, and the
 * blank lease slots the request thread fills in (req.c).
 */
#include <stdlib.h>
#include <string.h>

#include "../daemon.h"
#include "internal.h"

/* b64 of @prefix + @mid + @key into @b as a JSON string's contents. */
void sb_key(struct sbuf *b, const struct mirror *m, const char *mid,
	    const uint8_t *key, size_t klen)
{
	size_t ml = strlen(mid), n = m->plen + ml + klen;
	uint8_t *k = malloc(n ? n : 1);
	char *s;

	if (!k) {
		b->oom = true;
		return;
	}
	memcpy(k, m->prefix, m->plen);
	memcpy(k + m->plen, mid, ml);
	memcpy(k + m->plen + ml, key, klen);
	s = mirror_b64(k, n);
	free(k);
	if (!s) {
		b->oom = true;
		return;
	}
	sb_add(b, "\"%s\"", s);
	free(s);
}

void sb_bytes(struct sbuf *b, const uint8_t *p, size_t n)
{
	char *s = mirror_b64(p, n);

	if (!s) {
		b->oom = true;
		return;
	}
	sb_add(b, "\"%s\"", s);
	free(s);
}

/* The lease put @o goes under, as (kind, id); MO_NONE: none. */
struct mblease mirror_put_lease(const struct conn *c,
				const struct proto_req *o)
{
	struct mblease l = { MO_NONE, 0 };

	if (o->u.put.owner_pid)
		l = (struct mblease){ MO_PID, (uint64_t)o->u.put.owner_pid };
	else if (o->u.put.flags & SHMREG_EPHEMERAL)
		l = (struct mblease){ MO_CONN, c->serial };
	else if (o->u.put.ttl_ns > 0)
		l = (struct mblease){ MO_TTL, mirror_ttl_s(o->u.put.ttl_ns) };
	return l;
}

/* The index of lease @l among @ls's (added when new), or MB_NO_LEASE. */
uint32_t mb_lease_index(struct mbleases *ls, struct mblease l)
{
	size_t i;

	if (l.kind == MO_NONE)
		return MB_NO_LEASE;
	/* bounded by the caller's keys: one lease per key at most */
	for (i = 0; i < ls->n; i++)
		if (ls->l[i].kind == l.kind && ls->l[i].id == l.id)
			return (uint32_t)i;
	ls->l[ls->n++] = l;
	return (uint32_t)i;
}

/* ,"lease": and a blank slot for lease @which (filled in by req.c) */
void sb_lease(struct sbuf *b, struct mbleases *ls, uint32_t which)
{
	if (which == MB_NO_LEASE)
		return;
	sb_add(b, ",\"lease\":");
	if (b->oom)
		return;
	ls->slot[ls->nslot].off = b->len;
	ls->slot[ls->nslot++].which = which;
	sb_add(b, "%*s", MB_LEASE_SLOT, "");
}

void sb_compare(struct sbuf *b, const struct mirror *m, const uint8_t *key,
		size_t klen, const struct mbcmp *c)
{
	sb_add(b, "{\"key\":");
	sb_key(b, m, "", key, klen);
	if (c->kind == MB_MOD || (c->kind == MB_SAME && c->rev))
		sb_add(b, ",\"target\":\"MOD\",\"result\":\"EQUAL\","
		       "\"mod_revision\":\"%llu\"}",
		       (unsigned long long)c->rev);
	else
		sb_add(b, ",\"target\":\"CREATE\",\"result\":\"%s\","
		       "\"create_revision\":\"0\"}",
		       c->kind == MB_EXISTS ? "GREATER" : "EQUAL");
}
