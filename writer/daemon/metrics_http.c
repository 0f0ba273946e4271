/* SPDX-License-Identifier: MIT */
/* metrics_http.c - shmregd --metrics-listen: GET /metrics on io_uring. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon.h"
#include "http.h"
#include "metrics_text.h"

/*
 * How it works
 *
 * The endpoint lives in the daemon's one loop, like the Unix socket: one
 * multishot accept, and per connection one recv at a time into the
 * connection's own head buffer (HTTP_HEAD_MAX bytes; the provided buffer
 * ring is for clients of the registry), then one send at a time of the
 * whole response.  Every exchange is "read one request head, answer,
 * close" (Connection: close): no keep-alive, no body, so a connection's
 * state is that buffer and the response, and its life is bounded by
 * M_HTTP_TIMEOUT_NS from accept, enforced by the tick.  At most
 * M_HTTP_CONNS are open; a new one closes the oldest, so clients that
 * open connections and send nothing can delay a scrape, never stop it.
 *
 * After the answer, the connection shuts its sending side and reads
 * what the peer still sends, discarding it, until the peer closes (or the
 * deadline): closing with unread input would reset the connection and
 * could destroy the answer before the peer read it (the "lingering close"
 * of HTTP servers).
 *
 * A connection being closed while an SQE names it is shut down (the
 * kernel completes its recv or send) and freed once the last completion
 * came back (ops == 0), like the registry connections of conn.c.
 */

struct D_TAGGED http_conn {
	uint8_t kind;               /* M_KIND_CONN; first, see metrics.h */
	bool dead;                  /* closed: freed when ops == 0 */
	bool lingering;             /* answered: reading to EOF, see below */
	int fd;
	unsigned ops;               /* SQEs in flight naming it */
	uint64_t deadline_ns;
	size_t in_len;
	char in[HTTP_HEAD_MAX];
	char *out;                  /* the response, from open_memstream */
	size_t out_len, out_off;
	struct http_conn *prev, *next;
};

static int parse_listen(const char *spec, struct sockaddr_storage *ss,
			socklen_t *len)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	char host[64];
	const char *colon = strrchr(spec, ':');
	char *end;
	unsigned long port;
	size_t hlen;

	if (!colon)
		return -EINVAL;
	hlen = (size_t)(colon - spec);
	port = strtoul(colon + 1, &end, 10);
	if (!colon[1] || *end || port > 65535 || hlen >= sizeof(host))
		return -EINVAL;
	memcpy(host, spec, hlen);
	host[hlen] = 0;
	memset(ss, 0, sizeof(*ss));
	if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
		host[hlen - 1] = 0;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*in6);
		return inet_pton(AF_INET6, host + 1, &in6->sin6_addr) == 1
			       ? 0 : -EINVAL;
	}
	in4->sin_family = AF_INET;
	in4->sin_port = htons((uint16_t)port);
	*len = sizeof(*in4);
	return inet_pton(AF_INET, host, &in4->sin_addr) == 1 ? 0 : -EINVAL;
}

/* The address bound, port 0 resolved: what a client must use. */
static void log_bound(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET6) {
			const struct sockaddr_in6 *a = (void *)&ss;

			inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
			port = ntohs(a->sin6_port);
			d_log(D_INFO, "metrics on http://[%s]:%u/metrics",
			      host, port);
			return;
		}
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(void *)&ss)
					   ->sin_addr, host, sizeof(host));
		port = ntohs(((const struct sockaddr_in *)(void *)&ss)
				     ->sin_port);
	}
	d_log(D_INFO, "metrics on http://%s:%u/metrics", host, port);
}

int metrics_open(struct daemon *d)
{
	struct metrics_srv *ms = &d->metrics;
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1, fd, ret;

	ms->kind = M_KIND_LISTEN;
	ms->fd = -1;
	if (!d->o->metrics_listen)
		return 0;
	/* d_parse_args() checked the syntax */
	if (parse_listen(d->o->metrics_listen, &ss, &len) < 0)
		return -EINVAL;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
		    0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 ||
	    listen(fd, 64) < 0) {
		ret = -errno;
		d_log(D_ERR, "--metrics-listen %s: %s", d->o->metrics_listen,
		      strerror(errno));
		close(fd);
		return ret;
	}
	ms->fd = fd;
	log_bound(fd);
	return 0;
}

