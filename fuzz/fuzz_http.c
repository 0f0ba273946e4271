/* SPDX-License-Identifier: MIT */
/*
 * fuzz_http.c - libFuzzer target: shmregd's HTTP request-head reader
 * (writer/daemon/http.c, the --metrics-listen port) against arbitrary
 * bytes.
 *
 * Anything that reaches the port writes these bytes.  Beyond "no crash,
 * no read past the bytes received, no undefined behaviour" (the input is
 * copied to a buffer of exactly its size, so ASan sees any over-read):
 *   - the result is 0 (more bytes needed, only below HTTP_HEAD_MAX), the
 *     length of a complete head (at most the input and HTTP_HEAD_MAX), or
 *     one of the documented statuses negated;
 *   - a complete head is a GET or HEAD request line, ends in CRLF CRLF,
 *     parses the same on its own, and every shorter prefix of it is "need
 *     more bytes" (the daemon feeds the head as it arrives: a request must
 *     not be judged before it is whole);
 *   - a status never depends on bytes after the head.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_status(long rc, size_t size)
{
	if (rc > 0) {
		if ((size_t)rc > size || (size_t)rc > HTTP_HEAD_MAX)
			abort();
		return;
	}
	if (rc == 0) {
		if (size >= HTTP_HEAD_MAX)
			abort();
		return;
	}
	if (rc != -400 && rc != -405 && rc != -414 && rc != -431 &&
	    rc != -505)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_req req = { 0 }, again = { 0 };
	char *buf = malloc(size ? size : 1);
	long rc;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	rc = http_parse_request(buf, size, &req);
	check_status(rc, size);
	if (rc > 0) {
		size_t end = (size_t)rc;

		if (memcmp(buf + end - 4, "\r\n\r\n", 4) != 0 ||
		    (memcmp(buf, "GET ", 4) != 0 &&
		     memcmp(buf, "HEAD ", 5) != 0))
			abort();
		if (req.target < HTTP_METRICS || req.target > HTTP_OTHER ||
		    req.head_only != (buf[0] == 'H'))
			abort();
		if (http_parse_request(buf, end, &again) != rc ||
		    again.target != req.target ||
		    again.head_only != req.head_only)
			abort();
		/* every prefix, up to a bound that keeps an input fast */
		for (size_t n = 0; n < end && n < 512; n++)
			if (http_parse_request(buf, n, &again) != 0)
				abort();
		for (size_t n = end > 512 ? end - 64 : end; n < end; n++)
			if (http_parse_request(buf, n, &again) != 0)
				abort();
	}
	free(buf);
	return 0;
}
