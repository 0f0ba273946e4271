/* SPDX-License-Identifier: MIT */
/*
 * ctl.h - what the files of shmregctl share: the parsed command line, exit
 * codes, error reporting, output helpers and the write path.
 */
#ifndef SHMREG_CTL_H
#define SHMREG_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "shmreg.h"
#include "numbers.h"

/* Exit codes: a contract with scripts (docs/cli.md). */
#define CTL_OK       0 /* found / done */
#define CTL_NOTFOUND 1 /* absent key, await timed out */
#define CTL_USAGE    2 /* bad command line */
#define CTL_ERROR    3 /* anything else */

/* Options a subcommand may accept (struct ctl_cmd.opts). */
#define OPT_OWNER     0x01u
#define OPT_TTL       0x02u
#define OPT_EXPECT    0x04u
#define OPT_EPHEMERAL 0x08u
#define OPT_TIMEOUT   0x10u
#define OPT_SINCE     0x20u
#define OPT_RAW       0x40u
#define OPT_VALUE_ONLY 0x80u  /* get --print-value-only */
#define OPT_FILE      0x100u  /* put --file */
#define OPT_PREFIX    0x200u  /* list/del --prefix */
#define OPT_KEYS_ONLY 0x400u  /* list --keys-only */
#define OPT_LIMIT     0x800u  /* list --limit */
#define OPT_ATTR      0x1000u /* put --attr NAME=VALUE (repeatable) */
#define OPT_PARENT    0x2000u /* put --parent KEY */
#define OPT_RECURSIVE 0x4000u /* del --recursive */
#define OPT_PROMETHEUS 0x8000u /* stats --prometheus */
#define OPT_WATCH     0x10000u /* stats --watch INTERVAL */
#define OPT_COUNT     0x20000u /* stats --watch: --count N refreshes */
#define OPT_LAST      OPT_COUNT

/* -w/--output: how list renders (the other commands: json or not). */
enum ctl_output {
	OUT_TABLE,              /* default: aligned columns under a header */
	OUT_SIMPLE,             /* tab-separated, no header (cut, awk) */
	OUT_JSON,               /* one JSON object per line (--json) */
};

/* The parsed command line. */
struct ctl {
	const char *registry;   /* --registry, $SHMREG_REGISTRY, "default" */
	const char *socket;     /* --socket or $SHMREG_SOCKET; NULL: none */
	bool socket_explicit;   /* the user named a socket: it must answer */
	bool json;              /* --json or -w json */
	enum ctl_output output; /* -w/--output */
	int embedded;           /* --embedded 1, --no-embedded -1, else 0 */

	unsigned given;         /* OPT_* seen on the command line */
	pid_t owner_pid;        /* --owner */
	int64_t ttl_ns;         /* --ttl */
	uint64_t expect_rev;    /* --expect-rev (SHMREG_REV_ABSENT: "absent") */
	int64_t timeout_ns;     /* --timeout; -1 when not given (forever) */
	uint64_t since_rev;     /* --since */
	const char *file;       /* --file */
	const char *prefix;     /* --prefix */
	uint64_t limit;         /* --limit */
	shmreg_attr_t attrs[SHMREG_ATTRS_MAX]; /* --attr, in order */
	unsigned nattrs;
	const char *parent;     /* --parent */
	int64_t watch_ns;       /* stats --watch interval */
	uint64_t count;         /* stats --count (0: until interrupted) */

	const char *cmd;        /* subcommand name */
	int argc;               /* positional arguments after the subcommand */
	char **argv;
};

/* A walk that reports entries to @fn (shmreg_list, shmreg_find, ...), its
 * own argument in @arg. */
typedef ssize_t (*ctl_walk_fn)(shmreg_t *r, const void *arg,
			       shmreg_list_fn fn, void *fnarg);
/* Collect what @walk reports (only keys matching the glob @pattern, when
 * not NULL), sort by key and print as list does (cmd_list.c).  Returns the
 * exit code: CTL_NOTFOUND for no entry when @empty_is_absent. */
int ctl_listing(struct ctl *c, const char *what, ctl_walk_fn walk,
		const void *arg, const char *pattern, bool empty_is_absent);

