/* SPDX-License-Identifier: MIT */
/* cmd_admin.c - shmregctl reload, registries: ask shmregd about itself. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"

int cmd_reload(struct ctl *c)
{
	char msg[4096];
	shmreg_client_t *cl;
	int64_t rev;
	int ret = ctl_connect(c, &cl, false);

	if (ret)
		return ret;
	rev = shmreg_client_reload(cl, msg, sizeof(msg));
	shmreg_disconnect(cl);
	if (c->json) {
		fputc('{', stdout);
		json_bytes_member(stdout, "registry", c->registry,
				  strlen(c->registry));
		printf(",\"ok\":%s", rev >= 0 ? "true" : "false");
		if (rev >= 0)
			printf(",\"revision\":%" PRId64, rev);
		else
			printf(",\"errno\":%d", (int)-rev);
		fputc(',', stdout);
		json_bytes_member(stdout, "message", msg, strlen(msg));
		fputs("}\n", stdout);
	}
	if (rev < 0)
		return ctl_say(CTL_ERROR, "reload of %s refused (%s): %s; "
			       "contents unchanged", c->registry,
			       strerror((int)-rev), msg[0] ? msg : "no reason");
	if (!c->json)
		printf("%s\n", msg);
	return CTL_OK;
}

static const char *state_name(int s)
{
	switch (s) {
	case SHMREG_STATE_OPEN:
		return "open";
	case SHMREG_STATE_CLOSED:
		return "closed";
	case SHMREG_STATE_DEAD:
		return "dead";
	}
	return "unknown";
}

static int print_registry(const char *name, const shmreg_stats_t *st,
			  void *arg)
{
	const struct ctl *c = arg;

	if (c->json) {
		fputc('{', stdout);
		json_bytes_member(stdout, "registry", name, strlen(name));
		printf(",\"entries\":%" PRIu64 ",\"revision\":%" PRIu64
		       ",\"state\":\"%s\"}\n", st->entries, st->revision,
		       state_name(st->state));
	} else if (c->output == OUT_SIMPLE) {
		printf("%s\t%" PRIu64 "\t%" PRIu64 "\t%s\n", name,
		       st->entries, st->revision, state_name(st->state));
	} else {
		printf("%-24s %10" PRIu64 " %10" PRIu64 "  %s\n", name,
		       st->entries, st->revision, state_name(st->state));
	}
	return 0;
}

int cmd_registries(struct ctl *c)
{
	char sock[PATH_MAX];
	shmreg_client_t *cl;
	ssize_t n;
	int ret;

	/* no registry: the daemon itself is asked */
	ret = shmreg_connect(c->socket, NULL, &cl);
	ctl_socket_path(c, sock, sizeof(sock));
	if (ret == -ENOENT || ret == -ECONNREFUSED)
		return ctl_say(CTL_ERROR, "no daemon answers on %s", sock);
	if (ret == -EINVAL && c->socket)
		return ctl_usage("--socket: '%s' is too long for a unix socket "
				 "path", c->socket);
	if (ret < 0)
		return ctl_fail(sock, -ret);
	if (!c->json && c->output == OUT_TABLE)
		printf("%-24s %10s %10s  %s\n", "REGISTRY", "ENTRIES",
		       "REVISION", "STATE");
	n = shmreg_client_registries(cl, print_registry, c);
	shmreg_disconnect(cl);
	if (n < 0)
		return ctl_fail("registries", (int)-n);
	return CTL_OK;
}
