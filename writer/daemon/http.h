/* SPDX-License-Identifier: MIT */
/*
 * http.h - the smallest strict HTTP/1.x request reader that serves
 * GET /metrics: the request head only, bounded, every byte checked.
 */
#ifndef SHMREGD_HTTP_H
#define SHMREGD_HTTP_H

#include <stddef.h>

/* Largest request head (request line and header fields) accepted; a
 * Prometheus scrape sends about 300 bytes. */
#define HTTP_HEAD_MAX 8192u

/* The request's target, as far as shmregd cares. */
enum http_target {
	HTTP_METRICS = 1,        /* /metrics, with or without a query */
	HTTP_ROOT,               /* / (a pointer to /metrics) */
	HTTP_OTHER,              /* anything else: 404 */
};

struct http_req {
	enum http_target target;
	int head_only;           /* HEAD: the headers of the GET, no body */
};

/*
 * Parse the request head in @buf (@len bytes received so far).  Returns
 *   0    more bytes are needed (no CRLF CRLF yet, and len < HTTP_HEAD_MAX)
 *   > 0  the head is complete and valid: its length in bytes; *@req says
 *        what was asked
 *   < 0  the HTTP status to answer, negated: -400 malformed (a control
 *        byte, a bare LF, a missing field, a header without a colon, a
 *        request body announced), -405 a method other than GET and HEAD,
 *        -414 a target over 2 KiB, -431 the head over HTTP_HEAD_MAX,
 *        -505 a version other than HTTP/1.0 and HTTP/1.1
 * Reads @buf only, never past @len; the work is linear in @len.
 */
long http_parse_request(const char *buf, size_t len, struct http_req *req);

/* The reason phrase of @status (200, 400, ...), "Error" when unknown. */
const char *http_reason(int status);

#endif /* SHMREGD_HTTP_H */
