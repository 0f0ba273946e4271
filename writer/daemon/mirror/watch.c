/* SPDX-License-Identifier: MIT */
/*
 * watch.c - the watch thread: keep the registry's view of the prefix
 * complete, whatever happens to the members.
 *
 * How it works.  The thread owes the loop every revision after `next - 1`:
 *
 *   need a range (start with an empty segment, or compacted past next):
 *       range the prefix, page by page at one revision R (the first
 *       page's), and hand it over as one resync; next = R + 1
 *   watch from next (progress_notify on): each message's events, grouped
 *       by revision, go to the loop; next = the last revision + 1
 *   the stream ends, fails, or receives nothing for --etcd-stall-timeout
 *       (a half-open connection, a member cut off): take the next member,
 *       watch from next again
 *   canceled with compact_revision: the history is gone; range again
 *
 * Nothing is lost: `next` only moves past revisions whose events were
 * handed over, and a watch from next replays everything after it.  Nothing
 * is duplicated: the loop ignores a revision it has applied already (a
 * member may resend the last one after a failover).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../daemon.h"
#include "internal.h"

#define RANGE_PAGE 1000         /* keys per range request */
#define LINE_MAX_BYTES (HTTP_BODY_MAX)

struct wstate {
	struct mirror *m;
	struct hclient hc;
	uint64_t next;              /* first revision not handed over */
	bool need_range;
	bool compacted;             /* the stream said so: range again */
	bool created;
	struct hbuf line;           /* a partial message */
	int err;
};

static void push_state(struct mirror *m, bool up)
{
	struct mmsg *msg = calloc(1, sizeof(*msg));

	if (!msg)
		return; /* health only: the next change of state says it */
	msg->kind = MM_STATE;
	msg->up = up;
	mq_push(m, msg);
}

static void sleep_ms(struct mirror *m, long ms)
{
	/* in slices, so that stop is seen within 50 ms */
	while (ms > 0 && !atomic_load_explicit(&m->stop, memory_order_relaxed)) {
		long s = ms < 50 ? ms : 50;
		struct timespec ts = { 0, s * 1000000L };

		nanosleep(&ts, NULL);
		ms -= s;
	}
}

/* Append the range at revision @rev (0: the current one) starting at key
 * @from_b64 to @all.  Returns 0, -EAGAIN (unreachable, retry), -EPROTO. */
static int range_page(struct wstate *ws, const char *from_b64, int64_t rev,
		      struct mrange *page)
{
	struct mirror *m = ws->m;
	char *body;
	struct hbuf out;
	int st, rc;
	size_t n = strlen(from_b64) + strlen(m->end_b64) + 128;

	body = malloc(n);
	if (!body)
		return -ENOMEM;
	snprintf(body, n, "{\"key\":\"%s\",\"range_end\":\"%s\",\"limit\":\"%d\""
		 ",\"revision\":\"%lld\"}", from_b64, m->end_b64, RANGE_PAGE,
		 (long long)rev);
	st = hclient_post(&ws->hc, "/v3/kv/range", body,
			  (long)(m->o->timeout_ns / 1000000 * 4), &out);
	free(body);
	if (st < 0)
		return st;
	if (st != 200) {
		int code = mdec_error_code(out.p, out.len);

		hbuf_free(&out);
		/* 11 = OutOfRange: the revision was compacted meanwhile */
		return code == 11 ? -ESTALE : -EAGAIN;
	}
	rc = mdec_range(out.p, out.len, page);
	hbuf_free(&out);
	return rc;
}

