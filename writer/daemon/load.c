/* SPDX-License-Identifier: MIT */
/* load.c - --load DIR: read a directory tree into memory, apply it in one
 * batch, and replace what it put there on SIGHUP. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attrs_file.h"
#include "daemon.h"
#include "validate.h"

/*
 * Bounds of one load, so a mistaken --load / (or a tree that keeps
 * growing) fails with a message instead of eating the daemon's memory:
 * files (entries) and value bytes held in memory at once, and directory
 * depth (a key is at most SHMREG_KEY_MAX bytes, so deeper trees could not
 * name an entry anyway; the bound also keeps the recursion's stack small).
 */
#define LOAD_FILES_MAX  65536u
#define LOAD_BYTES_MAX  (256ull << 20)
#define LOAD_DEPTH_MAX  64u
#define ATTRS_SUFFIX    ".attrs"
#define ATTRS_SUFFIX_LEN (sizeof(ATTRS_SUFFIX) - 1)

struct load_ent {
	char *key;                  /* path relative to DIR, NUL terminated */
	size_t klen;
	char *val;
	size_t vlen;
	struct attrs_parsed *attrs; /* NULL: none */
};

struct load_set {
	struct load_ent *e;         /* sorted by key (strcmp) */
	size_t n, cap;
	uint64_t bytes;
};

struct walk {
	struct load_set *s;
	char rel[SHMREG_KEY_MAX + 2]; /* the path being looked at */
	char *err;
	size_t errcap;
};

/* The message names the file; a directory path over 80 bytes is cut in
 * the middle ("first 40.../last 40"), so that the name and the reason fit
 * in one log line (512 bytes). */
static int werr(struct walk *w, const char *name, const char *why, int ret)
{
	size_t rl = strlen(w->rel);
	const char *sep = rl && name ? "/" : "";

	if (rl > 80)
		snprintf(w->err, w->errcap, "%.40s...%s%s%s: %s", w->rel,
			 w->rel + rl - 40, sep, name ? name : "", why);
	else
		snprintf(w->err, w->errcap, "%s%s%s: %s", w->rel, sep,
			 name ? name : "", why);
	return ret;
}

static void load_set_free(struct load_set *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++) {
		free(s->e[i].key);
		free(s->e[i].val);
		free(s->e[i].attrs);
	}
	free(s->e);
	free(s);
}

/* Read a regular file @name in @dfd (never through a symbolic link) of at
 * most @max bytes into a fresh buffer. */
static int read_file(struct walk *w, int dfd, const char *name, size_t max,
		     char **out, size_t *len)
{
	struct stat st;
	char *buf;
	size_t got = 0;
	int fd;

	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
		    O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return werr(w, name, errno == ELOOP ?
			    "a symbolic link (not followed)" : strerror(errno),
			    -errno);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return werr(w, name, "not a regular file", -EINVAL);
	}
	if ((uint64_t)st.st_size > max) {
		close(fd);
		return werr(w, name, max == ATTRS_FILE_MAX ?
			    "larger than 64 KiB" :
			    "larger than SHMREG_VALUE_MAX", -E2BIG);
	}
	/* one byte more than it claims: a file that grew under us is
	 * noticed instead of cut */
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return werr(w, name, "out of memory", -ENOMEM);
	}
	for (;;) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size + 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno;

			close(fd);
			free(buf);
			return werr(w, name, strerror(err), -err);
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got > (size_t)st.st_size) {
			close(fd);
			free(buf);
			return werr(w, name, "changed while read", -EAGAIN);
		}
	}
	close(fd);
	*out = buf;
	*len = got;
	return 0;
}

