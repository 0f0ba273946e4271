/* SPDX-License-Identifier: MIT */
/* write.c - shmregctl: the write path, through shmregd or embedded. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "paths.h"
#include "shmreg_writer.h"

/*
 * How it works.  Writes never create a registry by surprise:
 *
 * - A socket the user named (--socket, $SHMREG_SOCKET) must answer and
 *   serve the registry; otherwise the command fails (exit 3) saying which,
 *   because a typo there would otherwise silently write to a new registry
 *   behind the daemon's back.
 * - With no socket named, the library's default socket is tried; when no
 *   daemon is there (-ENOENT, -ECONNREFUSED), and only then, shmregctl
 *   opens the registry as a short-lived embedded writer and says so on
 *   stderr (human mode).  A daemon on the default socket that does not
 *   serve the registry is reported, for the same reason as a typo.
 * - --embedded skips the daemon; --no-embedded never falls back.
 *
 * The embedded writer takes the registry's writer lock for the duration of
 * one command, taking the registry over (in place after a clean close).
 * When another process holds it (-EBUSY), there is a writer that is not a
 * daemon we could reach: say which pid, from the segment header, so the
 * user knows what to stop or which socket to name.
 */
struct ctl_writer {
	shmreg_client_t *client;
	shmreg_writer_t *w;
};

static int busy_message(struct ctl *c)
{
	shmreg_t *r = NULL;
	shmreg_stats_t st;
	char pid[32] = "unknown";

	if (shmreg_open(c->registry, 0, &r) == 0 &&
	    shmreg_stats(r, &st) == 0 && st.writer_pid > 0)
		snprintf(pid, sizeof(pid), "%d", (int)st.writer_pid);
	shmreg_close(r);
	return ctl_say(CTL_ERROR, "registry %s has a writer (pid %s) and no "
		       "daemon socket answered; write through that process, "
		       "or name its daemon's socket with --socket PATH",
		       c->registry, pid);
}

int ctl_writer_open(struct ctl *c, bool create, struct ctl_writer **out)
{
	struct ctl_writer *cw = calloc(1, sizeof(*cw));
	char path[PATH_MAX], sock[PATH_MAX];
	shmreg_t *r;
	int ret;

	if (!cw)
		return ctl_fail("write", ENOMEM);
	ret = shm_resolve_path(c->registry, path, sizeof(path));
	if (ret < 0) {
		free(cw);
		if (ret == -EINVAL)
			return ctl_bad_name(c->registry);
		return ctl_fail(c->registry, -ret);
	}

	if (c->embedded <= 0) {
		ret = ctl_connect(c, &cw->client,
				  !c->socket_explicit && c->embedded == 0);
		if (ret == 0) {
			*out = cw;
			return 0;
		}
		if (ret != -ENOENT) {
			free(cw);
			return ret;
		}
	}

	if (c->given & OPT_EPHEMERAL) {
		free(cw);
		return ctl_say(CTL_ERROR, "--ephemeral needs shmregd: an "
			       "ephemeral entry lives as long as the client "
			       "connection, and %s for registry %s",
			       c->embedded > 0 ? "--embedded skips the daemon" :
			       "no daemon socket answered", c->registry);
	}

	/* A delete must not create the registry it deletes from. */
	if (!create) {
		ret = ctl_open(c, &r);
		if (ret) {
			free(cw);
			return ret;
		}
		shmreg_close(r);
	}

	ret = shmreg_writer_open(c->registry, NULL, &cw->w);
	if (ret == 0) {
		if (!c->json && c->embedded == 0)
			fprintf(stderr, "shmregctl: note: no daemon on %s; "
				"writing registry %s as an embedded writer\n",
				ctl_socket_path(c, sock, sizeof(sock)),
				c->registry);
		*out = cw;
		return 0;
	}
	free(cw);
	if (ret == -EBUSY)
		return busy_message(c);
	if (ret == -EINVAL)
		return ctl_bad_name(c->registry);
	fprintf(stderr, "shmregctl: opening registry %s for writing: %s\n",
		c->registry, strerror(-ret));
	return CTL_ERROR;
}

void ctl_writer_batch(struct ctl_writer *w, bool begin)
{
	/* through the daemon, callers that need all or nothing build a
	 * BATCH on ctl_writer_client() */
	if (!w->w)
		return;
	if (begin)
		shmreg_writer_batch_begin(w->w);
	else
		shmreg_writer_batch_end(w->w);
}

int64_t ctl_writer_put(struct ctl_writer *w, const void *key, size_t klen,
		       const void *val, size_t vlen,
		       const shmreg_put_opts_t *opts)
{
	if (w->client)
		return shmreg_put(w->client, key, klen, val, vlen, opts);
	return shmreg_writer_put(w->w, key, klen, val, vlen, opts);
}

int64_t ctl_writer_del(struct ctl_writer *w, const void *key, size_t klen)
{
	if (w->client)
		return shmreg_del(w->client, key, klen);
	return shmreg_writer_del(w->w, key, klen);
}

int64_t ctl_writer_del_tree(struct ctl_writer *w, const void *key,
			    size_t klen)
{
	if (w->client)
		return shmreg_del_tree(w->client, key, klen);
	return shmreg_writer_del_tree(w->w, key, klen);
}

shmreg_client_t *ctl_writer_client(const struct ctl_writer *w)
{
	return w->client;
}

bool ctl_writer_is_daemon(const struct ctl_writer *w)
{
	return w->client != NULL;
}

const char *ctl_writer_via(const struct ctl_writer *w)
{
	return w->client ? "daemon" : "embedded";
}

void ctl_writer_report(const struct ctl *c, const struct ctl_writer *w,
		       const void *key, size_t klen, int64_t rev)
{
	if (c->json) {
		fputc('{', stdout);
		json_bytes_member(stdout, "key", key, klen);
		printf(",\"revision\":%" PRId64 ",\"via\":\"%s\"}\n", rev,
		       ctl_writer_via(w));
	} else {
		printf("%" PRId64 "\n", rev);
	}
}

void ctl_writer_close(struct ctl_writer *w)
{
	if (!w)
		return;
	if (w->client)
		shmreg_disconnect(w->client);
	shmreg_writer_close(w->w);
	free(w);
}
