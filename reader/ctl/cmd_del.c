/* SPDX-License-Identifier: MIT */
/* cmd_del.c - shmregctl del KEY: delete one entry. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "ctl.h"

int cmd_del(struct ctl *c)
{
	const char *key = c->argv[0];
	size_t klen = strlen(key);
	struct ctl_writer *w;
	int64_t rev;
	int ret;

	ret = check_key(key, klen);
	if (ret)
		return ret;
	ret = ctl_writer_open(c, false, &w);
	if (ret)
		return ret;
	rev = ctl_writer_del(w, key, klen);
	if (rev > 0) {
		ctl_writer_report(c, w, key, klen, rev);
		ret = CTL_OK;
	} else if (rev == -ENOENT) {
		ret = ctl_say(CTL_NOTFOUND, "%s: not found", key);
	} else if (rev == 0) {
		/* SHMREG_NEVER: a delete returns a revision > 0 or -errno */
		ret = ctl_say(CTL_ERROR, "%s: delete returned no revision", key);
	} else {
		ret = ctl_fail(key, (int)-rev);
	}
	ctl_writer_close(w);
	return ret;
}