static int add_ent(struct walk *w, int dfd, const char *name, bool has_attrs)
{
	struct load_set *s = w->s;
	struct load_ent *e;
	size_t rl = strlen(w->rel), nl = strlen(name);
	size_t klen = rl + (rl ? 1 : 0) + nl;
	int ret;

	if (klen > SHMREG_KEY_MAX)
		return werr(w, name, "key longer than SHMREG_KEY_MAX", -E2BIG);
	if (s->n == LOAD_FILES_MAX)
		return werr(w, name, "more than 65536 files", -E2BIG);
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		void *p = realloc(s->e, cap * sizeof(*s->e));

		if (!p)
			return werr(w, name, "out of memory", -ENOMEM);
		s->e = p;
		s->cap = cap;
	}
	e = &s->e[s->n];
	memset(e, 0, sizeof(*e));
	e->key = malloc(klen + 1);
	if (!e->key)
		return werr(w, name, "out of memory", -ENOMEM);
	snprintf(e->key, klen + 1, "%s%s%s", w->rel, rl ? "/" : "", name);
	e->klen = klen;
	s->n++;                     /* owned by the set from here on */
	ret = read_file(w, dfd, name, SHMREG_VALUE_MAX, &e->val, &e->vlen);
	if (ret < 0)
		return ret;
	s->bytes += e->vlen;
	if (s->bytes > LOAD_BYTES_MAX)
		return werr(w, name, "more than 256 MiB of values in all",
			    -E2BIG);
	if (has_attrs) {
		char an[NAME_MAX + ATTRS_SUFFIX_LEN + 1], *buf;
		const char *why;
		unsigned line;
		size_t len;

		snprintf(an, sizeof(an), "%s%s", name, ATTRS_SUFFIX);
		e->attrs = malloc(sizeof(*e->attrs));
		if (!e->attrs)
			return werr(w, an, "out of memory", -ENOMEM);
		ret = read_file(w, dfd, an, ATTRS_FILE_MAX, &buf, &len);
		if (ret < 0)
			return ret;
		ret = attrs_parse(buf, len, e->attrs, &line, &why);
		free(buf);
		if (ret < 0) {
			char msg[96];

			snprintf(msg, sizeof(msg), "line %u: %s", line, why);
			return werr(w, an, msg, ret);
		}
	}
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool has_name(char **names, size_t n, const char *name)
{
	return bsearch(&name, names, n, sizeof(*names), cmp_str) != NULL;
}

static bool is_attrs_name(const char *name, size_t len)
{
	return len > ATTRS_SUFFIX_LEN &&
	       !strcmp(name + len - ATTRS_SUFFIX_LEN, ATTRS_SUFFIX);
}

static int walk_dir(struct walk *w, int dfd, unsigned depth);

/* One directory: its names first (sorted, so X and X.attrs pair up),
 * then each of them. */
static int walk_names(struct walk *w, int dfd, char **names, size_t n,
		      unsigned depth)
{
	for (size_t i = 0; i < n; i++) {
		const char *name = names[i];
		size_t len = strlen(name);
		struct stat st;
		int ret;

		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return werr(w, name, strerror(errno), -errno);
		if (S_ISLNK(st.st_mode))
			return werr(w, name, "a symbolic link (not followed)",
				    -ELOOP);
		if (S_ISDIR(st.st_mode)) {
			size_t rl = strlen(w->rel);
			int sub;

			if (rl + 1 + len > SHMREG_KEY_MAX)
				return werr(w, name, "path longer than "
					    "SHMREG_KEY_MAX", -E2BIG);
			sub = openat(dfd, name, O_RDONLY | O_DIRECTORY |
				     O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0)
				return werr(w, name, strerror(errno), -errno);
			snprintf(w->rel + rl, sizeof(w->rel) - rl, "%s%s",
				 rl ? "/" : "", name);
			ret = walk_dir(w, sub, depth + 1);
			if (ret < 0)
				return ret;         /* walk_dir closed sub */
			w->rel[rl] = '\0';
			continue;
		}
		if (!S_ISREG(st.st_mode))
			return werr(w, name, "not a regular file", -EINVAL);
		if (is_attrs_name(name, len)) {
			char base[NAME_MAX + 1];

			memcpy(base, name, len - ATTRS_SUFFIX_LEN);
			base[len - ATTRS_SUFFIX_LEN] = '\0';
			if (!has_name(names, n, base))
				return werr(w, name, "attributes of no file "
					    "(no file beside it without "
					    "\".attrs\")", -EINVAL);
			continue;   /* read with its file */
		}
		{
			char an[NAME_MAX + ATTRS_SUFFIX_LEN + 1];

			snprintf(an, sizeof(an), "%s%s", name, ATTRS_SUFFIX);
			ret = add_ent(w, dfd, name, has_name(names, n, an));
			if (ret < 0)
				return ret;
		}
	}
	return 0;
}

