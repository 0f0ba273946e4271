/* SPDX-License-Identifier: MIT */
/*
 * daemon_harness.h - start and stop a real shmregd ($SHMREGD) for the
 * daemon suites: a private socket directory, a registry in the test's
 * SHMREG_DIR, readiness through --ready-fd (no polling, no sleeping).
 */
#ifndef TESTS_DAEMON_HARNESS_H
#define TESTS_DAEMON_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "shmreg.h"

struct dh {
	pid_t pid;            /* the daemon, 0 when not running */
	char dir[64];         /* private directory of the socket */
	char sock[128];       /* socket path */
	const char *reg;      /* registry name */
	char regpath[160];    /* the registry, when dh_reg_in_dir put it */
};

/* Make the socket directory (mode 0755, so other uids can reach the
 * socket) under /tmp: SHMREG_DIR may be too long for sun_path. */
void dh_init(struct dh *h, const char *reg);

/*
 * Start shmregd for h->reg on h->sock with the extra arguments @extra
 * (NULL-terminated, may be NULL) and wait until it serves.  Exits the test
 * with 77 when the daemon reports io_uring unavailable (exit status 69),
 * fails it when the daemon cannot start otherwise.
 */
void dh_start(struct dh *h, const char *const *extra);

/* Send @sig and reap the daemon.  Returns its exit status, or 128 + the
 * signal that killed it. */
int dh_stop(struct dh *h, int sig);

/* Stop the daemon if it runs (SIGKILL) and remove the socket directory
 * with everything in it. */
void dh_cleanup(struct dh *h);

/* Connect a client to the harness daemon (fails the test on error). */
shmreg_client_t *dh_connect(struct dh *h);

/* Open the registry for reading (fails the test on error). */
shmreg_t *dh_open(struct dh *h);

/* Wait up to @timeout_ms for @key to be absent (watch_key, then a get to
 * confirm).  Returns 0 or -ETIMEDOUT. */
int dh_wait_gone(shmreg_t *r, const char *key, int timeout_ms);

/* The daemon's stats, through a connection of their own (fails the test
 * on error). */
shmreg_daemon_stats_t dh_stats(struct dh *h);

/* ---- other uids ---- */

/* Skip the test (exit 77) unless it runs as root, which it needs "to
 * @why". */
void dh_need_root(const char *why);

/* Name the registry @name in the socket directory (h->reg points to
 * h->regpath then): mode 0755, so another uid reaches it whatever the
 * modes of the build tree are. */
void dh_reg_in_dir(struct dh *h, const char *name);

/* In a child running as root: become @uid / @gid, with no supplementary
 * groups (fails the test on error). */
void dh_become(uid_t uid, gid_t gid);

/* ---- raw connections: the wire protocol (shm/proto.h) by hand ---- */

struct proto_reply;

/* A socket connected to the daemon, nothing sent (fails the test on
 * error). */
int dh_raw_connect(const struct dh *h);

/* Send all @len bytes of @buf on @fd (fails the test on error). */
void dh_send_all(int fd, const void *buf, size_t len);

/* Read one reply frame from @fd into @buf (PROTO_REPLY_MAX bytes), decoded
 * into @rep, within 10 s, never reading past it.  Returns false on EOF (or
 * a reset) before any byte of it; fails the test on a malformed reply, EOF
 * inside one, or none in time. */
bool dh_read_reply(int fd, struct proto_reply *rep, uint8_t *buf);

/* Whether the daemon has closed @fd: false when it is not readable within
 * @timeout_ms, true when it reads EOF or a reset; data fails the test
 * ("@what: got ..."). */
bool dh_closed(int fd, int timeout_ms, const char *what);

#endif /* TESTS_DAEMON_HARNESS_H */
