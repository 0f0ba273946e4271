/* SPDX-License-Identifier: MIT */
/* cmd_del.c - shmregctl del KEY | --prefix P: delete entries. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "validate.h"

static int del_one(struct ctl *c, const char *key, size_t klen)
{
	struct ctl_writer *w;
	int64_t rev;
	int ret;

	ret = ctl_writer_open(c, false, &w);
	if (ret)
		return ret;
	rev = ctl_writer_del(w, key, klen);
	if (rev > 0) {
		ctl_writer_report(c, w, key, klen, rev);
		ret = CTL_OK;
	} else if (rev == -ENOENT) {
		ret = ctl_say(CTL_NOTFOUND, "%s: not found", key);
	} else if (rev == -ENOTEMPTY) {
		ret = ctl_say(CTL_ERROR, "%s: has children: delete them first, "
			      "or the whole tree with del --recursive", key);
	} else if (rev == 0) {
		/* SHMREG_NEVER: a delete returns a revision > 0 or -errno */
		ret = ctl_say(CTL_ERROR, "%s: delete returned no revision", key);
	} else {
		ret = ctl_fail(key, (int)-rev);
	}
	ctl_writer_close(w);
	return ret;
}

/* del --recursive KEY: the tree in one commit; prints how many. */
static int del_tree(struct ctl *c, const char *key, size_t klen)
{
	struct ctl_writer *w;
	int64_t n;
	int ret;

	ret = ctl_writer_open(c, false, &w);
	if (ret)
		return ret;
	n = ctl_writer_del_tree(w, key, klen);
	if (n > 0) {
		if (c->json)
			printf("{\"deleted\":%lld}\n", (long long)n);
		else
			printf("%lld\n", (long long)n);
		ret = ctl_flush(CTL_OK);
	} else if (n == -ENOENT || n == 0) {
		ret = ctl_say(CTL_NOTFOUND, "%s: not found", key);
	} else if (n == -EOPNOTSUPP) {
		ret = ctl_say(CTL_ERROR, "%s: this daemon is too old for a "
			      "tree delete; delete the children first", key);
	} else {
		ret = ctl_fail(key, (int)-n);
	}
	ctl_writer_close(w);
	return ret;
}

/* The keys under the prefix, collected before any delete: deleting while
 * shmreg_list walks would be a walk of a changing index. */
struct keys {
	char **k;
	size_t *len;
	size_t n, cap;
};

static int collect(const void *key, size_t klen, const void *val,
		   size_t vlen, const shmreg_info_t *info, void *arg)
{
	struct keys *ks = arg;
	char *copy;

	(void)val;
	(void)vlen;
	(void)info;
	if (ks->n == ks->cap) {
		size_t cap = ks->cap ? ks->cap * 2 : 64;
		char **k = realloc(ks->k, cap * sizeof(*k));
		size_t *len;

		if (!k)
			return -ENOMEM;
		ks->k = k;
		len = realloc(ks->len, cap * sizeof(*len));
		if (!len)
			return -ENOMEM;
		ks->len = len;
		ks->cap = cap;
	}
	copy = malloc(klen + 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, key, klen);
	copy[klen] = '\0';
	ks->k[ks->n] = copy;
	ks->len[ks->n++] = klen;
	return 0;
}

/* Deepest first: in reverse byte order a key comes before every key it
 * is a prefix of ("a/b" before "a"), so the children of a path-named
 * tree are deleted before their parent. */
static int cmp_rev(const void *a, const void *b, void *arg)
{
	const struct keys *ks = arg;
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	size_t n = ks->len[i] < ks->len[j] ? ks->len[i] : ks->len[j];
	int c = memcmp(ks->k[i], ks->k[j], n);

	if (c == 0)
		c = ks->len[i] < ks->len[j] ? -1 : ks->len[i] > ks->len[j];
	return -c;
}

static void keys_free(struct keys *ks)
{
	for (size_t i = 0; i < ks->n; i++)
		free(ks->k[i]);
	free(ks->k);
	free(ks->len);
	memset(ks, 0, sizeof(*ks));
}

static int list_keys(struct ctl *c, const char *prefix, struct keys *ks)
{
	shmreg_t *r;
	ssize_t n;
	int ret = ctl_open(c, &r);

	if (ret)
		return ret;
	n = shmreg_list(r, prefix, strlen(prefix), collect, ks);
	shmreg_close(r);
	return n < 0 ? ctl_fail("del --prefix", (int)-n) : CTL_OK;
}

/* Through the daemon: one BATCH of deletes, all or nothing.  A key listed
 * but deleted by someone else before the batch arrives refuses it
 * (-ENOENT): list and try again, a few times. */