/* Consumes @dfd. */
static int walk_dir(struct walk *w, int dfd, unsigned depth)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *dir;
	int ret = 0;

	if (depth > LOAD_DEPTH_MAX) {
		close(dfd);
		return werr(w, NULL, "directories nested deeper than 64",
			    -ELOOP);
	}
	dir = fdopendir(dfd);
	if (!dir) {
		close(dfd);
		return werr(w, NULL, strerror(errno), -errno);
	}
	/* bounded: a directory with more names than a load may hold files
	 * fails before the rest is read */
	while ((errno = 0, de = readdir(dir))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == LOAD_FILES_MAX * 2) {
			ret = werr(w, NULL, "too many names", -E2BIG);
			goto out;
		}
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 32;
			void *p = realloc(names, nc * sizeof(*names));

			if (!p) {
				ret = werr(w, NULL, "out of memory", -ENOMEM);
				goto out;
			}
			names = p;
			cap = nc;
		}
		names[n] = strdup(de->d_name);
		if (!names[n]) {
			ret = werr(w, NULL, "out of memory", -ENOMEM);
			goto out;
		}
		n++;
	}
	if (errno) {
		ret = werr(w, NULL, strerror(errno), -errno);
		goto out;
	}
	qsort(names, n, sizeof(*names), cmp_str);
	ret = walk_names(w, dirfd(dir), names, n, depth);
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(dir);
	return ret;
}

static int cmp_ent(const void *a, const void *b)
{
	return strcmp(((const struct load_ent *)a)->key,
		      ((const struct load_ent *)b)->key);
}

static int load_read(const char *dir, struct load_set **out, char *err,
	      size_t errcap)
{
	/* the walk's message, relative to @dir; a path of up to
	 * SHMREG_KEY_MAX bytes plus the reason */
	char msg[SHMREG_KEY_MAX + 160];
	struct walk w = { .err = msg, .errcap = sizeof(msg) };
	int dfd, ret;

	w.s = calloc(1, sizeof(*w.s));
	if (!w.s) {
		snprintf(err, errcap, "%s: out of memory", dir);
		return -ENOMEM;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		ret = -errno;
		snprintf(err, errcap, "%s: %s", dir, strerror(errno));
		load_set_free(w.s);
		return ret;
	}
	ret = walk_dir(&w, dfd, 0);
	if (ret < 0) {
		/* name the file by its full path */
		snprintf(err, errcap, "%s/%s", dir, msg);
		load_set_free(w.s);
		return ret;
	}
	qsort(w.s->e, w.s->n, sizeof(*w.s->e), cmp_ent);
	*out = w.s;
	return 0;
}

/* The attributes of @e as shmreg_get_attrs returns them. */
static size_t attrs_bytes(const struct load_ent *e, char *buf)
{
	size_t off = 0;

	for (unsigned i = 0; e->attrs && i < e->attrs->n; i++) {
		size_t a = strlen(e->attrs->name[i]) + 1;
		size_t b = strlen(e->attrs->value[i]) + 1;

		memcpy(buf + off, e->attrs->name[i], a);
		memcpy(buf + off + a, e->attrs->value[i], b);
		off += a + b;
	}
	return off;
}

/* Whether the registry holds @e already, value and attributes alike: then
 * a reload leaves it alone (no revision). */