/* Subcommands: one file each (cmd_<name>.c). */
int cmd_get(struct ctl *c);
int cmd_put(struct ctl *c);
int cmd_del(struct ctl *c);
int cmd_list(struct ctl *c);
int cmd_stats(struct ctl *c);
int cmd_await(struct ctl *c);
int cmd_watch(struct ctl *c);
int cmd_ping(struct ctl *c);
int cmd_snapshot(struct ctl *c);
int cmd_daemon_stats(struct ctl *c);
int cmd_rm_registry(struct ctl *c);
int cmd_find(struct ctl *c);
int cmd_children(struct ctl *c);
int cmd_attrs(struct ctl *c);
int cmd_health(struct ctl *c);
int cmd_batch(struct ctl *c);
int cmd_reload(struct ctl *c);
int cmd_registries(struct ctl *c);
/* The registry's shmreg_stats, printing any error: 0 or the exit code
 * (cmd_stats.c). */
int ctl_read_stats(struct ctl *c, shmreg_stats_t *st);

/* ---- errors (main.c) ---- */

/* "shmregctl: <what>: <strerror(err)>" on stderr; returns CTL_ERROR. */
int ctl_fail(const char *what, int err);
/* "shmregctl: <message>" on stderr; returns @code. */
int ctl_say(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* "shmregctl: <message>" and a hint to --help on stderr; returns CTL_USAGE. */
int ctl_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- argument parsing (args.c) ---- */

/* parse_duration, parse_u64, parse_pid: numbers.h */
/* Check a key given on the command line: 1..SHMREG_KEY_MAX bytes.  Prints
 * the usage error and returns CTL_USAGE, or returns 0. */
int check_key(const char *key, size_t klen);
/* Read all of @fd (a value for "put KEY -" or --file), at most
 * SHMREG_VALUE_MAX bytes.  Returns the length and a malloc'ed buffer in *out
 * (never NULL on success), -E2BIG when longer, or -errno. */
ssize_t read_fd_value(int fd, char **out);

/* "NAME=VALUE" into *@a (pointing into a malloc'ed copy returned in
 * *@buf, the caller's to free), checked as the library checks attributes.
 * Returns 0, or prints the usage error and returns CTL_USAGE
 * (cmd_find.c). */
int ctl_parse_attr(const char *arg, shmreg_attr_t *a, char **buf);

/* ---- reading (args.c) ---- */

/* "'NAME' is not a registry name (the rule)" as a usage error. */
int ctl_bad_name(const char *name);

/* Open the registry named on the command line, printing any error.
 * Returns 0, or the exit code to return (CTL_NOTFOUND when the registry
 * does not exist: the same for every command, docs/cli.md). */
int ctl_open(struct ctl *c, shmreg_t **r);

/* The socket a connection goes to: --socket, $SHMREG_SOCKET or the
 * library's default, for messages.  Returns @buf. */
const char *ctl_socket_path(const struct ctl *c, char *buf, size_t cap);
/* Connect to the daemon for @c's registry; on failure print one line
 * saying which socket did not answer or does not serve the registry, and
 * return the exit code.  @quiet_absent: return -ENOENT without a message
 * when no daemon is there at all (the caller falls back). */
int ctl_connect(struct ctl *c, shmreg_client_t **out, bool quiet_absent);

/* Copy @key's value into a malloc'ed buffer of the right size, retrying (a
 * bounded number of times) while a concurrent put makes it grow.  Returns
 * the length (buffer in *val, NULL terminated for convenience) or -errno. */
ssize_t ctl_get_alloc(shmreg_t *r, const char *key, size_t klen, char **val,
		      shmreg_info_t *info);

/* ---- output (output.c) ---- */

/* Print a found entry the way get and await both do (cmd_get.c): the value
 * and a newline (none with --raw), or one JSON object.  Returns CTL_OK. */
int print_entry(struct ctl *c, const char *key, size_t klen, const char *val,
		size_t vlen, const shmreg_info_t *info);

/* True when @p[0..n) is well-formed UTF-8 (no overlongs, no surrogates,
 * nothing above U+10FFFF). */
bool utf8_valid(const void *p, size_t n);
/* A JSON string literal of @p[0..n): quotes, backslashes and control
 * characters escaped, ill-formed UTF-8 replaced by U+FFFD. */
void json_string(FILE *f, const void *p, size_t n);
/* A JSON member "name":"..." of the bytes @p[0..n), followed by
 * ,"name_base64":"..." when the bytes are not well-formed UTF-8, so that a
 * script can always recover them exactly.  No leading comma. */
void json_bytes_member(FILE *f, const char *name, const void *p, size_t n);
/* @p[0..n) for a terminal line: printable ASCII and well-formed UTF-8 as
 * they are, backslash, control and ill-formed bytes as C escapes (\n, \t,
 * \\, \xNN), so one entry is always one line. */
void human_bytes(FILE *f, const void *p, size_t n);
/* The entry as one JSON object (no newline): key, value, mod_rev,
 * create_rev, owner_pid, expires_at_ns, ephemeral. */
void json_entry(FILE *f, const void *key, size_t klen, const void *val,
		size_t vlen, const shmreg_info_t *info);
/* Flush stdout and return @code, or CTL_ERROR after reporting (once) a
 * failed write such as a full disk.  A closed pipe (EPIPE, when SIGPIPE is
 * ignored) is not reported: whoever read the output is done with it. */
int ctl_flush(int code);
/* True once ctl_flush() saw any output error, EPIPE included. */
bool ctl_output_failed(void);

/* ---- writing (write.c) ---- */

/* A write path: a connection to the daemon serving the registry, or, when
 * no socket was named and none answers (or --embedded), a short-lived
 * embedded writer. */
struct ctl_writer;

/* Open a write path for @c's registry.  @create: an embedded writer may
 * create the registry (put), or the registry must already exist (del).
 * Prints any error; returns 0 or the exit code to return. */
int ctl_writer_open(struct ctl *c, bool create, struct ctl_writer **out);
int64_t ctl_writer_put(struct ctl_writer *w, const void *key, size_t klen,
		       const void *val, size_t vlen,
		       const shmreg_put_opts_t *opts);
int64_t ctl_writer_del(struct ctl_writer *w, const void *key, size_t klen);
/* @key and every entry below it in one commit: how many were removed, or
 * -errno (-EOPNOTSUPP from a daemon of a version without tree deletes). */
int64_t ctl_writer_del_tree(struct ctl_writer *w, const void *key,
			    size_t klen);
/* Group the changes between begin and end into one commit (embedded
 * writer; through the daemon each change stays its own request: build a
 * shmreg_batch_t on ctl_writer_client() instead). */
void ctl_writer_batch(struct ctl_writer *w, bool begin);
/* The daemon connection, or NULL for an embedded writer. */
shmreg_client_t *ctl_writer_client(const struct ctl_writer *w);
/* True when writes go to shmregd. */
bool ctl_writer_is_daemon(const struct ctl_writer *w);
/* "daemon" or "embedded" */
const char *ctl_writer_via(const struct ctl_writer *w);
/* Print the revision a put or delete of @key returned (human or JSON). */
void ctl_writer_report(const struct ctl *c, const struct ctl_writer *w,
		       const void *key, size_t klen, int64_t rev);
void ctl_writer_close(struct ctl_writer *w);

/* ---- following a registry across writers (follow.c) ---- */

/* A registry handle that can move to the next writer's segment. */
struct ctl_reg {
	shmreg_t *r;            /* NULL while the registry does not exist */
	dev_t dev;              /* identity of the file r maps (or 0) */
	ino_t ino;
	uint64_t rev;           /* r's revision when ctl_reg_wait last looked */
	char path[PATH_MAX];    /* the segment file's path */
};

/* Open @c's registry.  Returns 0 (reg->r NULL when the registry does not
 * exist yet), or prints the error and returns the exit code. */
int ctl_reg_open(struct ctl *c, struct ctl_reg *reg);

/*
 * Wait until a writer publishes a new segment under the registry's name
 * (creates it, or takes it over after a close or a death), then map that
 * one instead; or until a writer reopens the mapped one in place (or has
 * changed it since the last return).  @deadline: CLOCK_MONOTONIC ns, < 0 for none.  Returns 0,
 * -ETIMEDOUT, or -EINTR when @stop_on_signal and SIGINT/SIGTERM came.
 */
int ctl_reg_wait(struct ctl_reg *reg, int64_t deadline, bool stop_on_signal);

void ctl_reg_close(struct ctl_reg *reg);

/* ---- signals (main.c) ---- */

/* Install SIGINT/SIGTERM handlers that only set a flag (for watch). */
void ctl_catch_signals(void);
/* True once SIGINT or SIGTERM arrived. */
bool ctl_stopping(void);
/* The exit status after a stop signal: 128 + its number, as a shell
 * reports a process that signal killed (130 SIGINT, 143 SIGTERM). */
int ctl_stop_status(void);

#endif /* SHMREG_CTL_H */
