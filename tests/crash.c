/* SPDX-License-Identifier: MIT */
/* Description: kill -9 the writer at random moments (also in the middle of
 * its takeover) while two readers read: readers never crash or hang, a dead
 * writer shows as SHMREG_STATE_DEAD, a new writer takes the registry over
 * with every value intact, and the readers follow it without reopening. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shmreg.h"
#include "shmreg_writer.h"
#include "common/tc.h"

#define NAME      "crash"
#define NKEYS     2000u
#define VMAX      1024u
#define CYCLES    50
#define NREADERS  2
#define MAX_DELAY_MS 150
#define MIN_READS 10000ul  /* validated reads each reader must reach */
#define READS_BY_S 30      /* ... this long after the kills began: within
                            * the readers' alarm(40) */

struct reader_res {
	uint64_t found, enoent, eagain, ownerdead;
	uint64_t gen_last;
};

/*
 * What the writer has done, kept in memory shared with the parent, so that
 * after a kill -9 the parent knows every key's exact committed value: the
 * writer notes the change it is about to make (inflight_*) before calling
 * into the library and the outcome after the call returned.  The kill can
 * land anywhere, but these stores are ordered around the library call (an
 * opaque call the compiler cannot move them across, and release stores
 * besides), and the parent reads them only after waitpid(), so it sees all
 * that the writer stored before dying.  A key's value sequence number is
 * never 0, so 0 stands for "absent".
 */
struct shared {
	_Atomic int stop;              /* parent -> readers: finish now */
	_Atomic int64_t inflight_key;  /* key being changed, -1 none */
	_Atomic uint64_t inflight_seq; /* its new value's seq, 0 = delete */
	_Atomic uint64_t rev_done;     /* revision of the last change that
	                                * returned */
	_Atomic uint64_t expect[NKEYS];/* committed value's seq, 0 = absent */
	struct reader_res rr[NREADERS];
	/* each reader's validated reads so far, published every 256 reads:
	 * the parent stops the readers only once both reached MIN_READS */
	_Atomic unsigned long reads[NREADERS];
};

static struct shared *sh;

static int key_of(char *buf, uint32_t i)
{
	return snprintf(buf, 16, "crash:%04u", i);
}

/* Writer incarnation @arg: take the registry over (or create it), say so,
 * wait for the go, then put and delete at full speed until killed. */
static int writer_main(struct tc_child *c, void *arg)
{
	uint64_t k = (uint64_t)(intptr_t)arg;
	shmreg_writer_opts_t o = { .initial_entries = 1024,
				   .initial_arena = 256u << 10 };
	uint64_t rs = tc_seed() ^ (k * 0x9e37), n = 0, t0;
	static uint8_t val[VMAX];
	shmreg_writer_t *w;
	int64_t rev, prev;
	char key[16];
	int ret, klen, b;

	ret = shmreg_writer_open(NAME, &o, &w);
	if (ret) {
		tc_log("incarnation %llu: shmreg_writer_open: %s",
		       (unsigned long long)k, strerror(-ret));
		return 2;
	}
	tc_post(c, 'o');
	b = tc_wait_parent(c, 20000);
	if (b == 'c') {
		shmreg_writer_close(w);
		return 0;
	}
	TC_EQ(b, 'g', "go");
	prev = (int64_t)shmreg_writer_revision(w);
	t0 = tc_now_ns();
	for (;;) {
		uint32_t i = (uint32_t)tc_range(&rs, 0, NKEYS - 1);
		uint64_t seq = 0;
		size_t len = 0;

		klen = key_of(key, i);
		if ((tc_rand(&rs) & 7) != 0) {
			/* >= 16 bytes, so that every value carries its seq;
			 * the incarnation in the high bits: values of
			 * different writers never coincide */
			len = (tc_rand(&rs) & 1)
				? tc_range(&rs, 16, 80 - (size_t)klen)
				: tc_range(&rs, 81 - (size_t)klen, VMAX);
			seq = k << 40 | ++n;
			tv_build(val, len, key, (size_t)klen, seq);
		}
		atomic_store_explicit(&sh->inflight_seq, seq,
				      memory_order_relaxed);
		atomic_store_explicit(&sh->inflight_key, i,
				      memory_order_release);
		if (seq)
			rev = shmreg_writer_put(w, key, (size_t)klen, val, len,
						NULL);
		else
			rev = shmreg_writer_del(w, key, (size_t)klen);
		if (rev == -ENOENT && !seq) {
			TC_EQ(atomic_load(&sh->expect[i]), 0, "del -ENOENT");
		} else {
			TC_CHECK(rev == prev + 1, "%s: revision %lld after "
				 "%lld", key, (long long)rev, (long long)prev);
			prev = rev;
			atomic_store_explicit(&sh->expect[i], seq,
					      memory_order_relaxed);
			atomic_store_explicit(&sh->rev_done, (uint64_t)rev,
					      memory_order_relaxed);
		}
		atomic_store_explicit(&sh->inflight_key, -1,
				      memory_order_release);
		/* the parent kills us long before; never spin unattended */
		if ((n & 1023) == 0 && tc_now_ns() - t0 > 30000000000ull)
			return 3;
	}
}

