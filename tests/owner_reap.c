/* Description: owner processes in the embedded writer: a put for a pid
 * that does not exist is -ESRCH; the descriptor of shmreg_writer_owner_fd
 * becomes readable when an owner exits, and shmreg_writer_reap_owners then
 * removes that owner's entries with their subtrees (one delete event
 * each) and nothing else - also for an owner that was already gone when
 * the descriptor was first asked for. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "shmreg.h"
#include "shmreg_writer.h"
#include "common/tc.h"

#define PER_OWNER 50

static int idle(struct tc_child *c, void *arg)
{
	(void)arg;
	tc_set_role(c->name);
	tc_wait_parent(c, 60000);
	return 0;
}

static void put_owned(shmreg_writer_t *w, const char *name, pid_t pid)
{
	for (int i = 0; i < PER_OWNER; i++) {
		char k[64], kid[80];
		shmreg_put_opts_t o = { .owner_pid = pid };
		shmreg_put_opts_t c = { 0 };

		snprintf(k, sizeof(k), "%s/%d", name, i);
		TC_CHECK(shmreg_writer_put(w, k, strlen(k), "v", 1, &o) > 0,
			 "put %s", k);
		/* an unowned child: it goes with its owned parent */
		snprintf(kid, sizeof(kid), "%s/%d/kid", name, i);
		c.parent = k;
		c.parent_len = strlen(k);
		TC_CHECK(shmreg_writer_put(w, kid, strlen(kid), "c", 1, &c) >
				 0, "put %s", kid);
	}
}

static int cnt_cb(const void *key, size_t klen, const void *val,
		  size_t vlen, const shmreg_info_t *info, void *arg)
{
	(void)key;
	(void)klen;
	(void)val;
	(void)vlen;
	(void)info;
	(*(int *)arg)++;
	return 0;
}

static int live(shmreg_t *r, const char *p)
{
	int n = 0;

	TC_CHECK(shmreg_list(r, p, strlen(p), cnt_cb, &n) >= 0, "list");
	return n;
}

static bool readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

int main(void)
{
	shmreg_writer_opts_t wo = { .flags = SHMREG_WRITER_TRUNCATE };
	struct tc_child *a, *b, *gone;
	shmreg_put_opts_t dead = { .owner_pid = 0x3ffffff0 };
	shmreg_writer_t *w;
	shmreg_watch_t *wa;
	shmreg_event_t ev;
	shmreg_t *r;
	uint64_t rev;
	int fd, dels = 0;

	tc_init("owner_reap", 60);
	tc_dir();
	a = tc_spawn("owner-a", idle, NULL);
	b = tc_spawn("owner-b", idle, NULL);
	gone = tc_spawn("owner-gone", idle, NULL);
	TC_EQ(shmreg_writer_open("reap", &wo, &w), 0, "writer open");
	r = shmreg_writer_reader(w);

	TC_EQ(shmreg_writer_put(w, "x", 1, "v", 1, &dead), -ESRCH,
	      "a pid that does not exist");
	TC_EQ(shmreg_get(r, "x", 1, NULL, 0, NULL), -ENOENT, "not stored");
	TC_EQ(shmreg_writer_reap_owners(w), 0, "nothing to reap yet");

	put_owned(w, "gone", gone->pid);
	/* gone exits and is reaped (by the test) before anyone watches */
	tc_tell(gone, 'x');
	tc_child_join(gone, 10000);
	put_owned(w, "a", a->pid);

	fd = shmreg_writer_owner_fd(w);
	TC_CHECK(fd >= 0, "owner_fd: %d", fd);
	TC_EQ(shmreg_writer_owner_fd(w), fd, "the same descriptor");
	put_owned(w, "b", b->pid);

	/* the owner that was gone before watching: readable at once */
	TC_CHECK(readable(fd, 5000), "owner fd for an owner already gone");
	TC_EQ(shmreg_writer_reap_owners(w), 2 * PER_OWNER, "gone's entries");
	TC_EQ(live(r, "gone/"), 0, "gone's entries left");
	TC_EQ(live(r, "a/"), 2 * PER_OWNER, "a untouched");
	TC_CHECK(!readable(fd, 50), "nothing more to reap");

	rev = shmreg_revision(r);
	TC_EQ(shmreg_watch_open(r, NULL, 0, rev, &wa), 0, "watch");
	tc_tell(a, 'x');
	tc_child_join(a, 10000);
	TC_CHECK(readable(fd, 5000), "owner fd after a exited");
	TC_EQ(shmreg_writer_reap_owners(w), 2 * PER_OWNER, "a's entries");
	while (shmreg_watch_next(wa, &ev, 0) == 0) {
		TC_EQ(ev.type, SHMREG_EVENT_DEL, "event type");
		dels++;
	}
	shmreg_watch_close(wa);
	TC_EQ(dels, 2 * PER_OWNER, "one delete event per entry");
	TC_EQ(live(r, "a/"), 0, "a's entries left");
	TC_EQ(live(r, "b/"), 2 * PER_OWNER, "b untouched");
	TC_CHECK(!readable(fd, 50), "nothing more to reap");
	TC_EQ(shmreg_writer_reap_owners(w), 0, "reap with nothing ready");

	tc_tell(b, 'x');
	tc_child_join(b, 10000);
	TC_CHECK(readable(fd, 5000), "owner fd after b exited");
	TC_EQ(shmreg_writer_reap_owners(w), 2 * PER_OWNER, "b's entries");
	TC_EQ(live(r, ""), 0, "entries left");
	tc_child_free(a);
	tc_child_free(b);
	tc_child_free(gone);
	shmreg_writer_close(w);
	return 0;
}
