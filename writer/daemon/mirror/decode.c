/* SPDX-License-Identifier: MIT */
/*
 * decode.c - etcd v3 gateway JSON replies into plain structs.  Nothing here
 * trusts the input: cJSON parses (it bounds its own nesting), and each field
 * is checked for its type and range before use.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "decode.h"

/* ---- base64 ---- */

static const char b64[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t mdec_b64_len(size_t n)
{
	return (n + 2) / 3 * 4;
}

void mdec_b64_encode(const uint8_t *in, size_t n, char *out)
{
	size_t i, o = 0;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
			     in[i + 2];

		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = b64[(v >> 6) & 63];
		out[o++] = b64[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)in[i] << 16;

		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	out[o] = 0;
}

static int b64_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Strict decode (padded, length a multiple of 4) into a malloc'd buffer;
 * the empty string is NULL, 0. */
static int b64_decode(const char *s, uint8_t **out, size_t *outlen)
{
	size_t n = strlen(s), o = 0, pad = 0;
	uint8_t *p;

	*out = NULL;
	*outlen = 0;
	if (n == 0)
		return 0;
	if (n % 4 || n / 4 * 3 > MDEC_BYTES_MAX + 3)
		return -EPROTO;
	if (s[n - 1] == '=')
		pad = s[n - 2] == '=' ? 2 : 1;
	p = malloc(n / 4 * 3);
	if (!p)
		return -ENOMEM;
	for (size_t i = 0; i < n; i += 4) {
		int v[4];
		bool last = i + 4 == n;

		for (int k = 0; k < 4; k++) {
			if (last && k >= 4 - (int)pad) {
				v[k] = 0;
				continue;
			}
			v[k] = b64_val((unsigned char)s[i + k]);
			if (v[k] < 0) {
				free(p);
				return -EPROTO;
			}
		}
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 |
			     (uint32_t)v[2] << 6 | (uint32_t)v[3];
		p[o++] = (uint8_t)(w >> 16);
		if (!last || pad < 2)
			p[o++] = (uint8_t)(w >> 8);
		if (!last || pad < 1)
			p[o++] = (uint8_t)w;
	}
	*out = p;
	*outlen = o;
	return 0;
}

/* ---- fields ---- */

/* An int64 field: absent is 0; a string of digits or an integral number
 * in [min, MDEC_REV_MAX]. */
static int get_i64(const cJSON *o, const char *name, int64_t min,
		   int64_t *out)
{
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
	int64_t v = 0;

	*out = 0;
	if (!f)
		return 0;
	if (cJSON_IsString(f)) {
		const char *s = f->valuestring;
		bool neg = *s == '-';

		if (neg)
			s++;
		if (!*s || strlen(s) > 19)
			return -EPROTO;
		for (; *s; s++) {
			if (*s < '0' || *s > '9')
				return -EPROTO;
			if (v > (MDEC_REV_MAX - (*s - '0')) / 10)
				return -EPROTO;
			v = v * 10 + (*s - '0');
		}
		if (neg)
			v = -v;
	} else if (cJSON_IsNumber(f)) {
		double d = f->valuedouble;

		if (!(d >= -1e15 && d <= 1e15) || d != (double)(int64_t)d)
			return -EPROTO;
		v = (int64_t)d;
	} else {
		return -EPROTO;
	}
	if (v < min)
		return -EPROTO;
	*out = v;
	return 0;
}

static int get_bool(const cJSON *o, const char *name, bool *out)
{
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);

	*out = false;
	if (!f)
		return 0;
	if (!cJSON_IsBool(f))
		return -EPROTO;
	*out = cJSON_IsTrue(f);
	return 0;
}

static int get_bytes(const cJSON *o, const char *name, uint8_t **p,
		     size_t *n)
{
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);

	*p = NULL;
	*n = 0;
	if (!f)
		return 0;
	if (!cJSON_IsString(f))
		return -EPROTO;
	return b64_decode(f->valuestring, p, n);
}

/* An object member, or NULL when absent; -EPROTO in *err when present but
 * not an object. */
static const cJSON *get_obj(const cJSON *o, const char *name, int *err)
{
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);

	if (f && !cJSON_IsObject(f)) {
		*err = -EPROTO;
		return NULL;
	}
	return f;
}

void mkv_free(struct mkv *kv)
{
	free(kv->key);
	free(kv->val);
	memset(kv, 0, sizeof(*kv));
}

