/* SPDX-License-Identifier: MIT */
/* cmd_find.c - shmregctl find, children, attrs: the data model's reads. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "validate.h"

/* The pairs of "find NAME=VALUE ...". */
struct match {
	shmreg_attr_t a[SHMREG_ATTRS_MAX];
	unsigned n;
};

static ssize_t walk_find(shmreg_t *r, const void *arg, shmreg_list_fn fn,
			 void *fnarg)
{
	const struct match *m = arg;

	return shmreg_find(r, m->a, m->n, fn, fnarg);
}

static ssize_t walk_children(shmreg_t *r, const void *arg, shmreg_list_fn fn,
			     void *fnarg)
{
	const char *key = arg;

	return shmreg_children(r, key, strlen(key), fn, fnarg);
}

int ctl_parse_attr(const char *arg, shmreg_attr_t *a, char **buf)
{
	const char *eq = strchr(arg, '=');
	char *copy;

	if (!eq || eq == arg)
		return ctl_usage("not NAME=VALUE: '%s'", arg);
	copy = strdup(arg);
	if (!copy)
		return ctl_fail("attribute", ENOMEM);
	copy[eq - arg] = '\0';
	a->name = copy;
	a->value = copy + (eq - arg) + 1;
	*buf = copy;
	if (shm_check_attr(a) < 0)
		return ctl_usage("'%s': a name is 1..%u bytes without '=', a "
				 "value at most %u bytes", arg,
				 SHMREG_ATTR_NAME_MAX, SHMREG_ATTR_VALUE_MAX);
	return 0;
}

int cmd_find(struct ctl *c)
{
	struct match m = { .n = 0 };
	char *bufs[SHMREG_ATTRS_MAX] = { 0 };
	int ret = 0;

	if (c->argc > (int)SHMREG_ATTRS_MAX)
		return ctl_usage("find: at most %u NAME=VALUE pairs",
				 SHMREG_ATTRS_MAX);
	for (int i = 0; i < c->argc && !ret; i++)
		ret = ctl_parse_attr(c->argv[i], &m.a[m.n++], &bufs[i]);
	if (!ret)
		ret = ctl_listing(c, "find", walk_find, &m, NULL, true);
	for (int i = 0; i < c->argc; i++)
		free(bufs[i]);
	return ret;
}

int cmd_children(struct ctl *c)
{
	const char *key = c->argv[0];
	int ret = check_key(key, strlen(key));

	return ret ? ret : ctl_listing(c, "children", walk_children, key,
				       NULL, false);
}

/* "shmregctl attrs KEY": one name=value per line, or one JSON object. */
int cmd_attrs(struct ctl *c)
{
	const char *key = c->argv[0];
	size_t klen = strlen(key), cap = 4096;
	char *buf = NULL;
	ssize_t n;
	shmreg_t *r;
	int ret = check_key(key, klen);

	if (ret)
		return ret;
	ret = ctl_open(c, &r);
	if (ret)
		return ret;
	/* bounded: the second call has the size the first one reported
	 * (a concurrent set_attrs may change it once more: -EAGAIN then) */
	for (int tries = 0; tries < 3; tries++) {
		char *nb = realloc(buf, cap);

		if (!nb) {
			n = -ENOMEM;
			break;
		}
		buf = nb;
		n = shmreg_get_attrs(r, key, klen, buf, cap);
		if (n < 0 || (size_t)n <= cap)
			break;
		cap = (size_t)n;
		n = -EAGAIN;
	}
	shmreg_close(r);
	if (n == -ENOENT)
		ret = ctl_say(CTL_NOTFOUND, "%s: not found", key);
	else if (n < 0)
		ret = ctl_fail(key, (int)-n);
	if (n < 0) {
		free(buf);
		return ret;
	}
	if (c->json) {
		fputc('{', stdout);
		json_bytes_member(stdout, "key", key, klen);
		fputs(",\"attrs\":[", stdout);
	}
	for (size_t off = 0, k = 0; off < (size_t)n; k++) {
		const char *name = buf + off;
		size_t nl = strnlen(name, (size_t)n - off);
		const char *val = name + nl + 1;
		size_t vl;

		if (off + nl + 1 > (size_t)n)
			break;
		vl = strnlen(val, (size_t)n - off - nl - 1);
		if (c->json) {
			fputs(k ? ",[" : "[", stdout);
			json_string(stdout, name, nl);
			fputc(',', stdout);
			json_string(stdout, val, vl);
			fputc(']', stdout);
		} else {
			human_bytes(stdout, name, nl);
			fputc('=', stdout);
			human_bytes(stdout, val, vl);
			fputc('\n', stdout);
		}
		off += nl + 1 + vl + 1;
	}
	if (c->json)
		fputs("]}\n", stdout);
	free(buf);
	return ctl_flush(CTL_OK);
}
