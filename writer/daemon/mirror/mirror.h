/* SPDX-License-Identifier: MIT */
/*
 * mirror.h - a registry that mirrors a prefix of an etcd v3 cluster
 * (--etcd URL[,URL...] --etcd-prefix P).  docs/multi-host.md is the guide.
 *
 * Threads.  The writer has one owner, the daemon's loop thread, and only it
 * changes the registry.  Each mirrored registry adds two threads that do
 * the blocking HTTP: the watch thread (range, then the watch stream, with
 * failover and resync) and the request thread (writes forwarded from
 * clients).  They hand what they decoded to the loop through one queue per
 * registry, signalled by an eventfd the loop polls through io_uring.
 *
 * Memory ordering: the queue is a list under a mutex.  A thread fills a
 * message, then locks, links it and unlocks (release), then writes the
 * eventfd; the loop, woken by the eventfd's poll, locks (acquire: pairs
 * with the thread's unlock) and takes the whole list, so every store to
 * a message happens before the loop reads it.  The eventfd is only the
 * wake-up: the loop reads (resets) it before taking the list, so a message
 * linked after the take writes the eventfd again and is not missed.  The
 * only other shared state is the stop flag (atomic, relaxed: a thread
 * that sees it late only finishes one more bounded HTTP call) and the
 * job queue of the request thread, under its own mutex and condvar.
 */
#ifndef SHMREGD_MIRROR_H
#define SHMREGD_MIRROR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct daemon;
struct reg;
struct conn;
struct proto_req;
struct mirror;

/* The --etcd options of one registry. */
struct d_mirror_opts {
	const char *urls;           /* --etcd, comma-separated; NULL: none */
	const char *prefix;         /* --etcd-prefix */
	uint64_t timeout_ns;        /* --etcd-timeout: bound of a write */
	uint64_t stall_ns;          /* --etcd-stall-timeout: a watch that
	                             * receives nothing for this long is
	                             * reconnected */
	unsigned lease_ttl_s;       /* --etcd-lease-ttl: owners' leases */
};

/* Start the registry's mirror (its threads begin at once).  Returns 0 or
 * -errno (logged). */
int mirror_start(struct daemon *d, struct reg *r);
/* Stop every mirror's threads and free them (shutdown). */
void mirror_stop_all(struct daemon *d);
/* The eventfd poll of @m completed: apply what the threads sent. */
void mirror_cqe(struct daemon *d, struct mirror *m, int res, bool more);
/* Tick: fail forwarded writes whose revision did not arrive in time. */
void mirror_tick(struct daemon *d, uint64_t now);

/* Whether a request of @c must go to etcd (its registry is a mirror and
 * the op writes).  Then mirror_forward answers it (now with an error, or
 * later once etcd acknowledged it and the revision was applied); @c does
 * not decode further requests until then. */
bool mirror_owns(const struct conn *c, const struct proto_req *q);
void mirror_forward(struct conn *c, const struct proto_req *q);

/* An owner ended: pid @pid exited (owners.c), or connection @c closed
 * (conn.c).  Its etcd lease is revoked, so etcd deletes its keys. */
void mirror_pid_exited(struct reg *r, pid_t pid);
void mirror_conn_closed(struct conn *c);

/* Health: realtime ns since the watch is not connected (0: connected). */
uint64_t mirror_stale_since(const struct reg *r);

#endif /* SHMREGD_MIRROR_H */
