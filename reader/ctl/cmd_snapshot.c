/* SPDX-License-Identifier: MIT */
/* cmd_snapshot.c - shmregctl snapshot: the daemon compacts the registry's
 * log into a snapshot now (shmregd --data-dir). */
#include <errno.h>
#include <string.h>

#include "ctl.h"

int cmd_snapshot(struct ctl *c)
{
	shmreg_client_t *cl;
	int ret;

	ret = ctl_connect(c, &cl, false);
	if (ret)
		return ret;
	ret = shmreg_client_snapshot(cl);
	shmreg_disconnect(cl);
	if (ret == -ENOTSUP || ret == -EALREADY) {
		fprintf(stderr, "shmregctl: snapshot: %s\n",
			ret == -ENOTSUP ? "the registry has no data directory "
					  "(shmregd --data-dir)"
					: "a snapshot is being written");
		return CTL_NOTFOUND;
	}
	if (ret < 0)
		return ctl_fail("snapshot", -ret);
	if (c->json)
		fputs("{\"snapshot\":\"started\"}\n", stdout);
	else
		printf("snapshot of %s started\n", c->registry);
	return CTL_OK;
}
