/* SPDX-License-Identifier: MIT */
/* preload_prog.c - a program NOT linked with libshmreg that reads a
 * registry through LD_PRELOAD=libshmreg.so SHMREG_PRELOAD=NAME (run by the
 * preload test).
 *
 * Usage: preload_prog read KEY VALUE   shmreg_default() maps a registry in
 *                                      which KEY holds exactly VALUE
 *        preload_prog null             libshmreg is loaded, but
 *                                      shmreg_default() is NULL
 *        preload_prog nolib            libshmreg is not loaded at all
 * Exit status: 0 as expected; 2 usage; 3 symbols missing; 4 symbols found
 * (nolib); 5 no default handle; 6 a default handle (null); 7 get failed;
 * 8 wrong value.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

/* for the types only: nothing of libshmreg is linked in */
#include "shmreg.h"

int main(int argc, char **argv)
{
	__typeof__(&shmreg_default) get_default;
	__typeof__(&shmreg_get) get;
	char buf[256];
	shmreg_t *r;
	ssize_t n;

	if (argc < 2)
		return 2;
	/* RTLD_DEFAULT searches the global scope, which holds LD_PRELOAD
	 * libraries; this program has no reference of its own to them */
	get_default = (__typeof__(get_default))dlsym(RTLD_DEFAULT,
						     "shmreg_default");
	get = (__typeof__(get))dlsym(RTLD_DEFAULT, "shmreg_get");
	if (!strcmp(argv[1], "nolib")) {
		if (get_default || get) {
			fprintf(stderr, "preload_prog: libshmreg is loaded\n");
			return 4;
		}
		return 0;
	}
	if (!get_default || !get) {
		fprintf(stderr, "preload_prog: shmreg_default/shmreg_get not "
			"found: %s\n", dlerror());
		return 3;
	}
	r = get_default();
	if (!strcmp(argv[1], "null")) {
		if (r) {
			fprintf(stderr, "preload_prog: unexpected handle\n");
			return 6;
		}
		return 0;
	}
	if (strcmp(argv[1], "read") || argc != 4)
		return 2;
	if (!r) {
		fprintf(stderr, "preload_prog: shmreg_default() is NULL\n");
		return 5;
	}
	n = get(r, argv[2], strlen(argv[2]), buf, sizeof(buf), NULL);
	if (n < 0) {
		fprintf(stderr, "preload_prog: get %s: %s\n", argv[2],
			strerror((int)-n));
		return 7;
	}
	if ((size_t)n != strlen(argv[3]) || memcmp(buf, argv[3], (size_t)n)) {
		fprintf(stderr, "preload_prog: %s = '%.*s', want '%s'\n",
			argv[2], (int)(n < (ssize_t)sizeof(buf) ? n : 0), buf,
			argv[3]);
		return 8;
	}
	return 0;
}
