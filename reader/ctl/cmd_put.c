/* SPDX-License-Identifier: MIT */
/* cmd_put.c - shmregctl put KEY VALUE|-|--file F: store one entry. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"

int cmd_put(struct ctl *c)
{
	const char *key = c->argv[0];
	size_t klen = strlen(key);
	shmreg_put_opts_t opts;
	struct ctl_writer *w;
	char *val = c->argc > 1 ? c->argv[1] : NULL, *owned = NULL;
	size_t vlen;
	int64_t rev;
	int ret;

	ret = check_key(key, klen);
	if (ret)
		return ret;
	if (c->file && val)
		return ctl_usage("put: a VALUE and --file: choose one");
	if (!c->file && !val)
		return ctl_usage("put: missing argument (VALUE, '-' or "
				 "--file FILE)");
	if (c->file || strcmp(val, "-") == 0) {
		const char *from = c->file ? c->file : "standard input";
		int fd = STDIN_FILENO;
		ssize_t n;

		if (c->file) {
			fd = open(c->file, O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				return ctl_fail(c->file, errno);
		}
		n = read_fd_value(fd, &owned);
		if (c->file)
			close(fd);
		if (n == -E2BIG)
			return ctl_say(CTL_ERROR, "value in %s is over the %u "
				       "MiB limit", from,
				       SHMREG_VALUE_MAX >> 20);
		if (n < 0)
			return ctl_fail(from, (int)-n);
		val = owned;
		vlen = (size_t)n;
	} else {
		vlen = strlen(val);
	}

	memset(&opts, 0, sizeof(opts));
	opts.owner_pid = c->owner_pid;
	opts.ttl_ns = (c->given & OPT_TTL) ? c->ttl_ns : 0;
	opts.expect_rev = c->expect_rev;
	if (c->given & OPT_EPHEMERAL)
		opts.flags |= SHMREG_EPHEMERAL;
	opts.attrs = c->nattrs ? c->attrs : NULL;
	opts.nattrs = c->nattrs;
	if (c->parent) {
		opts.parent = c->parent;
		opts.parent_len = strlen(c->parent);
	}

	ret = ctl_writer_open(c, true, &w);
	if (ret) {
		free(owned);
		return ret;
	}
	if ((c->given & OPT_OWNER) && !ctl_writer_is_daemon(w)) {
		/* The daemon refuses a dead owner (-ESRCH) and removes the
		 * entry when the owner exits.  An embedded writer that lives
		 * for one command can do the first, not the second: say so.
		 * A process of another user answers EPERM: it exists. */
		if (kill(c->owner_pid, 0) < 0 && errno == ESRCH) {
			rev = -ESRCH;
			goto report;
		}
		fprintf(stderr, "shmregctl: note: no daemon serves registry "
			"%s; pid %d is recorded as the owner, but nothing "
			"removes the entry when it exits\n", c->registry,
			(int)c->owner_pid);
	}
	rev = ctl_writer_put(w, key, klen, val, vlen, &opts);
report:
	free(owned);
	if (rev > 0) {
		ctl_writer_report(c, w, key, klen, rev);
		ret = CTL_OK;
	} else if (rev == -EEXIST && c->expect_rev == SHMREG_REV_ABSENT) {
		ret = ctl_say(CTL_ERROR, "%s: not stored: the key exists "
			      "(--expect-rev absent)", key);
	} else if (rev == -EEXIST) {
		ret = ctl_say(CTL_ERROR, "%s: not stored: its mod_rev is not "
			      "%" PRIu64 " (--expect-rev)", key, c->expect_rev);
	} else if (rev == -ENOENT && c->parent) {
		ret = ctl_say(CTL_ERROR, "%s: not stored: the parent %s does "
			      "not exist", key, c->parent);
	} else if (rev == -ELOOP) {
		ret = ctl_say(CTL_ERROR, "%s: not stored: the parent %s is the "
			      "key or below it", key, c->parent);
	} else if (rev == -EOPNOTSUPP) {
		ret = ctl_say(CTL_ERROR, "%s: not stored: this daemon is too "
			      "old for attributes or a parent", key);
	} else if (rev == -ESRCH) {
		ret = ctl_say(CTL_ERROR, "%s: not stored: owner pid %d does not "
			      "exist", key, (int)c->owner_pid);
	} else if (rev == -E2BIG) {
		ret = ctl_say(CTL_ERROR, "%s: not stored: the value (%zu bytes) "
			      "is over the registry's limit", key, vlen);
	} else if (rev == 0) {
		/* SHMREG_NEVER: a put returns a revision > 0 or -errno */
		ret = ctl_say(CTL_ERROR, "%s: put returned no revision", key);
	} else {
		ret = ctl_fail(key, (int)-rev);
	}
	ctl_writer_close(w);
	return ret;
}
