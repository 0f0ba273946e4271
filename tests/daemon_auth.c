/* SPDX-License-Identifier: MIT */
/* Description: shmregd authorisation: a client under a uid that is not
 * allowed gets -EACCES (SO_PEERCRED), --allow-uid and --allow-gid (also as
 * a supplementary group) let it write, and --mode decides who may read the
 * segment.  Needs root to switch uids; skips otherwise. */
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/tc.h"
#include "daemon_harness.h"

#define NOBODY 65534
#define EXTRA_GID 4242

static struct dh h;

struct who {
	uid_t uid;
	gid_t gid;
	gid_t extra;          /* supplementary group, 0 = none */
	int want_connect;     /* 0 or -EACCES */
	int want_open;        /* 0 or -EACCES */
};

static int as_user(struct tc_child *self, void *arg)
{
	const struct who *w = arg;
	shmreg_client_t *c = NULL;
	shmreg_t *r = NULL;
	int ret;

	(void)self;
	TC_CHECK(setgroups(w->extra ? 1 : 0, &w->extra) == 0, "setgroups: %s",
		 strerror(errno));
	TC_CHECK(setgid(w->gid) == 0, "setgid: %s", strerror(errno));
	TC_CHECK(setuid(w->uid) == 0, "setuid: %s", strerror(errno));
	ret = shmreg_connect(h.sock, h.reg, &c);
	TC_EQ(ret, w->want_connect, "connect as another uid");
	if (ret == 0) {
		int64_t rev = shmreg_put(c, "from-other", 10, "x", 1, NULL);

		TC_CHECK(rev > 0, "put as an allowed uid: %s",
			 strerror((int)-rev));
		shmreg_disconnect(c);
	}
	ret = shmreg_open(h.reg, 0, &r);
	TC_EQ(ret, w->want_open, "open the segment as another uid");
	if (ret == 0) {
		TC_CHECK(shmreg_get(r, "root-key", 8, NULL, 0, NULL) == 1 ||
			 shmreg_get(r, "from-other", 10, NULL, 0, NULL) == 1,
			 "read as another uid");
		shmreg_close(r);
	}
	return 0;
}

/* Registries side by side: a second registry, B, with options of its own. */
static char regb[200];

struct side {
	int want_a, want_b;   /* connect results on A (h.reg) and B */
	int want_open_b;
};

static int as_nobody_side(struct tc_child *self, void *arg)
{
	const struct side *s = arg;
	const char *regs[2] = { h.reg, regb };
	const int want[2] = { s->want_a, s->want_b };
	shmreg_t *r = NULL;
	int ret;

	(void)self;
	dh_become(NOBODY, NOBODY);
	for (int i = 0; i < 2; i++) {
		shmreg_client_t *c = NULL;

		ret = shmreg_connect(h.sock, regs[i], &c);
		TC_EQ(ret, want[i], regs[i]);
		if (ret == 0) {
			TC_CHECK(shmreg_put(c, "side", 4, "x", 1, NULL) > 0,
				 "put on %s", regs[i]);
			shmreg_disconnect(c);
		}
	}
	ret = shmreg_open(regb, 0, &r);
	TC_EQ(ret, s->want_open_b, "open B as nobody");
	shmreg_close(r);
	return 0;
}

static void side_by_side(const char *const *a, struct side s)
{
	struct tc_child *k;
	shmreg_client_t *c = NULL;

	dh_start(&h, a);
	/* root is on both lists */
	TC_EQ(shmreg_connect(h.sock, regb, &c), 0, "root on B");
	shmreg_disconnect(c);
	k = tc_spawn("nobody", as_nobody_side, &s);
	tc_child_join(k, 30000);
	tc_child_free(k);
	TC_EQ(dh_stop(&h, SIGTERM), 0, "daemon exit");
}

static void run_as(struct who w)
{
	struct tc_child *k = tc_spawn("other-uid", as_user, &w);

	tc_child_join(k, 30000);
	tc_child_free(k);
}

static void root_client(int want)
{
	shmreg_client_t *c = NULL;
	int ret = shmreg_connect(h.sock, h.reg, &c);

	TC_EQ(ret, want, "connect as root");
	if (!ret) {
		TC_CHECK(shmreg_put(c, "root-key", 8, "r", 1, NULL) > 0,
			 "root put");
		shmreg_disconnect(c);
	}
}

