/* SPDX-License-Identifier: MIT */
/* args.c - shmregd's command line. */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "duration.h"

/* The project's version (CMake's PROJECT_VERSION), as shmregctl prints. */
#ifndef SHMREGD_VERSION
#define SHMREGD_VERSION "unknown"
#endif

static const char usage[] =
"Usage: shmregd [options] --registry NAME [registry options]\n"
"               [--registry NAME [registry options] ...]\n"
"\n"
"Serve shmreg registries: own them as their one writer and apply the\n"
"writes that clients send over a Unix stream socket.  Runs in the\n"
"foreground and logs to stderr; SIGTERM or SIGINT shut it down cleanly.\n"
"\n"
"  -r, --registry NAME     registry to own (repeatable, up to 64): a name\n"
"                          (file $SHMREG_DIR/shmreg.NAME, else\n"
"                          /dev/shm/shmreg.NAME) or an absolute path\n"
"  -s, --socket PATH       listening socket (default $SHMREG_SOCKET, else\n"
"                          $XDG_RUNTIME_DIR/shmreg.sock, else\n"
"                          /run/shmreg/shmreg.sock)\n"
"  -m, --mode MODE         file mode of the registry segments, octal\n"
"                          (default 0644): who may read  [*]\n"
"      --socket-mode MODE  file mode of the socket (default 0666; who may\n"
"                          write is decided by --allow-uid/--allow-gid)\n"
"  -u, --allow-uid UID     uid (or user name) allowed to write\n"
"                          (repeatable; default: the daemon's own uid)  [*]\n"
"  -g, --allow-gid GID     gid (or group name) allowed to write, as primary\n"
"                          or supplementary group (repeatable)  [*]\n"
"  -l, --load DIR          fill the registry from the files under DIR at\n"
"                          start, again on SIGHUP (only after --registry)\n"
"      --max-connections N open connections of allowed writers at most\n"
"                          (default 1024; refused peers do not count)\n"
"      --max-connections-per-uid N\n"
"                          open connections of one uid at most (default:\n"
"                          no limit but --max-connections)\n"
"      --max-inflight N    requests in flight per connection before the\n"
"                          daemon stops reading it (default 1024)\n"
"      --stall-timeout D   close a connection that takes none of its\n"
"                          replies for this long (default 30s)\n"
"      --idle-timeout D    close a connection that sends no request for\n"
"                          this long, unless it owns ephemeral entries\n"
"                          (default 60s; 0 = never)\n"
"      --input-budget MIB  buffered partial requests of all connections\n"
"                          together, at most (default 256, at least 32);\n"
"                          a frame that does not fit gets -EAGAIN\n"
"      --drain-timeout D   on shutdown, wait this long for clients to take\n"
"                          their last replies (default 5s)\n"
"      --etcd URL[,URL...] mirror a prefix of this etcd v3 cluster (its\n"
"                          members' client URLs): reads are local, writes\n"
"                          go to etcd (only after --registry, with\n"
"                          --etcd-prefix; see docs/multi-host.md)\n"
"      --etcd-prefix P     the etcd key prefix mirrored; local key = etcd\n"
"                          key without P\n"
"      --etcd-timeout D    bound of a forwarded write (default 2s)\n"
"      --etcd-stall-timeout D\n"
"                          reconnect a watch that receives nothing for\n"
"                          this long (default 10s; whole seconds count)\n"
"      --etcd-lease-ttl S  TTL of the etcd lease of each owner (a pid or\n"
"                          a connection), kept alive while it lives:\n"
"                          seconds or a duration (default 5s, at least\n"
"                          2s, whole seconds)\n"
"      --truncate          start the registries empty\n"
"      --data-dir DIR      persist the registry: its log and snapshots in\n"
"                          DIR/NAME/, recovered from there at start [*]\n"
"      --durability MODE   none, batch (default) or sync [*]\n"
"      --batch-ms N        batch: fdatasync at most N ms after a change\n"
"                          (default 10, 1..60000) [*]\n"
"      --recover-prefix    a log damaged in the middle: start with what\n"
"                          precedes the damage instead of refusing [*]\n"
"      --ready-fd FD       write \"READY\\n\" to FD once serving, then close\n"
"                          it (systemd's NOTIFY_SOCKET is also honoured)\n"
"      --metrics-listen ADDR:PORT\n"
"                          serve Prometheus metrics at GET /metrics on\n"
"                          this TCP address (127.0.0.1:9464, [::1]:9464)\n"
"  -v, --verbose           log connections (twice: every error reply)\n"
"  -q, --quiet             log errors only\n"
"  -h, --help              this text\n"
"  -V, --version           print the version\n"
"\n"
"A duration D is milliseconds, or a number with a unit: 500ms, 5s, 1m, 2h.\n"
"\n"
"[*] Registry options: written after a --registry, they apply to that\n"
"registry only; before the first --registry, they are the defaults of\n"
"every registry.  A registry's own --allow-uid/--allow-gid replace the\n"
"default lists (both) for it.\n";