static int prefix_batch(struct ctl *c, struct ctl_writer *w,
			const char *prefix, struct keys *ks, size_t *done,
			uint64_t *last)
{
	for (int attempt = 0;; attempt++) {
		size_t *order = malloc((ks->n ? ks->n : 1) * sizeof(*order));
		shmreg_batch_t *b;
		uint32_t failed;
		int64_t rev;
		int ret;

		if (!order)
			return ctl_fail("del --prefix", ENOMEM);
		for (size_t i = 0; i < ks->n; i++)
			order[i] = i;
		qsort_r(order, ks->n, sizeof(*order), cmp_rev, ks);
		ret = shmreg_batch_begin(ctl_writer_client(w), &b);
		for (size_t i = 0; ret == 0 && i < ks->n; i++)
			ret = shmreg_batch_del(b, ks->k[order[i]],
					       ks->len[order[i]]);
		if (ret < 0) {
			shmreg_batch_abort(b);
			free(order);
			return ret == -E2BIG
				? ctl_say(CTL_ERROR, "del --prefix %s: more keys "
					  "than one batch holds (%u)", prefix,
					  SHMREG_BATCH_OPS_MAX)
				: ctl_fail("del --prefix", -ret);
		}
		rev = shmreg_batch_commit(b, &failed);
		if (rev >= 0) {
			free(order);
			*done = ks->n;
			*last = (uint64_t)rev;
			return CTL_OK;
		}
		if (rev == -ENOENT && attempt < 3) {
			free(order);
			keys_free(ks);
			ret = list_keys(c, prefix, ks);
			if (ret)
				return ret;
			continue;
		}
		ret = failed < ks->n
			? ctl_say(CTL_ERROR, "del --prefix %s: %s: %s%s; nothing "
				  "was deleted", prefix, ks->k[order[failed]],
				  strerror((int)-rev), rev == -ENOTEMPTY ?
				  " (it has children outside the prefix, or "
				  "not named below it)" : "")
			: ctl_fail("del --prefix", (int)-rev);
		free(order);
		return ret;
	}
}

/* Embedded: one writer batch, one commit.  A key deleted by someone else
 * meanwhile is skipped, not an error. */
static int prefix_embedded(struct ctl_writer *w, struct keys *ks,
			   size_t *done, uint64_t *last)
{
	int ret = CTL_OK;

	ctl_writer_batch(w, true);
	for (size_t i = 0; i < ks->n; i++) {
		int64_t rev = ctl_writer_del(w, ks->k[i], ks->len[i]);

		if (rev == -ENOENT)
			continue;
		if (rev <= 0) {
			ret = ctl_fail(ks->k[i], rev ? (int)-rev : EPROTO);
			break;
		}
		*last = (uint64_t)rev;
		(*done)++;
	}
	ctl_writer_batch(w, false);
	return ret;
}

/*
 * Every key under @prefix, in one commit: a reader sees all of them gone
 * or none.  Through the daemon that is one BATCH (all or nothing);
 * embedded, one writer batch.
 */
static int del_prefix(struct ctl *c, const char *prefix)
{
	size_t plen = strlen(prefix), done = 0;
	struct keys ks = { 0 };
	struct ctl_writer *w;
	uint64_t last = 0;
	int ret;

	if (plen == 0)
		return ctl_usage("del --prefix: an empty prefix would delete "
				 "everything; name one");
	if (shm_check_prefix(prefix, plen) < 0)
		return ctl_usage("a prefix is at most %u bytes",
				 SHMREG_KEY_MAX);
	ret = list_keys(c, prefix, &ks);
	if (ret)
		goto out;
	ret = ctl_writer_open(c, false, &w);
	if (ret)
		goto out;
	if (ctl_writer_is_daemon(w))
		ret = prefix_batch(c, w, prefix, &ks, &done, &last);
	else
		ret = prefix_embedded(w, &ks, &done, &last);
	if (ret == CTL_OK) {
		if (c->json) {
			fputc('{', stdout);
			json_bytes_member(stdout, "prefix", prefix, plen);
			printf(",\"deleted\":%zu,\"revision\":%" PRIu64
			       ",\"via\":\"%s\"}\n", done, last,
			       ctl_writer_via(w));
		} else {
			printf("%zu\n", done);
		}
		if (!done)
			ret = ctl_say(CTL_NOTFOUND, "no key starts with %s",
				      prefix);
	}
	ctl_writer_close(w);
out:
	keys_free(&ks);
	return ret;
}

int cmd_del(struct ctl *c)
{
	const char *key;
	int ret;

	if (c->given & OPT_PREFIX) {
		if (c->argc)
			return ctl_usage("del: a KEY and --prefix: choose one");
		if (c->given & OPT_RECURSIVE)
			return ctl_usage("del: --prefix or --recursive: choose "
					 "one");
		return del_prefix(c, c->prefix);
	}
	if (!c->argc)
		return ctl_usage("del: missing argument (KEY or --prefix P)");
	key = c->argv[0];
	ret = check_key(key, strlen(key));
	if (ret)
		return ret;
	if (c->given & OPT_RECURSIVE)
		return del_tree(c, key, strlen(key));
	return del_one(c, key, strlen(key));
}