bool metrics_parse_listen(const char *spec)
{
	struct sockaddr_storage ss;
	socklen_t len;

	return parse_listen(spec, &ss, &len) == 0;
}

void metrics_arm(struct daemon *d)
{
	struct metrics_srv *ms = &d->metrics;
	struct io_uring_sqe *sqe;

	if (ms->armed || ms->fd < 0 || d->state != D_RUNNING)
		return;
	sqe = d_sqe(d);
	io_uring_prep_multishot_accept(sqe, ms->fd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, d_ud(ms, D_TAG_METRICS));
	ms->armed = true;
}

static void hc_unlink(struct metrics_srv *ms, struct http_conn *h)
{
	if (h->prev)
		h->prev->next = h->next;
	else
		ms->conns = h->next;
	if (h->next)
		h->next->prev = h->prev;
	h->prev = h->next = NULL;
	ms->nconns--;
}

static void hc_close(struct daemon *d, struct http_conn *h)
{
	struct metrics_srv *ms = &d->metrics;

	if (h->dead)
		return;
	h->dead = true;
	hc_unlink(ms, h);
	/* completes a recv or send in flight; the fd is closed when the
	 * last one is back (a closed fd number could be reused under it) */
	shutdown(h->fd, SHUT_RDWR);
	h->next = ms->zombies;
	ms->zombies = h;
}

static void hc_arm_recv(struct daemon *d, struct http_conn *h)
{
	struct io_uring_sqe *sqe = d_sqe(d);

	io_uring_prep_recv(sqe, h->fd, h->in + h->in_len,
			   HTTP_HEAD_MAX - h->in_len, 0);
	io_uring_sqe_set_data64(sqe, d_ud(h, D_TAG_METRICS));
	h->ops++;
}

static void hc_arm_send(struct daemon *d, struct http_conn *h)
{
	struct io_uring_sqe *sqe = d_sqe(d);

	io_uring_prep_send(sqe, h->fd, h->out + h->out_off,
			   h->out_len - h->out_off, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, d_ud(h, D_TAG_METRICS));
	h->ops++;
}

static void hc_accept(struct daemon *d, int fd)
{
	struct metrics_srv *ms = &d->metrics;
	struct http_conn *h, *old;

	if (ms->nconns >= M_HTTP_CONNS) {
		/* the oldest is the last: new connections go first */
		for (old = ms->conns; old->next; old = old->next)
			;
		/* one that was answered already lost nothing */
		ms->http_bad += !old->lingering;
		hc_close(d, old);
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		close(fd);
		return;
	}
	h->kind = M_KIND_CONN;
	h->fd = fd;
	h->deadline_ns = d_now_ns() + M_HTTP_TIMEOUT_NS;
	h->next = ms->conns;
	if (ms->conns)
		ms->conns->prev = h;
	ms->conns = h;
	ms->nconns++;
	hc_arm_recv(d, h);
}

/* The response to @status (@req: what a 200 answers), into h->out. */
static void hc_respond(struct daemon *d, struct http_conn *h, int status,
		       const struct http_req *req)
{
	char *body = NULL;
	size_t blen = 0;
	FILE *f = open_memstream(&body, &blen);
	FILE *o;

	if (!f) {
		hc_close(d, h);
		return;
	}
	if (status == 200 && req->target == HTTP_METRICS)
		metrics_render(d, f);
	else if (status == 200)
		fputs("shmregd: metrics at /metrics\n", f);
	else
		fprintf(f, "%d %s\n", status, http_reason(status));
	if (fclose(f) != 0) {
		free(body);
		hc_close(d, h);
		return;
	}
	o = open_memstream(&h->out, &h->out_len);
	if (!o) {
		free(body);
		hc_close(d, h);
		return;
	}
	fprintf(o, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
		"Content-Length: %zu\r\nConnection: close\r\n%s\r\n", status,
		http_reason(status),
		status == 200 && req->target == HTTP_METRICS
			? PROM_CONTENT_TYPE : "text/plain; charset=utf-8",
		blen, status == 405 ? "Allow: GET, HEAD\r\n" : "");
	if (!(status == 200 && req->head_only))
		fwrite(body, 1, blen, o);
	free(body);
	if (fclose(o) != 0) {
		hc_close(d, h);
		return;
	}
	h->out_off = 0;
	hc_arm_send(d, h);
}

