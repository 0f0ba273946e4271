/* SPDX-License-Identifier: MIT */
/*
 * http.h - blocking JSON POSTs to etcd's v3 gateway with failover over the
 * members' URLs (libcurl easy handles; used by the mirror's threads only).
 */
#ifndef SHMREGD_MIRROR_HTTP_H
#define SHMREGD_MIRROR_HTTP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

/* A reply body: growable, terminated, at most HTTP_BODY_MAX bytes. */
#define HTTP_BODY_MAX (256u << 20)
struct hbuf {
	char *p;
	size_t len, cap;
	int err;                    /* -ENOMEM / -E2BIG while receiving */
};

struct hclient {
	CURL *h;
	char *const *urls;          /* the --etcd members, base URLs */
	unsigned nurl;
	unsigned cur;               /* the member in use */
	const atomic_bool *stop;    /* abort transfers when set */
};

int hclient_init(struct hclient *c, char *const *urls, unsigned nurl,
		 const atomic_bool *stop);
void hclient_free(struct hclient *c);

/* POST @body to @path (e.g. "/v3/kv/put") within @timeout_ms, trying the
 * members in turn from the one in use while time is left (a member that
 * refuses the connection or times out is left for the next).  Returns the
 * HTTP status (the reply in @out, which the caller frees), or -EAGAIN (no
 * member reachable), -ETIMEDOUT, -ECANCELED (stop set), -ENOMEM, -E2BIG. */
int hclient_post(struct hclient *c, const char *path, const char *body,
		 long timeout_ms, struct hbuf *out);

/* The libcurl write callback appending to a struct hbuf. */
size_t hbuf_write(char *data, size_t size, size_t n, void *arg);
void hbuf_free(struct hbuf *b);

/* The current time for deadlines (CLOCK_MONOTONIC, ms). */
int64_t http_now_ms(void);

#endif /* SHMREGD_MIRROR_HTTP_H */