static bool same(shmreg_t *rd, const struct load_ent *e)
{
	static char want[SHM_ATTR_BYTES_MAX], have[SHM_ATTR_BYTES_MAX];
	size_t wl = attrs_bytes(e, want);
	ssize_t n;
	char *buf;
	bool eq;

	n = shmreg_get_attrs(rd, e->key, e->klen, have, sizeof(have));
	if (n < 0 || (size_t)n != wl || memcmp(have, want, wl))
		return false;
	buf = malloc(e->vlen + 1);
	if (!buf)
		return false;       /* put it again: costs a revision only */
	n = shmreg_get(rd, e->key, e->klen, buf, e->vlen + 1, NULL);
	eq = n >= 0 && (size_t)n == e->vlen && !memcmp(buf, e->val, e->vlen);
	free(buf);
	return eq;
}

static bool in_set(const struct load_set *s, const struct load_ent *e)
{
	return s && bsearch(e, s->e, s->n, sizeof(*s->e), cmp_ent);
}

/* The load's changes as the records of one BATCH: a put for each file
 * that is new or changed, a delete for each key of the previous load
 * whose file is gone (and whose entry is still there: someone may have
 * deleted it meanwhile, and a batch delete of an absent key would refuse
 * the whole load).  The records go into one heap buffer, *@buf. */
struct load_batch {
	uint8_t *buf;
	size_t len, cap;
	uint32_t nops, puts, dels;
};

static int lb_reserve(struct load_batch *b, size_t n)
{
	size_t cap = b->cap ? b->cap : 4096;
	uint8_t *p;

	if (b->cap - b->len >= n)
		return 0;
	while (cap - b->len < n)
		cap *= 2;
	if (cap > UINT32_MAX)
		return -E2BIG; /* the records' length is a u32 */
	p = realloc(b->buf, cap);
	if (!p)
		return -ENOMEM;
	b->buf = p;
	b->cap = cap;
	return 0;
}

static int lb_put(struct load_batch *b, const struct load_ent *e)
{
	shmreg_put_opts_t po = {
		.attrs = e->attrs ? e->attrs->attr : NULL,
		.nattrs = e->attrs ? e->attrs->n : 0,
	};
	size_t n = proto_encode_batch_put(NULL, 0, e->key, e->klen, e->val,
					  e->vlen, &po);
	int rc = lb_reserve(b, n);

	if (rc < 0)
		return rc;
	proto_encode_batch_put(b->buf + b->len, n, e->key, e->klen, e->val,
			       e->vlen, &po);
	b->len += n;
	b->nops++;
	b->puts++;
	return 0;
}

static int lb_del(struct load_batch *b, const struct load_ent *e)
{
	size_t n = proto_encode_batch_key(NULL, 0, PROTO_OP_DEL, e->key,
					  e->klen);
	int rc = lb_reserve(b, n);

	if (rc < 0)
		return rc;
	proto_encode_batch_key(b->buf + b->len, n, PROTO_OP_DEL, e->key,
			       e->klen);
	b->len += n;
	b->nops++;
	b->dels++;
	return 0;
}

static int load_build(struct reg *r, const struct load_set *s,
		      struct load_batch *b)
{
	shmreg_t *rd = shmreg_writer_reader(r->w);
	const struct load_set *old = r->loaded;
	int rc = 0;

	for (size_t i = 0; i < s->n && rc == 0; i++)
		if (!same(rd, &s->e[i]))
			rc = lb_put(b, &s->e[i]);
	for (size_t i = 0; old && i < old->n && rc == 0; i++) {
		const struct load_ent *e = &old->e[i];

		if (!in_set(s, e) &&
		    shmreg_get(rd, e->key, e->klen, NULL, 0, NULL) >= 0)
			rc = lb_del(b, e);
	}
	return rc;
}

