/* SPDX-License-Identifier: MIT */
/* cmd_batch.c - shmregctl batch [FILE]: operations, one per line, applied
 * by shmregd all or nothing (syntax: batch_line.h, docs/cli.md). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch_line.h"
#include "ctl.h"

/* A line holds one value (at most SHMREG_VALUE_MAX bytes, each at most
 * four bytes escaped) and its options; longer lines are refused before
 * they are parsed. */
#define LINE_MAX_BYTES (4 * (size_t)SHMREG_VALUE_MAX + 65536)

/* The input, parsed and added to @b; the line of each operation in
 * lines[]. */
struct input {
	FILE *f;
	const char *name;
	uint32_t *lines;
	uint32_t n, cap;
};

static int add(shmreg_batch_t *b, const struct bl_op *op)
{
	switch (op->kind) {
	case BL_PUT:
		return shmreg_batch_put(b, op->key, op->klen, op->val,
					op->vlen, &op->opts);
	case BL_DEL:
		return shmreg_batch_del(b, op->key, op->klen);
	case BL_DEL_TREE:
		return shmreg_batch_del_tree(b, op->key, op->klen);
	case BL_ATTRS:
		return shmreg_batch_set_attrs(b, op->key, op->klen, op->attrs,
					      op->nattrs);
	}
	return -EINVAL;
}

static int note_line(struct input *in, uint32_t line)
{
	if (in->n == in->cap) {
		uint32_t cap = in->cap ? 2 * in->cap : 64;
		uint32_t *l = realloc(in->lines, cap * sizeof(*l));

		if (!l)
			return -ENOMEM;
		in->lines = l;
		in->cap = cap;
	}
	in->lines[in->n++] = line;
	return 0;
}

/* Read every line; 0 or the exit code (a message printed). */
static int read_input(struct input *in, shmreg_batch_t *b)
{
	char *line = NULL, *scratch = NULL, err[256];
	size_t cap = 0, scap = 0;
	uint32_t lineno = 0;
	ssize_t n;
	int ret = CTL_OK;

	while ((n = getline(&line, &cap, in->f)) >= 0) {
		struct bl_op op;
		int rc;

		lineno++;
		if (n && line[n - 1] == '\n')
			n--;
		if ((size_t)n > LINE_MAX_BYTES) {
			ret = ctl_say(CTL_USAGE, "%s:%u: line too long", in->name,
				      lineno);
			break;
		}
		if (BL_SCRATCH(n) > scap) {
			char *s = realloc(scratch, BL_SCRATCH(n));

			if (!s) {
				ret = ctl_fail("batch", ENOMEM);
				break;
			}
			scratch = s;
			scap = BL_SCRATCH(n);
		}
		rc = bl_parse_line(line, (size_t)n, scratch, &op, err,
				   sizeof(err));
		if (rc < 0) {
			ret = ctl_say(CTL_USAGE, "%s:%u: %s (nothing was sent)",
				      in->name, lineno, err);
			break;
		}
		if (rc == 0)
			continue;
		rc = add(b, &op);
		if (rc == 0)
			rc = note_line(in, lineno);
		if (rc < 0) {
			ret = ctl_say(rc == -E2BIG ? CTL_USAGE : CTL_ERROR,
				      "%s:%u: %s%s (nothing was sent)",
				      in->name, lineno, strerror(-rc),
				      rc == -E2BIG ? ": the batch is over "
				      "its limits (65536 operations, 16 MiB)"
				      : "");
			break;
		}
	}
	if (ret == CTL_OK && ferror(in->f))
		ret = ctl_fail(in->name, errno ? errno : EIO);
	free(line);
	free(scratch);
	return ret;
}

static int report(struct ctl *c, const struct input *in, int64_t rev,
		  uint32_t failed)
{
	if (rev >= 0) {
		if (c->json)
			printf("{\"revision\":%" PRId64 ",\"operations\":%u}\n",
			       rev, in->n);
		else
			printf("%" PRId64 "\n", rev);
		return CTL_OK;
	}
	if (c->json) {
		printf("{\"error\":\"%s\",\"errno\":%d", strerror((int)-rev),
		       (int)-rev);
		if (failed != SHMREG_BATCH_NONE && failed < in->n)
			printf(",\"operation\":%u,\"line\":%u", failed,
			       in->lines[failed]);
		fputs("}\n", stdout);
	}
	if (failed == SHMREG_BATCH_NONE || failed >= in->n)
		return ctl_fail("batch", (int)-rev);
	return ctl_say(rev == -ENOENT ? CTL_NOTFOUND : CTL_ERROR,
		       "%s:%u: %s; nothing was applied", in->name,
		       in->lines[failed], strerror((int)-rev));
}

int cmd_batch(struct ctl *c)
{
	struct input in = { .f = stdin, .name = "stdin" };
	shmreg_client_t *cl;
	shmreg_batch_t *b;
	uint32_t failed = SHMREG_BATCH_NONE;
	int64_t rev;
	int ret;

	if (c->embedded > 0)
		return ctl_usage("batch: all or nothing needs shmregd; "
				 "--embedded cannot apply it");
	if (c->argc && strcmp(c->argv[0], "-") != 0) {
		in.name = c->argv[0];
		in.f = fopen(in.name, "re");
		if (!in.f)
			return ctl_fail(in.name, errno);
	}
	ret = ctl_connect(c, &cl, false);
	if (ret)
		goto out;
	ret = shmreg_batch_begin(cl, &b);
	if (ret < 0) {
		ret = ctl_fail("batch", -ret);
		goto out_cl;
	}
	ret = read_input(&in, b);
	if (ret) {
		shmreg_batch_abort(b);
		goto out_cl;
	}
	rev = shmreg_batch_commit(b, &failed);
	ret = report(c, &in, rev, failed);
out_cl:
	shmreg_disconnect(cl);
out:
	if (in.f != stdin)
		fclose(in.f);
	free(in.lines);
	return ret;
}
