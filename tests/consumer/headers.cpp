/* SPDX-License-Identifier: MIT */
/* Description: the public headers compile as C++ and link from C++ code. */
#include <shmreg_writer.h>
#include <shmreg.h>

int main()
{
	shmreg_t *r = nullptr;
	shmreg_put_opts_t opts = {};
	opts.expect_rev = SHMREG_REV_ABSENT;
	/* -ENOENT: the registry does not exist; proves the C linkage works. */
	int ret = shmreg_open("no-such-registry", 0, &r);
	return ret == 0 || opts.flags != 0;
}
