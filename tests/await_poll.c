/* SPDX-License-Identifier: MIT */
/* Description: waiters without a usable wait file still get their keys:
 * a reader that may only read the wait file (its mode, for this reader)
 * maps it read-only, registers nothing and polls every 10 ms; a reader
 * that finds no wait file polls too; and a wait file scribbled over with
 * random bytes (as any process allowed to write it could) crashes neither
 * the writer nor the readers, which fall back to polling until a writer
 * restores the file's identity. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shmreg.h"
#include "shmreg_writer.h"
#include "waitfile.h"
#include "await_common.h"

#define NAME "awpoll"

struct shared {
	int mode;           /* waitfile_debug_mode() in the child */
	int64_t ret;
	uint64_t t_ret;
};

static struct shared *sh;
static shmreg_writer_t *wr;

static void wait_path(char *buf)
{
	snprintf(buf, PATH_MAX, "%s/shmreg.%s.wait", tc_dir(), NAME);
}

/* Obey file modes even as root: drop the capabilities that bypass them
 * (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH) from this process. */
static void obey_file_modes(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	uint32_t drop = (1u << CAP_DAC_OVERRIDE) | (1u << CAP_DAC_READ_SEARCH);

	TC_CHECK(syscall(SYS_capget, &h, d) == 0, "capget: %s",
		 strerror(errno));
	d[0].effective &= ~drop;
	d[0].permitted &= ~drop;
	d[0].inheritable &= ~drop;
	TC_CHECK(syscall(SYS_capset, &h, d) == 0, "capset: %s",
		 strerror(errno));
}

static int waiter(struct tc_child *c, void *arg)
{
	const char *key = arg;
	shmreg_t *r;
	char buf[16];
	int ret;

	if (!strcmp(key, "ro"))
		obey_file_modes();
	ret = shmreg_open(NAME, 0, &r);
	TC_CHECK(ret == 0, "open: %s", strerror(-ret));
	sh->mode = waitfile_debug_mode(r);
	tc_post(c, 'r');
	sh->ret = shmreg_await(r, key, strlen(key), buf, sizeof(buf), NULL,
			       20000000000LL);
	sh->t_ret = tc_now_ns();
	TC_CHECK(sh->ret != 2 || !memcmp(buf, "ok", 2), "value");
	shmreg_close(r);
	return 0;
}

/* Start a waiter on @key, let it sleep, put the key, and return how long
 * the waiter took to return after the put (ms). */
static double round_trip(const char *key, int want_mode)
{
	struct tc_child *c;
	uint64_t t0;
	double ms;

	memset(sh, 0, sizeof(*sh));
	c = tc_spawn(key, waiter, (void *)key);
	tc_expect(c, 'r', 10000);
	TC_EQ(sh->mode, want_mode, "how the waiter waits");
	/* asleep: in FUTEX_WAIT on the read-only word (mode 1), or in a
	 * nanosleep between polls (mode 0, not a futex: just let it start) */
	if (want_mode >= 1)
		aw_wait_asleep(c->pid, 10000);
	t0 = tc_now_ns();
	TC_CHECK(shmreg_writer_put(wr, key, strlen(key), "ok", 2, NULL) > 0,
		 "put %s", key);
	tc_child_join(c, 30000);
	tc_child_free(c);
	TC_EQ(sh->ret, 2, "await by a polling waiter");
	ms = sh->t_ret > t0 ? (double)(sh->t_ret - t0) / 1e6 : 0;
	tc_log("%s: the polling waiter returned %.2f ms after the put", key,
	       ms);
	/* the poll slice is 10 ms; allow for a loaded machine, and for a
	 * put that pays a growth handoff whose notify_all wakes every slot
	 * that scribbled counts claim has waiters (16,384 FUTEX_WAKEs) */
	TC_CHECK(ms < 1000, "%s: %.1f ms after the put", key, ms);
	return ms;
}

int main(void)
{
	shmreg_writer_opts_t o = { .flags = SHMREG_WRITER_TRUNCATE };
	struct shm_wait_hdr *wh;
	char path[PATH_MAX];
	uint64_t rs;
	uint32_t *words;
	int ret, fd;

	tc_init("await_poll", 90);
	aw_require_proc_syscall();
	tc_dir();
	rs = tc_seed();
	sh = tc_shared(sizeof(*sh));
	ret = shmreg_writer_open(NAME, &o, &wr);
	TC_CHECK(ret == 0, "writer_open: %s", strerror(-ret));
	wh = aw_map_waitfile(NAME);
	wait_path(path);

	/* 1. a wait file this reader may not write: mode 0444 for it (the
	 * child drops the capabilities that let root ignore modes) */
	TC_CHECK(chmod(path, 0444) == 0, "chmod: %s", strerror(errno));
	round_trip("ro", 1);
	TC_EQ(aw_load(&aw_slot(wh, aw_slot_of("ro"))->waiters), 0,
	      "a read-only waiter registers nothing");
	TC_CHECK(chmod(path, 0644) == 0, "chmod: %s", strerror(errno));

	/* 2. a wait file scribbled over: random bytes everywhere, header,
	 * counts and words; the writer goes on committing (waking slots
	 * whose counts are now garbage) and new readers poll */
	fd = open(path, O_RDWR);
	TC_CHECK(fd >= 0, "open rw: %s", strerror(errno));
	words = mmap(NULL, SHM_WAIT_FILE_SIZE, PROT_READ | PROT_WRITE,
		     MAP_SHARED, fd, 0);
	TC_CHECK(words != MAP_FAILED, "mmap");
	close(fd);
	for (size_t i = 0; i < SHM_WAIT_FILE_SIZE / 4; i++)
		words[i] = (uint32_t)tc_rand(&rs);
	for (int i = 0; i < 2000; i++) {
		char key[16];

		snprintf(key, sizeof(key), "junk%d", i);
		TC_CHECK(shmreg_writer_put(wr, key, strlen(key), "x", 1,
					   NULL) > 0, "put over a scribbled "
			 "wait file");
	}
	round_trip("scribbled", 0);
	/* a new writer restores the identity (keeping words and counts) */
	shmreg_writer_close(wr);
	o.flags = 0;
	ret = shmreg_writer_open(NAME, &o, &wr);
	TC_CHECK(ret == 0, "writer_open again: %s", strerror(-ret));
	munmap(words, SHM_WAIT_FILE_SIZE);
	round_trip("restored", 2);

	/* 3. no wait file at all (removed under the running writer) */
	TC_CHECK(unlink(path) == 0, "unlink: %s", strerror(errno));
	round_trip("nofile", 0);

	shmreg_writer_close(wr);
	munmap(wh, SHM_WAIT_FILE_SIZE);
	tc_log("ok");
	return 0;
}