static uint64_t refused(void)
{
	shmreg_daemon_stats_t ds;
	shmreg_client_t *c = NULL;

	/* the stats come from a daemon that lets root in */
	TC_EQ(shmreg_connect(h.sock, h.reg, &c), 0, "stats connection");
	TC_EQ(shmreg_client_stats(c, NULL, &ds), 0, "stats");
	shmreg_disconnect(c);
	return ds.refused;
}

/* A new segment per phase (its mode is set when it is created), in the
 * 0755 socket directory, so the other uid can reach it whatever the modes
 * of the build tree are. */
static void set_reg(int phase)
{
	char name[16];

	snprintf(name, sizeof(name), "reg%d", phase);
	dh_reg_in_dir(&h, name);
}

int main(void)
{
	tc_init("daemon_auth", 90);
	dh_need_root("run a client under another uid");
	dh_init(&h, NULL);

	/* default: only the daemon's own uid writes; mode 0644 lets
	 * everyone read */
	set_reg(1);
	dh_start(&h, NULL);
	root_client(0);
	run_as((struct who){ NOBODY, NOBODY, 0, -EACCES, 0 });
	TC_EQ(refused(), 1, "refusal counted");
	TC_EQ(dh_stop(&h, SIGTERM), 0, "daemon exit");

	/* --allow-uid: that uid writes (root is no longer in the list);
	 * --mode 0600: nobody else reads */
	{
		static const char *const a[] = {
			"--allow-uid", "65534", "--mode", "0600", NULL
		};

		set_reg(2);
		dh_start(&h, a);
		root_client(-EACCES);
		run_as((struct who){ NOBODY, NOBODY, 0, 0, -EACCES });
		TC_EQ(dh_stop(&h, SIGTERM), 0, "daemon exit");
	}

	/* --allow-gid: primary or supplementary group */
	{
		static const char *const a[] = {
			"--allow-gid", "4242", "--allow-uid", "0", NULL
		};

		set_reg(3);
		dh_start(&h, a);
		run_as((struct who){ NOBODY, NOBODY, EXTRA_GID, 0, 0 });
		run_as((struct who){ NOBODY, EXTRA_GID, 0, 0, 0 });
		run_as((struct who){ NOBODY, NOBODY, 0, -EACCES, 0 });
		TC_EQ(refused(), 1, "one refusal");
		TC_EQ(dh_stop(&h, SIGTERM), 0, "daemon exit");
	}

	/* two registries, each with its own --mode and allow list: B is
	 * 0640 (nobody may not read it) and admits root only */
	snprintf(regb, sizeof(regb), "%s/regB", h.dir);
	{
		static const char *a[] = {
			"--allow-uid", "0", "--allow-uid", "65534",
			"--mode", "0644", "--registry", regb, "--mode", "0640",
			"--allow-uid", "0", NULL
		};
		struct stat st;

		set_reg(4);
		/* nobody is refused on B, where it is not listed (at its
		 * HELLO: the registry's own lists), and writes to A */
		side_by_side(a, (struct side){ 0, -EACCES, -EACCES });
		TC_CHECK(stat(regb, &st) == 0 && (st.st_mode & 07777) == 0640,
			 "B's mode");
		TC_CHECK(stat(h.reg, &st) == 0 && (st.st_mode & 07777) == 0644,
			 "A's mode");
	}
	{
		/* nobody listed on both (B's own list, A's the default):
		 * writes to both; B's 0604 lets it read */
		static const char *a[] = {
			"--registry", regb, "--mode", "0604",
			"--allow-uid", "0", "--allow-uid", "65534", NULL
		};
		static const char *b[] = {
			"--allow-uid", "0", "--allow-uid", "65534", NULL
		};
		const char *all[16];
		int n = 0;

		for (int i = 0; b[i]; i++)
			all[n++] = b[i];
		for (int i = 0; a[i]; i++)
			all[n++] = a[i];
		all[n] = NULL;
		set_reg(5);
		side_by_side(all, (struct side){ 0, 0, 0 });
	}

	dh_cleanup(&h);
	tc_log("ok");
	return 0;
}