static int parse_kv(const cJSON *o, struct mkv *kv)
{
	int rc;

	memset(kv, 0, sizeof(*kv));
	if (!cJSON_IsObject(o))
		return -EPROTO;
	rc = get_bytes(o, "key", &kv->key, &kv->klen);
	if (rc == 0)
		rc = get_bytes(o, "value", &kv->val, &kv->vlen);
	if (rc == 0)
		rc = get_i64(o, "create_revision", 0, &kv->create_rev);
	if (rc == 0)
		rc = get_i64(o, "mod_revision", 0, &kv->mod_rev);
	if (rc == 0)
		rc = get_i64(o, "lease", 0, &kv->lease);
	/* every kv etcd sends has a key and a revision */
	if (rc == 0 && (kv->klen == 0 || kv->mod_rev <= 0 ||
			kv->create_rev > kv->mod_rev))
		rc = -EPROTO;
	if (rc)
		mkv_free(kv);
	return rc;
}

static cJSON *parse(const char *json, size_t len)
{
	return len ? cJSON_ParseWithLength(json, len) : NULL;
}

static int header_rev(const cJSON *o, int64_t *rev)
{
	int err = 0;
	const cJSON *h = get_obj(o, "header", &err);

	*rev = 0;
	if (err)
		return err;
	return h ? get_i64(h, "revision", 0, rev) : 0;
}

/* ---- watch ---- */

void mdec_watch_free(struct mwatch *w)
{
	for (size_t i = 0; i < w->nev; i++)
		mkv_free(&w->ev[i].kv);
	free(w->ev);
	w->ev = NULL;
	w->nev = 0;
}

static int watch_events(const cJSON *arr, struct mwatch *w)
{
	int n = cJSON_GetArraySize(arr);
	const cJSON *e;

	if (n <= 0)
		return 0;
	w->ev = calloc((size_t)n, sizeof(*w->ev));
	if (!w->ev)
		return -ENOMEM;
	cJSON_ArrayForEach(e, arr) {
		const cJSON *t, *kv;
		struct mev *ev = &w->ev[w->nev];
		int rc;

		if (!cJSON_IsObject(e))
			return -EPROTO;
		t = cJSON_GetObjectItemCaseSensitive(e, "type");
		if (t && !(cJSON_IsString(t) &&
			   (!strcmp(t->valuestring, "PUT") ||
			    !strcmp(t->valuestring, "DELETE"))))
			return -EPROTO;
		ev->del = t && !strcmp(t->valuestring, "DELETE");
		kv = cJSON_GetObjectItemCaseSensitive(e, "kv");
		rc = parse_kv(kv, &ev->kv);
		if (rc)
			return rc;
		w->nev++;
		/* events of one message come in revision order */
		if (w->nev > 1 && ev->kv.mod_rev < w->ev[w->nev - 2].kv.mod_rev)
			return -EPROTO;
	}
	return 0;
}

int mdec_watch(const char *json, size_t len, struct mwatch *out)
{
	cJSON *root = parse(json, len);
	const cJSON *res, *evs, *err;
	bool created = false, canceled = false;
	int rc = 0, e2 = 0;

	memset(out, 0, sizeof(*out));
	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return -EPROTO;
	}
	err = cJSON_GetObjectItemCaseSensitive(root, "error");
	if (err) {
		int64_t code = 0;

		out->kind = MW_ERROR;
		if (!cJSON_IsObject(err) ||
		    get_i64(err, "grpc_code", 0, &code) || code > 255)
			rc = -EPROTO;
		out->err_code = (int)code;
		cJSON_Delete(root);
		return rc;
	}
	res = get_obj(root, "result", &e2);
	if (!res || e2) {
		cJSON_Delete(root);
		return -EPROTO;
	}
	rc = header_rev(res, &out->header_rev);
	if (rc == 0)
		rc = get_bool(res, "created", &created);
	if (rc == 0)
		rc = get_bool(res, "canceled", &canceled);
	if (rc == 0)
		rc = get_i64(res, "compact_revision", 0, &out->compact_rev);
	evs = cJSON_GetObjectItemCaseSensitive(res, "events");
	if (rc == 0 && evs) {
		if (!cJSON_IsArray(evs))
			rc = -EPROTO;
		else
			rc = watch_events(evs, out);
	}
	if (rc == 0) {
		if (canceled)
			out->kind = MW_CANCELED;
		else if (out->nev)
			out->kind = MW_EVENTS;
		else if (created)
			out->kind = MW_CREATED;
		else
			out->kind = MW_PROGRESS;
		/* a message's events are at or below its header revision */
		if (out->nev && out->header_rev &&
		    out->ev[out->nev - 1].kv.mod_rev > out->header_rev)
			rc = -EPROTO;
	}
	cJSON_Delete(root);
	if (rc)
		mdec_watch_free(out);
	return rc;
}

