/* SPDX-License-Identifier: MIT */
/* Description: a deliberately slow watcher (ring of 1,024 events, 5,000
 * changes made while it does not read) gets -ERANGE, again on every later
 * call, and resyncs: shmreg_revision, a prefix listing equal to the
 * writer's contents, a new watch from that revision that sees exactly the
 * following changes.  Also -ERANGE at open for a start revision the ring
 * no longer holds, a start revision in the future, timeout 0, and a watch
 * that drains every event before reporting -ESHUTDOWN after a close, and
 * -ERANGE for a watch under which a writer started the registry afresh. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmreg.h"
#include "shmreg_writer.h"
#include "await_common.h"

#define NAME  "wresync"
#define NKEYS 100u
#define VLEN  8u

/* The writer's contents of "s/" keys, as the test believes them to be. */
struct model {
	bool present[NKEYS];
	uint64_t val[NKEYS];
};

static shmreg_writer_t *wr;
static struct model model;
static uint64_t rs;

static int key_of(char *buf, uint32_t k)
{
	return snprintf(buf, 16, "s/%03u", k);
}

/* One random change to an "s/" key (and, every third, one to a "t/" key,
 * which prefix watchers must not see).  Returns the revision. */
static int64_t change(void)
{
	uint32_t k = (uint32_t)tc_range(&rs, 0, NKEYS - 1);
	char key[16];
	int klen = key_of(key, k);
	int64_t rev;

	if (tc_range(&rs, 0, 2) == 0)
		TC_CHECK(shmreg_writer_put(wr, "t/x", 3, "", 0, NULL) > 0,
			 "put t/x");
	if (model.present[k] && tc_range(&rs, 0, 3) == 0) {
		rev = shmreg_writer_del(wr, key, (size_t)klen);
		model.present[k] = false;
	} else {
		uint64_t v = tc_rand(&rs);

		rev = shmreg_writer_put(wr, key, (size_t)klen, &v, VLEN, NULL);
		model.present[k] = true;
		model.val[k] = v;
	}
	TC_CHECK(rev > 0, "change %s: %s", key, strerror((int)-rev));
	return rev;
}

static int list_fn(const void *key, size_t klen, const void *val,
		   size_t vlen, const shmreg_info_t *info, void *arg)
{
	struct model *m = arg;
	unsigned k;

	(void)info;
	TC_CHECK(klen == 5 && !memcmp(key, "s/", 2) &&
		 sscanf((const char *)key + 2, "%3u", &k) == 1 && k < NKEYS,
		 "listed key %.*s", (int)klen, (const char *)key);
	TC_CHECK(vlen == VLEN && !m->present[k], "listed %.*s twice or with "
		 "%zu bytes", (int)klen, (const char *)key, vlen);
	m->present[k] = true;
	memcpy(&m->val[k], val, VLEN);
	return 0;
}

/* Apply an event to a view, reading the value as of now (a put's value
 * may have changed again since: the view converges when the stream ends). */
static void apply(shmreg_t *r, struct model *view, const shmreg_event_t *ev)
{
	unsigned k;
	ssize_t n;

	TC_CHECK(ev->klen == 5 && !memcmp(ev->key, "s/", 2) &&
		 sscanf((const char *)ev->key + 2, "%3u", &k) == 1,
		 "event key %.*s", (int)ev->klen, (const char *)ev->key);
	if (ev->type == SHMREG_EVENT_DEL) {
		view->present[k] = false;
		return;
	}
	TC_EQ(ev->type, SHMREG_EVENT_PUT, "event type");
	n = shmreg_get(r, ev->key, ev->klen, &view->val[k], VLEN, NULL);
	view->present[k] = n == VLEN;
}

static void same(const struct model *a, const struct model *b,
		 const char *what)
{
	for (unsigned k = 0; k < NKEYS; k++) {
		TC_CHECK(a->present[k] == b->present[k], "%s: key %u present "
			 "%d, want %d", what, k, a->present[k], b->present[k]);
		TC_CHECK(!a->present[k] || a->val[k] == b->val[k],
			 "%s: key %u value differs", what, k);
	}
}