#define DURATION_WANT "want milliseconds or a duration: 500ms, 5s, 1m, 2h"

/* A timeout: plain numbers stay milliseconds (as before units came), at
 * most a day; whole milliseconds or finer, as given. */
static int parse_ms(const char *s, uint64_t *ns)
{
	int64_t v;

	if (shm_parse_duration(s, SHM_NS_PER_MS, &v) || v > 86400 * SHM_NS_PER_S)
		return -EINVAL;
	*ns = (uint64_t)v;
	return 0;
}

static int parse_ulong(const char *s, int base, unsigned long max,
		       unsigned long *out)
{
	char *end;
	unsigned long v;

	if (!*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, base);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_uid(const char *s, uid_t *out)
{
	unsigned long v;
	struct passwd *pw;

	if (parse_ulong(s, 10, (uid_t)-2, &v) == 0) {
		*out = (uid_t)v;
		return 0;
	}
	pw = getpwnam(s);
	if (!pw)
		return -ENOENT;
	*out = pw->pw_uid;
	return 0;
}

static int parse_gid(const char *s, gid_t *out)
{
	unsigned long v;
	struct group *gr;

	if (parse_ulong(s, 10, (gid_t)-2, &v) == 0) {
		*out = (gid_t)v;
		return 0;
	}
	gr = getgrnam(s);
	if (!gr)
		return -ENOENT;
	*out = gr->gr_gid;
	return 0;
}

static int default_socket(char *buf, size_t cap)
{
	const char *s = getenv("SHMREG_SOCKET");
	const char *x = getenv("XDG_RUNTIME_DIR");
	int n;

	if (s && *s)
		n = snprintf(buf, cap, "%s", s);
	else if (x && *x == '/')
		n = snprintf(buf, cap, "%s/shmreg.sock", x);
	else
		n = snprintf(buf, cap, "/run/shmreg/shmreg.sock");
	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

enum {
	OPT_SOCKET_MODE = 256,
	OPT_MAX_CONNS,
	OPT_MAX_PER_UID,
	OPT_MAX_INFLIGHT,
	OPT_STALL,
	OPT_DRAIN,
	OPT_IDLE,
	OPT_BUDGET,
	OPT_TRUNCATE,
	OPT_READY_FD,
	OPT_METRICS,
	OPT_ETCD,
	OPT_ETCD_PREFIX,
	OPT_ETCD_TIMEOUT,
	OPT_ETCD_STALL,
	OPT_ETCD_LEASE_TTL,
	OPT_DATA_DIR,
	OPT_DURABILITY,
	OPT_BATCH_MS,
	OPT_RECOVER_PREFIX,
};

static const struct option longopts[] = {
	{ "registry", required_argument, NULL, 'r' },
	{ "socket", required_argument, NULL, 's' },
	{ "mode", required_argument, NULL, 'm' },
	{ "socket-mode", required_argument, NULL, OPT_SOCKET_MODE },
	{ "allow-uid", required_argument, NULL, 'u' },
	{ "allow-gid", required_argument, NULL, 'g' },
	{ "load", required_argument, NULL, 'l' },
	{ "max-connections", required_argument, NULL, OPT_MAX_CONNS },
	{ "max-connections-per-uid", required_argument, NULL,
	  OPT_MAX_PER_UID },
	{ "max-inflight", required_argument, NULL, OPT_MAX_INFLIGHT },
	{ "stall-timeout", required_argument, NULL, OPT_STALL },
	{ "drain-timeout", required_argument, NULL, OPT_DRAIN },
	{ "idle-timeout", required_argument, NULL, OPT_IDLE },
	{ "input-budget", required_argument, NULL, OPT_BUDGET },
	{ "truncate", no_argument, NULL, OPT_TRUNCATE },
	{ "ready-fd", required_argument, NULL, OPT_READY_FD },
	{ "metrics-listen", required_argument, NULL, OPT_METRICS },
	{ "etcd", required_argument, NULL, OPT_ETCD },
	{ "etcd-prefix", required_argument, NULL, OPT_ETCD_PREFIX },
	{ "etcd-timeout", required_argument, NULL, OPT_ETCD_TIMEOUT },
	{ "etcd-stall-timeout", required_argument, NULL, OPT_ETCD_STALL },
	{ "etcd-lease-ttl", required_argument, NULL, OPT_ETCD_LEASE_TTL },
	{ "data-dir", required_argument, NULL, OPT_DATA_DIR },
	{ "durability", required_argument, NULL, OPT_DURABILITY },
	{ "batch-ms", required_argument, NULL, OPT_BATCH_MS },
	{ "recover-prefix", no_argument, NULL, OPT_RECOVER_PREFIX },
	{ "verbose", no_argument, NULL, 'v' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

/* The rule of shm/paths.c (which the daemon does not link): checked here
 * so that a bad name is a usage error (exit 2), not a failed open. */
static bool name_ok(const char *s)
{
	size_t n = strlen(s);

	if (s[0] == '/')
		return true;
	if (n == 0 || n > SHMREG_NAME_MAX || s[0] == '.')
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' ||
		      *s == '-'))
			return false;
	return true;
}

static int bad(const char *opt, const char *arg, const char *why)
{
	fprintf(stderr, "shmregd: %s %s: %s (see --help)\n", opt, arg, why);
	return 2 + 1;
}

/* --data-dir, --durability, --batch-ms, --recover-prefix into @po. */
static int d_parse_persist(int opt, const char *arg, struct d_persist_opt *po)
{
	static const char *modes[] = { "batch", "none", "sync" };
	unsigned long v;

	switch (opt) {
	case OPT_DATA_DIR:
		if (!arg[0])
			return bad("--data-dir", arg, "empty path");
		po->data_dir = arg;
		return 0;
	case OPT_DURABILITY:
		for (int m = 0; m < 3; m++)
			if (!strcmp(arg, modes[m])) {
				po->durability = m; /* SHMREG_DURABILITY_* */
				return 0;
			}
		return bad("--durability", arg, "want none, batch or sync");
	case OPT_BATCH_MS:
		if (parse_ulong(arg, 10, 60000, &v) || v == 0)
			return bad("--batch-ms", arg, "want 1..60000 ms");
		po->batch_ms = (int)v;
		return 0;
	default:
		po->keep_prefix = true;
		return 0;
	}
}

/* The allow lists an --allow-uid/--allow-gid adds to: the defaults before
 * the first --registry, else the last registry's own (started empty). */
static struct d_acl *cur_acl(struct d_opts *o)
{
	struct d_regopt *ro;

	if (!o->nreg)
		return &o->acl;
	ro = &o->reg[o->nreg - 1];
	ro->acl_set = true;
	return &ro->acl;
}

int d_parse_args(int argc, char **argv, struct d_opts *o)
{
	bool sock_given = false;
	struct d_acl *acl;
	unsigned long v;
	int c;

	memset(o, 0, sizeof(*o));
	o->seg_mode = 0644;
	o->sock_mode = 0666;
	o->max_conns = 1024;
	o->max_inflight = 1024;
	o->stall_ns = 30000ull * 1000000;
	o->drain_ns = 5000ull * 1000000;
	o->idle_ns = 60000ull * 1000000;
	o->in_budget = 256ull << 20;
	o->ready_fd = -1;
	o->verbose = D_INFO;
	o->po.durability = o->po.batch_ms = -1;

	/* getopt's own messages name the binary by its full path: ours use
	 * the short name and point at --help */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":r:s:m:u:g:l:vqhV", longopts,
				NULL)) != -1) {
		switch (c) {
		case 'r':
			if (o->nreg == D_MAX_REGISTRIES)
				return bad("--registry", optarg,
					   "too many registries");
			if (!*optarg || strlen(optarg) > PROTO_NAME_MAX ||
			    !name_ok(optarg))
				return bad("--registry", optarg,
					   "not a registry name: 1..200 "
					   "letters, digits, '.', '_' or '-', "
					   "not starting with '.'; or an "
					   "absolute path");
			for (unsigned i = 0; i < o->nreg; i++)
				if (!strcmp(o->reg[i].name, optarg))
					return bad("--registry", optarg,
						   "given twice");
			o->reg[o->nreg].po.durability = -1;
			o->reg[o->nreg].po.batch_ms = -1;
			o->reg[o->nreg++].name = optarg;
			break;
		case 's':
			if (strlen(optarg) >= sizeof(o->socket_path) ||
			    !*optarg)
				return bad("--socket", optarg,
					   "empty or longer than 107 bytes");
			strcpy(o->socket_path, optarg);
			sock_given = true;
			break;
		case 'm':
			if (parse_ulong(optarg, 8, 07777, &v))
				return bad("--mode", optarg, "not an octal mode");
			if (o->nreg) {
				o->reg[o->nreg - 1].mode = (mode_t)v;
				o->reg[o->nreg - 1].mode_set = true;
			} else {
				o->seg_mode = (mode_t)v;
			}
			break;
		case OPT_SOCKET_MODE:
			if (parse_ulong(optarg, 8, 0777, &v))
				return bad("--socket-mode", optarg,
					   "not an octal mode");
			o->sock_mode = (mode_t)v;
			break;
		case 'u':
			acl = cur_acl(o);
			if (acl->nuid == D_MAX_IDS)
				return bad("--allow-uid", optarg, "too many");
			if (parse_uid(optarg, &acl->uid[acl->nuid++]))
				return bad("--allow-uid", optarg, "no such user");
			break;
		case 'g':
			acl = cur_acl(o);
			if (acl->ngid == D_MAX_IDS)
				return bad("--allow-gid", optarg, "too many");
			if (parse_gid(optarg, &acl->gid[acl->ngid++]))
				return bad("--allow-gid", optarg,
					   "no such group");
			break;
		case 'l':
			if (!o->nreg)
				return bad("--load", optarg,
					   "belongs after a --registry");
			if (!*optarg)
				return bad("--load", optarg, "empty path");
			if (o->reg[o->nreg - 1].load_dir)
				return bad("--load", optarg,
					   "given twice for one registry");
			o->reg[o->nreg - 1].load_dir = optarg;
			break;
		case OPT_MAX_CONNS:
			if (parse_ulong(optarg, 10, 1u << 20, &v) || !v)
				return bad("--max-connections", optarg,
					   "want 1..1048576");
			o->max_conns = (unsigned)v;
			break;
		case OPT_MAX_PER_UID:
			if (parse_ulong(optarg, 10, 1u << 20, &v) || !v)
				return bad("--max-connections-per-uid", optarg,
					   "want 1..1048576");
			o->max_per_uid = (unsigned)v;
			break;
		case OPT_MAX_INFLIGHT:
			if (parse_ulong(optarg, 10, 1u << 16, &v) || !v)
				return bad("--max-inflight", optarg,
					   "want 1..65536");
			o->max_inflight = (unsigned)v;
			break;
		case OPT_STALL:
			if (parse_ms(optarg, &o->stall_ns) || !o->stall_ns)
				return bad("--stall-timeout", optarg,
					   DURATION_WANT " (1ms .. 24h)");
			break;
		case OPT_DRAIN:
			if (parse_ms(optarg, &o->drain_ns))
				return bad("--drain-timeout", optarg,
					   DURATION_WANT " (0 .. 24h)");
			break;
		case OPT_IDLE:
			if (parse_ms(optarg, &o->idle_ns))
				return bad("--idle-timeout", optarg,
					   DURATION_WANT " (0 .. 24h)");
			break;
		case OPT_BUDGET:
			/* at least 32 MiB: the largest frame must fit in
			 * what large frames may use (7/8 of it) */
			if (parse_ulong(optarg, 10, 1u << 20, &v) || v < 32)
				return bad("--input-budget", optarg,
					   "want 32..1048576 MiB");
			o->in_budget = (uint64_t)v << 20;
			break;
		case OPT_TRUNCATE:
			o->truncate = true;
			break;
		case OPT_DATA_DIR:
		case OPT_DURABILITY:
		case OPT_BATCH_MS:
		case OPT_RECOVER_PREFIX: {
			/* persistence options: the last registry's, or the
			 * defaults before the first */
			struct d_persist_opt *po = o->nreg
				? &o->reg[o->nreg - 1].po : &o->po;
			int rc = d_parse_persist(c, optarg, po);

			if (rc)
				return rc;
			break;
		}
		case OPT_READY_FD:
			if (parse_ulong(optarg, 10, INT_MAX, &v))
				return bad("--ready-fd", optarg, "not an fd");
			o->ready_fd = (int)v;
			break;
		case OPT_METRICS:
			if (!metrics_parse_listen(optarg))
				return bad("--metrics-listen", optarg,
					   "want ADDR:PORT, e.g. "
					   "127.0.0.1:9464 or [::1]:9464");
			o->metrics_listen = optarg;
			break;
		case OPT_ETCD:
		case OPT_ETCD_PREFIX:
		case OPT_ETCD_TIMEOUT:
		case OPT_ETCD_STALL:
		case OPT_ETCD_LEASE_TTL: {
			static const char *const names[] = {
				"--etcd", "--etcd-prefix", "--etcd-timeout",
				"--etcd-stall-timeout", "--etcd-lease-ttl" };
			const char *nm = names[c - OPT_ETCD];
			struct d_mirror_opts *mo;

			if (!o->nreg)
				return bad(nm, optarg,
					   "belongs after a --registry");
			mo = &o->reg[o->nreg - 1].mirror;
			if (c == OPT_ETCD) {
				if (strncmp(optarg, "http://", 7) &&
				    strncmp(optarg, "https://", 8))
					return bad(nm, optarg, "want http(s)://"
						   "HOST:PORT[,...]");
				mo->urls = optarg;
			} else if (c == OPT_ETCD_PREFIX) {
				if (!*optarg)
					return bad(nm, optarg, "empty prefix");
				mo->prefix = optarg;
			} else if (c == OPT_ETCD_LEASE_TTL) {
				int64_t ttl;

				/* etcd's TTLs are whole seconds, at least 2
				 * (default timings); a plain number is
				 * seconds, as it always was */
				if (shm_parse_duration(optarg, SHM_NS_PER_S,
						       &ttl) ||
				    ttl % SHM_NS_PER_S ||
				    ttl < 2 * SHM_NS_PER_S ||
				    ttl > 86400 * SHM_NS_PER_S)
					return bad(nm, optarg, "want seconds or "
						   "a duration: 5s, 1m (whole "
						   "seconds, 2s .. 24h)");
				mo->lease_ttl_s = (unsigned)(ttl / SHM_NS_PER_S);
			} else {
				uint64_t ns;

				if (parse_ms(optarg, &ns) ||
				    ns < (uint64_t)SHM_NS_PER_MS ||
				    ns > 3600 * (uint64_t)SHM_NS_PER_S)
					return bad(nm, optarg, DURATION_WANT
						   " (1ms .. 1h)");
				if (c == OPT_ETCD_TIMEOUT)
					mo->timeout_ns = ns;
				else
					mo->stall_ns = ns;
			}
			break;
		}
		case 'v':
			o->verbose++;
			break;
		case 'q':
			o->verbose = D_ERR;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0 + 1;
		case 'V':
			printf("shmregd %s\n", SHMREGD_VERSION);
			return 0 + 1;
		case ':':
			fprintf(stderr, "shmregd: option '%s' needs an "
				"argument (see --help)\n", argv[optind - 1]);
			return 2 + 1;
		default:
			if (optopt > 0 && optopt < 256)
				fprintf(stderr, "shmregd: unknown option '-%c' "
					"(see --help)\n", optopt);
			else
				fprintf(stderr, "shmregd: unknown option '%s' "
					"(see --help)\n", argv[optind - 1]);
			return 2 + 1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "shmregd: unexpected argument '%s' (see --help)\n",
			argv[optind]);
		return 2 + 1;
	}
	if (!o->nreg) {
		fputs("shmregd: no --registry given (see --help)\n", stderr);
		return 2 + 1;
	}
	if (!sock_given && default_socket(o->socket_path,
					  sizeof(o->socket_path))) {
		fputs("shmregd: default socket path too long; use --socket\n",
		      stderr);
		return 2 + 1;
	}
	if (!o->acl.nuid && !o->acl.ngid)
		o->acl.uid[o->acl.nuid++] = geteuid();
	for (unsigned i = 0; i < o->nreg; i++) {
		struct d_regopt *ro = &o->reg[i];

		if (!ro->mode_set)
			ro->mode = o->seg_mode;
		if (!ro->acl_set)
			ro->acl = o->acl;
		if (!ro->mirror.urls != !ro->mirror.prefix) {
			fprintf(stderr, "shmregd: registry %s: --etcd and "
				"--etcd-prefix go together (see --help)\n",
				ro->name);
			return 2 + 1;
		}
		if (ro->mirror.urls && o->truncate) {
			/* truncating keeps the revision going, and a mirror's
			 * revisions are etcd's: it could not take etcd's
			 * range at a revision below its own */
			fprintf(stderr, "shmregd: registry %s: a mirror of "
				"etcd cannot --truncate; remove the registry "
				"instead (see --help)\n", ro->name);
			return 2 + 1;
		}
		if (ro->mirror.urls && ro->load_dir) {
			fprintf(stderr, "shmregd: registry %s: a mirror of "
				"etcd cannot --load (see --help)\n", ro->name);
			return 2 + 1;
		}
		if (!ro->mirror.timeout_ns)
			ro->mirror.timeout_ns = 2000ull * 1000000;
		if (!ro->mirror.stall_ns)
			ro->mirror.stall_ns = 10000ull * 1000000;
		if (!ro->mirror.lease_ttl_s)
			ro->mirror.lease_ttl_s = 5;
		if (!ro->po.data_dir)
			ro->po.data_dir = o->po.data_dir;
		if (ro->po.durability < 0)
			ro->po.durability = o->po.durability;
		if (ro->po.batch_ms < 0)
			ro->po.batch_ms = o->po.batch_ms;
		if (ro->po.durability < 0)
			ro->po.durability = 0; /* SHMREG_DURABILITY_BATCH */
		if (ro->po.batch_ms < 0)
			ro->po.batch_ms = 0;   /* the writer's default */
		ro->po.keep_prefix |= o->po.keep_prefix;
		if (ro->mirror.urls && ro->po.data_dir) {
			/* etcd holds a mirror's history: a restart resumes
			 * from the segment or ranges etcd again, and a local
			 * log could only disagree with it */
			fprintf(stderr, "shmregd: registry %s: a mirror of "
				"etcd keeps no --data-dir (see --help)\n",
				ro->name);
			return 2 + 1;
		}
	}
	return 0;
}