/* ---- range ---- */

void mdec_range_free(struct mrange *r)
{
	for (size_t i = 0; i < r->nkv; i++)
		mkv_free(&r->kvs[i]);
	free(r->kvs);
	r->kvs = NULL;
	r->nkv = 0;
}

int mdec_range(const char *json, size_t len, struct mrange *out)
{
	cJSON *root = parse(json, len);
	const cJSON *kvs, *kv;
	int rc, n;

	memset(out, 0, sizeof(*out));
	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return -EPROTO;
	}
	rc = header_rev(root, &out->header_rev);
	if (rc == 0)
		rc = get_bool(root, "more", &out->more);
	if (rc == 0 && out->header_rev <= 0)
		rc = -EPROTO; /* a range always has a header */
	kvs = cJSON_GetObjectItemCaseSensitive(root, "kvs");
	if (rc == 0 && kvs) {
		if (!cJSON_IsArray(kvs))
			rc = -EPROTO;
		n = rc ? 0 : cJSON_GetArraySize(kvs);
		if (n > 0) {
			out->kvs = calloc((size_t)n, sizeof(*out->kvs));
			if (!out->kvs)
				rc = -ENOMEM;
		}
		if (rc == 0) {
			cJSON_ArrayForEach(kv, kvs) {
				rc = parse_kv(kv, &out->kvs[out->nkv]);
				if (rc)
					break;
				out->nkv++;
				if (out->kvs[out->nkv - 1].mod_rev >
				    out->header_rev) {
					rc = -EPROTO;
					break;
				}
			}
		}
	}
	cJSON_Delete(root);
	if (rc)
		mdec_range_free(out);
	return rc;
}

/* ---- writes, leases, errors ---- */

int mdec_write(const char *json, size_t len, int64_t *rev, int64_t *deleted,
	       bool *succeeded)
{
	cJSON *root = parse(json, len);
	int rc;

	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return -EPROTO;
	}
	rc = header_rev(root, rev);
	if (rc == 0 && *rev <= 0)
		rc = -EPROTO;
	if (rc == 0 && deleted)
		rc = get_i64(root, "deleted", 0, deleted);
	if (rc == 0 && succeeded)
		rc = get_bool(root, "succeeded", succeeded);
	cJSON_Delete(root);
	return rc;
}

int mdec_txn_ranges(const char *json, size_t len, int64_t *rev,
		    bool *succeeded, int64_t *mod_revs, size_t n)
{
	cJSON *root = parse(json, len);
	const cJSON *arr, *e;
	size_t i = 0;
	int rc;

	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return -EPROTO;
	}
	rc = header_rev(root, rev);
	if (rc == 0 && *rev <= 0)
		rc = -EPROTO;
	if (rc == 0)
		rc = get_bool(root, "succeeded", succeeded);
	if (rc || *succeeded) {
		cJSON_Delete(root);
		return rc;
	}
	arr = cJSON_GetObjectItemCaseSensitive(root, "responses");
	/* one answer per range asked (none asked: the array may be absent) */
	if ((arr && !cJSON_IsArray(arr)) ||
	    (size_t)cJSON_GetArraySize(arr) != n)
		rc = -EPROTO;
	if (rc)
		arr = NULL;
	cJSON_ArrayForEach(e, arr) {
		const cJSON *rr = NULL, *kvs = NULL;
		struct mkv kv;

		if (!cJSON_IsObject(e) ||
		    !(rr = get_obj(e, "response_range", &rc)))
			rc = rc ? rc : -EPROTO;
		if (rc == 0) {
			kvs = cJSON_GetObjectItemCaseSensitive(rr, "kvs");
			if (kvs && (!cJSON_IsArray(kvs) ||
				    cJSON_GetArraySize(kvs) > 1))
				rc = -EPROTO; /* a range of one key */
		}
		if (rc)
			break;
		mod_revs[i] = 0; /* no kv: the key is absent */
		if (kvs && kvs->child) {
			rc = parse_kv(kvs->child, &kv);
			if (rc)
				break;
			mod_revs[i] = kv.mod_rev;
			mkv_free(&kv);
		}
		i++;
	}
	cJSON_Delete(root);
	return rc;
}

int mdec_lease(const char *json, size_t len, int64_t *id, int64_t *ttl)
{
	cJSON *root = parse(json, len);
	const cJSON *o;
	int rc, err = 0;

	*id = *ttl = 0;
	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return -EPROTO;
	}
	o = get_obj(root, "result", &err);
	if (!o)
		o = root;
	rc = err;
	if (rc == 0)
		rc = get_i64(o, "ID", 0, id);
	if (rc == 0)
		rc = get_i64(o, "TTL", -1, ttl);
	cJSON_Delete(root);
	return rc;
}

