/* SPDX-License-Identifier: MIT */
/* Description: the README's writer example, built against an installed shmreg. */
#include <shmreg_writer.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
	shmreg_writer_t *w;
	int ret = shmreg_writer_open("demo", NULL, &w);
	if (ret < 0) {
		fprintf(stderr, "shmreg_writer_open: %s\n", strerror(-ret));
		return 1;
	}
	int64_t rev = shmreg_writer_put(w, "svc/db", 6, "10.0.0.7:5432", 13, NULL);
	if (rev < 0)
		fprintf(stderr, "shmreg_writer_put: %s\n", strerror((int)-rev));
	else
		printf("put svc/db at revision %lld\n", (long long)rev);
	shmreg_writer_close(w);     /* contents stay readable */
	return rev < 0;
}
