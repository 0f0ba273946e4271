/* SPDX-License-Identifier: MIT */
/*
 * metrics.h - shmregd's Prometheus metrics: the per-registry request
 * counters kept by the loop, and --metrics-listen, the HTTP endpoint that
 * serves them (GET /metrics) from the same io_uring loop.
 */
#ifndef SHMREGD_METRICS_H
#define SHMREGD_METRICS_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "d_tag.h"

/* Request ops counted by number (the wire's op byte); any above is one
 * "other".  Errnos likewise. */
#define M_OPS    32u
#define M_ERRNOS 134u

/* Per registry (struct reg) and for requests before HELLO chose one. */
struct reg_metrics {
	uint64_t ok[M_OPS + 1];      /* replies with status >= 0, by op */
	uint64_t failed[M_OPS + 1];  /* replies with status < 0, by op */
	uint64_t err[M_ERRNOS + 1];  /* failed replies by errno */
};

/* HTTP: connections open at most at once (the oldest goes for a new one,
 * so a client that never finishes its request cannot lock scrapes out),
 * and the time one may take from accept to the last byte sent. */
#define M_HTTP_CONNS      16u
#define M_HTTP_TIMEOUT_NS 10000000000ull

struct http_conn;

/* The HTTP endpoint.  kind is the first field of it and of every
 * http_conn: the loop's one tag for both (D_TAG_METRICS) tells them apart
 * by it. */
struct D_TAGGED metrics_srv {
	uint8_t kind;               /* M_KIND_LISTEN */
	int fd;                     /* listening socket, -1: none */
	bool armed;                 /* multishot accept in flight */
	struct http_conn *conns;    /* open, oldest last */
	unsigned nconns;
	struct http_conn *zombies;  /* closed, waiting for their SQEs */
	struct reg_metrics unbound; /* requests of connections without a
	                             * registry (HELLO not yet accepted) */
	uint64_t scrapes;           /* GET /metrics answered */
	uint64_t http_bad;          /* requests answered 4xx/5xx or timed out */
};
#define M_KIND_LISTEN 1u
#define M_KIND_CONN   2u

struct daemon;
struct conn;
struct reg;

/* metrics.c: count a reply of @c to @op with @status (reply() calls it). */
void metrics_count(struct conn *c, unsigned op, int status);
/* metrics.c: the whole exposition (registry, daemon and HTTP families). */
void metrics_render(struct daemon *d, FILE *f);

/* metrics_http.c: bind and listen on --metrics-listen (nothing when it
 * was not given).  0 or -errno (logged). */
int metrics_open(struct daemon *d);
/* Whether @spec is an ADDR:PORT --metrics-listen takes (IPv4, or IPv6 in
 * brackets). */
bool metrics_parse_listen(const char *spec);
/* Arm the accept (again, after an error or when the tick says so). */
void metrics_arm(struct daemon *d);
/* A completion tagged D_TAG_METRICS, @p its pointer. */
void metrics_cqe(struct daemon *d, void *p, const struct io_uring_cqe *cqe);
/* Tick: close connections past M_HTTP_TIMEOUT_NS; free finished ones. */
void metrics_tick(struct daemon *d, uint64_t now);
/* Shutdown: stop accepting, close every HTTP connection. */
void metrics_stop(struct daemon *d);
/* After the ring is gone: free what is left. */
void metrics_free(struct daemon *d);

#endif /* SHMREGD_METRICS_H */
