/* SPDX-License-Identifier: MIT */
/* args.c - shmregctl: parsing arguments, reading stdin, opening and reading. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "paths.h"
#include "validate.h"

int check_key(const char *key, size_t klen)
{
	int rc = shm_check_key(key, klen);

	if (rc == -E2BIG)
		return ctl_usage("a key is at most %u bytes (this one has %zu)",
				 SHMREG_KEY_MAX, klen);
	if (rc < 0)
		return ctl_usage("a key must not be empty");
	return 0;
}

ssize_t read_fd_value(int fd, char **out)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap), *nb;
	ssize_t n;

	if (!buf)
		return -ENOMEM;
	/* Bound: stops after SHMREG_VALUE_MAX + 1 bytes, the first byte that
	 * proves the value too long; the buffer at most doubles past that. */
	for (;;) {
		if (len == cap) {
			if (cap > SHMREG_VALUE_MAX) {
				free(buf);
				return -E2BIG;
			}
			cap *= 2;
			nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				return -ENOMEM;
			}
			buf = nb;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno;

			free(buf);
			return -err;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > SHMREG_VALUE_MAX) {
			free(buf);
			return -E2BIG;
		}
	}
	*out = buf;
	return (ssize_t)len;
}

int ctl_bad_name(const char *name)
{
	return ctl_usage("'%s' is not a registry name: 1..%u letters, digits, "
			 "'.', '_' or '-', not starting with '.'; or an "
			 "absolute path", name, SHMREG_NAME_MAX);
}

int ctl_open(struct ctl *c, shmreg_t **r)
{
	int ret = shmreg_open(c->registry, 0, r);

	if (ret == 0)
		return 0;
	if (ret == -ENOENT)
		return ctl_say(CTL_NOTFOUND, "registry %s does not exist",
			       c->registry);
	if (ret == -EINVAL)
		return ctl_bad_name(c->registry);
	if (ret == -EPROTO)
		return ctl_say(CTL_ERROR, "registry %s: not a shmreg registry "
			       "of this version (or truncated)", c->registry);
	fprintf(stderr, "shmregctl: registry %s: %s\n", c->registry,
		strerror(-ret));
	return CTL_ERROR;
}

/* A value that grows on every try is being rewritten faster than we copy;
 * give up after this many and report -EAGAIN like the library does. */
#define GET_TRIES 16

ssize_t ctl_get_alloc(shmreg_t *r, const char *key, size_t klen, char **val,
		      shmreg_info_t *info)
{
	size_t cap = 4096;
	char *buf = NULL, *nb;
	ssize_t n;

	for (int i = 0; i < GET_TRIES; i++) {
		nb = realloc(buf, cap + 1);
		if (!nb) {
			free(buf);
			return -ENOMEM;
		}
		buf = nb;
		n = shmreg_get(r, key, klen, buf, cap, info);
		if (n < 0) {
			free(buf);
			return n;
		}
		if ((size_t)n <= cap) {
			buf[n] = '\0';
			*val = buf;
			return n;
		}
		cap = (size_t)n;
	}
	free(buf);
	return -EAGAIN;
}

const char *ctl_socket_path(const struct ctl *c, char *buf, size_t cap)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");

	/* the library's rule (shmreg_connect), to name the socket tried */
	if (c->socket)
		snprintf(buf, cap, "%s", c->socket);
	else if (xdg && *xdg == '/')
		snprintf(buf, cap, "%s/shmreg.sock", xdg);
	else
		snprintf(buf, cap, "/run/shmreg/shmreg.sock");
	return buf;
}

int ctl_connect(struct ctl *c, shmreg_client_t **out, bool quiet_absent)
{
	char sock[PATH_MAX];
	struct stat st;
	int ret;

	/* the name first, so that -EINVAL below can only be the socket's */
	ret = shm_resolve_path(c->registry, sock, sizeof(sock));
	if (ret == -EINVAL)
		return ctl_bad_name(c->registry);
	ret = shmreg_connect(c->socket, c->registry, out);
	if (ret == 0)
		return 0;
	ctl_socket_path(c, sock, sizeof(sock));
	if (ret == -ENOENT || ret == -ECONNREFUSED) {
		/* a listening socket that answers -ENOENT is a daemon that
		 * does not serve this registry: always worth saying */
		if (ret == -ENOENT && stat(sock, &st) == 0 &&
		    S_ISSOCK(st.st_mode))
			return ctl_say(CTL_ERROR, "the daemon on %s does not "
				       "serve registry %s", sock, c->registry);
		if (quiet_absent)
			return -ENOENT;
		return ctl_say(CTL_ERROR, "no daemon answers on %s%s", sock,
			       ret == -ENOENT ? " (no such socket)" :
			       " (nothing listens)");
	}
	if (ret == -EINVAL && c->socket)
		return ctl_usage("--socket: '%s' is too long for a unix socket "
				 "path", c->socket);
	if (ret == -EINVAL)
		return ctl_bad_name(c->registry);
	if (ret == -EACCES)
		return ctl_say(CTL_ERROR, "the daemon on %s refused this user: "
			       "no write access to registry %s through it",
			       sock, c->registry);
	return ctl_fail(sock, -ret);
}