int main(void)
{
	shmreg_writer_opts_t o = { .flags = SHMREG_WRITER_TRUNCATE,
				   .ring_events = 1024 };
	static struct model view;
	shmreg_watch_t *w, *fut;
	shmreg_event_t ev;
	shmreg_stats_t st;
	shmreg_t *r;
	uint64_t rev0, rev1, resync, want;
	int ret, n;

	tc_init("watch_resync", 60);
	tc_dir();
	rs = tc_seed();
	ret = shmreg_writer_open(NAME, &o, &wr);
	TC_CHECK(ret == 0, "writer_open: %s", strerror(-ret));
	ret = shmreg_open(NAME, 0, &r);
	TC_CHECK(ret == 0, "open: %s", strerror(-ret));
	TC_EQ(shmreg_stats(r, &st), 0, "stats");
	TC_EQ(st.ring_capacity, 1024, "ring capacity");

	for (int i = 0; i < 200; i++)
		change();
	rev0 = shmreg_revision(r);
	TC_EQ(shmreg_watch_open(r, "s/", 2, rev0, &w), 0, "watch_open");
	/* the watcher sleeps through 5,000 changes: the ring keeps 1,024 */
	for (int i = 0; i < 5000; i++)
		change();
	TC_EQ(shmreg_watch_next(w, &ev, 0), -ERANGE, "slow watcher");
	TC_EQ(shmreg_watch_next(w, &ev, -1), -ERANGE,
	      "a watcher that lost events stays -ERANGE");
	shmreg_watch_close(w);
	TC_EQ(shmreg_watch_open(r, "s/", 2, rev0, &w), -ERANGE,
	      "watch_open from a revision the ring no longer holds");
	TC_CHECK(w == NULL, "no watch on -ERANGE");

	/* resync: revision first, then list (a change between the two is
	 * both listed and streamed, which the view absorbs) */
	resync = shmreg_revision(r);
	memset(&view, 0, sizeof(view));
	TC_CHECK(shmreg_list(r, "s/", 2, list_fn, &view) >= 0, "list");
	same(&view, &model, "listing at resync");
	TC_EQ(shmreg_watch_open(r, "s/", 2, resync, &w), 0,
	      "watch from resync");
	/* a start in the future: nothing until revisions pass it */
	TC_EQ(shmreg_watch_open(r, "", 0, resync + 5, &fut), 0,
	      "watch_open from a future revision");
	TC_EQ(shmreg_watch_next(fut, &ev, 0), -ETIMEDOUT,
	      "future watch before any change");

	/* 500 changes (with the "t/" ones, < 1,024 events) while it reads */
	rev1 = shmreg_revision(r);
	for (int i = 0; i < 500; i++)
		change();
	n = 0;
	want = rev1;
	/* bounded by the events of the 500 changes */
	while ((ret = shmreg_watch_next(w, &ev, 0)) == 0) {
		TC_CHECK(ev.rev > want, "revision order: %llu after %llu",
			 (unsigned long long)ev.rev, (unsigned long long)want);
		want = ev.rev;
		apply(r, &view, &ev);
		n++;
	}
	TC_EQ(ret, -ETIMEDOUT, "end of the stream, timeout 0");
	/* change() makes its "t/" put first, so the last revision is ours */
	TC_EQ(want, shmreg_revision(r), "revision of the last event");
	TC_CHECK(n >= 500, "%d events for 500 changes", n);
	same(&view, &model, "after resync and 500 streamed changes");
	TC_EQ(shmreg_watch_next(fut, &ev, 0), 0, "future watch");
	TC_EQ(ev.rev, resync + 6, "first event of the future watch");
	shmreg_watch_close(fut);

	/* a close: the events before it first, then -ESHUTDOWN */
	change();
	change();
	shmreg_writer_close(wr);
	TC_EQ(shmreg_watch_next(w, &ev, -1), 0, "event before the close");
	TC_EQ(shmreg_watch_next(w, &ev, -1), 0, "event before the close");
	TC_EQ(shmreg_watch_next(w, &ev, -1), -ESHUTDOWN, "after the close");
	shmreg_watch_close(w);

	/* a registry started afresh (revisions begin again at 1) under an
	 * open watch breaks its history: -ERANGE, not a silent gap */
	uint64_t before = shmreg_revision(r);
	TC_EQ(shmreg_watch_open(r, "", 0, before, &w), 0,
	      "watch_open on a closed registry");
	o.flags = SHMREG_WRITER_TRUNCATE;
	ret = shmreg_writer_open(NAME, &o, &wr);
	TC_CHECK(ret == 0, "writer_open: %s", strerror(-ret));
	TC_EQ(shmreg_writer_revision(wr), before + 1,
	      "revisions go on across a truncate, which takes one");
	memset(&model, 0, sizeof(model));
	for (int i = 0; i < 3; i++)
		change();
	TC_EQ(shmreg_watch_next(w, &ev, 0), -ERANGE,
	      "watch across a truncating writer");
	shmreg_watch_close(w);
	TC_EQ(shmreg_revision(r), shmreg_writer_revision(wr),
	      "the handle followed to the fresh registry");
	shmreg_writer_close(wr);
	shmreg_close(r);
	tc_log("ok");
	return 0;
}
