/* SPDX-License-Identifier: MIT */
/* http.c - JSON POSTs to the etcd gateway, failing over between members. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http.h"

int64_t http_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

size_t hbuf_write(char *data, size_t size, size_t n, void *arg)
{
	struct hbuf *b = arg;
	size_t len = size * n;

	if (b->err)
		return 0;
	if (len > HTTP_BODY_MAX - b->len) {
		b->err = -E2BIG;
		return 0; /* libcurl aborts the transfer */
	}
	if (b->len + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *p;

		while (cap < b->len + len + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p) {
			b->err = -ENOMEM;
			return 0;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, len);
	b->len += len;
	b->p[b->len] = 0;
	return len;
}

void hbuf_free(struct hbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static int progress_cb(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut,
		       curl_off_t un)
{
	const atomic_bool *stop = arg;

	(void)dt, (void)dn, (void)ut, (void)un;
	return atomic_load_explicit(stop, memory_order_relaxed);
}

int hclient_init(struct hclient *c, char *const *urls, unsigned nurl,
		 const atomic_bool *stop)
{
	memset(c, 0, sizeof(*c));
	c->h = curl_easy_init();
	if (!c->h)
		return -ENOMEM;
	c->urls = urls;
	c->nurl = nurl;
	c->stop = stop;
	return 0;
}

void hclient_free(struct hclient *c)
{
	if (c->h)
		curl_easy_cleanup(c->h);
	c->h = NULL;
}

int hclient_post(struct hclient *c, const char *path, const char *body,
		 long timeout_ms, struct hbuf *out)
{
	int64_t deadline = http_now_ms() + timeout_ms;
	bool timed_out = false;
	char url[1024];

	memset(out, 0, sizeof(*out));
	/* at most one try per member: a write must not be sent twice to a
	 * cluster that merely answered slowly (the caller decides) */
	for (unsigned t = 0; t < c->nurl; t++) {
		int64_t left = deadline - http_now_ms();
		long status = 0;
		CURLcode cc;

		if (left <= 0)
			break;
		if (atomic_load_explicit(c->stop, memory_order_relaxed))
			return -ECANCELED;
		snprintf(url, sizeof(url), "%s%s", c->urls[c->cur], path);
		curl_easy_reset(c->h);
		curl_easy_setopt(c->h, CURLOPT_URL, url);
		curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c->h, CURLOPT_TIMEOUT_MS, (long)left);
		curl_easy_setopt(c->h, CURLOPT_CONNECTTIMEOUT_MS,
				 (long)(left < 1000 ? left : 1000));
		curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(c->h, CURLOPT_TCP_NODELAY, 1L);
		curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, hbuf_write);
		curl_easy_setopt(c->h, CURLOPT_WRITEDATA, out);
		curl_easy_setopt(c->h, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(c->h, CURLOPT_XFERINFOFUNCTION, progress_cb);
		curl_easy_setopt(c->h, CURLOPT_XFERINFODATA, (void *)c->stop);
		curl_easy_setopt(c->h, CURLOPT_PROTOCOLS_STR, "http,https");
		cc = curl_easy_perform(c->h);
		if (cc == CURLE_OK) {
			curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE,
					  &status);
			return (int)status;
		}
		if (out->err) {
			int err = out->err;

			hbuf_free(out);
			return err;
		}
		hbuf_free(out);
		if (cc == CURLE_ABORTED_BY_CALLBACK)
			return -ECANCELED;
		/* the next try, and the next request, go to the next
		 * member: this one refused, failed or stalled */
		c->cur = (c->cur + 1) % c->nurl;
		if (cc == CURLE_OPERATION_TIMEDOUT) {
			timed_out = true;
			/* sent, perhaps applied: do not resend a request that
			 * got no answer to another member; the caller learns
			 * -ETIMEDOUT */
			if (http_now_ms() >= deadline)
				break;
		}
	}
	return timed_out ? -ETIMEDOUT : -EAGAIN;
}