/* The whole prefix at one revision, into a resync message. */
static int do_range(struct wstate *ws)
{
	struct mirror *m = ws->m;
	struct mmsg *msg = calloc(1, sizeof(*msg));
	char *from = strdup(m->prefix_b64);
	int64_t rev = 0;
	int rc = 0;

	if (!msg || !from) {
		free(msg);
		free(from);
		return -ENOMEM;
	}
	msg->kind = MM_RESYNC;
	/* bounded by the prefix's keys / RANGE_PAGE requests */
	for (;;) {
		struct mrange page;
		struct mkv *grown;

		rc = range_page(ws, from, rev, &page);
		if (rc < 0)
			break;
		if (!rev)
			rev = page.header_rev;
		if (page.nkv) {
			grown = realloc(msg->rng.kvs, (msg->rng.nkv + page.nkv) *
						      sizeof(*grown));
			if (!grown) {
				mdec_range_free(&page);
				rc = -ENOMEM;
				break;
			}
			msg->rng.kvs = grown;
			memcpy(grown + msg->rng.nkv, page.kvs,
			       page.nkv * sizeof(*grown));
			msg->rng.nkv += page.nkv;
			free(page.kvs);
			page.kvs = NULL;
			page.nkv = 0;
		}
		if (!page.more || !msg->rng.nkv)
			break;
		/* the next page starts just after the last key */
		{
			const struct mkv *last = &msg->rng.kvs[msg->rng.nkv - 1];
			uint8_t *k = malloc(last->klen + 1);

			free(from);
			from = k ? malloc(mdec_b64_len(last->klen + 1) + 1) : NULL;
			if (!from) {
				free(k);
				rc = -ENOMEM;
				break;
			}
			memcpy(k, last->key, last->klen);
			k[last->klen] = 0;
			mdec_b64_encode(k, last->klen + 1, from);
			free(k);
		}
	}
	free(from);
	if (rc < 0) {
		mmsg_free(msg);
		return rc;
	}
	msg->rng.header_rev = rev;
	msg->rev = (uint64_t)rev;
	ws->next = (uint64_t)rev + 1;
	mq_push(m, msg);
	return 0;
}

/* One revision's events [from, to) of a watch message, to the loop. */
static int push_events(struct wstate *ws, struct mwatch *w, size_t from,
		       size_t to)
{
	struct mmsg *msg = calloc(1, sizeof(*msg));
	uint64_t rev = (uint64_t)w->ev[from].kv.mod_rev;

	if (!msg)
		return -ENOMEM;
	msg->kind = MM_EVENTS;
	msg->rev = rev;
	msg->nev = to - from;
	msg->ev = malloc(msg->nev * sizeof(*msg->ev));
	if (!msg->ev) {
		free(msg);
		return -ENOMEM;
	}
	/* the message takes the keys and values over */
	memcpy(msg->ev, w->ev + from, msg->nev * sizeof(*msg->ev));
	memset(w->ev + from, 0, msg->nev * sizeof(*msg->ev));
	mq_push(ws->m, msg);
	ws->next = rev + 1;
	return 0;
}

static int handle_message(struct wstate *ws, const char *p, size_t n)
{
	struct mwatch w;
	int rc = mdec_watch(p, n, &w);

	if (rc < 0) {
		/* d_log, not d_log_limited (whose state is the loop
		 * thread's): bounded by the reconnect backoff anyway */
		d_log(D_ERR, "registry %s: bad etcd watch message (%s); "
		      "reconnecting", ws->m->r->name, strerror(-rc));
		return rc;
	}
	switch (w.kind) {
	case MW_CREATED:
		ws->created = true;
		push_state(ws->m, true);
		break;
	case MW_PROGRESS:
		break;
	case MW_CANCELED:
		if (w.compact_rev > 0) {
			d_log(D_INFO, "registry %s: etcd revision %llu "
			      "compacted (compact revision %lld): resyncing",
			      ws->m->r->name, (unsigned long long)ws->next,
			      (long long)w.compact_rev);
			ws->compacted = true;
		}
		rc = -ECANCELED;
		break;
	case MW_ERROR:
		rc = -EIO;
		break;
	case MW_EVENTS:
		for (size_t i = 0, j; i < w.nev && rc == 0; i = j) {
			for (j = i + 1; j < w.nev &&
			     w.ev[j].kv.mod_rev == w.ev[i].kv.mod_rev; j++)
				;
			/* already handed over (a resent revision) */
			if ((uint64_t)w.ev[i].kv.mod_rev < ws->next)
				continue;
			rc = push_events(ws, &w, i, j);
		}
		break;
	}
	mdec_watch_free(&w);
	return rc;
}

/* libcurl's write callback: split the stream into messages (one JSON
 * object per line) and handle each. */
static size_t on_stream(char *data, size_t size, size_t n, void *arg)
{
	struct wstate *ws = arg;
	size_t len = size * n, done = 0;

	while (done < len) {
		char *nl = memchr(data + done, '\n', len - done);
		size_t k = nl ? (size_t)(nl - (data + done)) : len - done;

		if (hbuf_write(data + done, 1, k, &ws->line) != k) {
			ws->err = ws->line.err ? ws->line.err : -ENOMEM;
			return 0;
		}
		done += k;
		if (!nl)
			break;
		done++; /* the newline */
		if (ws->line.len) {
			int rc = handle_message(ws, ws->line.p, ws->line.len);

			ws->line.len = 0;
			if (rc < 0) {
				ws->err = rc;
				return 0;
			}
		}
	}
	return len;
}

