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
};

static const struct ctl_cmd commands[] = {
	{ "get",   cmd_get,   OPT_RAW, 1, 1 },
	{ "put",   cmd_put,   OPT_OWNER | OPT_TTL | OPT_EXPECT | OPT_EPHEMERAL,
	  2, 2 },
	{ "del",   cmd_del,   0, 1, 1 },
	{ "list",  cmd_list,  0, 0, 1 },
	{ "stats", cmd_stats, 0, 0, 0 },
	{ "await", cmd_await, OPT_TIMEOUT | OPT_RAW, 1, 1 },
	{ "watch", cmd_watch, OPT_SINCE, 0, 1 },
};

static const char usage_text[] =
"usage: shmregctl [OPTIONS] COMMAND [ARGS]\n"
"\n"
"Read and write a shmreg registry.\n"
"\n"
"Commands:\n"
"  get KEY [--raw]            print KEY's value\n"
"  put KEY VALUE|- [--owner PID] [--ttl S] [--expect-rev REV|absent]\n"
"                  [--ephemeral]\n"
"                             store VALUE (\"-\": read it from stdin)\n"
"  del KEY                    delete KEY\n"
"  list [PREFIX]              one line per entry: key, value bytes, mod_rev\n"
"  stats                      registry counters\n"
"  await KEY [--timeout S] [--raw]\n"
"                             wait until KEY exists, print its value\n"
"  watch [PREFIX] [--since REV]\n"
"                             print puts and deletes until interrupted\n"
"\n"
"Options:\n"
"  -r, --registry NAME  registry name or absolute path\n"
"                       (default: $SHMREG_REGISTRY, else \"default\")\n"
"  -j, --json           JSON output (one object per line)\n"
"      --socket PATH    shmregd socket for put/del (default: $SHMREG_SOCKET,\n"
"                       $XDG_RUNTIME_DIR/shmreg.sock, /run/shmreg/shmreg.sock)\n"
"  -h, --help           show this help\n"
"  -V, --version        show the version\n"
"\n"
"put and del go through the daemon serving the registry; when none answers,\n"
"shmregctl opens the registry as a short-lived embedded writer.\n"
"\n"
"Exit status: 0 found/done, 1 not found (or await timed out), 2 usage error,\n"
"3 any other error.  See shmregctl(1).\n";

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

int ctl_usage(const char *fmt, ...)
{
	va_list ap;

	fputs("shmregctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'shmregctl --help' for more information.\n", stderr);
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

static const struct ctl_cmd *find_cmd(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
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
};

static const struct option long_opts[] = {
	{ "registry",   required_argument, NULL, 'r' },
	{ "json",       no_argument,       NULL, 'j' },
	{ "help",       no_argument,       NULL, 'h' },
	{ "version",    no_argument,       NULL, 'V' },
	{ "socket",     required_argument, NULL, LO_SOCKET },
	{ "owner",      required_argument, NULL, LO_OWNER },
	{ "ttl",        required_argument, NULL, LO_TTL },
	{ "expect-rev", required_argument, NULL, LO_EXPECT },
	{ "ephemeral",  no_argument,       NULL, LO_EPHEMERAL },
	{ "timeout",    required_argument, NULL, LO_TIMEOUT },
	{ "since",      required_argument, NULL, LO_SINCE },
	{ "raw",        no_argument,       NULL, LO_RAW },
	{ NULL, 0, NULL, 0 },
};

/* The option name of an OPT_* bit, for "X does not take --opt". */
static const char *opt_name(unsigned bit)
{
	switch (bit) {
	case OPT_OWNER:     return "--owner";
	case OPT_TTL:       return "--ttl";
	case OPT_EXPECT:    return "--expect-rev";
	case OPT_EPHEMERAL: return "--ephemeral";
	case OPT_TIMEOUT:   return "--timeout";
	case OPT_SINCE:     return "--since";
	case OPT_RAW:       return "--raw";
	}
	return "?";
}

/* File scope so that an early return from main() leaves it reachable (no
 * leak report under LeakSanitizer); freed by the exit. */
static char **pos;

int main(int argc, char **argv)
{
	struct ctl c;
	const struct ctl_cmd *cmd;
	int npos = 0, opt, err, rc;

	memset(&c, 0, sizeof(c));
	c.timeout_ns = -1;
	c.registry = getenv("SHMREG_REGISTRY");
	if (!c.registry || !*c.registry)
		c.registry = "default";

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
	while ((opt = getopt_long(argc, argv, "-:r:jhV", long_opts,
				  NULL)) != -1) {
		switch (opt) {
		case 1:
			pos[npos++] = optarg;
			break;
		case 'r':
			if (!*optarg)
				return ctl_usage("--registry needs a name");
			c.registry = optarg;
			break;
		case 'j':
			c.json = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return ctl_flush(CTL_OK);
		case 'V':
			printf("shmregctl %s\n", SHMREG_CTL_VERSION);
			return ctl_flush(CTL_OK);
		case LO_SOCKET:
			c.socket = optarg;
			break;
		case LO_OWNER:
			if (parse_pid(optarg, &c.owner_pid))
				return ctl_usage("--owner: not a pid: '%s'",
						 optarg);
			c.given |= OPT_OWNER;
			break;
		case LO_TTL:
			rc = parse_seconds(optarg, &c.ttl_ns);
			/* the library would refuse it (-EINVAL): say why */
			if (rc == -ERANGE ||
			    (rc == 0 && c.ttl_ns > SHMREG_TTL_MAX_NS))
				return ctl_usage("--ttl: at most %lld seconds "
						 "(100 years): '%s'",
						 (long long)(SHMREG_TTL_MAX_NS /
							     1000000000),
						 optarg);
			if (rc < 0 || c.ttl_ns <= 0)
				return ctl_usage("--ttl: not a positive number "
						 "of seconds: '%s'", optarg);
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
			if (parse_seconds(optarg, &c.timeout_ns))
				return ctl_usage("--timeout: not a number of "
						 "seconds: '%s'", optarg);
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
		case ':':
			return ctl_usage("option '%s' needs an argument",
					 argv[optind - 1]);
		default:
			if (optopt > 0 && optopt < 256)
				return ctl_usage("unknown option '-%c'", optopt);
			return ctl_usage("unknown option '%s'",
					 argv[optind - 1]);
		}
	}
	while (optind < argc)
		pos[npos++] = argv[optind++];

	if (npos == 0)
		return ctl_usage("no command given");
	cmd = find_cmd(pos[0]);
	if (!cmd)
		return ctl_usage("unknown command '%s'", pos[0]);
	for (unsigned bit = 1; bit <= OPT_RAW; bit <<= 1)
		if ((c.given & bit) && !(cmd->opts & bit))
			return ctl_usage("%s does not take %s", cmd->name,
					 opt_name(bit));
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
