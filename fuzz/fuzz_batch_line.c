/* SPDX-License-Identifier: MIT */
/*
 * fuzz_batch_line.c - libFuzzer target: the line parser of "shmregctl
 * batch" (reader/ctl/batch_line.c) against arbitrary bytes.
 *
 * The input is one line.  Beyond "no crash, no out-of-bounds access":
 * only the documented results (1, 0, -EINVAL, -E2BIG with a message); an
 * operation's key, value, parent and attributes lie inside the scratch
 * buffer and pass the library's own checks (shm/validate.h), so what the
 * parser accepts a batch accepts; and the operation written back as a
 * line with every byte escaped parses to the same operation.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch_line.h"
#include "validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(...)                                                            \
	do {                                                                 \
		fprintf(stderr, "fuzz_batch_line: " __VA_ARGS__);            \
		fputc('\n', stderr);                                         \
		abort();                                                     \
	} while (0)

static void inside(const char *p, size_t n, const char *s, size_t cap,
		   const char *what)
{
	if (n && (p < s || p + n > s + cap))
		FAIL("%s outside the scratch buffer", what);
}

/* A word with every byte as \xHH: the parser's escapes, exercised. */
static char *word(char *o, const char *p, size_t n)
{
	*o++ = ' ';
	*o++ = '"';
	for (size_t i = 0; i < n; i++)
		o += sprintf(o, "\\x%02x", (unsigned char)p[i]);
	*o++ = '"';
	return o;
}

static char *text(char *o, const char *s)
{
	size_t n = strlen(s);

	memcpy(o, s, n);
	return o + n;
}

static char *attr(char *o, const shmreg_attr_t *a)
{
	char tmp[SHMREG_ATTR_NAME_MAX + SHMREG_ATTR_VALUE_MAX + 2];
	int n = snprintf(tmp, sizeof(tmp), "%s=%s", a->name, a->value);

	return word(o, tmp, (size_t)n);
}

/* @op back as a line (4 bytes per escaped byte, plus the words). */
static size_t unparse(const struct bl_op *op, char *o0)
{
	char *o = o0, num[48];

	switch (op->kind) {
	case BL_PUT:
		o = text(o, "put");
		break;
	case BL_DEL:
		o = text(o, "del");
		break;
	case BL_DEL_TREE:
		o = text(o, "del --recursive");
		break;
	case BL_ATTRS:
		o = text(o, "attrs");
		break;
	}
	o = word(o, op->key, op->klen);
	if (op->kind == BL_ATTRS)
		for (unsigned i = 0; i < op->nattrs; i++)
			o = attr(o, &op->attrs[i]);
	if (op->kind != BL_PUT)
		return (size_t)(o - o0);
	o = word(o, op->val, op->vlen);
	for (unsigned i = 0; i < op->nattrs; i++) {
		o = text(o, " --attr");
		o = attr(o, &op->attrs[i]);
	}
	if (op->opts.parent) {
		o = text(o, " --parent");
		o = word(o, op->opts.parent, op->opts.parent_len);
	}
	if (op->opts.ttl_ns) {
		snprintf(num, sizeof(num), " --ttl %lldms",
			 (long long)(op->opts.ttl_ns / 1000000));
		/* sub-millisecond TTLs are not written back exactly */
		if (op->opts.ttl_ns % 1000000 == 0)
			o = text(o, num);
	}
	if (op->opts.owner_pid) {
		snprintf(num, sizeof(num), " --owner %d",
			 (int)op->opts.owner_pid);
		o = text(o, num);
	}
	if (op->opts.expect_rev == SHMREG_REV_ABSENT) {
		o = text(o, " --expect-rev absent");
	} else if (op->opts.expect_rev) {
		snprintf(num, sizeof(num), " --expect-rev %llu",
			 (unsigned long long)op->opts.expect_rev);
		o = text(o, num);
	}
	if (op->opts.flags & SHMREG_EPHEMERAL)
		o = text(o, " --ephemeral");
	return (size_t)(o - o0);
}

static int same_bytes(const char *a, size_t al, const char *b, size_t bl)
{
	return al == bl && (al == 0 || memcmp(a, b, al) == 0);
}

static void same(const struct bl_op *a, const struct bl_op *b)
{
	if (a->kind != b->kind || !same_bytes(a->key, a->klen, b->key, b->klen))
		FAIL("round trip changed the command or key");
	if (a->nattrs != b->nattrs)
		FAIL("round trip changed the attributes");
	for (unsigned i = 0; i < a->nattrs; i++)
		if (strcmp(a->attrs[i].name, b->attrs[i].name) ||
		    strcmp(a->attrs[i].value, b->attrs[i].value))
			FAIL("round trip changed attribute %u", i);
	if (a->kind != BL_PUT)
		return;
	if (!same_bytes(a->val, a->vlen, b->val, b->vlen) ||
	    !same_bytes(a->opts.parent, a->opts.parent_len, b->opts.parent,
			b->opts.parent_len) ||
	    a->opts.owner_pid != b->opts.owner_pid ||
	    a->opts.flags != b->opts.flags ||
	    a->opts.expect_rev != b->opts.expect_rev ||
	    (a->opts.ttl_ns % 1000000 == 0 && a->opts.ttl_ns != b->opts.ttl_ns))
		FAIL("round trip changed the put");
}

static void check_op(const struct bl_op *op, const char *s, size_t cap)
{
	inside(op->key, op->klen, s, cap, "key");
	if (shm_check_key(op->key, op->klen))
		FAIL("accepted a bad key (%zu bytes)", op->klen);
	if (shm_check_attrs(op->attrs, op->nattrs))
		FAIL("accepted bad attributes");
	for (unsigned i = 0; i < op->nattrs; i++) {
		inside(op->attrs[i].name, strlen(op->attrs[i].name) + 1, s,
		       cap, "attribute name");
		inside(op->attrs[i].value, strlen(op->attrs[i].value) + 1, s,
		       cap, "attribute value");
	}
	if (op->kind == BL_PUT) {
		inside(op->val, op->vlen, s, cap, "value");
		if (shm_check_put(op->key, op->klen, op->val, op->vlen,
				  &op->opts))
			FAIL("accepted a put the library refuses");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = malloc(size ? size : 1), *s = malloc(BL_SCRATCH(size));
	char err[256], *back, *s2;
	struct bl_op op, op2;
	size_t n;
	int rc;

	if (!line || !s)
		goto out;
	memcpy(line, data, size);
	rc = bl_parse_line(line, size, s, &op, err, sizeof(err));
	if (rc < 0) {
		if ((rc != -EINVAL && rc != -E2BIG) || !err[0] ||
		    !memchr(err, 0, sizeof(err)))
			FAIL("error %d without its message", rc);
		goto out;
	}
	if (rc > 1)
		FAIL("result %d", rc);
	if (rc == 0)
		goto out;
	check_op(&op, s, BL_SCRATCH(size));
	/* every byte of the line is at most 4 escaped, plus the words */
	back = malloc(4 * size + 4096);
	s2 = back ? malloc(BL_SCRATCH(4 * size + 4096)) : NULL;
	if (back && s2) {
		n = unparse(&op, back);
		rc = bl_parse_line(back, n, s2, &op2, err, sizeof(err));
		if (rc != 1)
			FAIL("written back, it does not parse: %s", err);
		same(&op, &op2);
	}
	free(back);
	free(s2);
out:
	free(line);
	free(s);
	return 0;
}