static int stop_cb(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut,
		   curl_off_t un)
{
	struct wstate *ws = arg;

	(void)dt, (void)dn, (void)ut, (void)un;
	return atomic_load_explicit(&ws->m->stop, memory_order_relaxed);
}

/* Watch from ws->next on the member in use until the stream ends. */
static void do_watch(struct wstate *ws)
{
	struct mirror *m = ws->m;
	char url[1024], *body;
	size_t n = strlen(m->prefix_b64) + strlen(m->end_b64) + 192;
	long stall_s = (long)(m->o->stall_ns / 1000000000ull);
	CURLcode cc;

	body = malloc(n);
	if (!body)
		return;
	snprintf(body, n, "{\"create_request\":{\"key\":\"%s\",\"range_end\":"
		 "\"%s\",\"start_revision\":\"%llu\",\"progress_notify\":true}}",
		 m->prefix_b64, m->end_b64, (unsigned long long)ws->next);
	snprintf(url, sizeof(url), "%s/v3/watch", m->urls[ws->hc.cur]);
	ws->err = 0;
	ws->created = false;
	ws->line.len = 0;
	curl_easy_reset(ws->hc.h);
	curl_easy_setopt(ws->hc.h, CURLOPT_URL, url);
	curl_easy_setopt(ws->hc.h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(ws->hc.h, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
	curl_easy_setopt(ws->hc.h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(ws->hc.h, CURLOPT_TCP_NODELAY, 1L);
	/* a stalled stream (no byte for stall_s seconds, progress
	 * notifications included) is a dead member or a half-open link */
	curl_easy_setopt(ws->hc.h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(ws->hc.h, CURLOPT_LOW_SPEED_TIME,
			 stall_s > 0 ? stall_s : 1L);
	curl_easy_setopt(ws->hc.h, CURLOPT_WRITEFUNCTION, on_stream);
	curl_easy_setopt(ws->hc.h, CURLOPT_WRITEDATA, ws);
	curl_easy_setopt(ws->hc.h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(ws->hc.h, CURLOPT_XFERINFOFUNCTION, stop_cb);
	curl_easy_setopt(ws->hc.h, CURLOPT_XFERINFODATA, ws);
	curl_easy_setopt(ws->hc.h, CURLOPT_PROTOCOLS_STR, "http,https");
	cc = curl_easy_perform(ws->hc.h);
	free(body);
	if (!atomic_load_explicit(&m->stop, memory_order_relaxed))
		d_log(D_INFO, "registry %s: etcd watch on %s ended: %s",
		      m->r->name, m->urls[ws->hc.cur],
		      ws->err ? strerror(-ws->err) : curl_easy_strerror(cc));
}

void *mirror_watch_main(void *arg)
{
	struct mirror *m = arg;
	struct wstate ws = { .m = m };
	long backoff = 0;
	bool up = true;

	if (hclient_init(&ws.hc, m->urls, m->nurl, &m->stop) < 0) {
		d_log(D_ERR, "registry %s: etcd mirror: out of memory",
		      m->r->name);
		return NULL;
	}
	ws.next = m->start_rev + 1;
	ws.need_range = m->range_first;
	while (!atomic_load_explicit(&m->stop, memory_order_relaxed)) {
		if (ws.need_range) {
			int rc = do_range(&ws);

			if (rc == 0) {
				ws.need_range = false;
				backoff = 0;
			} else {
				if (up)
					push_state(m, false);
				up = false;
				ws.hc.cur = (ws.hc.cur + 1) % m->nurl;
				backoff = backoff ? backoff * 2 : 50;
				if (backoff > 1000)
					backoff = 1000;
				sleep_ms(m, backoff);
				continue;
			}
		}
		ws.compacted = false;
		do_watch(&ws);
		if (ws.created)
			up = true;
		/* only a stream that ended cleanly resets the backoff: one
		 * that fails after its creation (a member that answers
		 * garbage) must not make us reconnect, and log, at once */
		if (ws.created && !ws.err)
			backoff = 0;
		if (atomic_load_explicit(&m->stop, memory_order_relaxed))
			break;
		if (ws.compacted) {
			ws.need_range = true;
			continue;
		}
		if (up)
			push_state(m, false);
		up = false;
		/* the member in use failed: the next one */
		ws.hc.cur = (ws.hc.cur + 1) % m->nurl;
		backoff = backoff ? backoff * 2 : 50;
		if (backoff > 1000)
			backoff = 1000;
		sleep_ms(m, backoff);
	}
	hbuf_free(&ws.line);
	hclient_free(&ws.hc);
	return NULL;
}