static int reader_main(struct tc_child *c, void *arg)
{
	struct reader_res *res = &sh->rr[(intptr_t)arg];
	uint64_t rs = tc_seed() ^ (0x7265 + (uint64_t)(intptr_t)arg);
	uint64_t rev_seen = 0, gen_seen = 0;
	static uint8_t buf[2 * VMAX];
	shmreg_stats_t st;
	shmreg_t *r;
	char key[16];
	int ret;

	/* a reader stuck in a call dies of SIGALRM, which the parent
	 * reports as a hang */
	alarm(40);
	ret = shmreg_open(NAME, 0, &r);
	TC_CHECK(ret == 0, "shmreg_open: %s", strerror(-ret));
	tc_post(c, 'r');
	for (uint64_t n = 0;; n++) {
		uint32_t i = (uint32_t)tc_range(&rs, 0, NKEYS - 1);
		int klen = key_of(key, i);
		ssize_t len;

		if ((n & 255) == 0) {
			uint64_t rv = shmreg_revision(r);

			atomic_store_explicit(&sh->reads[(intptr_t)arg],
					      res->found, memory_order_relaxed);

			if (atomic_load_explicit(&sh->stop,
						 memory_order_acquire))
				break;
			/* the revision continues across takeovers: a new
			 * writer never restarts it */
			TC_CHECK(rv >= rev_seen, "revision went back from "
				 "%llu to %llu", (unsigned long long)rev_seen,
				 (unsigned long long)rv);
			rev_seen = rv;
			TC_EQ(shmreg_stats(r, &st), 0, "stats");
			TC_CHECK(st.generation >= gen_seen, "generation went "
				 "back from %llu to %llu",
				 (unsigned long long)gen_seen,
				 (unsigned long long)st.generation);
			gen_seen = st.generation;
		}
		len = shmreg_get(r, key, (size_t)klen, buf, sizeof(buf), NULL);
		switch (len) {
		case -ENOENT:
			res->enoent++;
			continue;
		case -EAGAIN:
			res->eagain++;
			continue;
		case -EOWNERDEAD:
			/* the writer died in the middle of changing it */
			res->ownerdead++;
			continue;
		}
		TC_CHECK(len >= 0, "get %s: %s", key, strerror((int)-len));
		if (len > (ssize_t)VMAX ||
		    tv_check(buf, (size_t)len, key, (size_t)klen, NULL)) {
			tv_dump(key, buf,
				len <= (ssize_t)VMAX ? (size_t)len : 0);
			TC_CHECK(0, "%s: torn or wrong value of %zd bytes", key,
				 len);
		}
		res->found++;
	}
	TC_EQ(shmreg_stats(r, &st), 0, "stats");
	res->gen_last = st.generation;
	tc_log("%llu validated reads, %llu absent, %llu -EAGAIN, %llu "
	       "-EOWNERDEAD, followed to generation %llu",
	       (unsigned long long)res->found, (unsigned long long)res->enoent,
	       (unsigned long long)res->eagain,
	       (unsigned long long)res->ownerdead,
	       (unsigned long long)res->gen_last);
	shmreg_close(r);
	return 0;
}

/*
 * Read every key through @r and compare it with what the writer committed:
 * each key holds exactly its last committed value (or is absent), except
 * the one whose change the kill cut off, which holds its old or its new
 * value, never anything else.  With @alive (a new writer took over and is
 * idle), that key is settled to what it now holds, and the stats must
 * agree with the scan exactly; with a dead writer, a lookup that meets the
 * cut-off change may say -EOWNERDEAD instead.  Returns the keys found.
 */
