/* SPDX-License-Identifier: MIT */
/* main.c - shmregctl: command line parsing, dispatch and error reporting. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

#ifndef SHMREG_CTL_VERSION
#define SHMREG_CTL_VERSION "unknown"
#endif

struct ctl_cmd {
	const char *name;
	int (*fn)(struct ctl *c);
	unsigned opts;      /* OPT_* accepted */
	int min_args;       /* positional arguments after the name */
	int max_args;
	const char *help;   /* "shmregctl NAME --help" */
};

static int cmd_help(struct ctl *c);

static const struct ctl_cmd commands[] = {
	{ "get", cmd_get, OPT_RAW | OPT_VALUE_ONLY, 1, 1,
"Usage: shmregctl get KEY [--raw] [--print-value-only]\n"
"\n"
"Print KEY's value and a newline; exit 1 when KEY is absent.\n"
"\n"
"  --raw                the value's exact bytes, no newline\n"
"  --print-value-only   the value only (the default without --json;\n"
"                       accepted for etcdctl users)\n"
"  -j, --json           one JSON object: key, value, revisions, owner, ttl\n" },
	{ "put", cmd_put, OPT_OWNER | OPT_TTL | OPT_EXPECT | OPT_EPHEMERAL |
	  OPT_FILE | OPT_ATTR | OPT_PARENT, 1, 2,
"Usage: shmregctl put KEY VALUE|- [OPTIONS]\n"
"       shmregctl put KEY --file FILE [OPTIONS]\n"
"\n"
"Store VALUE under KEY (\"-\": read it from stdin) and print the revision.\n"
"A VALUE that starts with '-' goes after \"--\": put KEY -- -5.\n"
"\n"
"  --file FILE          the value is FILE's contents\n"
"  --owner PID          remove the entry when process PID exits (shmregd)\n"
"  --ttl DURATION       expire after DURATION (30, 1.5, 500ms, 5s, 1m, 2h)\n"
"  --expect-rev REV|absent\n"
"                       store only if mod_rev is REV (or the key is absent)\n"
"  --ephemeral          remove the entry when this connection ends\n"
"                       (shmregd)\n"
"  --attr NAME=VALUE    an attribute (repeatable, at most 16; find looks\n"
"                       entries up by them); a put replaces them all\n"
"  --parent KEY         the entry's parent, which must exist (children\n"
"                       lists it; del --recursive KEY removes it too)\n" },
	{ "del", cmd_del, OPT_PREFIX | OPT_RECURSIVE, 0, 1,
"Usage: shmregctl del KEY [--recursive]\n"
"       shmregctl del --prefix PREFIX\n"
"\n"
"Delete KEY and print the revision; exit 1 when KEY is absent, 3 (not\n"
"empty) when it has children and --recursive was not given.\n"
"\n"
"  --recursive          KEY and every entry below it (put --parent), in\n"
"                       one commit; prints how many were removed\n"
"  --prefix PREFIX      delete every key that starts with PREFIX; prints\n"
"                       the number of keys deleted (exit 1: none)\n"
"\n"
"-r after del is not --registry: put -r NAME before the command.\n" },
	{ "list", cmd_list, OPT_PREFIX | OPT_KEYS_ONLY | OPT_LIMIT, 0, 1,
"Usage: shmregctl list [PREFIX|PATTERN] [OPTIONS]\n"
"\n"
"List the entries under PREFIX, or whose key matches the glob PATTERN\n"
"(* ? [...]; '*' does not cross '/': 'svc/*/primary'), sorted by key.\n"
"\n"
"  --prefix PREFIX      the same as the positional PREFIX\n"
"  --keys-only          one key per line\n"
"  --limit N            the first N entries (in key order)\n"
"  -w, --output FORMAT  table (default: a header, aligned columns),\n"
"                       simple (key<TAB>value<TAB>mod_rev), json\n" },
	{ "find", cmd_find, OPT_LIMIT | OPT_KEYS_ONLY, 1, (int)SHMREG_ATTRS_MAX,
"Usage: shmregctl find NAME=VALUE [NAME=VALUE...] [OPTIONS]\n"
"\n"
"List the entries that carry every NAME=VALUE pair (attributes, from put\n"
"--attr), sorted by key, as list does; exit 1 when none does.\n"
"\n"
"  --keys-only          one key per line\n"
"  --limit N            the first N entries (in key order)\n"
"  -w, --output FORMAT  table (default), simple or json, as for list\n" },
	{ "children", cmd_children, OPT_LIMIT | OPT_KEYS_ONLY, 1, 1,
"Usage: shmregctl children KEY [OPTIONS]\n"
"\n"
"List the entries put with --parent KEY, sorted by key, as list does.\n"
"\n"
"  --keys-only          one key per line\n"
"  --limit N            the first N entries (in key order)\n"
"  -w, --output FORMAT  table (default), simple or json, as for list\n" },
	{ "attrs", cmd_attrs, 0, 1, 1,
"Usage: shmregctl attrs KEY\n"
"\n"
"Print KEY's attributes, one NAME=VALUE per line (--json: one object with\n"
"an \"attrs\" array of [name, value] pairs); exit 1 when KEY is absent.\n" },
	{ "stats", cmd_stats, OPT_PROMETHEUS | OPT_WATCH | OPT_COUNT, 0, 0,
"Usage: shmregctl stats [--prometheus | --watch INTERVAL [--count N]]\n"
"\n"
"Print the registry segment's counters (see daemon-stats for shmregd's).\n"
"\n"
"  --prometheus         in the Prometheus text format, as shmregd's\n"
"                       /metrics has them (node_exporter's textfile\n"
"                       collector)\n"
"  --watch INTERVAL     a line of counters and rates every INTERVAL\n"
"                       (1, 0.5, 500ms), until interrupted\n"
"  --count N            with --watch: stop after N lines\n" },
	{ "await", cmd_await, OPT_TIMEOUT | OPT_RAW, 1, 1,
"Usage: shmregctl await KEY [--timeout DURATION] [--raw]\n"
"\n"
"Wait until KEY exists, then print it as get does.  Exit 1 on timeout,\n"
"128 + the signal on SIGINT/SIGTERM.\n"
"\n"
"  --timeout DURATION   give up after DURATION (30, 0.5, 500ms, 1m, 2h)\n"
"  --raw                the value's exact bytes, no newline\n" },
	{ "watch", cmd_watch, OPT_SINCE, 0, 1,
"Usage: shmregctl watch [PREFIX] [--since REV]\n"
"\n"
"Print every put and delete under PREFIX with the value put, until\n"
"SIGINT/SIGTERM (exit 128 + the signal).\n"
"\n"
"  --since REV          first replay the changes after revision REV\n" },
	{ "health", cmd_health, 0, 0, 0,
"Usage: shmregctl health\n"
"\n"
"Exit 0 and say so when a live writer serves the registry (and, with\n"
"--socket or $SHMREG_SOCKET, when that daemon answers); exit 3 with one\n"
"line saying why not: the writer died, the registry was closed, or the\n"
"daemon does not answer.  Exit 1: no such registry.\n" },
	{ "ping", cmd_ping, 0, 0, 0,
"Usage: shmregctl ping\n"
"\n"
"Ask the daemon serving the registry for its revision (a round trip that\n"
"changes nothing).  Exit 3 when no daemon answers or serves the registry.\n" },
	{ "snapshot", cmd_snapshot, 0, 0, 0,
"Usage: shmregctl snapshot\n"
"\n"
"Ask the daemon serving the registry to start a snapshot of its data\n"
"directory (shmregd --data-dir) now.  Exit 3 when no daemon answers, 1\n"
"when the registry is not persistent or a snapshot is being written.\n" },
	{ "daemon-stats", cmd_daemon_stats, 0, 0, 0,
"Usage: shmregctl daemon-stats\n"
"\n"
"Print the counters of the daemon serving the registry (connections,\n"
"requests, owners, ...).  Exit 3 when no daemon answers.\n" },
	{ "rm-registry", cmd_rm_registry, 0, 1, 1,
"Usage: shmregctl rm-registry NAME\n"
"\n"
"Remove registry NAME's files (segment, lock and wait file).  Refused\n"
"(exit 3) while a writer holds it; exit 1 when it does not exist.\n" },
	{ "batch", cmd_batch, 0, 0, 1,
"Usage: shmregctl batch [FILE|-]\n"
"\n"
"Apply the operations of FILE (default: stdin), one per line, through\n"
"shmregd all or nothing, in one commit; print the last revision.  When one\n"
"would fail, nothing is applied and the message names its line (exit 1\n"
"for a missing key, 3 otherwise; 2 for a malformed line, nothing sent).\n"
"\n"
"  put KEY VALUE [--attr NAME=VALUE]... [--parent KEY] [--ttl D]\n"
"                [--owner PID] [--expect-rev REV|absent] [--ephemeral]\n"
"  del KEY\n"
"  del --recursive KEY\n"
"  attrs KEY [NAME=VALUE]...     replace KEY's attributes (none: clear)\n"
"\n"
"Words are separated by blanks; \"...\" quotes with escapes, '...' quotes\n"
"literally; escapes \\\\ \\\" \\' \\n \\t \\r \\0 \\xHH and \\ (blank) write any\n"
"byte.  Empty lines and lines starting with # are skipped.\n" },
	{ "reload", cmd_reload, 0, 0, 0,
"Usage: shmregctl reload\n"
"\n"
"Make the daemon re-read the registry's --load directory and apply the\n"
"changes in one all-or-nothing batch (as SIGHUP).  Prints what was done;\n"
"exit 3 with the file and the reason when anything failed (the registry\n"
"is then unchanged).\n" },
	{ "registries", cmd_registries, 0, 0, 0,
"Usage: shmregctl registries [-w FORMAT]\n"
"\n"
"List the registries the daemon serves: name, entries, revision, state\n"
"(open, closed, dead).  -w table (default), simple or json.\n" },
	{ "help", cmd_help, 0, 0, 1,
"Usage: shmregctl help [COMMAND]\n"
"\n"
"Show the help of COMMAND, or the list of commands.\n" },
};

