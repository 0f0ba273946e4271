/* SPDX-License-Identifier: MIT */
/*
 * attrs_file.h - the parser of --load's X.attrs files: one "name=value" per
 * line, blank lines and '#' comment lines allowed.  Self-contained (no
 * daemon state) so the fuzzer links it alone.
 */
#ifndef SHMREGD_ATTRS_FILE_H
#define SHMREGD_ATTRS_FILE_H

#include <stddef.h>

#include "shmreg.h"

/* An .attrs file larger than this is refused before it is read: every
 * line it can hold, at the limits, with room for comments. */
#define ATTRS_FILE_MAX (64u << 10)

/* The parsed attributes, in file order; names and values are copies (NUL
 * terminated) in the struct itself, so it holds no pointers into the
 * input.  attr[i] points into name[i] / value[i]. */
struct attrs_parsed {
	unsigned n;
	shmreg_attr_t attr[SHMREG_ATTRS_MAX];
	char name[SHMREG_ATTRS_MAX][SHMREG_ATTR_NAME_MAX + 1];
	char value[SHMREG_ATTRS_MAX][SHMREG_ATTR_VALUE_MAX + 1];
};

/*
 * Parse @len bytes at @buf (not NUL terminated; NUL bytes are refused).
 * A line is "name=value": the name is everything before the first '=',
 * 1..SHMREG_ATTR_NAME_MAX bytes; the value everything after it, up to the
 * end of the line (a trailing "\r" dropped), 0..SHMREG_ATTR_VALUE_MAX
 * bytes.  Nothing is trimmed.  A line that is empty (or only "\r") or
 * starts with '#' is skipped.  A name may repeat, as on any entry.
 *
 * Returns 0, or -EINVAL (a malformed line: no '=', an empty name, a NUL
 * byte, a '\r' other than one just before the newline), -E2BIG (a
 * name or value over its limit, more than SHMREG_ATTRS_MAX attributes, or
 * @len over ATTRS_FILE_MAX).  On error
 * *@line is the 1-based line at fault (0 for the whole file) and *@why a
 * static string saying what is wrong.
 */
int attrs_parse(const char *buf, size_t len, struct attrs_parsed *out,
		unsigned *line, const char **why);

#endif /* SHMREGD_ATTRS_FILE_H */