int mdec_error_code(const char *json, size_t len)
{
	cJSON *root = parse(json, len);
	const cJSON *o;
	int64_t code = 0;
	int err = 0;

	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return 0;
	}
	o = get_obj(root, "error", &err);
	if (!o || err)
		o = root;
	if (get_i64(o, "code", 0, &code) || code > 255)
		code = 0;
	if (!code && o != root && get_i64(o, "grpc_code", 0, &code))
		code = 0;
	cJSON_Delete(root);
	return code > 255 ? 0 : (int)code;
}

/* ---- attribute sidecars ---- */

int mdec_attrs(const uint8_t *p, size_t n, shmreg_attr_t *a, unsigned max)
{
	size_t off = 0;
	unsigned k = 0;

	/* bounded by n: each round consumes at least two bytes */
	while (off < n) {
		const uint8_t *name = p + off, *val, *z;

		z = memchr(name, 0, n - off);
		if (!z || z == name || k == max)
			return -EPROTO;
		off = (size_t)(z - p) + 1;
		if (off >= n)
			return -EPROTO; /* a name without its value */
		val = p + off;
		z = memchr(val, 0, n - off);
		if (!z)
			return -EPROTO;
		off = (size_t)(z - p) + 1;
		a[k].name = (const char *)name;
		a[k].value = (const char *)val;
		k++;
	}
	return (int)k;
}

size_t mdec_link_encode(const uint8_t *parent, size_t plen,
			const uint8_t *child, size_t clen, uint8_t *out)
{
	char len[24];
	int n = snprintf(len, sizeof(len), "%zu/", plen);

	if (out) {
		memcpy(out, len, (size_t)n);
		memcpy(out + n, parent, plen);
		out[(size_t)n + plen] = '/';
		memcpy(out + (size_t)n + plen + 1, child, clen);
	}
	return (size_t)n + plen + 1 + clen;
}

int mdec_link(const uint8_t *p, size_t n, const uint8_t **parent,
	      size_t *plen, const uint8_t **child, size_t *clen)
{
	size_t off = 0, len = 0;

	/* the length: decimal digits, no leading zero, then '/' (at most
	 * 10 digits: nothing this long fits a request anyway) */
	while (off < n && off < 10 && p[off] >= '0' && p[off] <= '9')
		len = len * 10 + (size_t)(p[off++] - '0');
	if (off == 0 || off >= n || p[off] != '/' ||
	    (p[0] == '0' && off > 1) || len == 0)
		return -EPROTO;
	off++;
	if (len > n - off || n - off - len < 2 || p[off + len] != '/')
		return -EPROTO; /* no '/' after it, or no child */
	*parent = p + off;
	*plen = len;
	*child = p + off + len + 1;
	*clen = n - off - len - 1;
	return 0;
}

/* A decimal number of @p[*off..n) up to '/' or the end, at most @max (no
 * sign, no leading zero): 0 or -EPROTO. */
static int owner_num(const uint8_t *p, size_t n, size_t *off, uint64_t max,
		     uint64_t *v)
{
	size_t start = *off;

	*v = 0;
	/* bounded by n */
	while (*off < n && p[*off] >= '0' && p[*off] <= '9') {
		unsigned d = (unsigned)(p[*off] - '0');

		if (*v > (max - d) / 10)
			return -EPROTO;
		*v = *v * 10 + d;
		(*off)++;
	}
	if (*off == start || (p[start] == '0' && *off - start > 1))
		return -EPROTO;
	return 0;
}

int mdec_owner(const uint8_t *p, size_t n, struct mowner_rec *o)
{
	size_t off;
	uint64_t v;

	memset(o, 0, sizeof(*o));
	if (n > 4 && !memcmp(p, "pid/", 4)) {
		off = 4;
		if (owner_num(p, n, &off, INT32_MAX, &v) < 0 || v == 0 ||
		    off >= n || p[off] != '/')
			return -EPROTO;
		o->pid = (int32_t)v;
		off++;
		if (owner_num(p, n, &off, UINT64_MAX, &o->start) < 0 ||
		    off != n)
			return -EPROTO;
		return 0;
	}
	if (n > 5 && !memcmp(p, "conn/", 5)) {
		off = 5;
		if (owner_num(p, n, &off, UINT64_MAX, &o->serial) < 0 ||
		    off != n)
			return -EPROTO;
		o->conn = true;
		return 0;
	}
	return -EPROTO;
}
