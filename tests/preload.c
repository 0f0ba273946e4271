/* SPDX-License-Identifier: MIT */
/* Description: a program not linked with libshmreg reads a registry through
 * LD_PRELOAD=libshmreg.so SHMREG_PRELOAD=NAME (by name and by path), and
 * shmreg_default() is NULL without SHMREG_PRELOAD or when the registry
 * cannot be opened (missing, garbage, bad name), without crashing. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmreg.h"
#include "shmreg_writer.h"
#include "common/tc.h"

#define NAME  "preload"
#define KEY   "greeting"
#define VALUE "hello from the registry"

extern char **environ;

struct run {
	const char *preload;    /* LD_PRELOAD, or NULL */
	const char *registry;   /* SHMREG_PRELOAD, or NULL */
	const char *argv[5];
};

static const char *lib, *prog;

static int exec_main(struct tc_child *c, void *arg)
{
	const struct run *run = arg;
	static char env_buf[4][PATH_MAX + 64];
	const char *asan = getenv("ASAN_OPTIONS");
	char **envp;
	size_t n = 0, k = 0;

	(void)c;
	while (environ[n])
		n++;
	envp = calloc(n + 5, sizeof(*envp));
	TC_CHECK(envp, "calloc");
	for (size_t i = 0; i < n; i++) {
		if (!strncmp(environ[i], "LD_PRELOAD=", 11) ||
		    !strncmp(environ[i], "SHMREG_PRELOAD=", 15) ||
		    !strncmp(environ[i], "ASAN_OPTIONS=", 13))
			continue;
		envp[k++] = environ[i];
	}
	if (run->preload) {
		snprintf(env_buf[0], sizeof(env_buf[0]), "LD_PRELOAD=%s",
			 run->preload);
		envp[k++] = env_buf[0];
	}
	if (run->registry) {
		snprintf(env_buf[1], sizeof(env_buf[1]), "SHMREG_PRELOAD=%s",
			 run->registry);
		envp[k++] = env_buf[1];
	}
	/* Under ASan, preload_prog is instrumented and links the runtime
	 * itself, but a preloaded library would come before it in the load
	 * order, which ASan refuses by default; the order is harmless here
	 * because the program's own libasan is loaded all the same. */
	snprintf(env_buf[2], sizeof(env_buf[2]),
		 "ASAN_OPTIONS=%s%sverify_asan_link_order=0", asan ? asan : "",
		 asan && *asan ? ":" : "");
	envp[k++] = env_buf[2];
	envp[k++] = "SHMREG_DEBUG=1";
	envp[k] = NULL;
	execve(prog, (char **)run->argv, envp);
	tc_log("execve %s: %s", prog, strerror(errno));
	return 127;
}

static void expect_run(const char *what, const char *preload,
		       const char *registry, const char *mode)
{
	struct run run = {
		.preload = preload,
		.registry = registry,
		.argv = { prog, mode, KEY, VALUE, NULL },
	};
	struct tc_child *c;

	if (strcmp(mode, "read"))
		run.argv[2] = NULL;
	tc_log("%s: LD_PRELOAD=%s SHMREG_PRELOAD=%s preload_prog %s", what,
	       preload ? preload : "(unset)", registry ? registry : "(unset)",
	       mode);
	c = tc_spawn("preload_prog", exec_main, &run);
	if (tc_child_wait(c, 20000) == -ETIMEDOUT)
		TC_CHECK(0, "%s: preload_prog hung", what);
	TC_CHECK(WIFEXITED(c->status), "%s: preload_prog died of signal %d",
		 what, WTERMSIG(c->status));
	TC_CHECK(WEXITSTATUS(c->status) == 0, "%s: preload_prog exited with "
		 "%d (see its usage comment)", what, WEXITSTATUS(c->status));
	tc_child_free(c);
}

int main(void)
{
	shmreg_writer_opts_t o = { .flags = SHMREG_WRITER_TRUNCATE };
	char path[PATH_MAX], garbage[PATH_MAX];
	shmreg_writer_t *w;
	int ret;

	tc_init("preload", 55);
	lib = getenv("SHMREG_TEST_LIB");
	prog = getenv("SHMREG_TEST_PRELOAD_PROG");
	TC_CHECK(lib && prog, "run by ctest: SHMREG_TEST_LIB and "
		 "SHMREG_TEST_PRELOAD_PROG name libshmreg.so and preload_prog");
	TC_CHECK(access(lib, R_OK) == 0, "%s: %s", lib, strerror(errno));
	tc_dir();

	ret = shmreg_writer_open(NAME, &o, &w);
	TC_CHECK(ret == 0, "writer_open: %s", strerror(-ret));
	TC_CHECK(shmreg_writer_put(w, KEY, strlen(KEY), VALUE, strlen(VALUE),
				   NULL) > 0, "put");

	/* the program really is not linked with libshmreg */
	expect_run("no LD_PRELOAD", NULL, NAME, "nolib");
	expect_run("by name", lib, NAME, "read");
	expect_run("by path", lib, tc_path(path, "shmreg." NAME), "read");
	expect_run("no SHMREG_PRELOAD", lib, NULL, "null");
	expect_run("empty SHMREG_PRELOAD", lib, "", "null");
	expect_run("missing registry", lib, "nosuch", "null");
	expect_run("bad name", lib, "bad/name", "null");
	tc_write_file(tc_path(garbage, "garbage"), "not a registry at all", 21);
	expect_run("garbage file", lib, garbage, "null");

	/* a handoff after the writer restarts: a new process preloads the
	 * registry's new segment */
	shmreg_writer_close(w);
	ret = shmreg_writer_open(NAME, NULL, &w);
	TC_CHECK(ret == 0, "writer reopen: %s", strerror(-ret));
	expect_run("after a writer restart", lib, NAME, "read");
	shmreg_writer_close(w);
	expect_run("writer closed", lib, NAME, "read");
	tc_log("pass");
	return 0;
}
