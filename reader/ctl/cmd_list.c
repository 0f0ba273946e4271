/* SPDX-License-Identifier: MIT */
/* cmd_list.c - shmregctl list, find and children: entries, sorted. */
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "validate.h"

/*
 * The walks (shmreg_list, shmreg_find, shmreg_children) go in index order,
 * which is no order a person or a diff can use, so these commands collect
 * the matching entries, sort them by key (bytewise, as memcmp), then print
 * them, all three the same way (ctl_listing).  That holds a copy of what
 * they print in memory, which is bounded by the registry's own size.
 */
struct entry {
	char *key;              /* NUL-terminated copy (for fnmatch) */
	size_t klen;
	char *val;
	size_t vlen;
	shmreg_info_t info;
};

struct walk {
	struct ctl *c;
	const char *pattern;    /* glob, or NULL for a plain prefix */
	struct entry *e;
	size_t n, cap;
};

static int collect(const void *key, size_t klen, const void *val,
		   size_t vlen, const shmreg_info_t *info, void *arg)
{
	struct walk *wk = arg;
	struct entry *e;

	if (wk->n == wk->cap) {
		size_t cap = wk->cap ? wk->cap * 2 : 256;
		struct entry *ne = realloc(wk->e, cap * sizeof(*ne));

		if (!ne)
			return -ENOMEM;
		wk->e = ne;
		wk->cap = cap;
	}
	e = &wk->e[wk->n];
	e->key = malloc(klen + 1);
	if (!e->key)
		return -ENOMEM;
	memcpy(e->key, key, klen);
	e->key[klen] = '\0';
	e->klen = klen;
	/* a key with a NUL byte cannot match a pattern (fnmatch stops at
	 * the NUL); a prefix walk has already matched it */
	if (wk->pattern && (memchr(key, '\0', klen) ||
			    fnmatch(wk->pattern, e->key, FNM_PATHNAME))) {
		free(e->key);
		return 0;
	}
	e->val = NULL;
	e->vlen = vlen;
	if (!(wk->c->given & OPT_KEYS_ONLY)) {
		e->val = malloc(vlen + 1);
		if (!e->val) {
			free(e->key);
			return -ENOMEM;
		}
		memcpy(e->val, val, vlen);
	}
	e->info = *info;
	wk->n++;
	return 0;
}

static int by_key(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	size_t n = x->klen < y->klen ? x->klen : y->klen;
	int d = memcmp(x->key, y->key, n);

	if (d)
		return d;
	return x->klen < y->klen ? -1 : x->klen > y->klen;
}

/* The width on a terminal of human_bytes(@p, @n): one column per code
 * point of what it prints (ASCII and UTF-8 lead bytes). */
static size_t human_width(const void *p, size_t n)
{
	char *s = NULL;
	size_t len = 0, w = 0;
	FILE *f = open_memstream(&s, &len);

	if (!f)
		return n;
	human_bytes(f, p, n);
	fclose(f);
	for (size_t i = 0; i < len; i++)
		w += ((unsigned char)s[i] & 0xc0) != 0x80;
	free(s);
	return w;
}

static void pad(size_t from, size_t to)
{
	for (; from < to; from++)
		fputc(' ', stdout);
}

static void print_entries(struct ctl *c, struct entry *e, size_t n)
{
	bool keys = c->given & OPT_KEYS_ONLY;
	size_t kw = 3; /* "KEY" */

	if (c->output == OUT_TABLE && !keys && n) {
		for (size_t i = 0; i < n; i++) {
			size_t w = human_width(e[i].key, e[i].klen);

			if (w > kw)
				kw = w;
		}
		fputs("KEY", stdout);
		pad(3, kw);
		fputs("  MOD_REV  VALUE\n", stdout);
	}
	for (size_t i = 0; i < n && !ferror(stdout); i++) {
		if (c->json && keys) {
			fputc('{', stdout);
			json_bytes_member(stdout, "key", e[i].key, e[i].klen);
			fputs("}\n", stdout);
		} else if (c->json) {
			json_entry(stdout, e[i].key, e[i].klen, e[i].val,
				   e[i].vlen, &e[i].info);
			fputc('\n', stdout);
		} else if (keys) {
			human_bytes(stdout, e[i].key, e[i].klen);
			fputc('\n', stdout);
		} else if (c->output == OUT_SIMPLE) {
			/* tab-separated for cut/awk; human_bytes() escapes
			 * tabs and newlines, so one entry is one line */
			human_bytes(stdout, e[i].key, e[i].klen);
			fputc('\t', stdout);
			human_bytes(stdout, e[i].val, e[i].vlen);
			printf("\t%" PRIu64 "\n", e[i].info.mod_rev);
		} else {
			human_bytes(stdout, e[i].key, e[i].klen);
			pad(human_width(e[i].key, e[i].klen), kw);
			printf("  %7" PRIu64 "  ", e[i].info.mod_rev);
			human_bytes(stdout, e[i].val, e[i].vlen);
			fputc('\n', stdout);
		}
	}
}

int ctl_listing(struct ctl *c, const char *what, ctl_walk_fn walk,
		const void *warg, const char *pattern, bool empty_is_absent)
{
	struct walk wk = { .c = c, .pattern = pattern };
	shmreg_t *r;
	ssize_t n;
	int ret;

	ret = ctl_open(c, &r);
	if (ret)
		return ret;
	n = walk(r, warg, collect, &wk);
	shmreg_close(r);
	if (n < 0) {
		ret = ctl_fail(what, (int)-n);
	} else {
		/* qsort's base must not be NULL, even for no entries */
		if (wk.n)
			qsort(wk.e, wk.n, sizeof(*wk.e), by_key);
		if ((c->given & OPT_LIMIT) && wk.n > c->limit)
			print_entries(c, wk.e, (size_t)c->limit);
		else
			print_entries(c, wk.e, wk.n);
		ret = wk.n || !empty_is_absent ? CTL_OK : CTL_NOTFOUND;
	}
	for (size_t i = 0; i < wk.n; i++) {
		free(wk.e[i].key);
		free(wk.e[i].val);
	}
	free(wk.e);
	return ret;
}

static ssize_t walk_prefix(shmreg_t *r, const void *arg, shmreg_list_fn fn,
			   void *fnarg)
{
	const char *prefix = arg;

	return shmreg_list(r, prefix, strlen(prefix), fn, fnarg);
}

int cmd_list(struct ctl *c)
{
	const char *arg = c->argc ? c->argv[0] : NULL;
	char prefix[SHMREG_KEY_MAX + 1];
	const char *pattern = NULL;
	size_t plen;

	if (arg && (c->given & OPT_PREFIX))
		return ctl_usage("list: a PREFIX and --prefix: choose one");
	if (!arg)
		arg = (c->given & OPT_PREFIX) ? c->prefix : "";
	/* a glob walks the prefix before its first special character */
	plen = strcspn(arg, "*?[");
	if (arg[plen] && !(c->given & OPT_PREFIX))
		pattern = arg;
	else
		plen = strlen(arg);
	if (shm_check_prefix(arg, plen) < 0)
		return ctl_usage("a prefix is at most %u bytes", SHMREG_KEY_MAX);
	memcpy(prefix, arg, plen);
	prefix[plen] = '\0';
	return ctl_listing(c, "list", walk_prefix, prefix, pattern, false);
}
