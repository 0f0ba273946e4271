/* SPDX-License-Identifier: MIT */
/* batch_line.c - parse one line of "shmregctl batch" input (batch_line.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "batch_line.h"
#include "numbers.h"
#include "validate.h"

/* Words of one line at most: a put with every option and 16 attributes
 * has fewer than 40; more is refused, not truncated. */
#define BL_WORDS 48

struct word {
	const char *p;              /* decoded, NUL after it, in scratch */
	size_t n;
	bool quoted;                /* some part was quoted (no comment) */
};

static int say(char *err, size_t cap, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int say(char *err, size_t cap, int rc, const char *fmt, ...)
{
	va_list ap;

	if (cap) {
		va_start(ap, fmt);
		vsnprintf(err, cap, fmt, ap);
		va_end(ap);
	}
	return rc;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The escape at line[*i] (just after the backslash) into *@out. */
static int escape(const char *line, size_t len, size_t *i, char *out)
{
	int h, l;

	if (*i >= len)
		return -EINVAL;
	switch (line[*i]) {
	case '\\': case '"': case '\'': case ' ': case '\t': case '#':
		*out = line[*i];
		break;
	case 'n':
		*out = '\n';
		break;
	case 't':
		*out = '\t';
		break;
	case 'r':
		*out = '\r';
		break;
	case '0':
		*out = '\0';
		break;
	case 'x':
		if (*i + 2 >= len)
			return -EINVAL;
		h = hexval(line[*i + 1]);
		l = hexval(line[*i + 2]);
		if (h < 0 || l < 0)
			return -EINVAL;
		*out = (char)(h << 4 | l);
		*i += 2;
		break;
	default:
		return -EINVAL;
	}
	(*i)++;
	return 0;
}

/* Split and decode the words.  Each loop step consumes at least one input
 * byte, so the work is linear in @len; the output never outgrows the
 * input plus one NUL per word (BL_SCRATCH). */
static int split(const char *line, size_t len, char *out, struct word *w,
		 unsigned *nw, char *err, size_t cap)
{
	size_t i = 0, o = 0;

	*nw = 0;
	for (;;) {
		while (i < len && (line[i] == ' ' || line[i] == '\t'))
			i++;
		if (i == len)
			return 0;
		if (*nw == BL_WORDS)
			return say(err, cap, -E2BIG, "more than %u words",
				   BL_WORDS);
		w[*nw].p = out + o;
		w[*nw].quoted = false;
		while (i < len && line[i] != ' ' && line[i] != '\t') {
			char q = line[i];

			if (q == '\\') {
				w[*nw].quoted = true; /* "\#" is no comment */
				i++;
				if (escape(line, len, &i, &out[o]) < 0)
					return say(err, cap, -EINVAL,
						   "bad escape at byte %zu "
						   "(\\\\ \\\" \\' \\n \\t \\r "
						   "\\0 \\xHH or a blank)", i);
				o++;
			} else if (q == '"' || q == '\'') {
				size_t start = i++;

				w[*nw].quoted = true;
				while (i < len && line[i] != q) {
					if (q == '"' && line[i] == '\\') {
						i++;
						if (escape(line, len, &i,
							   &out[o]) < 0)
							return say(err, cap,
								-EINVAL,
								"bad escape at "
								"byte %zu", i);
						o++;
					} else {
						out[o++] = line[i++];
					}
				}
				if (i == len)
					return say(err, cap, -EINVAL,
						   "unterminated %c quote at "
						   "byte %zu", q, start + 1);
				i++;
			} else {
				out[o++] = line[i++];
			}
		}
		w[*nw].n = (size_t)(out + o - w[*nw].p);
		out[o++] = '\0';
		(*nw)++;
	}
}

static bool is(const struct word *w, const char *s)
{
	return w->n == strlen(s) && memcmp(w->p, s, w->n) == 0;
}

static int check_key_word(const struct word *w, const char *what, char *err,
			  size_t cap)
{
	int rc = shm_check_key(w->p, w->n);

	if (rc == -E2BIG)
		return say(err, cap, rc, "%s: at most %u bytes (this one has "
			   "%zu)", what, SHMREG_KEY_MAX, w->n);
	if (rc < 0)
		return say(err, cap, rc, "%s: must not be empty", what);
	return 0;
}

/* NAME=VALUE in place: the '=' becomes the name's NUL. */
static int attr_word(struct word *w, shmreg_attr_t *a, char *err, size_t cap)
{
	char *eq = memchr(w->p, '=', w->n);
	int rc;

	if (!eq)
		return say(err, cap, -EINVAL, "'%s': an attribute is "
			   "NAME=VALUE", w->p);
	if (memchr(w->p, '\0', w->n))
		return say(err, cap, -EINVAL, "an attribute cannot hold a NUL "
			   "byte");
	*eq = '\0';
	a->name = w->p;
	a->value = eq + 1;
	rc = shm_check_attr(a);
	if (rc == -E2BIG)
		return say(err, cap, rc, "attribute %s: a name is at most %u "
			   "bytes, a value %u", a->name, SHMREG_ATTR_NAME_MAX,
			   SHMREG_ATTR_VALUE_MAX);
	if (rc < 0)
		return say(err, cap, rc, "attribute '%s': the name must not be "
			   "empty", a->name);
	return 0;
}

static int add_attr(struct bl_op *op, struct word *w, char *err, size_t cap)
{
	if (op->nattrs == SHMREG_ATTRS_MAX)
		return say(err, cap, -E2BIG, "at most %u attributes",
			   SHMREG_ATTRS_MAX);
	return attr_word(w, &op->attrs[op->nattrs++], err, cap);
}

/* One option of put, at w[*k] (its argument at w[*k + 1]). */
static int put_option(struct bl_op *op, struct word *w, unsigned nw,
		      unsigned *k, char *err, size_t cap)
{
	struct word *o = &w[*k], *a = *k + 1 < nw ? &w[*k + 1] : NULL;
	int64_t ns;
	int rc;

	if (is(o, "--ephemeral")) {
		op->opts.flags |= SHMREG_EPHEMERAL;
		return 0;
	}
	if (!is(o, "--attr") && !is(o, "--parent") && !is(o, "--ttl") &&
	    !is(o, "--owner") && !is(o, "--expect-rev"))
		return say(err, cap, -EINVAL, "put: unknown option '%s'",
			   o->p);
	if (!a)
		return say(err, cap, -EINVAL, "put: %s needs an argument",
			   o->p);
	(*k)++;
	if (is(o, "--attr"))
		return add_attr(op, a, err, cap);
	if (is(o, "--parent")) {
		rc = check_key_word(a, "--parent", err, cap);
		op->opts.parent = a->p;
		op->opts.parent_len = a->n;
		return rc;
	}
	if (memchr(a->p, '\0', a->n))
		return say(err, cap, -EINVAL, "%s: a NUL byte", o->p);
	if (is(o, "--ttl")) {
		rc = parse_duration(a->p, &ns);
		if (rc < 0 || ns <= 0 || ns > SHMREG_TTL_MAX_NS)
			return say(err, cap, -EINVAL, "--ttl: want a duration "
				   "of more than 0, at most 100 years (30, "
				   "500ms, 5s, 1m, 2h): '%s'", a->p);
		op->opts.ttl_ns = ns;
		return 0;
	}
	if (is(o, "--owner"))
		return parse_pid(a->p, &op->opts.owner_pid) ?
			       say(err, cap, -EINVAL, "--owner: not a pid: "
				   "'%s'", a->p) : 0;
	if (strcmp(a->p, "absent") == 0) {
		op->opts.expect_rev = SHMREG_REV_ABSENT;
		return 0;
	}
	if (parse_u64(a->p, &op->opts.expect_rev) || !op->opts.expect_rev ||
	    op->opts.expect_rev == SHMREG_REV_ABSENT)
		return say(err, cap, -EINVAL, "--expect-rev: not a revision "
			   "(or 'absent'): '%s'", a->p);
	return 0;
}

static int parse_put(struct bl_op *op, struct word *w, unsigned nw,
		     char *err, size_t cap)
{
	int rc;

	if (nw < 3)
		return say(err, cap, -EINVAL, "put: want KEY VALUE");
	op->kind = BL_PUT;
	op->val = w[2].p;
	op->vlen = w[2].n;
	if (op->vlen > SHMREG_VALUE_MAX)
		return say(err, cap, -E2BIG, "put: a value is at most %u bytes",
			   SHMREG_VALUE_MAX);
	for (unsigned k = 3; k < nw; k++) {
		rc = put_option(op, w, nw, &k, err, cap);
		if (rc < 0)
			return rc;
	}
	op->opts.attrs = op->nattrs ? op->attrs : NULL;
	op->opts.nattrs = op->nattrs;
	return 1;
}

static int parse_words(struct bl_op *op, struct word *w, unsigned nw,
		       char *err, size_t cap)
{
	unsigned k = 1;
	int rc;

	if (is(&w[0], "del") && nw > 1 && is(&w[1], "--recursive")) {
		op->kind = BL_DEL_TREE;
		k = 2;
	} else if (is(&w[0], "del")) {
		op->kind = BL_DEL;
	} else if (is(&w[0], "put")) {
		op->kind = BL_PUT;
	} else if (is(&w[0], "attrs")) {
		op->kind = BL_ATTRS;
	} else {
		return say(err, cap, -EINVAL, "unknown command '%s' (put, del, "
			   "del --recursive, attrs)", w[0].p);
	}
	if (k >= nw)
		return say(err, cap, -EINVAL, "%s: missing KEY", w[0].p);
	rc = check_key_word(&w[k], "key", err, cap);
	if (rc < 0)
		return rc;
	op->key = w[k].p;
	op->klen = w[k].n;
	if (op->kind == BL_PUT)
		return parse_put(op, w, nw, err, cap);
	if (op->kind == BL_ATTRS) {
		for (k++; k < nw; k++) {
			rc = add_attr(op, &w[k], err, cap);
			if (rc < 0)
				return rc;
		}
		return 1;
	}
	if (k + 1 < nw)
		return say(err, cap, -EINVAL, "del: unexpected word '%s'",
			   w[k + 1].p);
	return 1;
}

int bl_parse_line(const char *line, size_t len, char *scratch,
		  struct bl_op *op, char *err, size_t errcap)
{
	struct word w[BL_WORDS];
	unsigned nw;
	int rc;

	memset(op, 0, sizeof(*op));
	if (errcap)
		err[0] = '\0';
	if (len && line[len - 1] == '\r')
		len--;
	if (memchr(line, '\0', len))
		return say(err, errcap, -EINVAL, "a NUL byte in the line "
			   "(write it as \\0)");
	rc = split(line, len, scratch, w, &nw, err, errcap);
	if (rc < 0)
		return rc;
	if (nw == 0 || (!w[0].quoted && w[0].n && w[0].p[0] == '#'))
		return 0;
	return parse_words(op, w, nw, err, errcap);
}
