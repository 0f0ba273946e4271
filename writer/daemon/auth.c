/* SPDX-License-Identifier: MIT */
/* auth.c - who may write: SO_PEERCRED against --allow-uid / --allow-gid. */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "daemon.h"

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif

/*
 * The kernel records the peer's credentials when it connect()s, so they
 * cannot be forged and do not change if the client later drops privileges
 * or passes the socket on: what is checked is who opened the connection.
 * Readers need no permission from the daemon at all: the segment's file
 * mode (--mode) decides who may map it.
 */

static bool gid_allowed(const struct d_opts *o, gid_t g)
{
	for (unsigned i = 0; i < o->ngid; i++)
		if (o->allow_gid[i] == g)
			return true;
	return false;
}

/* Supplementary groups (SO_PEERGROUPS, Linux >= 4.13), so that
 * --allow-gid works like file group permissions do. */
static bool groups_allowed(const struct d_opts *o, int fd)
{
	gid_t small[64], *g = small;
	socklen_t len = sizeof(small);
	bool ok = false;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) < 0) {
		/* ERANGE: len now says how much is needed (at most
		 * NGROUPS_MAX gids, 256 KiB) */
		if (errno != ERANGE || len > 65536 * sizeof(gid_t))
			return false;
		g = malloc(len);
		if (!g)
			return false;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) < 0) {
			free(g);
			return false;
		}
	}
	for (size_t i = 0; i < len / sizeof(gid_t) && !ok; i++)
		ok = gid_allowed(o, g[i]);
	if (g != small)
		free(g);
	return ok;
}

bool auth_peer(struct daemon *d, struct conn *c)
{
	const struct d_opts *o = d->o;
	struct ucred cr;
	socklen_t len = sizeof(cr);

	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0 ||
	    len != sizeof(cr)) {
		c->uid = (uid_t)-1;
		c->gid = (gid_t)-1;
		return false;
	}
	c->uid = cr.uid;
	c->gid = cr.gid;
	c->pid = cr.pid;
	for (unsigned i = 0; i < o->nuid; i++)
		if (o->allow_uid[i] == cr.uid)
			return true;
	if (!o->ngid)
		return false;
	return gid_allowed(o, cr.gid) || groups_allowed(o, c->fd);
}
