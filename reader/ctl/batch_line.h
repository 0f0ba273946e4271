/* SPDX-License-Identifier: MIT */
/*
 * batch_line.h - one line of "shmregctl batch" input, parsed: pure (no
 * I/O, no global state, no allocation), so fuzz/fuzz_batch_line.c feeds it
 * arbitrary bytes.  The syntax is docs/cli.md's ("batch"):
 *
 *   put KEY VALUE [--attr NAME=VALUE]... [--parent KEY] [--ttl D]
 *                 [--owner PID] [--expect-rev REV|absent] [--ephemeral]
 *   del KEY
 *   del --recursive KEY
 *   attrs KEY [NAME=VALUE]...
 *
 * Words are separated by spaces or tabs.  A word may be quoted: "..."
 * with backslash escapes, '...' literally; quoted and plain parts join
 * into one word as in a shell (a"b c"d is one word).  Outside single
 * quotes a backslash escapes: \\ \" \' \  (space) \n \t \r \0 and \xHH
 * (two hex digits), so any byte of a key or value can be written.  A line
 * that is empty, only blanks, or whose first word starts with an unquoted
 * '#' is skipped.  A trailing "\r" (CRLF input) is dropped.
 */
#ifndef SHMREG_CTL_BATCH_LINE_H
#define SHMREG_CTL_BATCH_LINE_H

#include <stdbool.h>
#include <stddef.h>

#include "shmreg.h"

enum bl_kind { BL_PUT, BL_DEL, BL_DEL_TREE, BL_ATTRS };

struct bl_op {
	enum bl_kind kind;
	const char *key;            /* point into the caller's scratch */
	size_t klen;
	const char *val;            /* put */
	size_t vlen;
	shmreg_put_opts_t opts;     /* put; opts.attrs = attrs */
	shmreg_attr_t attrs[SHMREG_ATTRS_MAX]; /* put --attr, attrs pairs */
	unsigned nattrs;
};

/* Scratch bytes bl_parse_line needs for a line of @len bytes: every word
 * decoded, each with a NUL after it. */
#define BL_SCRATCH(len) (2 * (size_t)(len) + 2)

/*
 * Parse the @len bytes at @line (no newline; NUL bytes are refused) into
 * *@op, decoding words into @scratch (BL_SCRATCH(len) bytes), which the
 * op's pointers then point into.  Returns 1 (an operation), 0 (nothing:
 * a blank or comment line), or -EINVAL / -E2BIG with a message in @err
 * (NUL-terminated, at most @errcap bytes): an unknown command or option,
 * a missing or extra word, an unterminated quote, a bad escape, a bad
 * number or duration, a key, value, parent or attribute over its limit or
 * malformed (the library's rules, shm/validate.h).
 */
int bl_parse_line(const char *line, size_t len, char *scratch,
		  struct bl_op *op, char *err, size_t errcap);

#endif /* SHMREG_CTL_BATCH_LINE_H */
