/* SPDX-License-Identifier: MIT */
/* main.c - shmregd: set up registries and socket, run the loop, tear down. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "daemon.h"

int d_verbose = D_INFO;

static void vlog(const char *fmt, va_list ap)
{
	char line[512];
	int n;

	n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n < 0)
		return;
	/* one write per line, so lines of a restarted daemon and its child
	 * tools never interleave mid-line in the journal */
	fprintf(stderr, "shmregd: %s\n", line);
}

void d_log(int level, const char *fmt, ...)
{
	va_list ap;

	if (level > d_verbose)
		return;
	va_start(ap, fmt);
	vlog(fmt, ap);
	va_end(ap);
}

/* A token bucket: 20 lines per second with bursts of 20.  Peers can make
 * the daemon log (bad frames, refused uids); they must not be able to make
 * it spend its time writing to stderr. */
void d_log_limited(int level, const char *fmt, ...)
{
	static uint64_t window;
	static unsigned used, dropped;
	uint64_t now;
	va_list ap;

	if (level > d_verbose)
		return;
	now = d_now_ns() / 1000000000ull;
	if (now != window) {
		if (dropped)
			d_log(level, "%u messages suppressed", dropped);
		window = now;
		used = dropped = 0;
	}
	if (used >= 20) {
		dropped++;
		return;
	}
	used++;
	va_start(ap, fmt);
	vlog(fmt, ap);
	va_end(ap);
}

/*
 * One daemon per socket: an exclusive flock on PATH.lock, held for the
 * daemon's life.  The kernel drops it the moment the process dies, so a
 * socket file found while holding it is stale and is replaced.  (Probing
 * the socket with connect() cannot tell: after a kill -9 the dead daemon's
 * io_uring may keep the listening socket alive, and accepting into its
 * backlog, for a while.)  Never replaces a file that is not a socket.
 */
static int prepare_socket_path(struct daemon *d, const char *path)
{
	char lock[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct stat st;
	int fd;

	strcpy(dir, path);
	if (mkdir(dirname(dir), 0755) < 0 && errno != EEXIST) {
		d_log(D_ERR, "cannot create the directory of %s: %s", path,
		      strerror(errno));
		return -errno;
	}
	snprintf(lock, sizeof(lock), "%s.lock", path);
	/* The socket's lock file, like a registry's (writer/segment.c): only
	 * the daemon's uid may open it (0600), or another user could hold a
	 * shared flock on it and keep every daemon from starting; a file that
	 * is not ours (another user's, a link, not a regular file) is
	 * refused, never adopted.  O_NONBLOCK: a FIFO there must not hang. */
	fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK,
		  0600);
	if (fd < 0) {
		d_log(D_ERR, "%s: %s", lock, strerror(errno));
		return -errno;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_uid != geteuid() || st.st_nlink != 1) {
		d_log(D_ERR, "refusing %s: not a regular file of uid %d "
		      "(owner uid %d): remove it", lock, (int)geteuid(),
		      (int)st.st_uid);
		close(fd);
		return -EPERM;
	}
	if (fchmod(fd, 0600) < 0) {
		d_log(D_ERR, "%s: %s", lock, strerror(errno));
		close(fd);
		return -EPERM;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int err = errno;

		close(fd);
		if (err == EWOULDBLOCK) {
			d_log(D_ERR, "another daemon serves %s", path);
			return -EADDRINUSE;
		}
		d_log(D_ERR, "%s: %s", lock, strerror(err));
		return -err;
	}
	d->sock_lock_fd = fd;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		d_log(D_ERR, "%s exists and is not a socket", path);
		return -EEXIST;
	}
	d_log(D_INFO, "replacing stale socket %s", path);
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

static int open_socket(struct daemon *d)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path = d->o->socket_path;
	int fd, ret;

	ret = prepare_socket_path(d, path);
	if (ret < 0)
		return ret;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	strcpy(sa.sun_path, path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = -errno;
		d_log(D_ERR, "bind %s: %s", path, strerror(errno));
		close(fd);
		return ret;
	}
	d->unlink_socket = true;
	if (chmod(path, d->o->sock_mode) < 0 || listen(fd, SOMAXCONN) < 0) {
		ret = -errno;
		d_log(D_ERR, "socket %s: %s", path, strerror(errno));
		close(fd);
		return ret;
	}
	d->listen_fd = fd;
	return 0;
}

/* systemd Type=notify, without libsystemd: one datagram to $NOTIFY_SOCKET
 * ('@' means the abstract namespace). */
static void sd_notify_msg(const char *msg)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n;
	int fd;

	if (!path || (*path != '/' && *path != '@'))
		return;
	n = strlen(path);
	if (n >= sizeof(sa.sun_path))
		return;
	memcpy(sa.sun_path, path, n);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = 0;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	(void)sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
		     (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n));
	close(fd);
}