static void hc_recv_done(struct daemon *d, struct http_conn *h, int res)
{
	struct http_req req = { 0 };
	long rc;

	if (res <= 0) {
		/* the peer went away (or an error): nothing to answer */
		hc_close(d, h);
		return;
	}
	h->in_len += (size_t)res;
	rc = http_parse_request(h->in, h->in_len, &req);
	if (rc == 0) {
		hc_arm_recv(d, h); /* in_len < HTTP_HEAD_MAX: see http.h */
		return;
	}
	if (rc < 0) {
		d->metrics.http_bad++;
		hc_respond(d, h, (int)-rc, &req);
		return;
	}
	if (req.target == HTTP_OTHER) {
		d->metrics.http_bad++;
		hc_respond(d, h, 404, &req);
		return;
	}
	if (req.target == HTTP_METRICS)
		d->metrics.scrapes++;
	hc_respond(d, h, 200, &req);
}

static void hc_send_done(struct daemon *d, struct http_conn *h, int res)
{
	if (res <= 0) {
		hc_close(d, h);
		return;
	}
	h->out_off += (size_t)res;
	if (h->out_off < h->out_len) {
		hc_arm_send(d, h);
		return;
	}
	/* Connection: close, lingering (see above) */
	shutdown(h->fd, SHUT_WR);
	h->lingering = true;
	h->in_len = 0;
	hc_arm_recv(d, h);
}

static void on_accept(struct daemon *d, const struct io_uring_cqe *cqe)
{
	struct metrics_srv *ms = &d->metrics;

	if (!(cqe->flags & IORING_CQE_F_MORE))
		ms->armed = false;
	if (cqe->res >= 0) {
		if (d->state == D_RUNNING)
			hc_accept(d, cqe->res);
		else
			close(cqe->res);
	} else if (cqe->res != -ECANCELED) {
		/* out of descriptors or memory: the tick re-arms */
		d_log_limited(D_ERR, "metrics accept: %s",
			      strerror(-cqe->res));
		return;
	}
	metrics_arm(d);
}

void metrics_cqe(struct daemon *d, void *p, const struct io_uring_cqe *cqe)
{
	struct http_conn *h = p;

	if (*(const uint8_t *)p == M_KIND_LISTEN) {
		on_accept(d, cqe);
		return;
	}
	h->ops--;
	if (h->dead)
		return; /* metrics_tick frees it */
	/* one SQE at a time: the response is set only after the request */
	if (h->lingering) {
		if (cqe->res <= 0)
			hc_close(d, h);
		else
			hc_arm_recv(d, h); /* discarded: in_len stays 0 */
	} else if (h->out) {
		hc_send_done(d, h, cqe->res);
	} else {
		hc_recv_done(d, h, cqe->res);
	}
}

static void free_zombies(struct metrics_srv *ms)
{
	struct http_conn **pp = &ms->zombies;

	/* bounded by the connections closed since the last call */
	while (*pp) {
		struct http_conn *h = *pp;

		if (h->ops) {
			pp = &h->next;
			continue;
		}
		*pp = h->next;
		close(h->fd);
		free(h->out);
		free(h);
	}
}

void metrics_tick(struct daemon *d, uint64_t now)
{
	struct metrics_srv *ms = &d->metrics;
	struct http_conn *h, *next;

	/* at most M_HTTP_CONNS */
	for (h = ms->conns; h; h = next) {
		next = h->next;
		if (now >= h->deadline_ns) {
			ms->http_bad += !h->lingering;
			hc_close(d, h);
		}
	}
	free_zombies(ms);
	metrics_arm(d);
}

void metrics_stop(struct daemon *d)
{
	struct metrics_srv *ms = &d->metrics;

	if (ms->armed) {
		struct io_uring_sqe *sqe = d_sqe(d);

		io_uring_prep_cancel64(sqe, d_ud(ms, D_TAG_METRICS), 0);
		io_uring_sqe_set_data64(sqe, D_TAG_IGNORE);
	}
	while (ms->conns)
		hc_close(d, ms->conns);
}

void metrics_free(struct daemon *d)
{
	struct metrics_srv *ms = &d->metrics;

	/* the ring is gone: no SQE names a connection any more */
	while (ms->conns)
		hc_close(d, ms->conns);
	for (struct http_conn *h = ms->zombies; h; h = h->next)
		h->ops = 0;
	free_zombies(ms);
	if (ms->fd >= 0)
		close(ms->fd);
	ms->fd = -1;
}