static uint64_t scan(shmreg_t *r, bool alive, const char *when)
{
	static uint8_t buf[2 * VMAX];
	uint64_t found = 0, dead = 0, rev = shmreg_revision(r);
	int64_t cut = atomic_load(&sh->inflight_key);
	uint64_t cut_seq = atomic_load(&sh->inflight_seq);
	uint64_t done = atomic_load(&sh->rev_done);
	shmreg_stats_t st;
	shmreg_info_t info;
	char key[16];

	for (uint32_t i = 0; i < NKEYS; i++) {
		int klen = key_of(key, i);
		ssize_t len = shmreg_get(r, key, (size_t)klen, buf, sizeof(buf),
					 &info);
		uint64_t want = atomic_load(&sh->expect[i]), seq = 0;

		if (len == -EOWNERDEAD && !alive) {
			dead++;
			continue;
		}
		if (len != -ENOENT) {
			TC_CHECK(len >= 0, "%s: get %s: %s", when, key,
				 strerror((int)-len));
			if (len > (ssize_t)VMAX ||
			    tv_check(buf, (size_t)len, key, (size_t)klen,
				     &seq)) {
				tv_dump(key, buf, len <= (ssize_t)VMAX
						  ? (size_t)len : 0);
				TC_CHECK(0, "%s: %s: torn value of %zd bytes",
					 when, key, len);
			}
			/* with a live, idle writer every entry's change is
			 * committed; a dead writer may have published a slot
			 * whose revision it did not get to store */
			TC_CHECK(info.mod_rev > 0 &&
				 (!alive || info.mod_rev <= rev),
				 "%s: %s: mod_rev %llu beyond the registry's "
				 "revision %llu", when, key,
				 (unsigned long long)info.mod_rev,
				 (unsigned long long)rev);
			found++;
		}
		if (seq != want) {
			TC_CHECK(i == cut && seq == cut_seq, "%s: %s holds "
				 "value #%llx, but the writer committed #%llx "
				 "(key being changed when killed: %lld)", when,
				 key, (unsigned long long)seq,
				 (unsigned long long)want, (long long)cut);
		}
		if (alive && i == cut)
			atomic_store(&sh->expect[i], seq);
	}
	TC_EQ(shmreg_stats(r, &st), 0, "stats");
	if (alive) {
		TC_EQ(st.state, SHMREG_STATE_OPEN, when);
		TC_EQ(st.entries, found, when);
		TC_EQ(st.revision, rev, when);
		/* the takeover kept every committed revision, and at most
		 * the one change cut off besides */
		TC_CHECK(rev >= done && rev <= done + (cut >= 0), "%s: "
			 "revision %llu, the writer had committed %llu%s",
			 when, (unsigned long long)rev,
			 (unsigned long long)done,
			 cut >= 0 ? " (and was making one more change)" : "");
		atomic_store(&sh->inflight_key, -1);
		atomic_store(&sh->rev_done, rev);
	} else {
		TC_EQ(st.state, SHMREG_STATE_DEAD, when);
		if (dead)
			tc_log("%s: %llu keys say -EOWNERDEAD", when,
			       (unsigned long long)dead);
	}
	return found;
}

