/* SPDX-License-Identifier: MIT */
/* http.c - the strict HTTP/1.x request-head reader of GET /metrics. */
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "http.h"

/*
 * How it works
 *
 * The metrics port is reachable by anything on the network it listens on,
 * so the reader trusts nothing: it finds the end of the head (CRLF CRLF)
 * within HTTP_HEAD_MAX bytes, then checks the request line (RFC 9112:
 * method SP target SP version, one space each) and that every field line
 * is "name: value" made of visible bytes, tabs and spaces.  A bare LF, a
 * NUL or another control byte anywhere is a 400, never a guess.  Only GET
 * and HEAD are served and no request may carry a body (Content-Length
 * other than 0, or Transfer-Encoding), so the connection never has to
 * read past the head: the server answers and closes.  Every loop walks
 * @buf once, so the work is at most a few passes over HTTP_HEAD_MAX bytes.
 */

#define TARGET_MAX 2048u

/* RFC 9110 tchar: the bytes of a method or a field name */
static bool tchar(unsigned char c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	    (c >= 'A' && c <= 'Z'))
		return true;
	return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* the end of the head: the offset after CRLF CRLF, or 0 */
static size_t head_end(const char *buf, size_t len)
{
	for (size_t i = 3; i < len; i++)
		if (buf[i] == '\n' && buf[i - 1] == '\r' &&
		    buf[i - 2] == '\n' && buf[i - 3] == '\r')
			return i + 1;
	return 0;
}

static long parse_line(const char *p, size_t n, struct http_req *req)
{
	const char *sp1 = memchr(p, ' ', n), *sp2, *t;
	size_t mlen, tlen;

	if (!sp1)
		return -400;
	mlen = (size_t)(sp1 - p);
	for (size_t i = 0; i < mlen; i++)
		if (!tchar((unsigned char)p[i]))
			return -400;
	t = sp1 + 1;
	sp2 = memchr(t, ' ', n - mlen - 1);
	if (!mlen || !sp2)
		return -400;
	tlen = (size_t)(sp2 - t);
	if (tlen > TARGET_MAX)
		return -414;
	if (!tlen || t[0] != '/')
		return -400; /* origin-form only: no proxy requests */
	for (size_t i = 0; i < tlen; i++)
		if ((unsigned char)t[i] <= ' ' || (unsigned char)t[i] >= 0x7f)
			return -400;
	if ((size_t)(p + n - (sp2 + 1)) != 8 ||
	    memcmp(sp2 + 1, "HTTP/1.", 7) != 0)
		return (size_t)(p + n - (sp2 + 1)) == 8 &&
		       memcmp(sp2 + 1, "HTTP/", 5) == 0 ? -505 : -400;
	if (sp2[8] != '0' && sp2[8] != '1')
		return -505;
	if (mlen == 3 && !memcmp(p, "GET", 3))
		req->head_only = 0;
	else if (mlen == 4 && !memcmp(p, "HEAD", 4))
		req->head_only = 1;
	else
		return -405;
	if ((tlen == 8 && !memcmp(t, "/metrics", 8)) ||
	    (tlen > 8 && !memcmp(t, "/metrics?", 9)))
		req->target = HTTP_METRICS;
	else if (tlen == 1)
		req->target = HTTP_ROOT;
	else
		req->target = HTTP_OTHER;
	return 0;
}

/* "name: value": a body announced is refused (we never read one) */
static long parse_field(const char *p, size_t n)
{
	const char *colon = memchr(p, ':', n);
	size_t nlen, i;

	if (!colon || colon == p)
		return -400;
	nlen = (size_t)(colon - p);
	for (i = 0; i < nlen; i++)
		if (!tchar((unsigned char)p[i]))
			return -400; /* also: no space before the colon */
	for (i = nlen + 1; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if ((c < ' ' && c != '\t') || c == 0x7f)
			return -400;
	}
	if (nlen == 17 && !strncasecmp(p, "transfer-encoding", 17))
		return -400;
	if (nlen == 14 && !strncasecmp(p, "content-length", 14)) {
		const char *v = colon + 1, *e = p + n;

		while (v < e && (*v == ' ' || *v == '\t'))
			v++;
		while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (e - v != 1 || *v != '0')
			return -400;
	}
	return 0;
}

long http_parse_request(const char *buf, size_t len, struct http_req *req)
{
	size_t end = head_end(buf, len < HTTP_HEAD_MAX ? len : HTTP_HEAD_MAX);
	size_t pos = 0;
	bool first = true;

	/* a bare LF or a NUL before the end is malformed at once: no need to
	 * wait for more bytes of a request that can only fail */
	for (size_t i = 0; i < (end ? end : len) && i < HTTP_HEAD_MAX; i++) {
		if (buf[i] == '\0' || (buf[i] == '\n' &&
				       (i == 0 || buf[i - 1] != '\r')))
			return -400;
		if (buf[i] == '\r' && i + 1 < len && buf[i + 1] != '\n')
			return -400;
	}
	if (!end)
		return len >= HTTP_HEAD_MAX ? -431 : 0;
	/* lines up to the empty one that ends the head; each ends in CRLF */
	while (pos < end - 2) {
		const char *p = buf + pos;
		const char *lf = memchr(p, '\n', end - pos);
		size_t n = (size_t)(lf - p) - 1; /* without CR LF */
		long rc;

		if (first)
			rc = parse_line(p, n, req);
		else if (p[0] == ' ' || p[0] == '\t')
			rc = -400; /* obsolete line folding */
		else
			rc = parse_field(p, n);
		if (rc)
			return rc;
		first = false;
		pos += n + 2;
	}
	if (first)
		return -400; /* nothing but an empty line */
	return (long)end;
}

const char *http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	}
	return "Error";
}
