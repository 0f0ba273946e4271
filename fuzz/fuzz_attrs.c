/* SPDX-License-Identifier: MIT */
/*
 * fuzz_attrs.c - libFuzzer target: the parser of shmregd's --load .attrs
 * files (writer/daemon/attrs_file.c) against arbitrary bytes.
 *
 * Whoever can write the loaded directory writes these files.  Beyond "no
 * crash, no out-of-bounds read, no undefined behaviour":
 *   - every error is one attrs_parse documents (-EINVAL, -E2BIG) with a
 *     reason and a line no later than the input has;
 *   - on success every attribute passes the writer's own check
 *     (shm_check_attrs), so nothing parsed can be refused at the put, and
 *     re-serialising the attributes and parsing that gives the same set.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attrs_file.h"
#include "validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct attrs_parsed a, b;
static char text[ATTRS_FILE_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *why = NULL;
	unsigned line = 0, lines = 1;
	size_t off = 0;
	int ret;

	ret = attrs_parse((const char *)data, size, &a, &line, &why);
	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	if (ret < 0) {
		if ((ret != -EINVAL && ret != -E2BIG) || !why || line > lines)
			abort();
		return 0;
	}
	if (a.n > SHMREG_ATTRS_MAX || shm_check_attrs(a.attr, a.n) < 0)
		abort();
	for (unsigned i = 0; i < a.n; i++) {
		int n = snprintf(text + off, sizeof(text) - off, "%s=%s\n",
				 a.attr[i].name, a.attr[i].value);

		if (n < 0 || (size_t)n >= sizeof(text) - off)
			abort();
		off += (size_t)n;
	}
	if (attrs_parse(text, off, &b, &line, &why) < 0 || b.n != a.n)
		abort();
	for (unsigned i = 0; i < a.n; i++)
		if (strcmp(a.name[i], b.name[i]) ||
		    strcmp(a.value[i], b.value[i]))
			abort();
	return 0;
}
