/* SPDX-License-Identifier: MIT */
/* cmd_list.c - shmregctl list [PREFIX]: one line per entry. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "ctl.h"
#include "validate.h"

static int list_one(const void *key, size_t klen, const void *val,
		    size_t vlen, const shmreg_info_t *info, void *arg)
{
	struct ctl *c = arg;

	if (c->json) {
		json_entry(stdout, key, klen, val, vlen, info);
	} else {
		/* tab-separated for cut/awk; human_bytes() escapes tabs and
		 * newlines in the key, so one entry is one line */
		human_bytes(stdout, key, klen);
		printf("\t%zu\t%" PRIu64, vlen, info->mod_rev);
	}
	fputc('\n', stdout);
	/* stop early when the reader of our output went away */
	return ferror(stdout) ? -EIO : 0;
}

int cmd_list(struct ctl *c)
{
	const char *prefix = c->argc ? c->argv[0] : "";
	size_t plen = strlen(prefix);
	shmreg_t *r;
	ssize_t n;
	int ret;

	if (shm_check_prefix(prefix, plen) < 0)
		return ctl_usage("a prefix is at most %u bytes", SHMREG_KEY_MAX);
	ret = ctl_open(c, &r, false);
	if (ret)
		return ret;
	n = shmreg_list(r, prefix, plen, list_one, c);
	shmreg_close(r);
	if (n == -EIO && ferror(stdout))
		return ctl_flush(CTL_OK);
	if (n < 0)
		return ctl_fail("list", (int)-n);
	return CTL_OK;
}
