/* SPDX-License-Identifier: MIT */
/*
 * mirror_setattrs.c - helper of tests/mirror_attrs.sh (not a test itself):
 * shmreg_set_attrs through a daemon, which shmregctl has no command for.
 *
 *	mirror_setattrs SOCKET REGISTRY KEY [NAME=VALUE...]
 *
 * Prints the revision and exits 0, or prints the error and exits 1.
 */
#include <stdio.h>
#include <string.h>

#include "shmreg.h"

int main(int argc, char **argv)
{
	shmreg_attr_t a[SHMREG_ATTRS_MAX];
	shmreg_client_t *c;
	uint32_t n = 0;
	int64_t rev;
	int rc;

	if (argc < 4 || argc - 4 > (int)SHMREG_ATTRS_MAX) {
		fprintf(stderr, "usage: %s SOCKET REGISTRY KEY [NAME=VALUE...]\n",
			argv[0]);
		return 2;
	}
	for (int i = 4; i < argc; i++) {
		char *eq = strchr(argv[i], '=');

		if (!eq)
			return 2;
		*eq = 0;
		a[n].name = argv[i];
		a[n++].value = eq + 1;
	}
	rc = shmreg_connect(argv[1], argv[2], &c);
	if (rc < 0) {
		fprintf(stderr, "connect: %s\n", strerror(-rc));
		return 1;
	}
	rev = shmreg_set_attrs(c, argv[3], strlen(argv[3]), a, n);
	shmreg_disconnect(c);
	if (rev < 0) {
		printf("%s\n", strerror((int)-rev));
		return 1;
	}
	printf("%lld\n", (long long)rev);
	return 0;
}