/* The key of operation @i of the batch, for the message. */
static void op_key(const struct proto_req *q, uint32_t i, char *key,
		   size_t cap, const char **what)
{
	struct proto_batch_iter it;
	struct proto_req o;
	const uint8_t *k = NULL;
	size_t kl = 0;

	proto_batch_iter_init(&it, q);
	for (uint32_t n = 0; proto_batch_next(&it, &o) > 0; n++) {
		if (n != i)
			continue;
		*what = o.op == PROTO_OP_DEL ? "delete" : "put";
		k = o.op == PROTO_OP_DEL ? o.u.del.key : o.u.put.key;
		kl = o.op == PROTO_OP_DEL ? o.u.del.klen : o.u.put.klen;
		break;
	}
	/* loaded keys are paths: text, and no longer than a key */
	snprintf(key, cap, "%.*s", (int)kl, k ? (const char *)k : "?");
}

static int load_apply(struct daemon *d, struct reg *r, struct load_set *s,
		      char *err, size_t errcap)
{
	struct load_batch b = { 0 };
	struct proto_req q = { .op = PROTO_OP_BATCH };
	struct batch_result res;
	char key[SHMREG_KEY_MAX + 1];
	const char *what = "put";
	int ret = load_build(r, s, &b);

	if (ret < 0) {
		snprintf(err, errcap, "%s", ret == -E2BIG ?
			 "the changes do not fit one batch (4 GiB)" :
			 "out of memory");
		free(b.buf);
		return ret;
	}
	q.u.batch.recs = b.buf;
	q.u.batch.rlen = (uint32_t)b.len;
	q.u.batch.nops = b.nops;
	batch_run(d, r, NULL, &q, &res);
	if (res.err) {
		op_key(&q, res.failed, key, sizeof(key), &what);
		snprintf(err, errcap, "%s: %s: %s%s", key, what,
			 strerror(-res.err), res.applied ?
			 " (when applied: the operations before it stay)" :
			 "");
		free(b.buf);
		/* a refused batch changed nothing: the previous set is still
		 * what the registry holds, and the next reload compares
		 * against it; in the rare applied-in-part case (batch.c)
		 * the new set is taken, so that the next reload deletes
		 * what this one added */
		if (res.applied == 0) {
			load_set_free(s);
			return res.err;
		}
		load_set_free(r->loaded);
		r->loaded = s;
		return res.err;
	}
	free(b.buf);
	load_set_free(r->loaded);
	r->loaded = s;
	snprintf(err, errcap, "%zu files: %u put, %u deleted, revision %llu",
		 s->n, b.puts, b.dels, (unsigned long long)res.rev);
	return 0;
}

int load_registry(struct daemon *d, struct reg *r, char *msg, size_t cap)
{
	const char *dir = r->ro->load_dir;
	struct load_set *s = NULL;
	char err[PATH_MAX + SHMREG_KEY_MAX + 160];
	int ret;

	ret = load_read(dir, &s, err, sizeof(err));
	if (ret == 0)
		ret = load_apply(d, r, s, err, sizeof(err));
	if (msg)
		snprintf(msg, cap, "%s", err);
	if (ret < 0) {
		d_log(D_ERR, "registry %s: --load: %s", r->name, err);
		d_log(D_ERR, "registry %s: --load: refused, now at revision "
		      "%llu", r->name,
		      (unsigned long long)shmreg_writer_revision(r->w));
		return ret;
	}
	d_log(D_INFO, "registry %s: loaded %s: %s", r->name, dir, err);
	return 0;
}

void load_reload_all(struct daemon *d)
{
	/* load_registry logs its own errors: a reload never stops the
	 * daemon */
	for (unsigned i = 0; i < d->nreg; i++)
		if (d->reg[i].ro->load_dir)
			(void)load_registry(d, &d->reg[i], NULL, 0);
}

void load_free_all(struct daemon *d)
{
	for (unsigned i = 0; i < d->nreg; i++) {
		load_set_free(d->reg[i].loaded);
		d->reg[i].loaded = NULL;
	}
}