static const char usage_text[] =
"Usage: shmregctl [OPTIONS] COMMAND [ARGS]\n"
"\n"
"Read and write a shmreg registry.\n"
"\n"
"Commands:\n"
"  get KEY [--raw] [--print-value-only]\n"
"                             print KEY's value\n"
"  put KEY VALUE|-|--file F [--owner PID] [--ttl D]\n"
"          [--expect-rev REV|absent] [--ephemeral]\n"
"                             store a value (\"-\": read it from stdin)\n"
"  del KEY | --prefix P       delete KEY, or every key under P\n"
"  list [PREFIX|PATTERN] [--keys-only] [--limit N] [-w FORMAT]\n"
"                             the entries, sorted: key, value, mod_rev\n"
"  find NAME=VALUE...         the entries carrying every pair\n"
"  children KEY               the entries put with --parent KEY\n"
"  attrs KEY                  KEY's attributes\n"
"  health                     is a live writer serving the registry\n"
"  stats [--prometheus | --watch INTERVAL [--count N]]\n"
"                             registry counters (live with --watch)\n"
"  await KEY [--timeout D] [--raw]\n"
"                             wait until KEY exists, print its value\n"
"  watch [PREFIX] [--since REV]\n"
"                             print puts and deletes until interrupted\n"
"  ping                       round trip to the registry's daemon\n"
"  daemon-stats               the daemon's counters\n"
"  snapshot                   the daemon snapshots the registry's log\n"
"  rm-registry NAME           remove a registry no writer holds\n"
"  batch [FILE]               operations from stdin, one per line, applied\n"
"                             all or nothing through shmregd\n"
"  reload                     the daemon re-reads the registry's --load DIR\n"
"  registries                 the registries the daemon serves\n"
"  help [COMMAND]             a command's options (or: COMMAND --help)\n"
"\n"
"Options:\n"
"  -r, --registry NAME  registry name or absolute path, before the command\n"
"                       (default: $SHMREG_REGISTRY, else \"default\")\n"
"  -j, --json           JSON output (one object per line)\n"
"  -w, --output FORMAT  table, simple or json (list)\n"
"      --socket PATH    shmregd socket (default: $SHMREG_SOCKET,\n"
"                       $XDG_RUNTIME_DIR/shmreg.sock, /run/shmreg/shmreg.sock)\n"
"      --embedded       write as an embedded writer, not through shmregd\n"
"      --no-embedded    write through shmregd only\n"
"  -h, --help           show this help\n"
"  -V, --version        show the version\n"
"\n"
"A duration D is a number of seconds or has a unit: 500ms, 5s, 1m, 2h.\n"
"put and del go through the daemon serving the registry.  Without --socket\n"
"or $SHMREG_SOCKET, when no daemon answers, shmregctl opens the registry as\n"
"a short-lived embedded writer (and says so on stderr).\n"
"\n"
"Exit status: 0 found/done, 1 not found (a key, a registry, await timed\n"
"out), 2 usage error, 3 any other error, 128+N ended by signal N.\n"
"See shmregctl(1).\n";

