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

static bool gid_allowed(const struct d_acl *a, gid_t g)
{
	for (unsigned i = 0; i < a->ngid; i++)
		if (a->gid[i] == g)
			return true;
	return false;
}

/* Supplementary groups (SO_PEERGROUPS, Linux >= 4.13), so that
 * --allow-gid works like file group permissions do. */
static bool groups_allowed(const struct d_acl *a, int fd)
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
		ok = gid_allowed(a, g[i]);
	if (g != small)
		free(g);
	return ok;
}

static bool acl_allows(const struct d_acl *a, const struct conn *c)
{
	for (unsigned i = 0; i < a->nuid; i++)
		if (a->uid[i] == c->uid)
			return true;
	if (!a->ngid)
		return false;
	return gid_allowed(a, c->gid) || groups_allowed(a, c->fd);
}

bool auth_reg(const struct conn *c, const struct reg *r)
{
	return c->uid != (uid_t)-1 && acl_allows(&r->ro->acl, c);
}

/*
 * Which registry the peer wants is known only at its HELLO, which checks
 * that registry's own lists (auth_reg, in do_hello of conn.c).  At accept
 * the peer is admitted when ANY registry admits it: a peer no registry
 * admits is refused at once and never counts against the writers'
 * connections; one admitted here but not by the registry it names is
 * answered -EACCES at its HELLO and closed.
 */
bool auth_peer(struct daemon *d, struct conn *c)
{
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
	for (unsigned i = 0; i < d->o->nreg; i++)
		if (acl_allows(&d->o->reg[i].acl, c))
			return true;
	return false;
}
