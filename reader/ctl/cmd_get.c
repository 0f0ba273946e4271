/* SPDX-License-Identifier: MIT */
/* cmd_get.c - shmregctl get KEY: print one entry's value. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

int print_entry(struct ctl *c, const char *key, size_t klen, const char *val,
		size_t vlen, const shmreg_info_t *info)
{
	if (c->json) {
		json_entry(stdout, key, klen, val, vlen, info);
		fputc('\n', stdout);
	} else {
		/* the value's bytes as they are: "get KEY > file" keeps a
		 * binary value; --raw drops the newline to keep it exact */
		fwrite(val, 1, vlen, stdout);
		if (!(c->given & OPT_RAW))
			fputc('\n', stdout);
	}
	return CTL_OK;
}

int cmd_get(struct ctl *c)
{
	const char *key = c->argv[0];
	size_t klen = strlen(key);
	shmreg_info_t info;
	shmreg_t *r;
	char *val;
	ssize_t n;
	int ret;

	ret = check_key(key, klen);
	if (ret)
		return ret;
	ret = ctl_open(c, &r);
	if (ret)
		return ret;
	n = ctl_get_alloc(r, key, klen, &val, &info);
	shmreg_close(r);
	if (n == -ENOENT)
		return ctl_say(CTL_NOTFOUND, "%s: not found", key);
	if (n < 0)
		return ctl_fail(key, (int)-n);
	ret = print_entry(c, key, klen, val, (size_t)n, &info);
	free(val);
	return ret;
}