static void notify_ready(struct daemon *d)
{
	int fd = d->o->ready_fd;

	if (fd >= 0) {
		static const char msg[] = "READY\n";

		if (write(fd, msg, sizeof(msg) - 1) < 0)
			d_log(D_ERR, "--ready-fd %d: %s", fd, strerror(errno));
		close(fd);
		d->o->ready_fd = -1;
	}
	sd_notify_msg("READY=1");
}

/* A daemon with many clients needs a descriptor per connection and per
 * watched owner pid: take the hard limit. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int open_registries(struct daemon *d)
{
	for (unsigned i = 0; i < d->o->nreg; i++) {
		struct reg *r = &d->reg[i];
		shmreg_writer_opts_t wo = {
			.mode = d->o->reg[i].mode,
			.flags = d->o->truncate ? SHMREG_WRITER_TRUNCATE : 0,
		};
		char data_dir[PATH_MAX];
		int ret;

		r->ro = &d->o->reg[i];
		r->name = r->ro->name;
		r->idx = i;
		/* persistence: DIR/NAME, group commit (group_commit.c) */
		ret = d_persist_opts(d, r->ro, &wo, data_dir, sizeof(data_dir));
		if (ret < 0)
			return ret;
		ret = shmreg_writer_open(r->name, &wo, &r->w);
		if (ret < 0) {
			d_log(D_ERR, "registry %s: %s%s", r->name,
			      strerror(-ret),
			      ret == -EBUSY ? " (another writer owns it)" : "");
			return ret;
		}
		d->nreg++;
		ret = owner_adopt(d, r);
		if (ret < 0) {
			d_log(D_ERR, "registry %s: taking over owners: %s",
			      r->name, strerror(-ret));
			return ret;
		}
		d_log(D_INFO, "registry %s open at revision %llu", r->name,
		      (unsigned long long)shmreg_writer_revision(r->w));
		/* a bad --load at start is fatal: a daemon serving a
		 * registry without the contents it was told to load would
		 * look healthy and be wrong */
		if (r->ro->load_dir) {
			ret = load_registry(d, r, NULL, 0);
			if (ret < 0)
				return ret;
		}
		if (r->ro->mirror.urls) {
			ret = mirror_start(d, r);
			if (ret < 0)
				return ret;
		}
	}
	return 0;
}

static void close_registries(struct daemon *d)
{
	d_log_persist_stats(d); /* persistence */
	for (unsigned i = 0; i < d->nreg; i++) {
		shmreg_writer_close(d->reg[i].w);
		d->reg[i].w = NULL;
	}
	d->nreg = 0;
}

int main(int argc, char **argv)
{
	static struct daemon dd;
	static struct d_opts o;
	struct daemon *d = &dd;
	int ret, status = 1;

	ret = d_parse_args(argc, argv, &o);
	if (ret)
		return ret - 1;
	d_verbose = o.verbose;
	d->o = &o;
	d->listen_fd = -1;
	d->sig_fd = -1;
	d->sock_lock_fd = -1;
	d->metrics.fd = -1;
	/* replies go out with MSG_NOSIGNAL; this covers the log and the
	 * ready fd */
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();

	/* before any thread exists (the mirror's use libcurl) */
	curl_global_init(CURL_GLOBAL_DEFAULT);
	ret = loop_init(d);
	if (ret < 0) {
		/* EX_UNAVAILABLE: a kernel without io_uring (or with it
		 * disabled by sysctl) is a missing service, not a bug */
		if (ret == -ENOSYS || ret == -EPERM || ret == -EOPNOTSUPP)
			status = 69;
		goto out;
	}
	ret = open_registries(d);
	if (ret < 0)
		goto out;
	ret = open_socket(d);
	if (ret < 0)
		goto out;
	ret = metrics_open(d);
	if (ret < 0)
		goto out;
	d_log(D_INFO, "serving %u registr%s on %s (pid %d)", d->nreg,
	      d->nreg == 1 ? "y" : "ies", o.socket_path, (int)getpid());
	notify_ready(d);
	ret = loop_run(d);
	if (ret == 0)
		status = 0;
	sd_notify_msg("STOPPING=1");
out:
	if (d->unlink_socket)
		unlink(o.socket_path);
	if (d->listen_fd >= 0)
		close(d->listen_fd);
	/* released last: no second daemon binds the path before we are
	 * done with it */
	if (d->sock_lock_fd >= 0)
		close(d->sock_lock_fd);
	/* the ring goes first: it may still reference connection buffers */
	/* its threads first: they may still queue answers for connections */
	mirror_stop_all(d);
	loop_exit(d);
	metrics_free(d);
	conn_free_all(d);
	eph_free_all(d);
	owner_free_all(d);
	load_free_all(d);
	close_registries(d);
	curl_global_cleanup();
	d_log(D_INFO, "exiting (%s)", status ? "error" : "clean");
	return status;
}
