/* SPDX-License-Identifier: MIT */
/* attrs_file.c - parse the "name=value" lines of a --load .attrs file. */
#include <errno.h>
#include <string.h>

#include "attrs_file.h"
#include "validate.h"

static int fail(unsigned *line, const char **why, unsigned ln,
		const char *msg, int err)
{
	*line = ln;
	*why = msg;
	return err;
}

int attrs_parse(const char *buf, size_t len, struct attrs_parsed *out,
		unsigned *line, const char **why)
{
	size_t off = 0;
	unsigned ln = 0;

	out->n = 0;
	if (len > ATTRS_FILE_MAX)
		return fail(line, why, 0, "file too large", -E2BIG);
	if (len && !buf)
		return fail(line, why, 0, "no buffer", -EINVAL);
	/* one pass, each byte looked at a bounded number of times */
	while (off < len) {
		const char *p = buf + off, *nl, *eq;
		size_t ll, nlen, vlen;
		unsigned i;

		ln++;
		nl = memchr(p, '\n', len - off);
		ll = nl ? (size_t)(nl - p) : len - off;
		off += ll + (nl ? 1 : 0);
		if (ll && p[ll - 1] == '\r')
			ll--;
		if (memchr(p, '\0', ll))
			return fail(line, why, ln, "NUL byte", -EINVAL);
		/* only the one before the newline is a line ending; another
		 * would make "v\r" and "v" the same line once written back */
		if (memchr(p, '\r', ll))
			return fail(line, why, ln, "carriage return inside "
				    "a line", -EINVAL);
		if (ll == 0 || p[0] == '#')
			continue;
		eq = memchr(p, '=', ll);
		if (!eq)
			return fail(line, why, ln, "no '=' (want name=value)",
				    -EINVAL);
		nlen = (size_t)(eq - p);
		vlen = ll - nlen - 1;
		if (nlen == 0)
			return fail(line, why, ln, "empty attribute name",
				    -EINVAL);
		if (nlen > SHMREG_ATTR_NAME_MAX)
			return fail(line, why, ln, "attribute name too long",
				    -E2BIG);
		if (vlen > SHMREG_ATTR_VALUE_MAX)
			return fail(line, why, ln, "attribute value too long",
				    -E2BIG);
		if (out->n == SHMREG_ATTRS_MAX)
			return fail(line, why, ln, "too many attributes",
				    -E2BIG);
		i = out->n;
		memcpy(out->name[i], p, nlen);
		out->name[i][nlen] = '\0';
		memcpy(out->value[i], eq + 1, vlen);
		out->value[i][vlen] = '\0';
		out->attr[i].name = out->name[i];
		out->attr[i].value = out->value[i];
		/* the writer's own check, so nothing parsed here can be
		 * refused later at the put */
		if (shm_check_attr(&out->attr[i]) < 0)
			return fail(line, why, ln, "invalid attribute",
				    -EINVAL);
		out->n++;
	}
	return 0;
}