static void sleep_us(uint64_t us)
{
	struct timespec ts = { .tv_sec = (time_t)(us / 1000000),
			       .tv_nsec = (long)(us % 1000000) * 1000 };

	/* a random moment to kill at, or the pause of a polling loop: never
	 * a synchronisation */
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/*
 * Random kills: writer incarnations killed at random moments (one in five
 * while still taking over), two readers reading throughout, every takeover
 * checked against what the dead writer had committed.
 */
static void random_kills(void)
{
	struct tc_child *wr, *rd[NREADERS];
	uint64_t rs, gen = 0, rev = 0, t0, kills = 0, early = 0, found = 0;
	shmreg_stats_t st;
	shmreg_t *r;
	char key[16];
	int ret;

	rs = tc_seed();
	sh = tc_shared(sizeof(*sh));
	atomic_store(&sh->inflight_key, -1);
	t0 = tc_now_ns();

	/* cycle 0 creates the registry; readers map it before the first
	 * kill and keep that handle to the end */
	wr = tc_spawn("writer0", writer_main, (void *)0);
	tc_expect(wr, 'o', 10000);
	ret = shmreg_open(NAME, 0, &r);
	TC_CHECK(ret == 0, "shmreg_open: %s", strerror(-ret));
	for (intptr_t i = 0; i < NREADERS; i++) {
		char name[16];

		snprintf(name, sizeof(name), "reader%d", (int)i + 1);
		rd[i] = tc_spawn(name, reader_main, (void *)i);
		tc_expect(rd[i], 'r', 10000);
	}

	for (int k = 0;; k++) {
		char when[64];
		uint64_t d;

		if (k > 0) {
			char name[24];

			snprintf(name, sizeof(name), "writer%d", k);
			wr = tc_spawn(name, writer_main, (void *)(intptr_t)k);
			/* one cycle in five, kill the new writer while it is
			 * still taking over (within its first 3 ms) */
			if (k < CYCLES && tc_range(&rs, 0, 4) == 0) {
				d = tc_range(&rs, 0, 3000);
				tc_log("cycle %d: kill during takeover after "
				       "%llu us", k, (unsigned long long)d);
				sleep_us(d);
				TC_EQ(tc_child_kill(wr, 10000), 0, "reap");
				tc_child_free(wr);
				early++;
				snprintf(when, sizeof(when),
					 "cycle %d, writer killed in takeover",
					 k);
				scan(r, false, when);
				continue;
			}
			tc_expect(wr, 'o', 10000);
		}
		/* a new writer is up and idle: the contents it took over
		 * are intact and the readers' view moved to its segment */
		snprintf(when, sizeof(when), "cycle %d, after takeover", k);
		found = scan(r, true, when);
		TC_EQ(shmreg_stats(r, &st), 0, "stats");
		TC_CHECK(k == 0 || st.generation > gen, "%s: generation %llu, "
			 "was %llu", when, (unsigned long long)st.generation,
			 (unsigned long long)gen);
		TC_CHECK(st.revision >= rev, "%s: revision %llu went back from "
			 "%llu", when, (unsigned long long)st.revision,
			 (unsigned long long)rev);
		gen = st.generation;
		if (k == CYCLES)
			break;

		tc_tell(wr, 'g');
		d = tc_range(&rs, 0, MAX_DELAY_MS * 1000);
		tc_log("cycle %d: %llu keys, revision %llu, generation %llu; "
		       "kill -9 after %llu us", k, (unsigned long long)found,
		       (unsigned long long)st.revision,
		       (unsigned long long)gen, (unsigned long long)d);
		sleep_us(d);
		TC_EQ(tc_child_kill(wr, 10000), 0, "reap");
		TC_CHECK(WIFSIGNALED(wr->status) &&
			 WTERMSIG(wr->status) == SIGKILL,
			 "writer %d ended before the kill (status 0x%x)", k,
			 wr->status);
		tc_child_free(wr);
		kills++;
		/* waitpid returned: the writer's files, and so its lock,
		 * are released, so the state is DEAD now, not eventually */
		snprintf(when, sizeof(when), "cycle %d, writer dead", k);
		scan(r, false, when);
		rev = shmreg_revision(r);
	}
	tc_log("%llu kills (%llu more during takeover) in %.1f s",
	       (unsigned long long)kills, (unsigned long long)early,
	       (double)(tc_now_ns() - t0) / 1e9);

	/* the readers go on (on the last writer's segment) until each has
	 * validated MIN_READS reads, however little CPU they got meanwhile */
	while (!tc_counts_reached(sh->reads, NREADERS, MIN_READS) &&
	       tc_now_ns() - t0 < READS_BY_S * 1000000000ull)
		sleep_us(1000);
	atomic_store_explicit(&sh->stop, 1, memory_order_release);
	for (int i = 0; i < NREADERS; i++)
		tc_child_join(rd[i], 20000);
	for (int i = 0; i < NREADERS; i++) {
		struct reader_res *x = &sh->rr[i];

		TC_CHECK(x->found >= MIN_READS, "reader%d validated only %llu "
			 "reads", i + 1, (unsigned long long)x->found);
		TC_EQ(x->gen_last, gen,
		      "reader followed every takeover without reopening");
	}

	/* the last writer closes cleanly: contents stay readable */
	tc_tell(wr, 'c');
	tc_child_join(wr, 10000);
	tc_child_free(wr);
	for (int i = 0; i < NREADERS; i++)
		tc_child_free(rd[i]);
	TC_EQ(shmreg_stats(r, &st), 0, "stats");
	TC_EQ(st.state, SHMREG_STATE_CLOSED, "state after close");
	TC_EQ(st.entries, found, "entries after close");
	key_of(key, 0);
	ret = (int)shmreg_get(r, key, strlen(key), NULL, 0, NULL);
	TC_CHECK(ret >= 0 || ret == -ENOENT, "get after close: %d", ret);
	shmreg_close(r);
}

/*
 * Fault injection at the one moment a random kill rarely hits: between a
 * handoff's rename() of the new segment over the name and its marking the
 * old segment retired.  The library's rename() resolves to this definition
 * (the executable's symbol interposes libc's: default visibility, as the
 * build hides everything else); a writer child that sets kill_after_rename
 * dies of SIGKILL right after that many renames.
 */
static int kill_after_rename = -1, renames;

__attribute__((visibility("default")))
int rename(const char *from, const char *to)
{
	int (*real)(const char *, const char *);
	int rc;

	*(void **)&real = dlsym(RTLD_NEXT, "rename");
	if (!real)
		return -1;
	rc = real(from, to);
	if (rc == 0 && ++renames == kill_after_rename)
		raise(SIGKILL);
	return rc;
}

#define HNAME  "handoff"
#define HKEYS  2000u        /* more than the first segment's 1,024 */

static int handoff_writer_main(struct tc_child *c, void *arg)
{
	shmreg_writer_opts_t o = { .flags = SHMREG_WRITER_TRUNCATE,
				   .initial_entries = 1024 };
	shmreg_writer_t *w;
	uint8_t val[32];
	char key[16];
	int ret;

	(void)arg;
	ret = shmreg_writer_open(HNAME, &o, &w);
	TC_CHECK(ret == 0, "writer_open: %s", strerror(-ret));
	tc_post(c, 'o');
	TC_EQ(tc_wait_parent(c, 20000), 'g', "go");
	/* the next rename is the first growth handoff's */
	kill_after_rename = renames + 1;
	for (uint32_t i = 0; i < HKEYS; i++) {
		int klen = key_of(key, i);

		tv_build(val, sizeof(val), key, (size_t)klen, i + 1);
		TC_CHECK(shmreg_writer_put(w, key, (size_t)klen, val,
					   sizeof(val), NULL) > 0, "put");
	}
	/* no handoff happened (or it no longer calls rename) */
	return 4;
}

static void interrupted_handoff(void)
{
	shmreg_stats_t st0, st, wst;
	struct tc_child *wr;
	shmreg_writer_t *w;
	uint8_t buf[64];
	uint64_t seq;
	uint32_t n = 0;
	shmreg_t *r;
	char key[16];
	int ret;

	wr = tc_spawn("handoff-writer", handoff_writer_main, NULL);
	tc_expect(wr, 'o', 10000);
	ret = shmreg_open(HNAME, 0, &r);
	TC_CHECK(ret == 0, "shmreg_open: %s", strerror(-ret));
	TC_EQ(shmreg_stats(r, &st0), 0, "stats");
	tc_tell(wr, 'g');
	TC_CHECK(tc_child_wait(wr, 20000) == 0 && WIFSIGNALED(wr->status) &&
		 WTERMSIG(wr->status) == SIGKILL, "the writer was not killed "
		 "by its growth handoff's rename (status 0x%x)", wr->status);
	tc_child_free(wr);

	ret = shmreg_writer_open(HNAME, NULL, &w);
	TC_CHECK(ret == 0, "takeover: %s", strerror(-ret));
	TC_CHECK(shmreg_writer_put(w, "new", 3, "after", 5, NULL) > 0, "put");
	TC_EQ(shmreg_stats(shmreg_writer_reader(w), &wst), 0, "stats");
	TC_EQ(shmreg_stats(r, &st), 0, "stats");
	tc_log("reader opened at generation %llu; after the interrupted "
	       "handoff and a takeover the writer is at %llu, the reader at "
	       "%llu", (unsigned long long)st0.generation,
	       (unsigned long long)wst.generation,
	       (unsigned long long)st.generation);
	TC_EQ(shmreg_get(r, "new", 3, buf, sizeof(buf), NULL), 5,
	      "a reader mapped before a handoff whose writer died between "
	      "its rename and retiring the old segment sees the next "
	      "writer's put");
	TC_EQ(st.generation, wst.generation, "that reader follows");
	/* the keys put before the growth are intact, in order; the one
	 * whose put started the growth may or may not be there */
	for (;; n++) {
		int klen = key_of(key, n);
		ssize_t len = shmreg_get(r, key, (size_t)klen, buf, sizeof(buf),
					 NULL);

		if (len == -ENOENT)
			break;
		TC_EQ(len, 32, key);
		TC_CHECK(tv_check(buf, 32, key, (size_t)klen, &seq) == 0 &&
			 seq == n + 1, "%s: wrong value", key);
	}
	TC_CHECK(n >= 700 && n < HKEYS, "%u keys before the growth", n);
	TC_EQ(wst.entries, n + 1, "entries after the takeover");
	shmreg_writer_close(w);
	shmreg_close(r);
}

int main(void)
{
	tc_init("crash", 55);
	tc_dir();
	tv_selftest();
	random_kills();
	interrupted_handoff();
	tc_log("pass");
	return 0;
}
