/* SPDX-License-Identifier: MIT */
/* Description: the README's reader example, built against an installed shmreg. */
#include <shmreg.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
	shmreg_t *r;
	char val[256];
	int ret = shmreg_open("demo", 0, &r);
	if (ret < 0) {
		fprintf(stderr, "shmreg_open: %s\n", strerror(-ret));
		return 1;
	}
	ssize_t n = shmreg_get(r, "svc/db", 6, val, sizeof(val), NULL);
	if (n > (ssize_t)sizeof(val))
		n = sizeof(val);    /* n is the full length: show what fit */
	if (n < 0)
		fprintf(stderr, "shmreg_get: %s\n", strerror((int)-n));
	else
		printf("svc/db = %.*s\n", (int)n, val);
	shmreg_close(r);
	return n < 0;
}