int ctl_fail(const char *what, int err)
{
	fprintf(stderr, "shmregctl: %s: %s\n", what, strerror(err));
	return CTL_ERROR;
}

int ctl_say(int code, const char *fmt, ...)
{
	va_list ap;

	fputs("shmregctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

/* The command being parsed, so that a usage error points at its help. */
static const char *usage_cmd;

int ctl_usage(const char *fmt, ...)
{
	va_list ap;

	fputs("shmregctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (usage_cmd)
		fprintf(stderr, "\nTry 'shmregctl %s --help' for more "
			"information.\n", usage_cmd);
	else
		fputs("\nTry 'shmregctl --help' for more information.\n",
		      stderr);
	return CTL_USAGE;
}

/* volatile sig_atomic_t, not an atomic: the handler and the loop that reads
 * it run in the same thread, which is what sig_atomic_t is for. */
static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
	stop_signal = sig;
}

void ctl_catch_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

bool ctl_stopping(void)
{
	return stop_signal != 0;
}

int ctl_stop_status(void)
{
	return 128 + stop_signal;
}

static const struct ctl_cmd *find_cmd(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static int cmd_help(struct ctl *c)
{
	const struct ctl_cmd *cmd;

	if (!c->argc) {
		fputs(usage_text, stdout);
		return CTL_OK;
	}
	cmd = find_cmd(c->argv[0]);
	if (!cmd)
		return ctl_usage("help: unknown command '%s'", c->argv[0]);
	fputs(cmd->help, stdout);
	return CTL_OK;
}

enum {
	LO_SOCKET = 256,
	LO_OWNER,
	LO_TTL,
	LO_EXPECT,
	LO_EPHEMERAL,
	LO_TIMEOUT,
	LO_SINCE,
	LO_RAW,
	LO_VALUE_ONLY,
	LO_FILE,
	LO_PREFIX,
	LO_KEYS_ONLY,
	LO_LIMIT,
	LO_ATTR,
	LO_PARENT,
	LO_RECURSIVE,
	LO_PROMETHEUS,
	LO_WATCH,
	LO_COUNT,
	LO_EMBEDDED,
	LO_NO_EMBEDDED,
};

static const struct option long_opts[] = {
	{ "registry",   required_argument, NULL, 'r' },
	{ "json",       no_argument,       NULL, 'j' },
	{ "output",     required_argument, NULL, 'w' },
	{ "help",       no_argument,       NULL, 'h' },
	{ "version",    no_argument,       NULL, 'V' },
	{ "socket",     required_argument, NULL, LO_SOCKET },
	{ "embedded",   no_argument,       NULL, LO_EMBEDDED },
	{ "no-embedded", no_argument,      NULL, LO_NO_EMBEDDED },
	{ "owner",      required_argument, NULL, LO_OWNER },
	{ "ttl",        required_argument, NULL, LO_TTL },
	{ "expect-rev", required_argument, NULL, LO_EXPECT },
	{ "ephemeral",  no_argument,       NULL, LO_EPHEMERAL },
	{ "timeout",    required_argument, NULL, LO_TIMEOUT },
	{ "since",      required_argument, NULL, LO_SINCE },
	{ "raw",        no_argument,       NULL, LO_RAW },
	{ "print-value-only", no_argument, NULL, LO_VALUE_ONLY },
	{ "file",       required_argument, NULL, LO_FILE },
	{ "prefix",     required_argument, NULL, LO_PREFIX },
	{ "keys-only",  no_argument,       NULL, LO_KEYS_ONLY },
	{ "limit",      required_argument, NULL, LO_LIMIT },
	{ "attr",       required_argument, NULL, LO_ATTR },
	{ "parent",     required_argument, NULL, LO_PARENT },
	{ "recursive",  no_argument,       NULL, LO_RECURSIVE },
	{ "prometheus", no_argument,       NULL, LO_PROMETHEUS },
	{ "watch",      required_argument, NULL, LO_WATCH },
	{ "count",      required_argument, NULL, LO_COUNT },
	{ NULL, 0, NULL, 0 },
};

/* The option name of an OPT_* bit, for "X does not take --opt". */
static const char *opt_name(unsigned bit)
{
	switch (bit) {
	case OPT_OWNER:      return "--owner";
	case OPT_TTL:        return "--ttl";
	case OPT_EXPECT:     return "--expect-rev";
	case OPT_EPHEMERAL:  return "--ephemeral";
	case OPT_TIMEOUT:    return "--timeout";
	case OPT_SINCE:      return "--since";
	case OPT_RAW:        return "--raw";
	case OPT_VALUE_ONLY: return "--print-value-only";
	case OPT_FILE:       return "--file";
	case OPT_PREFIX:     return "--prefix";
	case OPT_KEYS_ONLY:  return "--keys-only";
	case OPT_LIMIT:      return "--limit";
	case OPT_ATTR:       return "--attr";
	case OPT_PARENT:     return "--parent";
	case OPT_RECURSIVE:  return "--recursive";
	case OPT_PROMETHEUS: return "--prometheus";
	case OPT_WATCH:      return "--watch";
	case OPT_COUNT:      return "--count";
	}
	return "?";
}

/* An unknown option that is a negative number ("put temp -5") was most
 * likely meant as a value: say how to pass one. */
static int unknown_option(const char *arg)
{
	if (arg[0] == '-' && ((arg[1] >= '0' && arg[1] <= '9') ||
			      (arg[1] == '.' && arg[2] >= '0' &&
			       arg[2] <= '9')))
		return ctl_usage("unknown option '%s' (a value that starts "
				 "with '-' goes after \"--\": shmregctl put "
				 "KEY -- %s)", arg, arg);
	return ctl_usage("unknown option '%s'", arg);
}

static int duration_usage(const char *opt, const char *arg)
{
	return ctl_usage("%s: not a duration (seconds, or a number with a "
			 "unit: 500ms, 5s, 1m, 2h): '%s'", opt, arg);
}

/* File scope so that an early return from main() leaves them reachable
 * (no leak report under LeakSanitizer); freed by the exit.  attr_bufs: the
 * storage of the --attr pairs in struct ctl. */
static char **pos;
static char *attr_bufs[SHMREG_ATTRS_MAX];

int main(int argc, char **argv)
{
	struct ctl c;
	const struct ctl_cmd *cmd;
	int npos = 0, opt, err, rc;
	bool help = false, w_given = false;
	const char *env;

	memset(&c, 0, sizeof(c));
	c.timeout_ns = -1;
	c.registry = getenv("SHMREG_REGISTRY");
	if (!c.registry || !*c.registry)
		c.registry = "default";
	/* $SHMREG_SOCKET names a socket as --socket does: it must answer */
	env = getenv("SHMREG_SOCKET");
	if (env && *env) {
		c.socket = env;
		c.socket_explicit = true;
	}

	/* argc + 1 slots hold every positional argument and a NULL */
	pos = calloc((size_t)argc + 1, sizeof(*pos));
	if (!pos)
		return ctl_fail("startup", ENOMEM);

	/* Options may come before or after the command and its arguments
	 * ("shmregctl get KEY --json").  A leading '-' in the option string
	 * makes getopt hand back every non-option in order (as option 1)
	 * instead of permuting argv, whatever POSIXLY_CORRECT says; "--"
	 * ends the options, so a value that starts with '-' can follow it. */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "-:r:jw:hV", long_opts,
				  NULL)) != -1) {
		switch (opt) {
		case 1:
			pos[npos++] = optarg;
			if (npos == 1 && find_cmd(optarg))
				usage_cmd = optarg;
			break;
		case 'r':
			/* "del -r a/" is rm -r's habit: after del, -r would
			 * be a recursive delete, which is not --registry */
			if (npos > 0 && strcmp(pos[0], "del") == 0 &&
			    strcmp(argv[optind - 2], "-r") == 0)
				return ctl_usage("del: -r after the command is "
						 "not --registry; name the "
						 "registry before it "
						 "(shmregctl -r NAME del KEY), "
						 "and delete a prefix with "
						 "del --prefix P");
			if (!*optarg)
				return ctl_usage("--registry needs a name");
			c.registry = optarg;
			break;
		case 'j':
			c.json = true;
			break;
		case 'w':
			w_given = true;
			if (strcmp(optarg, "json") == 0)
				c.output = OUT_JSON;
			else if (strcmp(optarg, "simple") == 0)
				c.output = OUT_SIMPLE;
			else if (strcmp(optarg, "table") == 0)
				c.output = OUT_TABLE;
			else
				return ctl_usage("--output: want table, simple "
						 "or json: '%s'", optarg);
			break;
		case 'h':
			help = true;
			break;
		case 'V':
			printf("shmregctl %s\n", SHMREG_CTL_VERSION);
			return ctl_flush(CTL_OK);
		case LO_SOCKET:
			if (!*optarg)
				return ctl_usage("--socket needs a path");
			c.socket = optarg;
			c.socket_explicit = true;
			break;
		case LO_EMBEDDED:
			c.embedded = 1;
			break;
		case LO_NO_EMBEDDED:
			c.embedded = -1;
			break;
		case LO_OWNER:
			if (parse_pid(optarg, &c.owner_pid))
				return ctl_usage("--owner: not a pid: '%s'",
						 optarg);
			c.given |= OPT_OWNER;
			break;
		case LO_TTL:
			rc = parse_duration(optarg, &c.ttl_ns);
			/* the library would refuse it (-EINVAL): say why */
			if (rc == -ERANGE ||
			    (rc == 0 && c.ttl_ns > SHMREG_TTL_MAX_NS))
				return ctl_usage("--ttl: at most %lld seconds "
						 "(100 years): '%s'",
						 (long long)(SHMREG_TTL_MAX_NS /
							     1000000000),
						 optarg);
			if (rc < 0)
				return duration_usage("--ttl", optarg);
			if (c.ttl_ns <= 0)
				return ctl_usage("--ttl: must be more than 0 "
						 "(leave it out for no "
						 "expiry): '%s'", optarg);
			c.given |= OPT_TTL;
			break;
		case LO_EXPECT:
			if (strcmp(optarg, "absent") == 0)
				c.expect_rev = SHMREG_REV_ABSENT;
			else if (parse_u64(optarg, &c.expect_rev) ||
				 c.expect_rev == 0 ||
				 c.expect_rev == SHMREG_REV_ABSENT)
				return ctl_usage("--expect-rev: not a revision "
						 "(or 'absent'): '%s'", optarg);
			c.given |= OPT_EXPECT;
			break;
		case LO_EPHEMERAL:
			c.given |= OPT_EPHEMERAL;
			break;
		case LO_TIMEOUT:
			if (parse_duration(optarg, &c.timeout_ns))
				return duration_usage("--timeout", optarg);
			c.given |= OPT_TIMEOUT;
			break;
		case LO_SINCE:
			if (parse_u64(optarg, &c.since_rev))
				return ctl_usage("--since: not a revision: '%s'",
						 optarg);
			c.given |= OPT_SINCE;
			break;
		case LO_RAW:
			c.given |= OPT_RAW;
			break;
		case LO_VALUE_ONLY:
			c.given |= OPT_VALUE_ONLY;
			break;
		case LO_FILE:
			c.file = optarg;
			c.given |= OPT_FILE;
			break;
		case LO_PREFIX:
			c.prefix = optarg;
			c.given |= OPT_PREFIX;
			break;
		case LO_KEYS_ONLY:
			c.given |= OPT_KEYS_ONLY;
			break;
		case LO_LIMIT:
			if (parse_u64(optarg, &c.limit) || c.limit == 0)
				return ctl_usage("--limit: not a count > 0: "
						 "'%s'", optarg);
			c.given |= OPT_LIMIT;
			break;
		case LO_ATTR:
			if (c.nattrs == SHMREG_ATTRS_MAX)
				return ctl_usage("--attr: at most %u per entry",
						 SHMREG_ATTRS_MAX);
			rc = ctl_parse_attr(optarg, &c.attrs[c.nattrs],
					    &attr_bufs[c.nattrs]);
			if (rc)
				return rc;
			c.nattrs++;
			c.given |= OPT_ATTR;
			break;
		case LO_PARENT:
			if (check_key(optarg, strlen(optarg)))
				return CTL_USAGE;
			c.parent = optarg;
			c.given |= OPT_PARENT;
			break;
		case LO_RECURSIVE:
			c.given |= OPT_RECURSIVE;
			break;
		case LO_PROMETHEUS:
			c.given |= OPT_PROMETHEUS;
			break;
		case LO_WATCH:
			/* 10 ms at least: a refresh is a few microseconds of
			 * work, a shorter interval only measures noise */
			if (parse_duration(optarg, &c.watch_ns) ||
			    c.watch_ns < 10000000)
				return ctl_usage("--watch: not an interval of "
						 "at least 10ms: '%s'", optarg);
			c.given |= OPT_WATCH;
			break;
		case LO_COUNT:
			if (parse_u64(optarg, &c.count) || c.count == 0)
				return ctl_usage("--count: not a count > 0: "
						 "'%s'", optarg);
			c.given |= OPT_COUNT;
			break;
		case ':':
			return ctl_usage("option '%s' needs an argument",
					 argv[optind - 1]);
		default:
			if (optopt > 0 && optopt < 256) {
				char o[3] = { '-', (char)optopt, '\0' };

				/* "-5": the whole argument, for the hint */
				if (optopt >= '0' && optopt <= '9')
					return unknown_option(argv[optind - 1]);
				return unknown_option(o);
			}
			return unknown_option(argv[optind - 1]);
		}
	}
	while (optind < argc)
		pos[npos++] = argv[optind++];

	if (help) {
		cmd = npos ? find_cmd(pos[0]) : NULL;
		fputs(cmd ? cmd->help : usage_text, stdout);
		return ctl_flush(CTL_OK);
	}
	if (npos == 0)
		return ctl_usage("no command given");
	cmd = find_cmd(pos[0]);
	if (!cmd)
		return ctl_usage("unknown command '%s'", pos[0]);
	for (unsigned bit = 1; bit <= OPT_LAST; bit <<= 1)
		if ((c.given & bit) && !(cmd->opts & bit))
			return ctl_usage("%s does not take %s", cmd->name,
					 opt_name(bit));
	if (w_given && c.output == OUT_JSON)
		c.json = true;
	else if (w_given && c.json)
		return ctl_usage("--json and --output %s: choose one",
				 c.output == OUT_SIMPLE ? "simple" : "table");
	else if (c.json)
		c.output = OUT_JSON;
	if (c.json && (c.given & OPT_RAW))
		return ctl_usage("--raw and --json: choose one (--raw prints "
				 "the value's bytes, --json an object)");
	if (c.json && (c.given & OPT_VALUE_ONLY))
		return ctl_usage("--print-value-only and --json: choose one");
	if (npos - 1 < cmd->min_args)
		return ctl_usage("%s: missing argument", cmd->name);
	if (npos - 1 > cmd->max_args)
		return ctl_usage("%s: unexpected argument '%s'", cmd->name,
				 pos[1 + cmd->max_args]);
	c.cmd = cmd->name;
	c.argc = npos - 1;
	c.argv = pos + 1;

	err = cmd->fn(&c);
	return ctl_flush(err);
}
